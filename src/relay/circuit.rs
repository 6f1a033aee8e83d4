//! The circuit: an outage is not a failure.
//!
//! When Pusher (or the network) fails every request, retrying each batch
//! until its budget is spent would dead-letter the whole backlog. Instead,
//! after [`FAILURE_THRESHOLD`] transient failures in a row with no success
//! between them, or when a request spends its retry budget without any
//! request succeeding meanwhile, the circuit *opens*: requests stop, each
//! session gives what it holds back to the queue and consumes nothing until
//! the circuit closes (the backlog stays in RabbitMQ, where a crash or the
//! broker's consumer timeout cannot count it against the delivery limit),
//! and a
//! probe (a signed `GET /channels`, which changes nothing) runs every
//! [`PROBE_INTERVAL`]. The first successful probe closes it and everything
//! resumes with fresh retry budgets. A 401 or 403 opens it at once: no
//! request can pass until credentials or quota are fixed, and
//! dead-lettering everything meanwhile would be worse than waiting.
//!
//! Probing with a request of our own, not with a waiting batch, matters: a
//! batch that fails for its own reasons would otherwise keep the circuit
//! open forever instead of being dead-lettered as `exhausted`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::metrics;

/// Transient failures in a row, with no success between, that open the circuit.
pub const FAILURE_THRESHOLD: u32 = 5;

/// Time between probes while open.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why delivery is paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Every request failed transiently (connect, timeout, 408, 5xx). A 429
    /// is not counted: it says we send too much, which the concurrency
    /// limiter corrects, while Pusher is plainly up.
    Outage(String),
    /// 401 that was not clock skew: the key or secret is wrong.
    Unauthorized(String),
    /// 403: the app is disabled or over quota.
    Forbidden(String),
}

impl Cause {
    /// `outage`, `unauthorized` or `forbidden`, as in the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Cause::Outage(_) => "outage",
            Cause::Unauthorized(_) => "unauthorized",
            Cause::Forbidden(_) => "forbidden",
        }
    }

    /// For `/readyz` and logs.
    pub fn describe(&self) -> String {
        match self {
            Cause::Outage(e) => format!("open: Pusher unreachable or failing every request ({e})"),
            Cause::Unauthorized(e) => format!("open: Pusher refuses our credentials; check PUSHER_APP_KEY/PUSHER_APP_SECRET ({e})"),
            Cause::Forbidden(e) => format!("open: Pusher forbids delivery (app disabled or over quota) ({e})"),
        }
    }
}

/// The probe: resolves to whether Pusher accepted a harmless request, or
/// why not.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), Cause>> + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    /// Successful requests so far: a request that spent its budget asks
    /// whether any succeeded meanwhile (Pusher healthy) or none (outage).
    successes: u64,
    open: Option<OpenCircuit>,
}

/// An open circuit: why, since when (for the ops console) and when it
/// probes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCircuit {
    pub cause: Cause,
    pub since: SystemTime,
    pub next_probe: Option<SystemTime>,
}

/// Shared by every request of the worker.
pub struct Circuit {
    state: Mutex<State>,
    changed: watch::Sender<Option<Cause>>,
    probe: Probe,
}

