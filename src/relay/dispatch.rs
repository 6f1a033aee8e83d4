//! Sending one unit of work to Pusher: retries with backoff, the circuit,
//! and batch splitting. All retry decisions are here (as in Vector's
//! `RetryLogic`); the event loop only learns each event's final outcome.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;
use tokio::time::Instant;

use super::circuit::{Cause, Circuit};
use super::concurrency::{Limiter, Permit, Response};
use super::lanes::UnitId;
use crate::deadletter::Reason;
use crate::metrics;
use crate::pusher::validate::ValidationError;
use crate::pusher::{BatchEvent, Client, ErrorKind, PusherError, Trigger};

/// How long and how often one request is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts before the request's events are `exhausted`.
    pub max_attempts: usize,
    /// Time retrying before they are `exhausted`.
    pub max_duration: Duration,
    /// First backoff ceiling; doubles per attempt.
    pub min_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Exponential ceilings from `backon`; each wait is drawn uniformly
    /// below its ceiling ("full jitter"), so a crowd of failed requests
    /// does not come back in lockstep.
    fn ceilings(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .without_max_times()
            .build()
    }
}

/// A wait drawn uniformly from `[0, ceiling]`.
pub fn full_jitter(ceiling: Duration) -> Duration {
    let max = ceiling.as_micros().min(u128::from(u64::MAX)) as u64;
    Duration::from_micros(rand::thread_rng().gen_range(0..=max))
}

/// Why a request gave up.
#[derive(Debug)]
pub enum SendError {
    /// Pusher (or our validation) refused it; resending cannot help.
    Rejected(PusherError),
    /// Still failing transiently after the retry budget, while Pusher was
    /// otherwise healthy.
    Exhausted { error: PusherError, attempts: u32 },
}

/// Sends with retries. `endpoint` labels metrics. The circuit decides when
/// a request may go, and the limiter how many may be on the wire; each
/// attempt tells the limiter how it went.
///
/// Neither an outage (the circuit is open) nor a 429 uses up the retry
/// budget: the first is Pusher's fault and the second says our limit was
/// too high, which the limiter corrects; neither is this request's fault.
///
/// `first` is a slot the caller already holds for the first attempt.
pub async fn send_with_retry<T, F, Fut>(
    circuit: &Arc<Circuit>,
    limiter: &Arc<Limiter>,
    mut first: Option<Permit>,
    policy: &RetryPolicy,
    endpoint: &'static str,
    mut send: F,
) -> Result<(T, u32), SendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PusherError>>,
{
    let mut attempts: u32 = 0;
    let mut started = Instant::now();
    let mut ceilings = policy.ceilings();
    let mut skew_retried = false;
    // Successes seen when this request's budget started: if none happen
    // before it is spent, Pusher is down, not refusing this request.
    let mut successes_at_start = circuit.successes();
    loop {
        circuit.admit().await;
        let permit = match first.take() {
            Some(permit) => permit,
            None => limiter.acquire().await,
        };
        let sent_at = Instant::now();
        let result = send().await;
        let elapsed = sent_at.elapsed();
        attempts += 1;
        let error = match result {
            Ok(value) => {
                permit.finish(elapsed, Response::Answered);
                metrics::pusher_request(endpoint, Some(200), elapsed);
                circuit.success();
                return Ok((value, attempts));
            }
            Err(error) => error,
        };
        if matches!(
            error,
            PusherError::Invalid(_) | PusherError::MissingMasterKey { .. }
        ) {
            // Refused before it was sent: its "round trip" of microseconds
            // would drag the baseline down and make every real answer look
            // like congestion, so the slot goes back without a sample.
            drop(permit);
            return Err(SendError::Rejected(error));
        }
        let throttled = error.status() == Some(429);
        let response = if throttled {
            Response::Throttled
        } else if error.kind() == ErrorKind::Transient {
            Response::Failed
        } else {
            Response::Answered
        };
        permit.finish(elapsed, response);
        metrics::pusher_request(endpoint, error.status(), elapsed);
        match error.kind() {
            ErrorKind::Rejected => {
                // Pusher answered, so it is up.
                circuit.success();
                return Err(SendError::Rejected(error));
            }
            ErrorKind::Unauthorized if error.is_clock_skew() && !skew_retried => {
                skew_retried = true;
                metrics::retry("skew");
                tracing::error!(error = %error, "Pusher says our clock is off by more than 600 s: fix this host's time (NTP); retrying once with a fresh timestamp");
                continue;
            }
            ErrorKind::Unauthorized => {
                circuit.open(Cause::Unauthorized(error.to_string()));
                continue;
            }
            ErrorKind::Forbidden => {
                circuit.open(Cause::Forbidden(error.to_string()));
                continue;
            }
            ErrorKind::Transient => {}
        }
        metrics::retry(transient_label(&error));
        if throttled {
            // Pusher is up and answering; it wants fewer requests, which the
            // limiter has just seen to. Wait as asked, then go again without
            // charging the budget (attempt or time).
            attempts -= 1;
            let wait = error
                .retry_after()
                .unwrap_or_else(|| full_jitter(policy.min_delay));
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "429 from Pusher; waiting as asked"
            );
            tokio::time::sleep(wait).await;
            started += sent_at.elapsed();
            continue;
        }
        let mut open = circuit.transient_failure(&error.to_string());
        let spent =
            attempts as usize >= policy.max_attempts || started.elapsed() >= policy.max_duration;
        if spent && !open {
            if circuit.successes() > successes_at_start {
                return Err(SendError::Exhausted { error, attempts });
            }
            circuit.open(Cause::Outage(error.to_string()));
            open = true;
        }
        if open {
            // An outage, not this request's fault: its budget starts afresh
            // once Pusher is back.
            attempts = 0;
            started = Instant::now();
            ceilings = policy.ceilings();
            successes_at_start = circuit.successes();
            continue;
        }
        let ceiling = ceilings.next().unwrap_or(policy.max_delay);
        let wait = full_jitter(ceiling).max(error.retry_after().unwrap_or_default());
        tracing::debug!(error = %error, attempt = attempts, wait_ms = wait.as_millis() as u64, "transient failure, retrying");
        tokio::time::sleep(wait).await;
    }
}

