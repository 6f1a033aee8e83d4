//! The overview's history: every [`SAMPLE_INTERVAL`] a sampler reads the
//! process's running totals ([`metrics::live`]) and keeps the rates since the
//! previous reading in a fixed ring of [`CAPACITY`] samples (15 minutes), in
//! memory only: a restarted worker starts a new history, as its counters do.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::metrics::{self, SECONDS_BUCKETS};
use crate::relay::RelayStatus;
use crate::shutdown::Shutdown;

/// Time between samples: short enough for the page to look live, long
/// enough that a rate over it is not noise.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Samples kept: 15 minutes at [`SAMPLE_INTERVAL`].
pub const CAPACITY: usize = 180;

/// The running totals at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub intents_consumed: u64,
    pub events_delivered: u64,
    pub pusher_requests: u64,
    pub retries: u64,
    pub dead_letters: u64,
    pub latency_buckets: [u64; SECONDS_BUCKETS.len() + 1],
}

impl Totals {
    /// Reads this process's totals.
    pub fn read() -> Totals {
        let live = metrics::live();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Totals {
            intents_consumed: load(&live.intents_consumed),
            events_delivered: load(&live.events_delivered),
            pusher_requests: load(&live.pusher_requests),
            retries: load(&live.retries),
            dead_letters: load(&live.dead_letters),
            latency_buckets: std::array::from_fn(|i| load(&live.latency_buckets[i])),
        }
    }
}

/// One point of the history: rates over the interval that ended at `at_ms`,
/// and gauges read at that moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub consumed_per_s: f64,
    pub delivered_per_s: f64,
    pub requests_per_s: f64,
    pub retries_per_s: f64,
    pub dead_letters_per_s: f64,
    /// Delivery latency percentiles over the interval, as the upper bound of
    /// the bucket they fall in (the histogram's resolution); `None` when
    /// nothing was delivered.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub in_flight: u64,
    pub concurrency_limit: u64,
    pub backlog: u64,
    pub circuit_open: bool,
}

/// The gauges a sample records beside the rates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub in_flight: u64,
    pub concurrency_limit: u64,
    pub backlog: u64,
    pub circuit_open: bool,
}

/// The sample for the interval from `before` to `after`, `elapsed` long.
pub fn sample(
    before: &Totals,
    after: &Totals,
    elapsed: Duration,
    at: SystemTime,
    g: Gauges,
) -> Sample {
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    // A counter never goes back; saturating keeps a restart of the totals
    // (tests reinstall nothing, but be safe) from showing as a huge rate.
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let buckets: Vec<u64> = before
        .latency_buckets
        .iter()
        .zip(&after.latency_buckets)
        .map(|(a, b)| b.saturating_sub(*a))
        .collect();
    Sample {
        at_ms: crate::clock::unix_ms(at),
        consumed_per_s: rate(before.intents_consumed, after.intents_consumed),
        delivered_per_s: rate(before.events_delivered, after.events_delivered),
        requests_per_s: rate(before.pusher_requests, after.pusher_requests),
        retries_per_s: rate(before.retries, after.retries),
        dead_letters_per_s: rate(before.dead_letters, after.dead_letters),
        latency_p50_ms: percentile_ms(&buckets, 0.50),
        latency_p99_ms: percentile_ms(&buckets, 0.99),
        in_flight: g.in_flight,
        concurrency_limit: g.concurrency_limit,
        backlog: g.backlog,
        circuit_open: g.circuit_open,
    }
}

/// The upper bound (ms) of the bucket holding quantile `q` of `counts`
/// (per [`SECONDS_BUCKETS`], plus one overflow bucket shown as the last
/// bound), or `None` for no observations.
fn percentile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let bound = SECONDS_BUCKETS
                .get(i)
                .or(SECONDS_BUCKETS.last())
                .copied()
                .unwrap_or(0.0);
            return Some(bound * 1000.0);
        }
    }
    None
}

