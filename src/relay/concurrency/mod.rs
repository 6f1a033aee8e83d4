//! Adaptive request concurrency: how many requests may be on the wire to
//! Pusher at once, found by watching Pusher's answers rather than set by
//! hand.
//!
//! The algorithm is Vector's adaptive request concurrency (its RFC 1858,
//! itself after Netflix's concurrency-limits and TCP congestion control),
//! with TCP's slow start in front:
//!
//! - Time is cut into *intervals* of one smoothed round trip. In each, the
//!   controller notes the fastest answer, whether any answer was a
//!   congestion signal, and whether the limit was reached (a limit nobody
//!   reaches says nothing about what Pusher can take).
//! - The *baseline* is a moving mean of the intervals' fastest round trips
//!   with a moving mean deviation (EWMA, weight [`EWMA_ALPHA`](controller::EWMA_ALPHA)). The
//!   fastest, not the mean as in Vector: a queue building at Pusher slows
//!   every answer, the fastest too, while one answer delayed by a busy host
//!   (a garbage-collecting broker next to us, a 2-core machine) moves the
//!   mean and not the minimum. Measured with the mean, the limit fell
//!   about once a second for nothing on such a machine (TCP Vegas and BBR
//!   watch the minimum for the same reason).
//! - At the end of an interval: a congestion signal (429, 5xx, timeout,
//!   connection error), or a fastest round trip above the baseline by more
//!   than [`RTT_DEVIATION_SCALE`](controller::RTT_DEVIATION_SCALE) deviations (and at least 25% and 2 ms),
//!   shrinks the limit multiplicatively; a fastest round trip within one
//!   deviation of the baseline, with the limit reached, grows it.
//! - Growth doubles the limit per interval (slow start, from
//!   [`INITIAL_LIMIT`](controller::INITIAL_LIMIT)) until Pusher first pushes back (429 or an error),
//!   which halves it back to the last limit that was fine; from then on it
//!   grows by one per interval and shrinks by
//!   [`DECREASE_RATIO`](controller::DECREASE_RATIO). A rising
//!   round trip during slow start halves the limit without ending slow
//!   start: a longer round trip may be a longer path (a route change, a
//!   failover to a farther region) that needs more requests in flight, not
//!   fewer; only Pusher's own pushback says the limit is too high. (With a
//!   rise ending slow start, a step from 20 to 200 ms left the limit
//!   regrowing by one per 200 ms and a backlog waiting seconds.) Slow
//!   start starts over when the circuit closes after an outage, which will
//!   have pushed the limit to the floor.
//! - A congestion signal from a request sent before the last decrease is
//!   ignored: it tells of a limit already corrected (TCP's recovery).
//!
//! [`controller`] is the arithmetic, on a clock passed in, so that it is
//! tested on simulated time; [`limiter`] shares one controller between the
//! requests of a worker and hands out the permits they wait for.

pub mod controller;
pub mod limiter;

pub use controller::Response;
pub use limiter::{Limiter, Permit};