fn transient_label(error: &PusherError) -> &'static str {
    match error {
        PusherError::Timeout { .. } => "timeout",
        PusherError::Connect { .. } => "connect",
        PusherError::Status { status: 429, .. } => "429",
        PusherError::Status { .. } => "5xx",
        _ => "transport",
    }
}

/// One request's worth of work.
#[derive(Debug)]
pub enum Work {
    /// Up to 10 single-channel events for `batch_events`, in lane order.
    Events(Vec<(UnitId, BatchEvent)>),
    /// One event to several channels for `events`.
    Multi(UnitId, Trigger),
}

/// Why a unit could not be delivered, as stored with its dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: Reason,
    pub error: String,
    pub status: Option<u16>,
    pub body: Option<String>,
    pub attempts: u32,
}

/// The final outcome of one unit.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    Failed(Failure),
}

fn failure(error: SendError) -> Failure {
    let (error, attempts, exhausted) = match error {
        SendError::Rejected(e) => (e, 1, false),
        SendError::Exhausted { error, attempts } => (error, attempts, true),
    };
    let reason = if exhausted {
        Reason::Exhausted
    } else {
        match &error {
            PusherError::Invalid(ValidationError::DataTooLarge { .. }) => Reason::TooLarge,
            PusherError::Invalid(_) | PusherError::MissingMasterKey { .. } => Reason::Invalid,
            _ => Reason::Rejected,
        }
    };
    Failure {
        reason,
        status: error.status(),
        body: error.body_excerpt().map(str::to_string),
        error: error.to_string(),
        attempts,
    }
}

