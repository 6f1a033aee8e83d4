//! Where a relay session is in its life, as one value: consuming, draining
//! for shutdown, handing its queue to another worker, returning what it
//! holds because Pusher is away, or lost. The event loop in
//! [`super::session`] asks the phase what to do and changes it only through
//! its methods, so every transition is here and tested on its own.

use tokio::time::Instant;

/// Where a session is in its life. The event loop asks it what to do and
/// changes it only through the methods below, so the transitions are all
/// in one place.
#[derive(Debug, PartialEq)]
pub enum Phase {
    /// Taking deliveries and starting requests.
    Consuming,
    /// Shutting down on a queue whose consumers compete (not single-active):
    /// the consumer is cancelled, and what was taken is sent, partial
    /// batches at once, and acked, until `deadline`.
    Draining { deadline: Instant },
    /// Handing the queue to the next worker: nothing more is started, and
    /// once in-flight requests and dead-letter writes are done, what is left
    /// goes back to the queue in order. `shutdown` is the deadline when this
    /// is how the worker stops (single-active queues), `None` when the
    /// rebalancer asked.
    HandingOff { shutdown: Option<Instant> },
    /// The circuit opened (Pusher is away or refuses us): nothing more is
    /// started, requests stop at the open circuit, and once they and the
    /// writes are done, what is left goes back to the queue in order and the
    /// session ends. An outage then holds nothing that a crash, a restart or
    /// the broker's consumer timeout would count against the delivery
    /// limit. `shutdown` as for `HandingOff`.
    Returning { shutdown: Option<Instant> },
    /// The connection failed: nothing is acked, and requests in flight may
    /// finish for a few seconds after `since`, so that what they delivered is
    /// remembered.
    Lost { reason: String, since: Instant },
}

impl Phase {
    pub fn takes_deliveries(&self) -> bool {
        matches!(self, Phase::Consuming)
    }

    /// Whether requests may start, and if so whether partial batches go at
    /// once rather than after their linger.
    pub fn starts_requests(&self) -> Option<bool> {
        match self {
            Phase::Consuming => Some(false),
            Phase::Draining { .. } => Some(true),
            _ => None,
        }
    }

    pub fn is_lost(&self) -> bool {
        matches!(self, Phase::Lost { .. })
    }

    /// Whether the session is leaving the queue, so that every finished
    /// delivery is acked at once, stragglers included.
    pub fn is_leaving(&self) -> bool {
        matches!(
            self,
            Phase::Draining { .. } | Phase::HandingOff { .. } | Phase::Returning { .. }
        )
    }

    pub fn awaits_shutdown(&self) -> bool {
        matches!(
            self,
            Phase::Consuming
                | Phase::HandingOff { shutdown: None }
                | Phase::Returning { shutdown: None }
        )
    }

    pub fn hands_off_on_request(&self) -> bool {
        matches!(self, Phase::Consuming)
    }

