//! The decision of adaptive concurrency: the limit, and how each answer
//! moves it (see the parent module for the algorithm). Pure arithmetic on a
//! clock passed in, so the tests below drive it on simulated time.

use std::time::{Duration, Instant};

use crate::config::ConcurrencyMode;

/// Where slow start begins: as TCP's initial window of 10 segments, a few
/// requests are safe to send blind, and each doubling skipped saves a
/// round trip at every start and after every outage.
pub const INITIAL_LIMIT: usize = 8;
/// The weight of the newest interval in the baseline.
pub const EWMA_ALPHA: f64 = 0.4;
/// How many mean deviations above its baseline a round trip must be to
/// count as congestion.
pub const RTT_DEVIATION_SCALE: f64 = 2.5;
/// Multiplier of the limit on congestion once slow start is over.
pub const DECREASE_RATIO: f64 = 0.9;
/// The least rise over the baseline that counts as congestion, as a share
/// of the baseline: the deviation of a very steady server would otherwise
/// make a small wobble look like a queue building.
const MIN_RISE_SHARE: f64 = 0.25;
/// The least rise over the baseline that counts as congestion, in absolute
/// terms: loopback round trips of a fraction of a millisecond vary by more
/// than that with the scheduler alone.
const MIN_RISE: Duration = Duration::from_millis(2);
/// The shortest interval, so that loopback round trips do not make the
/// limit move on every answer.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// How one request ended, as far as the controller cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Pusher answered (2xx, or a 4xx about the request itself): the round
    /// trip is a sample of its latency.
    Answered,
    /// 429: Pusher says we send too much.
    Throttled,
    /// 5xx, timeout or connection error: Pusher or the path to it is
    /// struggling.
    Failed,
}

/// Why the limit went down, for the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decrease {
    Throttled,
    Failed,
    Rtt,
}

impl Decrease {
    pub fn as_str(self) -> &'static str {
        match self {
            Decrease::Throttled => "429",
            Decrease::Failed => "error",
            Decrease::Rtt => "rtt",
        }
    }
}

/// A moving mean and mean deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Seconds.
    pub mean: f64,
    /// Seconds.
    pub deviation: f64,
}

impl Baseline {
    fn update(&mut self, sample: f64) {
        self.deviation += EWMA_ALPHA * ((sample - self.mean).abs() - self.deviation);
        self.mean += EWMA_ALPHA * (sample - self.mean);
    }

    /// The round trip above which the interval counts as congested.
    fn congested_above(&self) -> f64 {
        let rise = (self.deviation * RTT_DEVIATION_SCALE)
            .max(self.mean * MIN_RISE_SHARE)
            .max(MIN_RISE.as_secs_f64());
        self.mean + rise
    }

    /// The round trip up to which the interval may grow the limit.
    fn grows_up_to(&self) -> f64 {
        self.mean + self.deviation.max(MIN_RISE.as_secs_f64())
    }
}

/// What changed at the end of an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    Grew {
        from: usize,
        to: usize,
    },
    Shrank {
        from: usize,
        to: usize,
        cause: Decrease,
    },
    Held,
}

#[derive(Debug, Default)]
struct Interval {
    started: Option<Instant>,
    /// The fastest answer of the interval, in seconds.
    fastest: Option<f64>,
    /// The cause, and the limit in effect when the congested request went.
    congestion: Option<(Decrease, usize)>,
    reached_limit: bool,
}

/// What a request remembers of the controller when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    epoch: u64,
    limit: usize,
}

/// The limit and what it is decided from. Pure arithmetic: every method
/// takes the time, so tests drive it on a simulated clock.
#[derive(Debug)]
pub struct Controller {
    mode: ConcurrencyMode,
    limit: usize,
    ceiling: usize,
    in_flight: usize,
    slow_start: bool,
    /// Counts decreases; a request remembers the epoch it was sent in.
    epoch: u64,
    baseline: Option<Baseline>,
    interval: Interval,
}

