//! One request to Pusher, sent until it is delivered or given up.
//!
//! [`classify`] reads what a failed attempt says (as Vector's `RetryLogic`
//! does); [`send_with_retry`] acts on it: the retry budget and its backoff,
//! the circuit, and the concurrency limiter that every attempt reports to.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use rand::Rng;
use tokio::time::Instant;

use super::circuit::{Cause, Circuit};
use super::concurrency::{Limiter, Permit, Response};
use crate::metrics;
use crate::pusher::{ErrorKind, PusherError};

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
    fn ceilings(&self) -> ExponentialBackoff {
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

/// What one failed attempt says about the request and about Pusher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Our own validation refused it before it was sent: resending cannot
    /// help, and Pusher was not asked.
    Unsent,
    /// Pusher answered that this request is wrong (400, 404, 413, or a 2xx
    /// we could not read): resending cannot help, and Pusher is up.
    Rejected,
    /// 429: Pusher is up and wants fewer requests.
    Throttled,
    /// Connection, timeout, 408 or 5xx: the same request may pass later.
    Transient,
    /// 401 saying our clock is off: one more try, freshly signed, may pass.
    ClockSkew,
    /// Any other 401: the key or secret is wrong.
    Unauthorized,
    /// 403: the app is disabled or over quota.
    Forbidden,
}

/// Reads a failed attempt. The one place that turns errors into retry
/// decisions; [`send_with_retry`] never looks at a status itself.
pub fn classify(error: &PusherError) -> Verdict {
    match error {
        PusherError::Invalid(_) | PusherError::MissingMasterKey { .. } => Verdict::Unsent,
        _ if error.status() == Some(429) => Verdict::Throttled,
        _ => match error.kind() {
            ErrorKind::Transient => Verdict::Transient,
            ErrorKind::Rejected => Verdict::Rejected,
            ErrorKind::Unauthorized if error.is_clock_skew() => Verdict::ClockSkew,
            ErrorKind::Unauthorized => Verdict::Unauthorized,
            ErrorKind::Forbidden => Verdict::Forbidden,
        },
    }
}

impl Verdict {
    /// What the attempt tells the concurrency limiter. Nothing for one that
    /// was never sent: its "round trip" of microseconds would drag the
    /// baseline down and make every real answer look like congestion.
    fn response(self) -> Option<Response> {
        match self {
            Verdict::Unsent => None,
            Verdict::Throttled => Some(Response::Throttled),
            Verdict::Transient => Some(Response::Failed),
            Verdict::Rejected | Verdict::ClockSkew | Verdict::Unauthorized | Verdict::Forbidden => {
                Some(Response::Answered)
            }
        }
    }
}

/// Why a request gave up. `attempts` counts every send made for it, those
/// its budget was not charged for included.
#[derive(Debug)]
pub enum SendError {
    /// Pusher (or our validation) refused it; resending cannot help.
    Rejected { error: PusherError, attempts: u32 },
    /// Still failing transiently after the retry budget, while Pusher was
    /// otherwise healthy.
    Exhausted { error: PusherError, attempts: u32 },
    /// Not sent, or not sent again: the circuit is open. The caller gives
    /// the work back rather than holding it through the outage.
    Paused,
}

/// What one request has spent of its retry budget. Neither an outage (the
/// circuit opened) nor a 429 is charged: the first is Pusher's fault and
/// the second says our limit was too high, which the limiter corrects;
/// neither is this request's fault.
struct Budget<'a> {
    policy: &'a RetryPolicy,
    charged: u32,
    since: Instant,
    ceilings: ExponentialBackoff,
    /// The circuit's successes when the budget started: if there are no more
    /// when it is spent, Pusher is down, not refusing this request.
    successes_at_start: u64,
}