/// Delivers `work` and reports every unit's outcome, in order.
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
            let result = send_with_retry(circuit, limiter, first.take(), policy, "events", || {
                client.trigger(&trigger)
            })
            .await;
            let outcome = match result {
                Ok(_) => Outcome::Delivered,
                Err(e) => Outcome::Failed(failure(e)),
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
                let result = send_with_retry(
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
                    Err(SendError::Rejected(error)) if segment.len() > 1 => {
                        tracing::info!(events = segment.len(), error = %error, "batch rejected, splitting to isolate the bad event");
                        let middle = segment.start + segment.len() / 2;
                        segments.push_front(middle..segment.end);
                        segments.push_front(segment.start..middle);
                    }
                    Err(error) => {
                        let failed = failure(error);
                        outcomes.extend(
                            ids[segment]
                                .iter()
                                .map(|id| (*id, Outcome::Failed(failed.clone()))),
                        );
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
    use crate::config::ConcurrencyMode;
    use std::cell::Cell;

    fn circuit() -> Arc<Circuit> {
        Circuit::new(Arc::new(|| Box::pin(async { true })))
    }

    fn limiter() -> Arc<Limiter> {
        Limiter::new(ConcurrencyMode::Adaptive, 64)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            max_duration: Duration::from_secs(3600),
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        }
    }

    fn status(code: u16, retry_after: Option<u64>) -> PusherError {
        PusherError::Status {
            method: "POST",
            path: "/apps/1/batch_events".into(),
            status: code,
            body: "err".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn full_jitter_stays_below_the_ceiling() {
        for _ in 0..1000 {
            assert!(full_jitter(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
        assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_retry_until_success() {
        let circuit = circuit();
        let calls = Cell::new(0);
        let result = send_with_retry(&circuit, &limiter(), None, &policy(), "t", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(status(503, None))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.ok(), Some((3, 3)));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let circuit = circuit();
        let calls = Cell::new(0);
        let started = Instant::now();
        let _ = send_with_retry(&circuit, &limiter(), None, &policy(), "t", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n == 1 {
                    Err(status(429, Some(7)))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(
            started.elapsed() >= Duration::from_secs(7),
            "waited {:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_spent_while_pusher_is_healthy_is_exhausted() {
        let circuit = circuit();
        let calls = Cell::new(0);
        let result = send_with_retry(&circuit, &limiter(), None, &policy(), "t", || {
            calls.set(calls.get() + 1);
            // Other requests succeed meanwhile, so the circuit stays closed.
            circuit.success();
            async { Err::<(), _>(status(500, None)) }
        })
        .await;
        assert!(
            matches!(result, Err(SendError::Exhausted { attempts: 4, .. })),
            "{result:?}"
        );
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_spends_no_budget_and_lowers_the_limit() {
        let circuit = circuit();
        let limiter = Limiter::new(ConcurrencyMode::Adaptive, 64);
        let before = limiter.limit();
        let calls = Cell::new(0);
        // Twice the attempts the policy allows, all 429: still delivered,
        // and neither dead-lettered nor paused as an outage.
        let result = send_with_retry(&circuit, &limiter, None, &policy(), "t", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n <= 8 {
                    Err(status(429, Some(1)))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.ok(), Some((9, 1)), "one attempt charged");
        assert!(circuit.open_cause().is_none(), "a 429 is not an outage");
        assert!(
            limiter.limit() < before,
            "{} then {}",
            before,
            limiter.limit()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_refused_before_sending_teaches_the_limiter_nothing() {
        let circuit = circuit();
        let limiter = Limiter::new(ConcurrencyMode::Adaptive, 64);
        let invalid = || async {
            // Long enough for the controller's interval to end, were the
            // refusal fed to it.
            tokio::time::sleep(Duration::from_millis(5)).await;
            Err::<(), _>(PusherError::Invalid(ValidationError::TooManyChannels {
                count: 101,
            }))
        };
        let result = send_with_retry(&circuit, &limiter, None, &policy(), "t", invalid).await;
        assert!(matches!(result, Err(SendError::Rejected(_))));
        assert_eq!(limiter.baseline(), None, "no round trip was measured");
        assert!(limiter.try_acquire().is_some(), "the slot came back");
    }

    #[tokio::test(start_paused = true)]
    async fn rejection_is_not_retried() {
        let circuit = circuit();
        let calls = Cell::new(0);
        let result = send_with_retry(&circuit, &limiter(), None, &policy(), "t", || {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(status(413, None)) }
        })
        .await;
        assert!(matches!(result, Err(SendError::Rejected(_))));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_of_any_length_opens_the_circuit_and_does_not_exhaust() {
        // Pusher is down for ten minutes, for requests and probes alike.
        let back_at = Instant::now() + Duration::from_secs(600);
        let circuit = Circuit::new(Arc::new(move || {
            Box::pin(async move { Instant::now() >= back_at })
        }));
        let calls = Cell::new(0);
        let result = send_with_retry(&circuit, &limiter(), None, &policy(), "t", || {
            calls.set(calls.get() + 1);
            async move {
                if Instant::now() < back_at {
                    Err(status(503, None))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert!(Instant::now() >= back_at);
        assert!(
            calls.get() <= policy().max_attempts + 1,
            "waited instead of hammering: {} calls",
            calls.get()
        );
        assert!(
            circuit.open_cause().is_none(),
            "closed again after the probe succeeded"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn clock_skew_is_retried_once_then_opens_the_circuit() {
        let circuit = circuit();
        let calls = Cell::new(0);
        let policy = policy();
        let limiter = limiter();
        let fut = send_with_retry(&circuit, &limiter, None, &policy, "t", || {
            calls.set(calls.get() + 1);
            let e = PusherError::Status {
                method: "POST",
                path: "/".into(),
                status: 401,
                body: "Timestamp expired".into(),
                retry_after: None,
            };
            async move { Err::<(), _>(e) }
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(500), fut)
                .await
                .is_err(),
            "keeps waiting, never dead-letters"
        );
        assert_eq!(calls.get(), 2, "one immediate retry, then paused");
        assert!(matches!(circuit.open_cause(), Some(Cause::Unauthorized(_))));
    }
}