    /// When shutting down gives up on what is unfinished.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Phase::Draining { deadline } => Some(*deadline),
            Phase::HandingOff { shutdown } | Phase::Returning { shutdown } => *shutdown,
            Phase::Consuming | Phase::Lost { .. } => None,
        }
    }

    /// The rebalancer asked for the queue: returns whether the session
    /// starts handing it off now (a session already leaving, or lost, goes
    /// its way).
    pub fn hand_off(&mut self) -> bool {
        if !self.hands_off_on_request() {
            return false;
        }
        *self = Phase::HandingOff { shutdown: None };
        true
    }

    /// Shutdown was asked for. On a single-active queue it is a handoff:
    /// the next worker starts where this one stops.
    pub fn shut_down(&mut self, deadline: Instant, single_active: bool) {
        *self = match self {
            Phase::Consuming | Phase::HandingOff { .. } if single_active => Phase::HandingOff {
                shutdown: Some(deadline),
            },
            Phase::HandingOff { .. } => Phase::HandingOff {
                shutdown: Some(deadline),
            },
            Phase::Returning { .. } => Phase::Returning {
                shutdown: Some(deadline),
            },
            Phase::Consuming => Phase::Draining { deadline },
            Phase::Draining { .. } | Phase::Lost { .. } => return,
        };
    }

    /// The circuit opened, or a request stopped at it: whatever was going
    /// on, what is held goes back (a shutdown keeps its deadline). Returns
    /// whether the session started returning now.
    pub fn return_held(&mut self) -> bool {
        let shutdown = match self {
            Phase::Consuming => None,
            Phase::Draining { deadline } => Some(*deadline),
            Phase::HandingOff { .. } | Phase::Returning { .. } | Phase::Lost { .. } => {
                return false
            }
        };
        *self = Phase::Returning { shutdown };
        true
    }

    /// The connection failed; the first reason is the one reported.
    pub fn lose(&mut self, reason: String) {
        if !self.is_lost() {
            *self = Phase::Lost {
                reason,
                since: Instant::now(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn an_open_circuit_returns_what_is_held_and_keeps_a_shutdown_deadline() {
        let mut p = Phase::Consuming;
        assert!(p.takes_deliveries());
        assert_eq!(p.starts_requests(), Some(false), "partial batches linger");
        assert!(p.return_held());
        assert_eq!(p, Phase::Returning { shutdown: None });
        assert!(!p.takes_deliveries() && p.starts_requests().is_none() && p.is_leaving());
        assert!(p.awaits_shutdown() && !p.hands_off_on_request());
        assert!(!p.return_held(), "once");
        let by = soon();
        p.shut_down(by, false);
        assert_eq!(p, Phase::Returning { shutdown: Some(by) });
        assert!(!p.awaits_shutdown());
        assert_eq!(p.deadline(), Some(by));

        let mut p = Phase::Draining { deadline: by };
        assert!(p.return_held());
        assert_eq!(p, Phase::Returning { shutdown: Some(by) });

        let mut p = Phase::HandingOff { shutdown: None };
        assert!(!p.return_held(), "a handoff returns what it holds anyway");
        p.lose("gone".into());
        assert!(!p.return_held());
        assert!(p.is_lost());
    }

    #[test]
    fn shutdown_drains_competing_queues_and_hands_off_single_active_ones() {
        let by = soon();
        let mut p = Phase::Consuming;
        p.shut_down(by, false);
        assert_eq!(p, Phase::Draining { deadline: by });
        assert!(!p.takes_deliveries() && !p.awaits_shutdown() && p.is_leaving());
        assert_eq!(
            p.starts_requests(),
            Some(true),
            "partial batches go at once"
        );
        assert_eq!(p.deadline(), Some(by));

        let mut p = Phase::Consuming;
        p.shut_down(by, true);
        assert_eq!(p, Phase::HandingOff { shutdown: Some(by) });
        assert_eq!(p.starts_requests(), None);
        assert_eq!(p.deadline(), Some(by));
    }

    #[test]
    fn a_handoff_the_rebalancer_asked_for_still_hears_shutdown() {
        let mut p = Phase::Consuming;
        assert!(p.hand_off());
        assert!(!p.hand_off(), "once");
        assert_eq!(p, Phase::HandingOff { shutdown: None });
        assert!(p.awaits_shutdown() && p.deadline().is_none());
        let by = soon();
        p.shut_down(by, true);
        assert_eq!(p, Phase::HandingOff { shutdown: Some(by) });
        assert!(!p.awaits_shutdown());
    }

    #[test]
    fn a_lost_connection_keeps_its_first_reason_and_ignores_the_rest() {
        let mut p = Phase::Draining { deadline: soon() };
        p.lose("ack failed".into());
        p.lose("consumer error".into());
        assert!(matches!(&p, Phase::Lost { reason, .. } if reason == "ack failed"));
        assert!(!p.hand_off());
        p.shut_down(soon(), true);
        assert!(p.is_lost() && p.deadline().is_none() && p.starts_requests().is_none());
    }
}
