//! The async side of adaptive concurrency: requests take a permit from the
//! [`Limiter`] before they go, waiting while the limit is reached, and give
//! it back with how they went, which the shared [`Controller`] turns into
//! the next limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::controller::{Change, Controller, Response, Ticket};
use crate::config::ConcurrencyMode;
use crate::metrics;

/// The controller shared by every request of a worker; requests wait here
/// for a permit.
pub struct Limiter {
    state: Mutex<Controller>,
    /// Wakes requests waiting in [`Limiter::acquire`].
    freed: Notify,
    /// Wakes the event loop, which takes permits with [`Limiter::try_acquire`]
    /// and must hear of a permit freed by a request that goes on retrying.
    room: Notify,
    metrics: metrics::ConcurrencyMetrics,
}

impl Limiter {
    pub fn new(mode: ConcurrencyMode, ceiling: usize) -> Arc<Limiter> {
        let controller = Controller::new(mode, ceiling);
        let metrics = metrics::ConcurrencyMetrics::new();
        metrics.limit.set(controller.limit() as f64);
        Arc::new(Limiter {
            state: Mutex::new(controller),
            freed: Notify::new(),
            room: Notify::new(),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Controller> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests allowed on the wire now.
    pub fn limit(&self) -> usize {
        self.lock().limit()
    }

    /// The round trip new ones are compared with, once one was measured.
    #[cfg(test)]
    pub fn baseline(&self) -> Option<super::controller::Baseline> {
        self.lock().baseline()
    }

    /// Requests holding a permit now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight()
    }

    /// A permit if one is free now.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let now = tokio::time::Instant::now().into_std();
        let ticket = self.lock().try_start(now)?;
        Some(Permit {
            limiter: Some(self.clone()),
            ticket,
        })
    }

    /// Resolves when a request has given its permit back (perhaps at once,
    /// for one given back before the call).
    pub async fn room(&self) {
        self.room.notified().await;
    }

    /// Waits for a permit, which goes back when finished or dropped.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a permit freed in between wakes us.
            freed.as_mut().enable();
            let now = tokio::time::Instant::now().into_std();
            if let Some(ticket) = self.lock().try_start(now) {
                return Permit {
                    limiter: Some(self.clone()),
                    ticket,
                };
            }
            freed.await;
        }
    }

    /// See [`Controller::restart`].
    pub fn restart(&self) {
        self.lock().restart();
    }

    fn finish(&self, rtt: Duration, ticket: Ticket, response: Response) {
        let now = tokio::time::Instant::now().into_std();
        let (change, baseline, in_flight) = {
            let mut c = self.lock();
            let change = c.finish(now, rtt, ticket, response);
            (change, c.baseline(), c.in_flight())
        };
        if let Some(change) = change {
            match change {
                Change::Grew { to, .. } => self.metrics.limit.set(to as f64),
                Change::Shrank { from, to, cause } => {
                    self.metrics.limit.set(to as f64);
                    metrics::concurrency_decrease(cause.as_str());
                    tracing::debug!(
                        from,
                        to,
                        cause = cause.as_str(),
                        in_flight,
                        "Pusher concurrency limit lowered"
                    );
                }
                Change::Held => {}
            }
            if let Some(b) = baseline {
                self.metrics.rtt_baseline.set(b.mean);
            }
        }
        self.freed.notify_waiters();
        // Every event loop waiting hears of it (with shards there is one per
        // queue, and any of them may have work); `notify_one`'s stored wake-up covers a
        // loop that looked just before this and has not yet waited.
        self.room.notify_waiters();
        self.room.notify_one();
    }
}

/// One request's place on the wire, given back by [`Permit::finish`] with
/// how the request went, or without a sample when dropped.
pub struct Permit {
    limiter: Option<Arc<Limiter>>,
    ticket: Ticket,
}

impl Permit {
    /// Gives the permit back with how the request went and its round trip,
    /// timed by the caller around the send itself (a permit may be taken
    /// well before the request goes, while the circuit is checked).
    pub fn finish(mut self, rtt: Duration, response: Response) {
        if let Some(limiter) = self.limiter.take() {
            limiter.finish(rtt, self.ticket, response);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(limiter) = self.limiter.take() {
            limiter.lock().cancel();
            limiter.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limiter_makes_requests_wait_for_a_permit() {
        let limiter = Limiter::new(ConcurrencyMode::Fixed, 2);
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "both permits are taken");
        a.finish(Duration::from_millis(1), Response::Answered);
        let c = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(c.is_ok(), "a freed permit wakes the waiter");
    }
}