impl<'a> Budget<'a> {
    fn new(policy: &'a RetryPolicy, circuit: &Circuit) -> Budget<'a> {
        Budget {
            policy,
            charged: 0,
            since: Instant::now(),
            ceilings: policy.ceilings(),
            successes_at_start: circuit.successes(),
        }
    }

    /// After a 429 sent at `sent_at`: the limiter has just lowered the limit
    /// as asked, so wait as asked too, and take the attempt and its time
    /// (the wait included) off the bill.
    async fn throttled(&mut self, error: &PusherError, sent_at: Instant) {
        let wait = error
            .retry_after()
            .unwrap_or_else(|| full_jitter(self.policy.min_delay));
        tracing::debug!(
            wait_ms = wait.as_millis() as u64,
            "429 from Pusher; waiting as asked"
        );
        tokio::time::sleep(wait).await;
        self.charged = self.charged.saturating_sub(1);
        self.since += sent_at.elapsed();
    }

    /// After a transient failure: backs off and returns `true` to go again
    /// (at once when the circuit is open: the caller then stops), or
    /// returns `false` when the budget is spent while other requests
    /// succeed.
    async fn transient(&mut self, circuit: &Arc<Circuit>, error: &PusherError) -> bool {
        let mut open = circuit.transient_failure(&error.to_string());
        let spent = self.charged as usize >= self.policy.max_attempts
            || self.since.elapsed() >= self.policy.max_duration;
        if spent && !open {
            if circuit.successes() > self.successes_at_start {
                return false;
            }
            circuit.open(Cause::Outage(error.to_string()));
            open = true;
        }
        if open {
            // Its budget starts afresh once Pusher is back.
            *self = Budget::new(self.policy, circuit);
            return true;
        }
        let ceiling = self.ceilings.next().unwrap_or(self.policy.max_delay);
        let wait = full_jitter(ceiling).max(error.retry_after().unwrap_or_default());
        tracing::debug!(error = %error, charged = self.charged, wait_ms = wait.as_millis() as u64, "transient failure, retrying");
        tokio::time::sleep(wait).await;
        true
    }
}

/// Sends with retries until delivered or given up, and returns the value
/// with the attempts charged to the budget. `endpoint` labels metrics. The
/// circuit decides whether a request may go (while it is open, none does:
/// [`SendError::Paused`]), and the limiter how many may be on the wire;
/// each attempt tells the limiter how it went.
///
/// `first` is a permit the caller already holds for the first attempt.
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
    let mut budget = Budget::new(policy, circuit);
    let mut skew_retried = false;
    loop {
        if circuit.open_cause().is_some() {
            return Err(SendError::Paused);
        }
        let permit = match first.take() {
            Some(permit) => permit,
            None => limiter.acquire().await,
        };
        let sent_at = Instant::now();
        let result = send().await;
        let elapsed = sent_at.elapsed();
        attempts += 1;
        budget.charged += 1;
        let error = match result {
            Ok(value) => {
                permit.finish(elapsed, Response::Answered);
                metrics::pusher_request(endpoint, Some(200), elapsed);
                circuit.success();
                return Ok((value, budget.charged));
            }
            Err(error) => error,
        };
        let verdict = classify(&error);
        match verdict.response() {
            Some(response) => {
                permit.finish(elapsed, response);
                metrics::pusher_request(endpoint, error.status(), elapsed);
            }
            None => drop(permit),
        }
        match verdict {
            Verdict::Unsent => return Err(SendError::Rejected { error, attempts }),
            Verdict::Rejected => {
                // Pusher answered, so it is up.
                circuit.success();
                return Err(SendError::Rejected { error, attempts });
            }
            Verdict::ClockSkew if !skew_retried => {
                skew_retried = true;
                metrics::retry("skew");
                tracing::error!(error = %error, "Pusher says our clock is off by more than 600 s: fix this host's time (NTP); retrying once with a fresh timestamp");
            }
            Verdict::ClockSkew | Verdict::Unauthorized => {
                circuit.open(Cause::Unauthorized(error.to_string()))
            }
            Verdict::Forbidden => circuit.open(Cause::Forbidden(error.to_string())),
            Verdict::Throttled => {
                metrics::retry("429");
                budget.throttled(&error, sent_at).await;
            }
            Verdict::Transient => {
                metrics::retry(transient_label(&error));
                if !budget.transient(circuit, &error).await {
                    return Err(SendError::Exhausted { error, attempts });
                }
            }
        }
    }
}