impl Circuit {
    /// A closed circuit that probes with `probe` while open.
    pub fn new(probe: Probe) -> Arc<Circuit> {
        Arc::new(Circuit {
            state: Mutex::new(State::default()),
            changed: watch::channel(None).0,
            probe,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether delivery is paused, and why.
    pub fn open_cause(&self) -> Option<Cause> {
        self.lock().open.as_ref().map(|o| o.cause.clone())
    }

    /// Whether delivery is paused, why, since when and when it probes next.
    pub fn status(&self) -> Option<OpenCircuit> {
        self.lock().open.clone()
    }

    /// Follows open/close changes (the consumer pauses on them).
    pub fn subscribe(&self) -> watch::Receiver<Option<Cause>> {
        self.changed.subscribe()
    }

    /// Waits until the circuit is closed.
    pub async fn admit(&self) {
        let mut changes = self.changed.subscribe();
        // An Err means the circuit was dropped with the worker: stop waiting.
        let _ = changes.wait_for(|open| open.is_none()).await;
    }

    /// Successful requests so far.
    pub fn successes(&self) -> u64 {
        self.lock().successes
    }

    /// A request succeeded: Pusher is answering.
    pub fn success(&self) {
        let mut s = self.lock();
        s.consecutive_failures = 0;
        s.successes += 1;
        if let Some(OpenCircuit { cause, .. }) = s.open.take() {
            tracing::info!(was = %cause.describe(), "circuit closed: Pusher answers again, delivery resumes");
            metrics::circuit(false, cause.label());
            self.changed.send_replace(None);
        }
    }

    /// A transient failure. Returns whether the circuit is open afterwards.
    pub fn transient_failure(self: &Arc<Self>, error: &str) -> bool {
        let threshold_reached = {
            let mut s = self.lock();
            s.consecutive_failures += 1;
            s.consecutive_failures >= FAILURE_THRESHOLD
        };
        if threshold_reached {
            self.open(Cause::Outage(error.to_string()));
        }
        self.lock().open.is_some()
    }

    /// Probes once before anything is consumed: a worker that starts while
    /// Pusher is away (a crash loop through an outage) takes no intent until
    /// it answers, so its restarts cost the queue's messages nothing.
    pub async fn probe_at_start(self: &Arc<Self>) {
        if let Err(cause) = (self.probe)().await {
            self.open(cause);
        }
    }

    /// Opens the circuit (if closed) and starts probing.
    pub fn open(self: &Arc<Self>, cause: Cause) {
        {
            let mut s = self.lock();
            if s.open.is_some() {
                return;
            }
            tracing::error!(cause = %cause.describe(), "circuit open: delivery paused, intents stay in RabbitMQ, probing every {PROBE_INTERVAL:?}");
            metrics::circuit(true, cause.label());
            s.open = Some(OpenCircuit {
                cause: cause.clone(),
                since: SystemTime::now(),
                next_probe: None,
            });
            // Sent under the lock, as `success` does: sent after it, a
            // close in between would be overwritten and the circuit would
            // look open to its followers while it is closed.
            self.changed.send_replace(Some(cause));
        }
        let circuit = Arc::clone(self);
        tokio::spawn(async move {
            while circuit.open_cause().is_some() {
                if let Some(open) = circuit.lock().open.as_mut() {
                    open.next_probe = Some(SystemTime::now() + PROBE_INTERVAL);
                }
                tokio::time::sleep(PROBE_INTERVAL).await;
                if (circuit.probe)().await.is_ok() {
                    circuit.success();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn circuit(up: Arc<AtomicBool>) -> Arc<Circuit> {
        Circuit::new(Arc::new(move || {
            let up = up.load(Ordering::SeqCst);
            Box::pin(async move {
                match up {
                    true => Ok(()),
                    false => Err(Cause::Outage("503".into())),
                }
            })
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_while_pusher_is_away_opens_it_with_the_probes_cause() {
        let c = circuit(Arc::new(AtomicBool::new(true)));
        c.probe_at_start().await;
        assert!(c.open_cause().is_none());
        let c = Circuit::new(Arc::new(|| {
            Box::pin(async { Err(Cause::Unauthorized("401".into())) })
        }));
        c.probe_at_start().await;
        assert!(matches!(c.open_cause(), Some(Cause::Unauthorized(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_closes_when_a_probe_succeeds() {
        let up = Arc::new(AtomicBool::new(false));
        let c = circuit(up.clone());
        for _ in 1..FAILURE_THRESHOLD {
            assert!(!c.transient_failure("503"));
        }
        assert!(c.transient_failure("503"));
        assert!(matches!(c.open_cause(), Some(Cause::Outage(_))));
        let status = c.status().expect("open");
        assert!(matches!(status.cause, Cause::Outage(_)));
        assert!(status.since <= SystemTime::now());

        let waiting = c.admit();
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(PROBE_INTERVAL * 5, &mut waiting)
                .await
                .is_err(),
            "stays open while probes fail"
        );
        up.store(true, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        waiting.await;
        assert!(started.elapsed() <= PROBE_INTERVAL);
        assert!(c.open_cause().is_none());
        assert!(c.status().is_none(), "closed: no since, no next probe");
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_between_failures_keeps_it_closed() {
        let c = circuit(Arc::new(AtomicBool::new(true)));
        for _ in 0..FAILURE_THRESHOLD * 3 {
            c.transient_failure("503");
            c.transient_failure("503");
            c.success();
        }
        assert!(c.open_cause().is_none());
        assert_eq!(c.successes(), u64::from(FAILURE_THRESHOLD) * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_opens_at_once() {
        let c = circuit(Arc::new(AtomicBool::new(false)));
        c.open(Cause::Forbidden("over quota".into()));
        assert!(matches!(c.open_cause(), Some(Cause::Forbidden(_))));
    }
}