impl Controller {
    /// A controller for at most `ceiling` requests. Adaptive starts at
    /// [`INITIAL_LIMIT`] in slow start; fixed stays at the ceiling.
    pub fn new(mode: ConcurrencyMode, ceiling: usize) -> Controller {
        let ceiling = ceiling.max(1);
        Controller {
            mode,
            limit: match mode {
                ConcurrencyMode::Adaptive => INITIAL_LIMIT.min(ceiling),
                ConcurrencyMode::Fixed => ceiling,
            },
            ceiling,
            in_flight: 0,
            slow_start: true,
            epoch: 0,
            baseline: None,
            interval: Interval::default(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn baseline(&self) -> Option<Baseline> {
        self.baseline
    }

    #[cfg(test)]
    pub fn in_slow_start(&self) -> bool {
        self.mode == ConcurrencyMode::Adaptive && self.slow_start
    }

    /// Takes a permit if one is free; returns the ticket to hand back to
    /// [`Controller::finish`].
    pub fn try_start(&mut self, now: Instant) -> Option<Ticket> {
        if self.in_flight >= self.limit {
            return None;
        }
        self.interval.started.get_or_insert(now);
        self.in_flight += 1;
        Some(Ticket {
            epoch: self.epoch,
            limit: self.limit,
        })
    }

    /// Gives back a permit without a sample (the request was abandoned).
    pub fn cancel(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Gives back a permit with how the request went, and adjusts the limit
    /// when the interval is over (`None` while it is not).
    pub fn finish(
        &mut self,
        now: Instant,
        rtt: Duration,
        ticket: Ticket,
        response: Response,
    ) -> Option<Change> {
        // Every permit taken when an answer comes back: the limit is what
        // holds the work back. (Noted here and not when a permit is taken,
        // because a permit may be taken and given back unused.)
        if self.in_flight >= self.limit {
            self.interval.reached_limit = true;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        match response {
            Response::Answered => {
                let rtt = rtt.as_secs_f64();
                self.interval.fastest =
                    Some(self.interval.fastest.map_or(rtt, |f: f64| f.min(rtt)));
            }
            Response::Throttled | Response::Failed if ticket.epoch == self.epoch => {
                let cause = if response == Response::Throttled {
                    Decrease::Throttled
                } else {
                    Decrease::Failed
                };
                // A 429 says more than an error about our limit: keep it.
                if !matches!(self.interval.congestion, Some((Decrease::Throttled, _))) {
                    self.interval.congestion = Some((cause, ticket.limit));
                }
            }
            Response::Throttled | Response::Failed => {}
        }
        if self.mode == ConcurrencyMode::Fixed {
            return None;
        }
        let started = *self.interval.started.get_or_insert(now);
        let length = self
            .baseline
            .map(|b| Duration::from_secs_f64(b.mean))
            .unwrap_or_default()
            .max(MIN_INTERVAL);
        if now.saturating_duration_since(started) < length && self.interval.congestion.is_none() {
            return None;
        }
        Some(self.end_interval(now))
    }

    /// Starts slow start again (after an outage, when the limit says nothing
    /// about the Pusher that is back).
    pub fn restart(&mut self) {
        if self.mode == ConcurrencyMode::Adaptive {
            self.slow_start = true;
        }
    }

    fn end_interval(&mut self, now: Instant) -> Change {
        let interval = std::mem::take(&mut self.interval);
        self.interval.started = Some(now);
        let fastest = interval.fastest;
        let from = self.limit;

        let rtt_rose = match (self.baseline, fastest) {
            (Some(b), Some(m)) => m > b.congested_above(),
            _ => false,
        };
        let near_baseline = match (self.baseline, fastest) {
            (Some(b), Some(m)) => m <= b.grows_up_to(),
            // The first samples make the baseline; nothing says they are bad.
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if let Some(m) = fastest {
            match &mut self.baseline {
                Some(b) => b.update(m),
                None => {
                    self.baseline = Some(Baseline {
                        mean: m,
                        deviation: 0.0,
                    })
                }
            }
        }

        let congestion = interval
            .congestion
            .or(rtt_rose.then_some((Decrease::Rtt, from)));
        if let Some((cause, sent_under)) = congestion {
            let to = if self.slow_start {
                // The doubling that let this request go overshot: the limit
                // before it was fine. (The limit may have doubled again
                // before the answer came back.) Only Pusher's own pushback
                // ends slow start: a longer round trip may be a longer path
                // (a route change, a failover to a farther region) that
                // needs more requests in flight, not fewer, and the
                // baseline moves to it within a few intervals.
                if cause != Decrease::Rtt {
                    self.slow_start = false;
                }
                sent_under / 2
            } else {
                (from as f64 * DECREASE_RATIO).floor() as usize
            }
            .clamp(1, self.ceiling);
            self.epoch += 1;
            self.limit = to;
            return if to < from {
                Change::Shrank { from, to, cause }
            } else {
                Change::Held
            };
        }
        if near_baseline && interval.reached_limit && from < self.ceiling {
            let to = if self.slow_start { from * 2 } else { from + 1 }.min(self.ceiling);
            self.limit = to;
            return Change::Grew { from, to };
        }
        Change::Held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(50);

    /// A closed loop on simulated time: `offered` requests want to be in
    /// flight at once (as many lanes with work), each permit is refilled the
    /// moment its answer comes back, and the server answers after the round
    /// trip `rtt(now)`: 429 at once beyond `cap` requests, `failing` turns
    /// every answer into an error.
    struct Sim {
        c: Controller,
        start: Instant,
        now: Instant,
        /// (answer time, ticket, response, counted against the cap)
        flying: Vec<(Instant, Ticket, Response, bool)>,
        cap: Option<usize>,
        failing: bool,
        answered: usize,
        throttled: usize,
        /// (seconds since start, limit) at every change.
        limits: Vec<(f64, usize)>,
    }

    impl Sim {
        fn new(mode: ConcurrencyMode, ceiling: usize) -> Sim {
            let now = Instant::now();
            Sim {
                c: Controller::new(mode, ceiling),
                start: now,
                now,
                flying: Vec::new(),
                cap: None,
                failing: false,
                answered: 0,
                throttled: 0,
                limits: Vec::new(),
            }
        }

        fn run(&mut self, for_: Duration, offered: usize, rtt: Duration) {
            let end = self.now + for_;
            while self.now < end {
                while self.flying.len() < offered {
                    let Some(ticket) = self.c.try_start(self.now) else {
                        break;
                    };
                    let admitted = self.flying.iter().filter(|f| f.3).count();
                    let (at, response, counted) = if self.failing {
                        (self.now + rtt, Response::Failed, false)
                    } else if self.cap.is_some_and(|cap| admitted >= cap) {
                        (
                            self.now + Duration::from_micros(100),
                            Response::Throttled,
                            false,
                        )
                    } else {
                        (self.now + rtt, Response::Answered, true)
                    };
                    self.flying.push((at, ticket, response, counted));
                }
                let Some(next) = (0..self.flying.len()).min_by_key(|i| self.flying[*i].0) else {
                    return;
                };
                let (at, ticket, response, _) = self.flying.swap_remove(next);
                self.now = at;
                match response {
                    Response::Throttled => self.throttled += 1,
                    _ => self.answered += 1,
                }
                let before = self.c.limit();
                self.c.finish(at, rtt, ticket, response);
                if self.c.limit() != before {
                    let t = (at - self.start).as_secs_f64();
                    self.limits.push((t, self.c.limit()));
                }
            }
        }

        fn limits_after(&self, secs: f64) -> Vec<usize> {
            self.limits
                .iter()
                .filter(|(t, _)| *t >= secs)
                .map(|(_, l)| *l)
                .collect()
        }
    }

    #[test]
    fn slow_start_doubles_per_round_trip_up_to_the_ceiling() {
        let mut s = Sim::new(ConcurrencyMode::Adaptive, 256);
        s.run(RTT * 10, 1000, RTT);
        let limits: Vec<usize> = s.limits.iter().map(|(_, l)| *l).collect();
        assert_eq!(limits, [16, 32, 64, 128, 256]);
        assert!(
            s.limits[4].0 <= 10.0 * RTT.as_secs_f64(),
            "at the ceiling within ten round trips: {:?}",
            s.limits
        );
        assert!(s.c.in_slow_start(), "no congestion was seen");
    }

    #[test]
    fn the_limit_grows_only_while_it_is_reached() {
        let mut s = Sim::new(ConcurrencyMode::Adaptive, 256);
        s.run(RTT * 50, 20, RTT);
        assert_eq!(s.c.limit(), 32, "one doubling past the 20 offered, no more");
    }

    #[test]
    fn a_429_ends_slow_start_at_the_last_good_limit_then_it_hovers_at_the_cap() {
        let mut s = Sim::new(ConcurrencyMode::Adaptive, 256);
        s.cap = Some(32);
        s.run(RTT * 8, 1000, RTT);
        assert!(!s.c.in_slow_start());
        assert_eq!(
            s.limits.iter().map(|(_, l)| *l).max(),
            Some(64),
            "one doubling too far: {:?}",
            s.limits
        );
        assert!((29..=33).contains(&s.c.limit()), "{:?}", s.limits);
        // Then it probes above the cap by one per round trip and backs off
        // by 10%: few requests are refused, and the cap stays nearly full.
        let (answered, throttled) = (s.answered, s.throttled);
        s.run(Duration::from_secs(60), 1000, RTT);
        let tail = s.limits_after(10.0);
        assert!(tail.iter().all(|l| (28..=33).contains(l)), "{tail:?}");
        let refused = (s.throttled - throttled) as f64 / (s.answered - answered) as f64;
        assert!(refused < 0.02, "{:.3} of the requests refused", refused);
        let per_second = (s.answered - answered) as f64 / 60.0;
        let full = 32.0 / RTT.as_secs_f64();
        assert!(
            per_second >= 0.85 * full,
            "{per_second:.0} of {full:.0} requests/s"
        );
    }

    #[test]
    fn a_longer_round_trip_halves_the_limit_then_slow_start_regains_it() {
        let mut s = Sim::new(ConcurrencyMode::Adaptive, 256);
        s.run(Duration::from_secs(1), 100, Duration::from_millis(20));
        assert_eq!(s.c.limit(), 128);
        // Pusher is suddenly ten times farther away.
        s.run(Duration::from_millis(400), 100, Duration::from_millis(200));
        assert!(
            s.limits_after(1.0).iter().any(|l| *l <= 64),
            "halved at the rise: {:?}",
            s.limits
        );
        assert!(s.c.in_slow_start(), "a longer path is not pushback");
        // The baseline follows the new distance, and doubling regains the
        // limit within a few round trips.
        s.run(Duration::from_secs(2), 100, Duration::from_millis(200));
        assert_eq!(s.c.limit(), 128, "{:?}", s.limits);
        let b = s.c.baseline().expect("baseline");
        assert!((b.mean - 0.2).abs() < 0.01, "baseline {b:?}");
    }

    #[test]
    fn after_pushback_a_rising_round_trip_shrinks_it_by_the_ratio() {
        let mut s = Sim::new(ConcurrencyMode::Adaptive, 256);
        s.cap = Some(32);
        s.run(Duration::from_secs(2), 1000, RTT);
        assert!(!s.c.in_slow_start());
        s.cap = None;
        s.run(Duration::from_secs(2), 1000, RTT);
        let before = s.c.limit();
        assert!(
            before > 50,
            "one more per round trip once the cap is gone: {before}"
        );
        s.run(RTT * 2, 1000, RTT * 3);
        let after = s.c.limit();
        assert!(
            after < before && after as f64 >= before as f64 * 0.8,
            "{before} then {after}"
        );
    }

    #[test]
    fn errors_shrink_it_to_the_floor_and_never_below() {
        let mut s = Sim::new(ConcurrencyMode::Adaptive, 64);
        s.run(RTT * 8, 1000, RTT);
        assert_eq!(s.c.limit(), 64);
        s.failing = true;
        s.run(Duration::from_secs(10), 1000, RTT);
        assert_eq!(s.c.limit(), 1);
        s.failing = false;
        s.c.restart();
        s.run(RTT * 8, 1000, RTT);
        assert_eq!(s.c.limit(), 64, "slow start again after the outage");
    }

    #[test]
    fn congestion_from_before_a_decrease_is_counted_once() {
        let mut c = Controller::new(ConcurrencyMode::Adaptive, 256);
        let mut t = Instant::now();
        for _ in 0..3 {
            let tickets: Vec<Ticket> = std::iter::from_fn(|| c.try_start(t)).collect();
            t += RTT;
            for ticket in tickets {
                c.finish(t, RTT, ticket, Response::Answered);
            }
        }
        assert_eq!(c.limit(), 64);
        let old: Vec<Ticket> = std::iter::from_fn(|| c.try_start(t)).collect();
        t += RTT;
        // Every one of the 64 comes back throttled, the answers spread over
        // several intervals: one decrease only.
        for (i, ticket) in old.into_iter().enumerate() {
            c.finish(t + RTT * i as u32, RTT, ticket, Response::Throttled);
        }
        assert_eq!(c.limit(), 32);
    }

    #[test]
    fn fixed_mode_never_moves() {
        let mut s = Sim::new(ConcurrencyMode::Fixed, 16);
        s.cap = Some(8);
        s.run(Duration::from_secs(2), 100, RTT);
        s.run(Duration::from_secs(2), 100, Duration::from_secs(1));
        assert_eq!(s.c.limit(), 16);
        assert!(s.limits.is_empty(), "{:?}", s.limits);
    }

    #[test]
    fn jitter_alone_does_not_shrink_the_limit() {
        let mut s = Sim::new(ConcurrencyMode::Adaptive, 256);
        // 50 ms +- 10 ms, a different round trip every few answers.
        for i in 0..400u64 {
            let rtt = Duration::from_millis(40 + (i * 7919 % 21));
            s.run(Duration::from_millis(5), 100, rtt);
        }
        assert!(s.c.limit() >= 100, "{:?}", s.limits);
        assert!(
            s.limits_after(1.0).iter().all(|l| *l >= 100),
            "{:?}",
            s.limits
        );
    }
}