/// Whether the backlog grows: the newest sample against the one a minute
/// before it (or the oldest, in a younger history).
pub fn backlog_trend(samples: &[Sample]) -> &'static str {
    const LOOKBACK: usize = 12;
    let Some(last) = samples.last() else {
        return "unknown";
    };
    let earlier = &samples[samples.len().saturating_sub(LOOKBACK + 1)];
    match last.backlog.cmp(&earlier.backlog) {
        std::cmp::Ordering::Greater => "growing",
        std::cmp::Ordering::Less => "shrinking",
        std::cmp::Ordering::Equal => "steady",
    }
}

/// The ring of samples, shared by the sampler and the pages.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a sample, dropping the oldest beyond [`CAPACITY`].
    pub fn push(&self, s: Sample) {
        let mut ring = self.lock();
        if ring.len() == CAPACITY {
            ring.pop_front();
        }
        ring.push_back(s);
    }

    /// Every sample, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.lock().iter().cloned().collect()
    }
}

/// Samples every [`SAMPLE_INTERVAL`] until shutdown.
pub async fn run(history: Arc<History>, status: RelayStatus, mut shutdown: Shutdown) {
    let mut before = Totals::read();
    let mut then = Instant::now();
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    // The first tick is immediate; the first sample needs a whole interval.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => return,
        }
        let after = Totals::read();
        let now = Instant::now();
        let gauges = Gauges {
            in_flight: status.in_flight() as u64,
            concurrency_limit: status.concurrency_limit() as u64,
            backlog: metrics::live().backlog.load(Ordering::Relaxed),
            circuit_open: status.circuit().is_some(),
        };
        history.push(sample(
            &before,
            &after,
            now - then,
            SystemTime::now(),
            gauges,
        ));
        before = after;
        then = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn totals(consumed: u64, delivered: u64) -> Totals {
        Totals {
            intents_consumed: consumed,
            events_delivered: delivered,
            ..Totals::default()
        }
    }

    #[test]
    fn rates_are_the_counters_growth_over_the_interval() {
        let s = sample(
            &totals(100, 50),
            &totals(600, 1050),
            Duration::from_secs(5),
            UNIX_EPOCH + Duration::from_secs(7),
            Gauges::default(),
        );
        assert_eq!(s.consumed_per_s, 100.0);
        assert_eq!(s.delivered_per_s, 200.0);
        assert_eq!(s.retries_per_s, 0.0);
        assert_eq!(s.at_ms, 7000);
        assert_eq!(s.latency_p50_ms, None, "nothing delivered, no latency");
    }

    #[test]
    fn percentiles_are_the_bounds_of_the_buckets_they_fall_in() {
        let mut after = Totals::default();
        // 98 at <= 10 ms (bucket 3), 2 at <= 1 s (bucket 11).
        after.latency_buckets[3] = 98;
        after.latency_buckets[11] = 2;
        let s = sample(
            &Totals::default(),
            &after,
            Duration::from_secs(5),
            UNIX_EPOCH,
            Gauges::default(),
        );
        assert_eq!(s.latency_p50_ms, Some(10.0));
        assert_eq!(s.latency_p99_ms, Some(1000.0));
        let mut overflow = [0; SECONDS_BUCKETS.len() + 1];
        overflow[SECONDS_BUCKETS.len()] = 1;
        assert_eq!(percentile_ms(&overflow, 0.5), Some(60_000.0));
    }

    #[test]
    fn the_ring_keeps_the_newest_fifteen_minutes() {
        let h = History::default();
        for i in 0..(CAPACITY as i64 + 20) {
            h.push(Sample {
                at_ms: i,
                ..Sample::default()
            });
        }
        let s = h.samples();
        assert_eq!(s.len(), CAPACITY);
        assert_eq!(s.first().map(|s| s.at_ms), Some(20));
        assert_eq!(s.last().map(|s| s.at_ms), Some(CAPACITY as i64 + 19));
    }

    #[test]
    fn the_backlog_trend_compares_with_a_minute_before() {
        let at = |backlog| Sample {
            backlog,
            ..Sample::default()
        };
        assert_eq!(backlog_trend(&[]), "unknown");
        let mut s: Vec<Sample> = (0..20).map(|_| at(10)).collect();
        assert_eq!(backlog_trend(&s), "steady");
        s.push(at(30));
        assert_eq!(backlog_trend(&s), "growing");
        s.push(at(0));
        assert_eq!(backlog_trend(&s), "shrinking");
    }
}
