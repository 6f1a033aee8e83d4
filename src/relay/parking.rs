//! Parking: a hot channel never slows the others.
//!
//! Per-channel order allows one request per channel in flight, so a channel
//! drains at 10 events per round trip however many permits are free. A burst
//! to one channel would fill the prefetch window with that channel's
//! intents, and RabbitMQ hands the worker nothing that stands behind them in
//! the queue: every other channel would wait for the burst.
//!
//! So a channel of which the session holds more than a threshold is
//! *parked*: the tail of its lane that waits (not in flight) and every intent
//! of it that arrives later are written to the parked log (a table in the
//! dead-letter store, `deadletter::parked`), and acked from the queue only
//! once the write is committed, as Pulsar's answer to hot keys (PIP-474)
//! writes before it acks. The window is then free for other channels. The
//! log is read back a page at a time, in arrival order, into the channel's
//! lane behind what the lane still holds, so the channel keeps its order and
//! its full speed (10 events a request, one request in flight) with memory
//! for one page whatever the burst.
//!
//! Why the store and not a side queue in RabbitMQ: the parked set must be
//! known before the first delivery is routed (an intent of a parked channel
//! that went straight to its lane would overtake the parked ones), and a
//! table answers "which channels have rows" where a queue can only be read
//! through. Rows are deleted once their event is delivered or dead-lettered;
//! a channel is unparked when its group has no rows left, written, being
//! written or in flight.
//!
//! A multi-channel intent that names a parked channel is parked too, and its
//! other channels join that channel's *group*: the group is read back as one
//! ordered log, so the intent stays behind the parked intents of each of its
//! channels and ahead of the later ones. An intent tying two groups merges
//! them (their rows move into one group).
//!
//! This file is the bookkeeping, without I/O, so it is tested on its own:
//! which channels are parked, in which group, how many rows each group has
//! and which of them are in memory. The session does the writes and reads
//! through `parked_log`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Rows of a group held in memory at most, read back a page at a time.
pub const PAGE: usize = 200;

/// A group is read again when fewer rows than this are in memory: enough for
/// several requests while the next page is read.
const LOW_WATER: usize = PAGE / 4;

/// Where an arriving intent goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Into the lanes, as when nothing is parked.
    Lanes,
    /// Into the parked log, at the end of `group`, after the rows of the
    /// groups in `merge` have moved into it.
    Park { group: String, merge: Vec<String> },
    /// To the parked log, but it is full (`RELAY_PARKED_MAX_ROWS`), or an
    /// intent of one of its channels already waits for room: it waits,
    /// unacked, behind them (see [`Parking::hold`]).
    Full,
}

#[derive(Debug, Default)]
struct Group {
    channels: HashSet<String>,
    /// Rows written or being written and not yet deleted.
    rows: u64,
    /// Rows read into the lanes and not yet finished, by seq.
    loaded: HashSet<i64>,
    /// Rows finished whose delete is not yet committed: still in the table,
    /// so a page read meanwhile would bring them back.
    settling: HashSet<i64>,
    /// A page read is under way.
    reading: bool,
    parked_at_ms: i64,
    /// The oldest row's parked time, when known (after a rebuild).
    oldest_ms: Option<i64>,
    /// Rows finished since the group was parked, for its rate.
    finished: u64,
    /// Rows of other groups (by name) that name one of this group's
    /// channels and are not yet in the lanes: every row of this group came
    /// later, so it reads nothing and stays parked until they are in.
    gates: HashMap<String, u64>,
}

/// A parked group, as operators see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupView {
    pub group: String,
    pub channels: Vec<String>,
    /// Rows left: written, being written or in flight.
    pub backlog: u64,
    pub parked_at_ms: i64,
    /// Rows finished per second since it was parked.
    pub rate_per_s: f64,
}

/// Which channels one session has parked, and each group's rows.
#[derive(Debug)]
pub struct Parking {
    threshold: usize,
    /// Rows the log may hold; see [`Route::Full`].
    max_rows: u64,
    channels: HashMap<String, String>,
    groups: HashMap<String, Group>,
    /// Channels of the intents waiting for room in the log, with how many
    /// of them name each: a later intent of one of these waits behind them.
    held: HashMap<String, usize>,
}

