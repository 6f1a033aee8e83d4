//! Acks in runs. Awaiting one ack per message, not the broker, is what
//! caps a worker's drain; one `multiple: true` ack for a run of finished
//! deliveries costs the same as one (docs/architecture.md, "Acks and
//! confirms in runs", has the rates).
//!
//! [`AckTracker`] is the bookkeeping: it knows which delivery tags are
//! finished and answers which acks to send. A finished delivery stuck
//! behind an unfinished one (a slow channel, a retry) would otherwise hold
//! prefetch credit hostage, so it is acked on its own, but only when it has
//! to be: after [`STRAGGLER_PATIENCE`], or after [`STRAGGLER_DELAY`] once
//! such deliveries fill [`CROWDED`] of the window. Acking every straggler
//! after 50 ms, as before, sent one frame per delivery whenever deliveries
//! finish out of order: a parked channel's intents are finished once
//! written, long before the cold intents ahead of them are delivered, and
//! their single acks cost the broker more than the cold intents themselves
//! (see docs/benchmarks.md, "Relay and soak", D5, for the rate cold
//! channels kept beside a parked backlog with each scheme).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long a finished delivery waits behind an unfinished earlier one
/// before it is acked alone when the window is crowded with them.
pub const STRAGGLER_DELAY: Duration = Duration::from_millis(50);

/// How long a finished delivery waits behind an unfinished earlier one at
/// most: this bounds what a kill -9 redelivers beyond what was in flight.
pub const STRAGGLER_PATIENCE: Duration = Duration::from_secs(1);

/// The share of the prefetch window finished deliveries may hold while
/// they wait for a run: the rest keeps the lanes fed (a quarter of 10,000
/// is 25 intents for each of 100 busy channels, two and a half requests).
pub const CROWDED: (usize, usize) = (3, 4);

/// One ack to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub tag: u64,
    /// `true`: this and every earlier unacked tag.
    pub multiple: bool,
}

/// Finished delivery tags of one channel and what has been acked.
#[derive(Debug)]
pub struct AckTracker {
    /// More finished deliveries than this behind a gap crowd the window:
    /// stragglers are then acked after [`STRAGGLER_DELAY`], not
    /// [`STRAGGLER_PATIENCE`].
    crowded: usize,
    /// Every tag below this is acked (singly or by a run).
    floor: u64,
    /// Finished tags at or above `floor`, with when they finished.
    finished: BTreeMap<u64, Instant>,
    /// Tags at or above `floor` that were already acked alone; a run must
    /// not end on one of them (RabbitMQ closes the channel on an unknown tag).
    acked_singly: BTreeSet<u64>,
}

impl AckTracker {
    /// A tracker for a channel whose prefetch window is `window` deliveries.
    pub fn new(window: usize) -> Self {
        AckTracker {
            crowded: window * CROWDED.0 / CROWDED.1,
            floor: 1,
            finished: BTreeMap::new(),
            acked_singly: BTreeSet::new(),
        }
    }

    /// Marks a delivery finished (delivered or stored as a dead letter).
    pub fn finish(&mut self, tag: u64, now: Instant) {
        if tag >= self.floor {
            self.finished.entry(tag).or_insert(now);
        }
    }

    /// Finished deliveries not yet acked.
    pub fn unacked(&self) -> usize {
        self.finished.len()
    }

    /// How long a straggler waits now before it is acked alone.
    pub fn straggler_wait(&self) -> Duration {
        if self.finished.len() > self.crowded {
            STRAGGLER_DELAY
        } else {
            STRAGGLER_PATIENCE
        }
    }

    /// The acks to send now: one run for the contiguous finished prefix,
    /// and, when `stragglers` is given, single acks for deliveries finished
    /// at least that long ago behind a gap (`Duration::ZERO` acks every
    /// finished delivery, as at shutdown).
    pub fn take_acks(&mut self, now: Instant, stragglers: Option<Duration>) -> Vec<Ack> {
        let mut acks = Vec::new();
        let start = self.floor;
        let mut run_end = None;
        loop {
            if self.finished.remove(&self.floor).is_some() {
                run_end = Some(self.floor);
            } else if !self.acked_singly.remove(&self.floor) {
                break;
            }
            self.floor += 1;
        }
        if let Some(tag) = run_end {
            acks.push(Ack {
                tag,
                multiple: tag > start,
            });
        }
        let Some(straggler_delay) = stragglers else {
            return acks;
        };
        let due: Vec<u64> = self
            .finished
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= straggler_delay)
            .map(|(tag, _)| *tag)
            .collect();
        for tag in due {
            self.finished.remove(&tag);
            self.acked_singly.insert(tag);
            acks.push(Ack {
                tag,
                multiple: false,
            });
        }
        acks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(t: &mut AckTracker, now: Instant, delay: Duration) -> Vec<(u64, bool)> {
        t.take_acks(now, Some(delay))
            .into_iter()
            .map(|a| (a.tag, a.multiple))
            .collect()
    }

