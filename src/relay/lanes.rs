//! Lanes keep per-channel order; the batcher packs them into requests.
//!
//! Every channel has a lane: a queue of the units (events) bound for it, in
//! arrival order. A lane with a request in flight is *busy*: nothing more of
//! that channel is sent until the request is finished (delivered, or its
//! events dead-lettered), retries included. That is the whole ordering rule,
//! and it holds however many requests are in flight for other channels.
//!
//! A batch takes the leading single-channel units of idle lanes, up to 10
//! (Pusher's `batch_events` limit). It goes when full, or when its oldest
//! event has lingered long enough. A multi-channel unit (one `events`
//! request to several channels) waits until it heads every one of its lanes
//! and all of them are idle, then goes alone. Which of the two a unit is
//! follows from its channels alone, and the scheduler holds each unit's
//! event until it hands it out as [`Work`], so the kind of request and
//! what it carries cannot disagree.
//!
//! This is pure bookkeeping with no I/O, so it is tested on its own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::pusher::validate::MAX_BATCH_EVENTS;
use crate::pusher::{BatchEvent, Trigger};

/// Identifies one unit (one event) inside the worker, by where it came
/// from: which of the two it is decides how it is finished (a delivery is
/// acked, a parked row deleted from the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitId {
    /// A delivery taken from the queue, by its delivery tag.
    Delivery(u64),
    /// A row of the parked log read back, by its seq.
    Parked(i64),
}

/// One request's worth of work, in the order it is to be sent.
#[derive(Debug)]
pub enum Work {
    /// Up to 10 single-channel events for `batch_events`, in lane order.
    Events(Vec<(UnitId, BatchEvent)>),
    /// One event to several channels for `events`.
    Multi(UnitId, Trigger),
}

#[derive(Debug)]
struct Unit {
    /// Its lanes: one, or several for a multi-channel unit.
    channels: Vec<String>,
    arrived: Instant,
    /// The event, until its request is handed out.
    trigger: Option<Trigger>,
}

impl Unit {
    fn multi(&self) -> bool {
        self.channels.len() > 1
    }

    /// As one item of a `batch_events` request.
    fn batch_event(&mut self) -> Option<BatchEvent> {
        let t = self.trigger.take()?;
        Some(BatchEvent {
            channel: t.channels.into_iter().next().unwrap_or_default(),
            event: t.event,
            data: t.data,
            socket_id: t.socket_id,
            info: t.info,
        })
    }
}

#[derive(Debug, Default)]
struct Lane {
    queue: VecDeque<UnitId>,
    busy: bool,
    /// Whether the lane is listed in `Scheduler::idle` (listed at most once).
    listed: bool,
}

/// The lanes of every channel with work waiting or in flight.
#[derive(Debug, Default)]
pub struct Scheduler {
    units: HashMap<UnitId, Unit>,
    lanes: HashMap<String, Lane>,
    /// Lanes that may have batchable work, oldest first; entries are
    /// re-checked when taken, so a stale one costs only a skip.
    idle: VecDeque<String>,
    /// Multi-channel units heading at least one lane.
    multi_heads: HashSet<UnitId>,
    /// When the partial batch the last [`Scheduler::next`] declined falls
    /// due; kept so the event loop need not walk every lane again.
    deadline: Option<Instant>,
}

impl Scheduler {
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Adds a unit for `trigger`'s channels (one, or several for an
    /// `events` request) behind everything already queued on them.
    pub fn push(&mut self, id: UnitId, trigger: Trigger, now: Instant) {
        let channels = trigger.channels.clone();
        let multi = channels.len() > 1;
        for channel in &channels {
            // Look up before inserting: the common case is an existing lane,
            // and `entry` would copy the channel name every time.
            if !self.lanes.contains_key(channel) {
                self.lanes.insert(channel.clone(), Lane::default());
            }
            let Some(lane) = self.lanes.get_mut(channel) else {
                continue;
            };
            lane.queue.push_back(id);
            if lane.queue.len() == 1 && multi {
                self.multi_heads.insert(id);
            }
            if !lane.busy && !lane.listed {
                lane.listed = true;
                self.idle.push_back(channel.clone());
            }
        }
        self.units.insert(
            id,
            Unit {
                channels,
                arrived: now,
                trigger: Some(trigger),
            },
        );
    }

