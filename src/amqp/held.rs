//! The byte budget of a consuming connection: what lapin holds of the
//! broker's deliveries, counted as they pass the [`guard`](super::guard).
//!
//! Why bytes and not only a count: RabbitMQ bounds a consumer by its
//! prefetch count, and a count says nothing of size. Ten thousand intents
//! of a few hundred bytes are a few megabytes; ten thousand of 64 KiB are
//! 640 MiB, and lapin holds each header value in 32 bytes or more whatever
//! its size on the wire. AMQP 0-9-1 gives a consumer no way to say "enough
//! bytes" (RabbitMQ refuses `channel.flow` from clients, and a new
//! `basic.qos` applies only to consumers made after it; cancelling and
//! consuming again would hand a single-active queue to a standby and
//! reorder it). So the guard holds the next `basic.deliver` back, and
//! stops reading the broker's side, while the deliveries it passed and the
//! client has not yet acked, nacked or rejected come to `RELAY_MAX_HELD_BYTES`
//! or more. The broker then sees a slow reader: TCP backpressure, which it
//! handles as any slow consumer.
//!
//! Everything behind the held frame waits too, answers to the worker's own
//! questions included, so the worker never waits on the broker where that
//! would stop it from acking: acks need no answer, the lag sample runs
//! beside the session, the close's round trip gives up after a while, and a
//! cancelled consumer's or a closing channel's deliveries are neither held
//! back nor counted (its session is leaving, and waits for the answer). While it
//! holds back, the guard sends lapin a heartbeat frame now and then, since
//! lapin gives up on a connection it has heard nothing from for two
//! heartbeat intervals; a broker that is gone meanwhile is still found, as
//! the client's own heartbeats and acks fail to write.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// One worker's budget, shared by all its consuming connections (a worker
/// on shards has one per queue it consumes), so that the bound is the
/// worker's whatever its shard count.
pub struct Budget {
    limit: u64,
    total: AtomicU64,
    gauge: metrics::Gauge,
    /// Bumped whenever bytes are released, to wake held-back deliveries.
    released: watch::Sender<u64>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.limit)
            .field("held", &self.held())
            .finish()
    }
}