impl Parking {
    /// `threshold`: intents of one channel the session holds before it parks
    /// the channel; `max_rows`: rows the log may hold.
    pub fn new(threshold: usize, max_rows: u64) -> Parking {
        Parking {
            threshold: threshold.max(1),
            max_rows: max_rows.max(1),
            channels: HashMap::new(),
            groups: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Whether the log holds `RELAY_PARKED_MAX_ROWS` rows (written, being
    /// written or in flight): nothing more is written to it until rows are
    /// delivered.
    pub fn full(&self) -> bool {
        self.groups.values().map(|g| g.rows).sum::<u64>() >= self.max_rows
    }

    /// An intent [`Route::Full`] sent back waits, unacked, for room.
    pub fn hold(&mut self, channels: &[String]) {
        for c in channels {
            *self.held.entry(c.clone()).or_default() += 1;
        }
    }

    /// The oldest waiting intent is routed again, now that there may be
    /// room: it no longer waits behind itself.
    pub fn route_held(&mut self, channels: &[String]) -> Route {
        for c in channels {
            if let Some(n) = self.held.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    self.held.remove(c);
                }
            }
        }
        let route = self.route_behind(channels, false);
        if route == Route::Full {
            self.hold(channels);
        }
        route
    }

    /// Channels parked now.
    #[cfg(test)]
    pub fn parked_channels(&self) -> usize {
        self.channels.len()
    }

    /// Whether a channel whose lane holds `held` units should be parked.
    pub fn over_threshold(&self, channel: &str, held: usize) -> bool {
        held > self.threshold && !self.channels.contains_key(channel)
    }

    /// Parks `channel` as a group of its own, with no rows yet.
    pub fn park(&mut self, channel: &str, now_ms: i64) {
        if self.channels.contains_key(channel) {
            return;
        }
        self.channels
            .insert(channel.to_string(), channel.to_string());
        self.groups.insert(
            channel.to_string(),
            Group {
                channels: HashSet::from([channel.to_string()]),
                parked_at_ms: now_ms,
                ..Group::default()
            },
        );
    }

    /// Where an intent to `channels` goes. When it is parked, its rows are
    /// counted from here on (call [`Parking::written`] with what the write
    /// added), and its unparked channels join the group.
    pub fn route(&mut self, channels: &[String]) -> Route {
        self.route_behind(channels, true)
    }

    /// [`Parking::route`], for an intent that waits behind those held for
    /// room (`behind_held`) or is the oldest of them.
    fn route_behind(&mut self, channels: &[String], behind_held: bool) -> Route {
        if behind_held && channels.iter().any(|c| self.held.contains_key(c)) {
            return Route::Full;
        }
        let groups = self.groups_of(channels);
        let Some(group) = groups.first().cloned() else {
            return Route::Lanes;
        };
        if self.full() {
            return Route::Full;
        }
        let merge: Vec<String> = groups.into_iter().skip(1).collect();
        for from in &merge {
            self.merge_into(&group, from);
        }
        if let Some(g) = self.groups.get_mut(&group) {
            g.rows += 1;
        }
        // The intent's unparked channels wait for it, not for the whole
        // group: they are parked in a group of their own that reads nothing
        // until this intent is in the lanes.
        let side: Vec<&String> = channels
            .iter()
            .filter(|c| !self.channels.contains_key(*c))
            .collect();
        if let Some(first) = side.first() {
            let name = (*first).clone();
            let mut g = Group {
                channels: side.iter().map(|c| (*c).clone()).collect(),
                parked_at_ms: self.groups.get(&group).map_or(0, |home| home.parked_at_ms),
                ..Group::default()
            };
            g.gates.insert(group.clone(), 1);
            for c in &g.channels {
                self.channels.insert(c.clone(), name.clone());
            }
            self.groups.insert(name, g);
        }
        Route::Park { group, merge }
    }

    /// A row of `group` naming `channels` went into the lanes (or was
    /// finished without them): the groups that waited for it may go on.
    /// Returns those this unparks (they had nothing else to wait for).
    pub fn in_lanes(&mut self, group: &str, channels: &[String]) -> Vec<GroupView> {
        let mut opened = Vec::new();
        for other in self.groups_of(channels) {
            if other == group {
                continue;
            }
            let Some(g) = self.groups.get_mut(&other) else {
                continue;
            };
            if let Some(n) = g.gates.get_mut(group) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    g.gates.remove(group);
                    opened.push(other);
                }
            }
        }
        opened
            .iter()
            .filter_map(|name| self.unpark_if_done(name))
            .collect()
    }

    /// The distinct groups `channels` are parked in, in their order.
    fn groups_of(&self, channels: &[String]) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        for c in channels {
            if let Some(g) = self.channels.get(c) {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
        }
        groups
    }

    /// `from`'s channels and rows become `into`'s (the caller moves the
    /// rows in the log too).
    fn merge_into(&mut self, into: &str, from: &str) {
        let Some(old) = self.groups.remove(from) else {
            return;
        };
        for c in &old.channels {
            self.channels.insert(c.clone(), into.to_string());
        }
        // Rows that were `from`'s are `into`'s now, for the groups waiting
        // on them; waiting on its own rows means nothing.
        for (name, g) in self.groups.iter_mut() {
            if let Some(n) = g.gates.remove(from) {
                if name != into {
                    *g.gates.entry(into.to_string()).or_default() += n;
                }
            }
        }
        if let Some(g) = self.groups.get_mut(into) {
            for (on, n) in old.gates {
                if on != into {
                    *g.gates.entry(on).or_default() += n;
                }
            }
            g.channels.extend(old.channels);
            g.rows += old.rows;
            g.loaded.extend(old.loaded);
            g.settling.extend(old.settling);
            g.reading |= old.reading;
            g.finished += old.finished;
            g.parked_at_ms = g.parked_at_ms.min(old.parked_at_ms);
            g.oldest_ms = match (g.oldest_ms, old.oldest_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// Groups adopted from a gone worker's log (already moved into this
    /// log, under names of their own) join the parked set: each one whose
    /// channels are parked here too merges into their group. Returns the
    /// merges to make in the log, as `(into, from)`.
    pub fn adopt(
        &mut self,
        adopted: Vec<crate::deadletter::ParkedGroup>,
        now_ms: i64,
    ) -> Vec<(String, Vec<String>)> {
        let mut merges = Vec::new();
        for pg in adopted {
            let channels: Vec<String> = pg.channels.clone();
            let name = pg.group.clone();
            self.insert_group(pg, now_ms);
            let mut groups = self.groups_of(&channels);
            groups.retain(|g| g != &name);
            let Some(into) = groups.first().cloned() else {
                continue;
            };
            let mut from: Vec<String> = groups.into_iter().skip(1).collect();
            from.push(name);
            for f in &from {
                self.merge_into(&into, f);
            }
            merges.push((into, from));
        }
        merges
    }

    /// A group read from the log, with its channels mapped to it unless
    /// they are parked in another group already.
    fn insert_group(&mut self, pg: crate::deadletter::ParkedGroup, now_ms: i64) {
        let channels: HashSet<String> = pg.channels.into_iter().collect();
        for c in &channels {
            self.channels
                .entry(c.clone())
                .or_insert_with(|| pg.group.clone());
        }
        self.groups.insert(
            pg.group,
            Group {
                channels,
                rows: pg.rows,
                parked_at_ms: now_ms,
                oldest_ms: Some(pg.oldest_parked_at_ms),
                ..Group::default()
            },
        );
    }

    /// Counts `n` rows being written to `group` that did not go through
    /// [`Parking::route`] (the tail of a lane moved when it was parked).
    pub fn adding(&mut self, group: &str, n: u64) {
        if let Some(g) = self.groups.get_mut(group) {
            g.rows += n;
        }
    }

    /// A write of `submitted` rows to `group` committed and added `added`:
    /// the rest were already in the log (redeliveries of parked intents).
    pub fn written(&mut self, group: &str, submitted: u64, added: u64) -> Option<GroupView> {
        let g = self.groups.get_mut(group)?;
        g.rows = g.rows.saturating_sub(submitted.saturating_sub(added));
        self.unpark_if_done(group)
    }

    /// The group a channel is parked in.
    #[cfg(test)]
    pub fn group_of(&self, channel: &str) -> Option<&str> {
        self.channels.get(channel).map(String::as_str)
    }

    /// Groups with rows in the log and room in memory, not being read now:
    /// each wants a page of `limit` rows (those in memory come first again,
    /// and [`Parking::read`] drops them). Marks them as being read.
    pub fn wanting_pages(&mut self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for (name, g) in &mut self.groups {
            let in_memory = (g.loaded.len() + g.settling.len()) as u64;
            if g.gates.is_empty() && !g.reading && g.loaded.len() < LOW_WATER && g.rows > in_memory
            {
                g.reading = true;
                out.push((name.clone(), g.loaded.len() + g.settling.len() + PAGE));
            }
        }
        out
    }

    /// A page of `group` was read: returns the seqs of the rows to put into
    /// the lanes, in order (those already in memory are left out).
    pub fn read(&mut self, group: &str, seqs: &[i64]) -> Vec<i64> {
        let Some(g) = self.groups.get_mut(group) else {
            return Vec::new();
        };
        g.reading = false;
        let fresh: Vec<i64> = seqs
            .iter()
            .copied()
            .filter(|s| !g.loaded.contains(s) && !g.settling.contains(s))
            .collect();
        g.loaded.extend(&fresh);
        fresh
    }

    /// A page read failed; it is asked for again later.
    pub fn read_failed(&mut self, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.reading = false;
        }
    }

    /// A row read into the lanes finished (delivered or dead-lettered): its
    /// delete can be sent. Found by seq: a merge may have moved it since.
    pub fn finished(&mut self, seq: i64) {
        if let Some(g) = self.groups.values_mut().find(|g| g.loaded.contains(&seq)) {
            g.loaded.remove(&seq);
            g.settling.insert(seq);
        }
    }

    /// The delete of these finished rows committed. Returns the groups this
    /// unparked: no rows left, written, being written or in flight.
    pub fn deleted(&mut self, seqs: &[i64]) -> Vec<GroupView> {
        let mut touched = Vec::new();
        for s in seqs {
            if let Some((name, g)) = self.groups.iter_mut().find(|(_, g)| g.settling.contains(s)) {
                g.settling.remove(s);
                g.rows = g.rows.saturating_sub(1);
                g.finished += 1;
                if !touched.contains(name) {
                    touched.push(name.clone());
                }
            }
        }
        touched
            .iter()
            .filter_map(|name| self.unpark_if_done(name))
            .collect()
    }

    fn unpark_if_done(&mut self, group: &str) -> Option<GroupView> {
        let g = self.groups.get(group)?;
        if g.rows > 0
            || !g.loaded.is_empty()
            || !g.settling.is_empty()
            || g.reading
            || !g.gates.is_empty()
        {
            return None;
        }
        let view = view(group, g, crate::clock::now_ms());
        if let Some(g) = self.groups.remove(group) {
            for c in g.channels {
                self.channels.remove(&c);
            }
        }
        Some(view)
    }

    /// Replaces the parked set with what the log holds (at start, or when
    /// the session becomes the queue's active consumer). Which rows of one
    /// group a side group waited for is not in the log, so groups that
    /// share a channel are merged instead: returns the merges to make in
    /// the log, as `(into, from)`, before anything of them is read.
    pub fn rebuild(
        &mut self,
        groups: Vec<crate::deadletter::ParkedGroup>,
        now_ms: i64,
    ) -> Vec<(String, Vec<String>)> {
        self.channels.clear();
        self.groups.clear();
        self.adopt(groups, now_ms)
    }

    /// Every parked group, for the console.
    pub fn views(&self, now_ms: i64) -> Vec<GroupView> {
        let mut out: Vec<GroupView> = self
            .groups
            .iter()
            .map(|(name, g)| view(name, g, now_ms))
            .collect();
        out.sort_by(|a, b| b.backlog.cmp(&a.backlog).then(a.group.cmp(&b.group)));
        out
    }

    /// When the oldest parked intent was parked, as far as this session
    /// knows (its groups' parked times, or the rows' after a rebuild).
    pub fn oldest_parked_ms(&self) -> Option<i64> {
        self.groups
            .values()
            .map(|g| g.oldest_ms.unwrap_or(g.parked_at_ms))
            .min()
    }
}

fn view(name: &str, g: &Group, now_ms: i64) -> GroupView {
    let mut channels: Vec<String> = g.channels.iter().cloned().collect();
    channels.sort();
    let secs = (now_ms.saturating_sub(g.parked_at_ms)).max(1) as f64 / 1000.0;
    GroupView {
        group: name.to_string(),
        channels,
        backlog: g.rows,
        parked_at_ms: g.parked_at_ms,
        rate_per_s: g.finished as f64 / secs,
    }
}

/// What every session has parked, by consumed queue: the metrics and the
/// console read it, sessions replace their entry when it changes.
#[derive(Debug, Default)]
pub struct Board {
    queues: Mutex<HashMap<String, QueueParking>>,
}

/// One queue's parked groups and its oldest parked time.
type QueueParking = (Vec<GroupView>, Option<i64>);

impl Board {
    /// `queue`'s parked groups now, and its oldest parked time.
    pub fn set(&self, queue: &str, groups: Vec<GroupView>, oldest_ms: Option<i64>) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if groups.is_empty() {
            queues.remove(queue);
        } else {
            queues.insert(queue.to_string(), (groups, oldest_ms));
        }
        let channels = queues
            .values()
            .flat_map(|(g, _)| g.iter().map(|g| g.channels.len()))
            .sum();
        crate::metrics::parked_channels(channels);
    }

    /// Every parked group, largest backlog first.
    pub fn groups(&self) -> Vec<GroupView> {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<GroupView> = queues.values().flat_map(|(g, _)| g.clone()).collect();
        all.sort_by(|a, b| b.backlog.cmp(&a.backlog).then(a.group.cmp(&b.group)));
        all
    }

    /// Seconds since the oldest parked intent was parked, 0 when none.
    pub fn oldest_age_s(&self, now_ms: i64) -> f64 {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .values()
            .filter_map(|(_, oldest)| *oldest)
            .min()
            .map_or(0.0, |ms| now_ms.saturating_sub(ms).max(0) as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chans(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_channel_is_parked_only_past_the_threshold_and_once() {
        let mut p = Parking::new(100, 1_000_000);
        assert!(!p.over_threshold("hot", 100));
        assert!(p.over_threshold("hot", 101));
        p.park("hot", 0);
        assert!(!p.over_threshold("hot", 5_000), "already parked");
        assert_eq!(p.parked_channels(), 1);
    }

    #[test]
    fn nothing_parked_routes_to_the_lanes() {
        let mut p = Parking::new(10, 1_000_000);
        assert_eq!(p.route(&chans(&["a"])), Route::Lanes);
        assert_eq!(p.route(&chans(&["a", "b"])), Route::Lanes);
        p.park("hot", 0);
        assert_eq!(p.route(&chans(&["cold"])), Route::Lanes);
    }

    #[test]
    fn intents_of_a_parked_channel_are_parked_until_every_row_is_deleted() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("hot", 1_000);
        p.adding("hot", 3); // the lane's waiting tail
        for _ in 0..2 {
            assert_eq!(
                p.route(&chans(&["hot"])),
                Route::Park {
                    group: "hot".into(),
                    merge: vec![]
                }
            );
        }
        assert_eq!(p.written("hot", 3, 3), None);
        assert_eq!(p.written("hot", 2, 2), None);
        assert_eq!(p.wanting_pages(), vec![("hot".to_string(), PAGE)]);
        assert!(p.wanting_pages().is_empty(), "one read at a time");
        assert_eq!(p.read("hot", &[1, 2, 3, 4, 5]), vec![1, 2, 3, 4, 5]);
        for seq in 1..=4 {
            p.finished(seq);
        }
        assert!(p.deleted(&[1, 2, 3, 4]).is_empty(), "row 5 is in flight");
        assert_eq!(p.group_of("hot"), Some("hot"));
        p.finished(5);
        let unparked = p.deleted(&[5]);
        assert_eq!(unparked.len(), 1, "the last row unparks");
        assert_eq!(unparked[0].channels, vec!["hot".to_string()]);
        assert_eq!(p.group_of("hot"), None);
        assert_eq!(p.route(&chans(&["hot"])), Route::Lanes);
    }

    #[test]
    fn an_intent_arriving_while_the_last_row_settles_keeps_the_channel_parked() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("hot", 0);
        p.adding("hot", 1);
        p.written("hot", 1, 1);
        p.wanting_pages();
        p.read("hot", &[7]);
        p.finished(7);
        // Arrives before the delete of row 7 commits.
        assert!(matches!(p.route(&chans(&["hot"])), Route::Park { .. }));
        assert!(p.deleted(&[7]).is_empty());
        p.written("hot", 1, 1);
        assert_eq!(p.group_of("hot"), Some("hot"));
    }

    #[test]
    fn a_redelivered_row_that_adds_nothing_does_not_keep_the_channel_parked() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("hot", 0);
        assert!(matches!(p.route(&chans(&["hot"])), Route::Park { .. }));
        let unparked = p.written("hot", 1, 0);
        assert!(unparked.is_some(), "its id was in the log already");
    }

    #[test]
    fn pages_skip_rows_already_in_memory_or_settling() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("hot", 0);
        p.adding("hot", 300);
        p.written("hot", 300, 300);
        let want = p.wanting_pages();
        assert_eq!(want, vec![("hot".to_string(), PAGE)]);
        let first: Vec<i64> = (1..=200).collect();
        assert_eq!(p.read("hot", &first).len(), 200);
        assert!(p.wanting_pages().is_empty(), "200 in memory");
        for seq in 1..=160 {
            p.finished(seq);
        }
        // 40 loaded, 160 settling: a page of 400 from the start again.
        assert_eq!(p.wanting_pages(), vec![("hot".to_string(), 400)]);
        let again: Vec<i64> = (1..=300).collect();
        assert_eq!(p.read("hot", &again), (201..=300).collect::<Vec<_>>());
    }

    #[test]
    fn a_multi_channel_intent_ties_its_other_channels_only_until_it_is_in_the_lanes() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("hot", 0);
        p.adding("hot", 500);
        assert_eq!(
            p.route(&chans(&["hot", "side"])),
            Route::Park {
                group: "hot".into(),
                merge: vec![]
            }
        );
        assert_eq!(p.group_of("side"), Some("side"), "a group of its own");
        assert!(
            matches!(p.route(&chans(&["side"])), Route::Park { group, .. } if group == "side"),
            "later intents of side wait behind the multi-channel one"
        );
        p.written("hot", 501, 501);
        p.written("side", 1, 1);
        let pages = p.wanting_pages();
        assert_eq!(
            pages,
            vec![("hot".to_string(), PAGE)],
            "side reads nothing yet"
        );
        // Rows of hot that name only hot open nothing.
        assert!(p.in_lanes("hot", &chans(&["hot"])).is_empty());
        assert!(p.wanting_pages().is_empty());
        p.read("hot", &[1]);
        assert!(p.in_lanes("hot", &chans(&["hot", "side"])).is_empty());
        assert!(
            p.wanting_pages().contains(&("side".to_string(), PAGE)),
            "side goes on once the intent it waited for is in the lanes, whatever hot still holds"
        );
        p.read("side", &[900]);
        p.finished(900);
        let unparked = p.deleted(&[900]);
        assert_eq!(unparked.len(), 1);
        assert_eq!(unparked[0].channels, vec!["side".to_string()]);
        assert_eq!(p.group_of("side"), None);
        assert_eq!(p.group_of("hot"), Some("hot"));
    }

    #[test]
    fn a_side_group_with_nothing_of_its_own_unparks_when_the_intent_is_in_the_lanes() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("hot", 0);
        p.route(&chans(&["hot", "a", "b"]));
        assert_eq!(p.group_of("b"), Some("a"));
        assert_eq!(
            p.route(&chans(&["b"])),
            Route::Park {
                group: "a".into(),
                merge: vec![]
            }
        );
        p.written("a", 1, 0);
        let unparked = p.in_lanes("hot", &chans(&["hot", "a", "b"]));
        assert_eq!(unparked.len(), 1);
        assert_eq!(p.route(&chans(&["b"])), Route::Lanes);
    }

    #[test]
    fn a_merge_carries_what_a_side_group_waits_for() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("hot", 0);
        p.park("warm", 0);
        p.route(&chans(&["hot", "side"]));
        // warm and side are tied now: side's wait on hot becomes warm's.
        assert_eq!(
            p.route(&chans(&["warm", "side"])),
            Route::Park {
                group: "warm".into(),
                merge: vec!["side".into()]
            }
        );
        p.adding("warm", 3);
        p.written("warm", 3, 3);
        assert!(
            !p.wanting_pages().iter().any(|(g, _)| g == "warm"),
            "warm now waits for the intent in hot"
        );
        p.in_lanes("hot", &chans(&["hot", "side"]));
        assert!(p.wanting_pages().iter().any(|(g, _)| g == "warm"));
    }

    #[test]
    fn a_full_log_holds_its_channels_intents_in_order() {
        let mut p = Parking::new(10, 3);
        p.park("hot", 0);
        p.adding("hot", 3);
        assert!(p.full());
        let hot = chans(&["hot"]);
        let tied = chans(&["hot", "cold"]);
        assert_eq!(p.route(&hot), Route::Full);
        p.hold(&hot);
        assert_eq!(p.route(&tied), Route::Full);
        p.hold(&tied);
        assert_eq!(
            p.route(&chans(&["cold"])),
            Route::Full,
            "behind the held intent that names it"
        );
        assert_eq!(p.route(&chans(&["other"])), Route::Lanes);
        // Still full: the oldest stays held.
        assert_eq!(p.route_held(&hot), Route::Full);
        p.written("hot", 3, 3);
        p.wanting_pages();
        p.read("hot", &[1, 2]);
        p.finished(1);
        p.finished(2);
        p.deleted(&[1, 2]);
        assert!(!p.full());
        assert_eq!(
            p.route_held(&hot),
            Route::Park {
                group: "hot".into(),
                merge: vec![]
            }
        );
        assert_eq!(
            p.route_held(&tied),
            Route::Park {
                group: "hot".into(),
                merge: vec![]
            }
        );
        assert_eq!(
            p.route(&chans(&["cold"])),
            Route::Full,
            "the log is full again"
        );
    }

    #[test]
    fn an_adopted_group_joins_the_group_its_channels_are_parked_in() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("hot", 0);
        let adopted = |group: &str, channels: &[&str]| crate::deadletter::ParkedGroup {
            group: group.into(),
            rows: 7,
            channels: chans(channels),
            oldest_parked_at_ms: 5,
        };
        let merges = p.adopt(
            vec![adopted("hot#q@gone", &["hot"]), adopted("x#q@gone", &["x"])],
            10,
        );
        assert_eq!(
            merges,
            vec![("hot".to_string(), vec!["hot#q@gone".to_string()])]
        );
        assert_eq!(p.group_of("hot"), Some("hot"));
        assert_eq!(p.group_of("x"), Some("x#q@gone"));
        let backlog: Vec<(String, u64)> = p
            .views(10)
            .into_iter()
            .map(|v| (v.group, v.backlog))
            .collect();
        assert_eq!(
            backlog,
            vec![("hot".to_string(), 7), ("x#q@gone".to_string(), 7)]
        );
    }

    #[test]
    fn an_intent_tying_two_groups_merges_them() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("a", 5);
        p.park("b", 3);
        p.adding("a", 2);
        p.adding("b", 4);
        assert_eq!(
            p.route(&chans(&["a", "b"])),
            Route::Park {
                group: "a".into(),
                merge: vec!["b".into()]
            }
        );
        assert_eq!(p.group_of("b"), Some("a"));
        let views = p.views(10);
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].backlog, 7);
        assert_eq!(views[0].parked_at_ms, 3);
    }

    #[test]
    fn a_rebuild_restores_the_parked_set_from_the_log() {
        let mut p = Parking::new(10, 1_000_000);
        p.park("stale", 0);
        p.rebuild(
            vec![crate::deadletter::ParkedGroup {
                group: "hot".into(),
                rows: 42,
                channels: chans(&["hot", "side"]),
                oldest_parked_at_ms: 900,
            }],
            1_000,
        );
        assert_eq!(p.group_of("stale"), None);
        assert_eq!(p.group_of("side"), Some("hot"));
        assert_eq!(p.oldest_parked_ms(), Some(900));
        assert_eq!(p.views(1_000)[0].backlog, 42);
    }
}