fn transient_label(error: &PusherError) -> &'static str {
    match error {
        PusherError::Timeout { .. } => "timeout",
        PusherError::Connect { .. } => "connect",
        PusherError::Status { .. } => "5xx",
        _ => "transport",
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConcurrencyMode;
    use crate::pusher::validate::ValidationError;
    use crate::relay::circuit::FAILURE_THRESHOLD;
    use std::cell::Cell;

    fn circuit() -> Arc<Circuit> {
        Circuit::new(Arc::new(|| Box::pin(async { Ok(()) })))
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
        assert!(matches!(result, Err(SendError::Rejected { .. })));
        assert_eq!(limiter.baseline(), None, "no round trip was measured");
        assert!(limiter.try_acquire().is_some(), "the permit came back");
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
        assert!(matches!(result, Err(SendError::Rejected { .. })));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_opens_the_circuit_and_gives_the_work_back_unspent() {
        let circuit = circuit();
        let calls = Cell::new(0);
        let result = send_with_retry(&circuit, &limiter(), None, &policy(), "t", || {
            calls.set(calls.get() + 1);
            async move { Err::<(), _>(status(503, None)) }
        })
        .await;
        assert!(matches!(result, Err(SendError::Paused)), "{result:?}");
        // Whichever comes first opens it: FAILURE_THRESHOLD failures in a
        // row, or a budget spent while nothing else succeeded.
        let opened_after = policy().max_attempts.min(FAILURE_THRESHOLD as usize);
        assert_eq!(calls.get(), opened_after, "stopped when the circuit opened");
        assert!(matches!(circuit.open_cause(), Some(Cause::Outage(_))));

        let again = send_with_retry(&circuit, &limiter(), None, &policy(), "t", || {
            calls.set(calls.get() + 1);
            async move { Ok::<(), PusherError>(()) }
        })
        .await;
        assert!(matches!(again, Err(SendError::Paused)));
        assert_eq!(
            calls.get(),
            opened_after,
            "nothing is sent while it is open"
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
        let result = fut.await;
        assert!(
            matches!(result, Err(SendError::Paused)),
            "given back, never dead-lettered: {result:?}"
        );
        assert_eq!(calls.get(), 2, "one immediate retry, then paused");
        assert!(matches!(circuit.open_cause(), Some(Cause::Unauthorized(_))));
    }

    #[test]
    fn classify_reads_each_kind_of_failure() {
        let skew = PusherError::Status {
            method: "POST",
            path: "/".into(),
            status: 401,
            body: "Timestamp expired".into(),
            retry_after: None,
        };
        let invalid = PusherError::Invalid(ValidationError::TooManyChannels { count: 101 });
        assert_eq!(classify(&invalid), Verdict::Unsent);
        assert_eq!(classify(&status(400, None)), Verdict::Rejected);
        assert_eq!(classify(&status(413, None)), Verdict::Rejected);
        assert_eq!(classify(&status(429, Some(1))), Verdict::Throttled);
        assert_eq!(classify(&status(408, None)), Verdict::Transient);
        assert_eq!(classify(&status(503, None)), Verdict::Transient);
        assert_eq!(classify(&skew), Verdict::ClockSkew);
        assert_eq!(classify(&status(401, None)), Verdict::Unauthorized);
        assert_eq!(classify(&status(403, None)), Verdict::Forbidden);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejection_after_retries_reports_every_attempt() {
        let circuit = circuit();
        let calls = Cell::new(0);
        let result = send_with_retry(&circuit, &limiter(), None, &policy(), "t", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                Err::<(), _>(match n {
                    1 => status(503, None),
                    2 => status(429, Some(1)),
                    _ => status(400, None),
                })
            }
        })
        .await;
        assert!(
            matches!(result, Err(SendError::Rejected { attempts: 3, .. })),
            "{result:?}"
        );
    }
}