    /// The acks of a straggler check at `now`, as the session's tick makes it.
    fn due(t: &mut AckTracker, now: Instant) -> Vec<(u64, bool)> {
        let wait = t.straggler_wait();
        acks(t, now, wait)
    }

    #[test]
    fn a_contiguous_run_is_one_multiple_ack() {
        let now = Instant::now();
        let mut t = AckTracker::new(100);
        for tag in [3, 1, 2] {
            t.finish(tag, now);
        }
        assert_eq!(acks(&mut t, now, STRAGGLER_DELAY), [(3, true)]);
        t.finish(4, now);
        assert_eq!(acks(&mut t, now, STRAGGLER_DELAY), [(4, false)]);
        assert!(acks(&mut t, now, STRAGGLER_DELAY).is_empty());
    }

    #[test]
    fn finished_deliveries_behind_a_gap_wait_then_are_acked_alone() {
        let t0 = Instant::now();
        let mut t = AckTracker::new(100);
        t.finish(2, t0);
        t.finish(3, t0);
        assert!(
            acks(&mut t, t0, STRAGGLER_DELAY).is_empty(),
            "tag 1 is not finished"
        );
        let later = t0 + STRAGGLER_DELAY;
        assert_eq!(
            acks(&mut t, later, STRAGGLER_DELAY),
            [(2, false), (3, false)]
        );
        assert_eq!(t.unacked(), 0);
    }

    #[test]
    fn without_a_straggler_check_only_runs_are_acked() {
        let t0 = Instant::now();
        let mut t = AckTracker::new(100);
        t.finish(2, t0);
        let later = t0 + STRAGGLER_DELAY * 2;
        assert!(t.take_acks(later, None).is_empty());
        assert_eq!(acks(&mut t, later, STRAGGLER_DELAY), [(2, false)]);
    }

    #[test]
    fn a_run_never_ends_on_a_tag_already_acked_alone() {
        let t0 = Instant::now();
        let mut t = AckTracker::new(100);
        t.finish(2, t0);
        assert_eq!(acks(&mut t, t0, Duration::ZERO), [(2, false)]);
        t.finish(1, t0);
        // 1 is acked alone-or-by-run; 2 must not be acked again.
        assert_eq!(acks(&mut t, t0, STRAGGLER_DELAY), [(1, false)]);
        t.finish(3, t0);
        t.finish(4, t0);
        assert_eq!(acks(&mut t, t0, STRAGGLER_DELAY), [(4, true)]);
    }

    #[test]
    fn singly_acked_tags_inside_a_run_are_passed_over() {
        let t0 = Instant::now();
        let mut t = AckTracker::new(100);
        t.finish(3, t0);
        assert_eq!(acks(&mut t, t0, Duration::ZERO), [(3, false)]);
        t.finish(1, t0);
        t.finish(2, t0);
        t.finish(4, t0);
        assert_eq!(acks(&mut t, t0, STRAGGLER_DELAY), [(4, true)]);
    }

    #[test]
    fn stragglers_wait_for_a_run_until_they_crowd_the_window() {
        let t0 = Instant::now();
        // A window of 8: more than 6 finished behind a gap is crowded.
        let mut t = AckTracker::new(8);
        for tag in 2..=7 {
            t.finish(tag, t0);
        }
        assert_eq!(t.straggler_wait(), STRAGGLER_PATIENCE);
        let soon = t0 + STRAGGLER_DELAY;
        assert!(
            due(&mut t, soon).is_empty(),
            "six of eight may wait for tag 1"
        );
        t.finish(1, soon);
        assert_eq!(due(&mut t, soon), [(7, true)]);

        for tag in 9..=15 {
            t.finish(tag, soon);
        }
        assert_eq!(
            t.straggler_wait(),
            STRAGGLER_DELAY,
            "seven of eight crowd it"
        );
        let later = soon + STRAGGLER_DELAY;
        assert_eq!(due(&mut t, later).len(), 7);
    }

    #[test]
    fn a_straggler_waits_no_longer_than_its_patience() {
        let t0 = Instant::now();
        let mut t = AckTracker::new(10_000);
        t.finish(2, t0);
        let almost = t0 + STRAGGLER_PATIENCE - Duration::from_millis(1);
        assert!(due(&mut t, almost).is_empty());
        let patient = t0 + STRAGGLER_PATIENCE;
        assert_eq!(due(&mut t, patient), [(2, false)]);
    }
}
