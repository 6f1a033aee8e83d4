//! Delivering one request's work: each request goes through
//! [`retry::send_with_retry`], and a batch Pusher rejects is split until
//! the bad events are alone. The event loop only learns each unit's final
//! outcome.

use std::collections::VecDeque;
use std::sync::Arc;

use super::circuit::Circuit;
use super::concurrency::{Limiter, Permit};
use super::lanes::{UnitId, Work};
use super::retry::{self, RetryPolicy, SendError};
use crate::deadletter::DeadLetterReason;
use crate::metrics;
use crate::pusher::validate::ValidationError;
use crate::pusher::{BatchEvent, Client, PusherError};

/// Why a unit could not be delivered, as stored with its dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: DeadLetterReason,
    pub error: String,
    pub status: Option<u16>,
    pub body: Option<String>,
    /// Sends made for the request that gave up (0 for one never sent).
    pub attempts: u32,
}

/// The final outcome of one unit.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    Failed(Failure),
    /// Not delivered because the circuit opened first: it goes back to the
    /// queue, neither failed nor delivered.
    Returned,
}

/// The outcome of a request that gave up.
fn given_up(error: SendError) -> Outcome {
    let (reason, error, attempts) = match error {
        SendError::Paused => return Outcome::Returned,
        SendError::Exhausted { error, attempts } => (DeadLetterReason::Exhausted, error, attempts),
        SendError::Rejected { error, attempts } => {
            let reason = match &error {
                PusherError::Invalid(ValidationError::DataTooLarge { .. }) => {
                    DeadLetterReason::TooLarge
                }
                PusherError::Invalid(_) | PusherError::MissingMasterKey { .. } => {
                    DeadLetterReason::Invalid
                }
                _ => DeadLetterReason::Rejected,
            };
            (reason, error, attempts)
        }
    };
    Outcome::Failed(Failure {
        reason,
        status: error.status(),
        body: error.body_excerpt().map(str::to_string),
        error: error.to_string(),
        attempts,
    })
}

/// Delivers `work` and reports every unit's outcome, in order. Once the
/// circuit is open, what is left is [`Outcome::Returned`].
///
/// A batch Pusher rejects (400, 413, or our own validation) is split in
/// halves, sent one after the other so per-channel order holds, until the
/// bad events are alone: they fail, their neighbours are delivered.
pub async fn deliver(
    client: &Client,
    circuit: &Arc<Circuit>,
    limiter: &Arc<Limiter>,
    permit: Permit,
    policy: &RetryPolicy,
    work: Work,
) -> Vec<(UnitId, Outcome)> {
    let mut first = Some(permit);
    match work {
        Work::Multi(id, trigger) => {
            let result =
                retry::send_with_retry(circuit, limiter, first.take(), policy, "events", || {
                    client.trigger(&trigger)
                })
                .await;
            let outcome = match result {
                Ok(_) => Outcome::Delivered,
                Err(e) => given_up(e),
            };
            vec![(id, outcome)]
        }
        Work::Events(units) => {
            let (ids, events): (Vec<UnitId>, Vec<BatchEvent>) = units.into_iter().unzip();
            let mut outcomes = Vec::with_capacity(ids.len());
            let mut segments: VecDeque<std::ops::Range<usize>> = VecDeque::new();
            segments.push_back(0..ids.len());
            while let Some(segment) = segments.pop_front() {
                let batch = &events[segment.clone()];
                metrics::batch_size(batch.len());
                let result = retry::send_with_retry(
                    circuit,
                    limiter,
                    first.take(),
                    policy,
                    "batch_events",
                    || client.post_batch(batch),
                )
                .await;
                match result {
                    Ok(_) => {
                        outcomes.extend(ids[segment].iter().map(|id| (*id, Outcome::Delivered)))
                    }
                    Err(SendError::Rejected { error, .. }) if segment.len() > 1 => {
                        tracing::info!(events = segment.len(), error = %error, "batch rejected, splitting to isolate the bad event");
                        let middle = segment.start + segment.len() / 2;
                        segments.push_front(middle..segment.end);
                        segments.push_front(segment.start..middle);
                    }
                    // What follows this segment goes back with it: sent
                    // later, it would overtake it.
                    Err(SendError::Paused) => {
                        let back = segment.start..ids.len();
                        outcomes.extend(ids[back].iter().map(|id| (*id, Outcome::Returned)));
                        break;
                    }
                    Err(error) => {
                        let outcome = given_up(error);
                        outcomes.extend(ids[segment].iter().map(|id| (*id, outcome.clone())));
                    }
                }
            }
            outcomes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> PusherError {
        PusherError::Status {
            method: "POST",
            path: "/apps/1/batch_events".into(),
            status: code,
            body: "err".into(),
            retry_after: None,
        }
    }

    fn failed(error: SendError) -> Failure {
        match given_up(error) {
            Outcome::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_dead_letter_keeps_the_attempts_that_were_made() {
        let rejected = failed(SendError::Rejected {
            error: status(400),
            attempts: 3,
        });
        assert_eq!(
            (rejected.reason, rejected.attempts),
            (DeadLetterReason::Rejected, 3)
        );
        assert_eq!(rejected.status, Some(400));
        let exhausted = failed(SendError::Exhausted {
            error: status(503),
            attempts: 8,
        });
        assert_eq!(
            (exhausted.reason, exhausted.attempts),
            (DeadLetterReason::Exhausted, 8)
        );
        assert_eq!(given_up(SendError::Paused), Outcome::Returned);
    }
}