    /// The next request to send, if one is due: a ready multi-channel unit;
    /// else a full batch; else a partial batch whose oldest event has waited
    /// `linger` (or any partial batch when `flush`, as at shutdown).
    pub fn next(&mut self, now: Instant, linger: Duration, flush: bool) -> Option<Work> {
        // A stale deadline would wake the event loop for nothing (or spin it
        // while every permit is taken and `next` is not called).
        self.deadline = None;
        if let Some(id) = self.ready_multi() {
            let channels = self.units[&id].channels.clone();
            for channel in &channels {
                if let Some(lane) = self.lanes.get_mut(channel) {
                    lane.busy = true;
                    if lane.listed {
                        lane.listed = false;
                        self.idle.retain(|c| c != channel);
                    }
                }
            }
            self.multi_heads.remove(&id);
            let trigger = self.units.get_mut(&id)?.trigger.take()?;
            return Some(Work::Multi(id, trigger));
        }

        // Walk idle lanes, dropping stale entries, until the batch is full.
        let mut picked: Vec<(String, usize)> = Vec::new();
        let mut count = 0;
        let mut oldest: Option<Instant> = None;
        let mut i = 0;
        while i < self.idle.len() && count < MAX_BATCH_EVENTS {
            let channel = &self.idle[i];
            let lane = &self.lanes[channel];
            let take = if lane.busy {
                0
            } else {
                lane.queue
                    .iter()
                    .take_while(|id| !self.units[id].multi())
                    .take(MAX_BATCH_EVENTS - count)
                    .count()
            };
            if take == 0 {
                let channel = self.idle.remove(i).unwrap_or_default();
                if let Some(lane) = self.lanes.get_mut(&channel) {
                    lane.listed = false;
                }
                continue;
            }
            let head = lane.queue[0];
            let arrived = self.units[&head].arrived;
            oldest = Some(oldest.map_or(arrived, |o: Instant| o.min(arrived)));
            picked.push((channel.clone(), take));
            count += take;
            i += 1;
        }
        let due = count == MAX_BATCH_EVENTS
            || flush
            || oldest.is_some_and(|o| now.saturating_duration_since(o) >= linger);
        if count == 0 || !due {
            self.deadline = oldest.map(|o| o + linger);
            return None;
        }

        // The walk left exactly the picked lanes at the front of `idle`.
        self.idle.drain(..picked.len());
        let mut events = Vec::with_capacity(count);
        for (channel, take) in picked {
            if let Some(lane) = self.lanes.get_mut(&channel) {
                for id in lane.queue.iter().take(take) {
                    if let Some(event) = self.units.get_mut(id).and_then(Unit::batch_event) {
                        events.push((*id, event));
                    }
                }
                lane.busy = true;
                lane.listed = false;
            }
        }
        Some(Work::Events(events))
    }

    /// Units of `channel` waiting or in flight.
    pub fn held(&self, channel: &str) -> usize {
        self.lanes.get(channel).map_or(0, |l| l.queue.len())
    }

    /// Takes out the units at the end of `channel`'s lane that can leave it
    /// without changing any lane's order: the longest run of single-channel
    /// units not in flight, in lane order. What stays is ahead of all of
    /// them, so they may come back later at the end of the lane.
    pub fn take_tail(&mut self, channel: &str) -> Vec<(UnitId, Trigger)> {
        let Some(lane) = self.lanes.get_mut(channel) else {
            return Vec::new();
        };
        // In-flight units (their trigger handed out) are at the front: a
        // batch takes a lane's leading units, a multi-channel unit goes only
        // when it leads.
        let mut start = lane.queue.len();
        while start > 0 {
            let id = lane.queue[start - 1];
            match self.units.get(&id) {
                Some(u) if !u.multi() && u.trigger.is_some() => start -= 1,
                _ => break,
            }
        }
        let ids: Vec<UnitId> = lane.queue.drain(start..).collect();
        if lane.queue.is_empty() {
            if lane.listed {
                self.idle.retain(|c| c != channel);
            }
            self.lanes.remove(channel);
        }
        ids.into_iter()
            .filter_map(|id| {
                let trigger = self.units.remove(&id)?.trigger?;
                Some((id, trigger))
            })
            .collect()
    }