impl Budget {
    /// A budget of `limit` bytes (`RELAY_MAX_HELD_BYTES`).
    pub fn new(limit: u64) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            total: AtomicU64::new(0),
            gauge: crate::metrics::held_bytes(),
            released: watch::Sender::new(0),
        })
    }

    /// Bytes held now, over all connections.
    pub fn held(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn full(&self) -> bool {
        self.held() >= self.limit
    }

    fn take(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
        self.gauge.increment(n as f64);
    }

    fn release(&self, n: u64) {
        self.total.fetch_sub(n, Ordering::Relaxed);
        self.gauge.decrement(n as f64);
        self.released.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// What one connection holds, counted by the guard's two directions.
pub(super) struct Held {
    budget: Arc<Budget>,
    state: Mutex<HeldState>,
}

impl Held {
    pub(super) fn new(budget: Arc<Budget>) -> Held {
        Held {
            budget,
            state: Mutex::new(HeldState::default()),
        }
    }

    /// Runs `f` on the counts, and tells the budget what changed; the lock
    /// is never held across an await.
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut HeldState) -> T) -> T {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let before = state.total;
        let out = f(&mut state);
        let after = state.total;
        if after < before {
            self.budget.release(before - after);
        } else if after > before {
            self.budget.take(after - before);
        }
        out
    }

    /// Whether the next delivery on `channel` must wait for room.
    pub(super) fn must_wait(&self, channel: u16) -> bool {
        self.budget.full() && !self.with(|s| s.never_held(channel))
    }

    /// Told of every release, from now on.
    pub(super) fn releases(&self) -> watch::Receiver<u64> {
        self.budget.released.subscribe()
    }

    /// Bytes the whole worker holds now.
    pub(super) fn worker_total(&self) -> u64 {
        self.budget.held()
    }

    /// What the client's frame says of held deliveries.
    pub(super) fn client_frame(&self, channel: u16, payload: &[u8]) {
        let leaving = self.with(|s| s.client_method(channel, payload));
        if leaving {
            // A channel that stops being held back is a release too.
            self.budget.released.send_modify(|g| *g = g.wrapping_add(1));
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // The connection is gone, and the broker takes back all it held.
        self.with(|s| s.total = 0);
    }
}

/// Bytes held per channel and delivery tag.
#[derive(Default, Debug)]
pub(super) struct HeldState {
    total: u64,
    channels: HashMap<u16, HeldChannel>,
}

#[derive(Default, Debug)]
struct HeldChannel {
    tags: BTreeMap<u64, u64>,
    /// The delivery whose content frames are arriving.
    current: Option<u64>,
    /// The client cancelled its consumer or is closing the channel: what
    /// still arrives there is never held back, nor counted.
    leaving: bool,
}

const CLASS_CHANNEL: u16 = 20;
const CLASS_BASIC: u16 = 60;

impl HeldState {
    #[cfg(test)]
    fn total(&self) -> u64 {
        self.total
    }

    /// Whether deliveries on `channel` pass whatever the budget says.
    fn never_held(&self, channel: u16) -> bool {
        self.channels.get(&channel).is_some_and(|c| c.leaving)
    }

    /// A delivery passed to the client: `bytes` of its method frame.
    pub(super) fn delivered(&mut self, channel: u16, tag: u64, bytes: u64) {
        let c = self.channels.entry(channel).or_default();
        if c.leaving {
            // The client will not ack it: the broker takes it back.
            c.current = None;
            return;
        }
        c.current = Some(tag);
        *c.tags.entry(tag).or_default() += bytes;
        self.total += bytes;
    }

    /// A method other than `basic.deliver` passed: content frames that
    /// follow are not the last delivery's.
    /// A channel.open-ok or close-ok starts the channel afresh.
    pub(super) fn other_method(&mut self, channel: u16, p: &[u8]) {
        if matches!(
            (be_u16(p, 0), be_u16(p, 2)),
            (Some(CLASS_CHANNEL), Some(11 | 41))
        ) {
            self.closed(channel);
            return;
        }
        if let Some(c) = self.channels.get_mut(&channel) {
            c.current = None;
        }
    }

    /// Content frames of the channel's current delivery passed.
    pub(super) fn content(&mut self, channel: u16, bytes: u64) {
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        let Some(tag) = c.current else {
            return;
        };
        if let Some(held) = c.tags.get_mut(&tag) {
            *held += bytes;
            self.total += bytes;
        }
    }

    /// Settles deliveries up to `tag` (all of them for tag 0) with
    /// `multiple`, else `tag` alone.
    fn settle(&mut self, channel: u16, tag: u64, multiple: bool) {
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        let freed: u64 = if !multiple {
            c.tags.remove(&tag).unwrap_or(0)
        } else if tag == 0 {
            std::mem::take(&mut c.tags).into_values().sum()
        } else {
            let rest = c.tags.split_off(&(tag + 1));
            std::mem::replace(&mut c.tags, rest).into_values().sum()
        };
        self.total -= freed;
    }

    /// The channel closed: the broker takes back what it held.
    fn closed(&mut self, channel: u16) {
        if let Some(c) = self.channels.remove(&channel) {
            self.total -= c.tags.values().sum::<u64>();
        }
    }

    /// A method the client sent; true when it leaves a channel (whose
    /// deliveries are then never held back).
    pub(super) fn client_method(&mut self, channel: u16, p: &[u8]) -> bool {
        let (Some(class), Some(method)) = (be_u16(p, 0), be_u16(p, 2)) else {
            return false;
        };
        match (class, method) {
            // ack: delivery-tag, multiple; nack: delivery-tag, multiple|requeue.
            (CLASS_BASIC, 80) | (CLASS_BASIC, 120) => {
                if let (Some(tag), Some(bits)) = (be_u64(p, 4), p.get(12)) {
                    self.settle(channel, tag, bits & 1 == 1);
                }
                false
            }
            // reject: delivery-tag, requeue.
            (CLASS_BASIC, 90) => {
                if let Some(tag) = be_u64(p, 4) {
                    self.settle(channel, tag, false);
                }
                false
            }
            // cancel: the session leaves this channel's consumer.
            (CLASS_BASIC, 30) => {
                self.channels.entry(channel).or_default().leaving = true;
                true
            }
            // close: the client closes the channel; the broker takes back
            // what it holds, and the close-ok starts the number afresh.
            (CLASS_CHANNEL, 40) => {
                self.closed(channel);
                self.channels.entry(channel).or_default().leaving = true;
                true
            }
            // close-ok: the client answers the broker's close.
            (CLASS_CHANNEL, 41) => {
                self.closed(channel);
                true
            }
            _ => false,
        }
    }
}

/// The delivery tag of a `basic.deliver` payload, `None` for any other
/// method.
pub(super) fn deliver_tag(p: &[u8]) -> Option<u64> {
    if be_u16(p, 0)? != CLASS_BASIC || be_u16(p, 2)? != 60 {
        return None;
    }
    // consumer-tag (a short string), then the delivery tag.
    let len = usize::from(*p.get(4)?);
    be_u64(p, 5 + len)
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(tag: u64, multiple: bool) -> Vec<u8> {
        let mut p = vec![0, 60, 0, 80];
        p.extend_from_slice(&tag.to_be_bytes());
        p.push(u8::from(multiple));
        p
    }

    fn deliver(tag: u64) -> Vec<u8> {
        let mut p = vec![0, 60, 0, 60, 3, b'c', b't', b'g'];
        p.extend_from_slice(&tag.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0]);
        p
    }

    #[test]
    fn the_delivery_tag_is_read_past_the_consumer_tag() {
        assert_eq!(deliver_tag(&deliver(42)), Some(42));
        assert_eq!(deliver_tag(&ack(42, false)), None);
        assert_eq!(deliver_tag(&[0, 60, 0, 60, 200]), None);
    }

    #[test]
    fn held_bytes_follow_deliveries_and_acks() {
        let mut s = HeldState::default();
        for tag in 1..=4 {
            s.delivered(1, tag, 10);
            s.content(1, 90);
        }
        assert_eq!(s.total(), 400);
        s.client_method(1, &ack(2, false));
        assert_eq!(s.total(), 300);
        s.client_method(1, &ack(3, true));
        assert_eq!(s.total(), 100, "1 and 3 settled by the multiple ack");
        s.client_method(1, &ack(3, true));
        assert_eq!(s.total(), 100, "nothing left below 4");
        s.client_method(1, &ack(0, true));
        assert_eq!(s.total(), 0, "tag 0 settles all");
    }

    #[test]
    fn a_reject_a_nack_and_a_closed_channel_release_bytes() {
        let mut s = HeldState::default();
        for tag in 1..=3 {
            s.delivered(1, tag, 100);
        }
        s.delivered(2, 1, 50);
        let mut reject = vec![0, 60, 0, 90];
        reject.extend_from_slice(&1u64.to_be_bytes());
        reject.push(1);
        s.client_method(1, &reject);
        let mut nack = vec![0, 60, 0, 120];
        nack.extend_from_slice(&2u64.to_be_bytes());
        nack.push(0b11);
        s.client_method(1, &nack);
        assert_eq!(s.total(), 150);
        assert!(s.client_method(1, &[0, 20, 0, 40, 0, 200, 0]));
        assert_eq!(s.total(), 50, "channel 1's last delivery went with it");
    }

    #[tokio::test]
    async fn a_leaving_channel_is_never_held_back_and_connections_share_the_budget() {
        let budget = Budget::new(1000);
        let (a, b) = (Held::new(budget.clone()), Held::new(budget.clone()));
        a.with(|s| s.delivered(1, 1, 600));
        assert!(!b.must_wait(1), "600 of 1000");
        b.with(|s| s.delivered(1, 1, 600));
        assert!(a.must_wait(1) && b.must_wait(1), "1200 of 1000, over both");
        a.client_frame(1, &[0, 60, 0, 30, 3, b'c', b't', b'g', 0]);
        assert!(!a.must_wait(1), "its session waits for the cancel-ok");
        assert!(a.must_wait(2) && b.must_wait(1), "the others still wait");
        // A delivery arriving on a channel the client closes is not
        // counted: the broker takes it back.
        b.client_frame(2, &[0, 20, 0, 40, 0, 200, 0]);
        b.with(|s| s.delivered(2, 9, 5000));
        assert_eq!(budget.held(), 1200, "not counted");
        b.with(|s| s.other_method(2, &[0, 20, 0, 41]));
        b.with(|s| s.delivered(2, 1, 10));
        assert_eq!(
            budget.held(),
            1210,
            "counted again once closed and reopened"
        );
        b.with(|s| s.other_method(2, &[0, 20, 0, 41]));
        let released = b.releases();
        a.client_frame(1, &ack(1, false));
        assert!(released.has_changed().expect("open"), "a release wakes");
        assert!(!b.must_wait(1), "600 of 1000 again");
        drop(b);
        assert_eq!(budget.held(), 0, "a connection gone releases its bytes");
    }
}