    /// When the oldest waiting event's linger ends, as found by the last
    /// call to [`Scheduler::next`] that returned `None`; for the event loop's
    /// timer, which always calls `next` until `None` before waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Marks units finished (delivered or dead-lettered); their lanes become
    /// idle and the next units on them may go.
    pub fn complete(&mut self, ids: &[UnitId]) {
        for id in ids {
            let Some(unit) = self.units.remove(id) else {
                continue;
            };
            for channel in unit.channels {
                let Some(lane) = self.lanes.get_mut(&channel) else {
                    continue;
                };
                if let Some(pos) = lane.queue.iter().position(|u| u == id) {
                    lane.queue.remove(pos);
                }
                lane.busy = false;
                match lane.queue.front() {
                    None => {
                        // Never leave a listing behind for a lane that is
                        // gone: a new lane of the same name would be listed
                        // twice and batched twice.
                        if lane.listed {
                            self.idle.retain(|c| *c != channel);
                        }
                        self.lanes.remove(&channel);
                    }
                    Some(head) => {
                        if self.units.get(head).is_some_and(Unit::multi) {
                            self.multi_heads.insert(*head);
                        }
                        if !lane.listed {
                            lane.listed = true;
                            self.idle.push_back(channel);
                        }
                    }
                }
            }
        }
    }

    fn ready_multi(&self) -> Option<UnitId> {
        self.multi_heads.iter().copied().find(|id| {
            self.units.get(id).is_some_and(|unit| {
                unit.channels.iter().all(|c| {
                    self.lanes
                        .get(c)
                        .is_some_and(|lane| !lane.busy && lane.queue.front() == Some(id))
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests' units are deliveries, named by their tags.
    fn d(tag: u64) -> UnitId {
        UnitId::Delivery(tag)
    }

    fn tag(id: UnitId) -> u64 {
        match id {
            UnitId::Delivery(tag) => tag,
            UnitId::Parked(seq) => panic!("no parked rows here: {seq}"),
        }
    }

    const LINGER: Duration = Duration::from_millis(10);

    /// A request handed out, by the units it carries.
    #[derive(Debug, PartialEq, Eq)]
    enum Batch {
        Events(Vec<u64>),
        Multi(u64),
    }

    fn trigger(channels: &[&str]) -> Trigger {
        Trigger {
            event: "e".into(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            data: "{}".into(),
            socket_id: None,
            info: None,
        }
    }

    fn single(s: &mut Scheduler, id: u64, channel: &str, at: Instant) {
        s.push(d(id), trigger(&[channel]), at);
    }

    fn next(s: &mut Scheduler, now: Instant, flush: bool) -> Option<Batch> {
        Some(match s.next(now, LINGER, flush)? {
            Work::Events(events) => {
                Batch::Events(events.into_iter().map(|(id, _)| tag(id)).collect())
            }
            Work::Multi(id, _) => Batch::Multi(tag(id)),
        })
    }

    #[test]
    fn a_partial_batch_waits_for_linger_then_goes() {
        let t0 = Instant::now();
        let mut s = Scheduler::default();
        single(&mut s, 1, "a", t0);
        single(&mut s, 2, "b", t0);
        assert_eq!(next(&mut s, t0, false), None);
        assert_eq!(s.next_deadline(), Some(t0 + LINGER));
        assert_eq!(
            next(&mut s, t0 + LINGER, false),
            Some(Batch::Events(vec![1, 2]))
        );
    }

    #[test]
    fn a_full_batch_goes_at_once_with_at_most_ten_events() {
        let t0 = Instant::now();
        let mut s = Scheduler::default();
        for id in 0..25 {
            single(&mut s, id, &format!("c{}", id % 3), t0);
        }
        let Some(Batch::Events(ids)) = next(&mut s, t0, false) else {
            panic!("a full batch is due");
        };
        assert_eq!(ids.len(), 10);
    }

    #[test]
    fn a_busy_channel_sends_nothing_until_its_request_finishes() {
        let t0 = Instant::now();
        let mut s = Scheduler::default();
        single(&mut s, 1, "a", t0);
        assert_eq!(next(&mut s, t0, true), Some(Batch::Events(vec![1])));
        single(&mut s, 2, "a", t0);
        single(&mut s, 3, "b", t0);
        assert_eq!(
            next(&mut s, t0, true),
            Some(Batch::Events(vec![3])),
            "b is free, a is busy"
        );
        assert_eq!(next(&mut s, t0, true), None);
        s.complete(&[d(1)]);
        assert_eq!(next(&mut s, t0, true), Some(Batch::Events(vec![2])));
    }

    #[test]
    fn events_of_one_channel_stay_in_order_inside_a_batch() {
        let t0 = Instant::now();
        let mut s = Scheduler::default();
        for id in [5, 6, 7] {
            single(&mut s, id, "a", t0);
        }
        assert_eq!(next(&mut s, t0, true), Some(Batch::Events(vec![5, 6, 7])));
    }

    #[test]
    fn a_multi_channel_unit_waits_for_every_lane_and_blocks_later_units() {
        let t0 = Instant::now();
        let mut s = Scheduler::default();
        single(&mut s, 1, "a", t0);
        s.push(d(2), trigger(&["a", "b"]), t0);
        single(&mut s, 3, "b", t0);
        single(&mut s, 4, "a", t0);
        // Only 1 can go: the multi waits behind it on a, and 3 waits behind the multi on b.
        assert_eq!(next(&mut s, t0, true), Some(Batch::Events(vec![1])));
        assert_eq!(next(&mut s, t0, true), None);
        s.complete(&[d(1)]);
        assert_eq!(next(&mut s, t0, true), Some(Batch::Multi(2)));
        assert_eq!(next(&mut s, t0, true), None);
        s.complete(&[d(2)]);
        let Some(Batch::Events(mut rest)) = next(&mut s, t0, true) else {
            panic!("3 and 4 are free");
        };
        rest.sort();
        assert_eq!(rest, vec![3, 4]);
        s.complete(&[d(3), d(4)]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_lane_emptied_by_a_multi_unit_leaves_no_stale_listing() {
        let t0 = Instant::now();
        let mut s = Scheduler::default();
        s.push(d(1), trigger(&["a", "b"]), t0);
        assert_eq!(next(&mut s, t0, true), Some(Batch::Multi(1)));
        s.complete(&[d(1)]);
        single(&mut s, 2, "a", t0);
        single(&mut s, 3, "a", t0);
        assert_eq!(
            next(&mut s, t0, true),
            Some(Batch::Events(vec![2, 3])),
            "each unit once"
        );
        assert_eq!(next(&mut s, t0, true), None);
    }

    #[test]
    fn each_unit_goes_with_its_own_event() {
        let t0 = Instant::now();
        let mut s = Scheduler::default();
        single(&mut s, 1, "a", t0);
        s.push(d(2), trigger(&["a", "b"]), t0);
        let Some(Work::Events(events)) = s.next(t0, LINGER, true) else {
            panic!("1 goes first, alone");
        };
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].0, events[0].1.channel.as_str()), (d(1), "a"));
        s.complete(&[d(1)]);
        let Some(Work::Multi(UnitId::Delivery(2), multi)) = s.next(t0, LINGER, true) else {
            panic!("then the multi-channel unit");
        };
        assert_eq!(multi.channels, ["a", "b"]);
    }

    #[test]
    fn the_tail_taken_from_a_lane_is_what_waits_behind_its_last_multi_unit() {
        let mut s = Scheduler::default();
        let t0 = Instant::now();
        for id in 1..=3 {
            s.push(d(id), trigger(&["hot"]), t0);
        }
        s.push(d(4), trigger(&["hot", "other"]), t0);
        for id in 5..=7 {
            s.push(d(id), trigger(&["hot"]), t0);
        }
        // 1-3 go out (the batch stops at the multi-channel unit).
        let sent = s.next(t0, LINGER, true).expect("a batch");
        assert!(matches!(sent, Work::Events(ref e) if e.len() == 3));
        let tail: Vec<u64> = s
            .take_tail("hot")
            .into_iter()
            .map(|(id, _)| tag(id))
            .collect();
        assert_eq!(tail, vec![5, 6, 7]);
        assert_eq!(
            s.held("hot"),
            4,
            "in flight 1-3 and the multi-channel 4 stay"
        );
        assert!(
            s.take_tail("hot").is_empty(),
            "4 cannot leave before other's lane"
        );

        let mut s = Scheduler::default();
        for id in 1..=12 {
            s.push(d(id), trigger(&["hot"]), t0);
        }
        let sent = s.next(t0, LINGER, true).expect("a batch");
        assert!(matches!(sent, Work::Events(ref e) if e.len() == 10));
        let tail: Vec<u64> = s
            .take_tail("hot")
            .into_iter()
            .map(|(id, _)| tag(id))
            .collect();
        assert_eq!(tail, vec![11, 12], "in-flight units stay");
        s.complete(&(1..=10).map(d).collect::<Vec<_>>());
        assert!(s.is_empty(), "{s:?}");
        assert!(s.next(t0, LINGER, true).is_none(), "no lane left behind");
    }
}
