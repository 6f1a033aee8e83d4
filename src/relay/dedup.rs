//! Recently delivered intent ids. A crash or a lost ack redelivers intents
//! the worker already sent; remembering the last N ids lets it ack those
//! without sending them to Pusher twice. Bounded: the oldest id is forgotten
//! first, so memory stays flat however long the worker runs.
//!
//! The cache is written through to the store's delivered log (see
//! [`write_log`]) and read back at start ([`load`]): a worker killed after
//! Pusher accepted events, but before their acks reached the broker, still
//! knows them when the broker hands them out again. Finished deliveries may
//! wait for a multiple ack (see `amqp::acker`), so without the log a kill -9
//! would resend everything of the last second or so.
//!
//! Ids are kept as 64-bit keys (16 bytes each with the eviction queue, about
//! 2 MB at the default 100,000) rather than strings: the first 8 bytes of
//! the id's SHA-256. That hash is stable across builds and Rust versions,
//! which the log needs, and a producer cannot choose an id that collides
//! with another intent's to have it dropped. Two ids colliding by chance is
//! a 1-in-2^64 event per pair, and its cost would be one intent acked as a
//! duplicate.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::deadletter::Store;

/// How often newly delivered ids are written to the log. A kill -9 can
/// resend what Pusher accepted in the last interval plus one commit.
const LOG_INTERVAL: Duration = Duration::from_millis(1);
/// How often the log is cut back to the cache's capacity.
const TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// A set of at most `capacity` ids, evicting the oldest.
#[derive(Debug)]
pub struct DedupCache {
    capacity: usize,
    ids: HashSet<u64>,
    order: VecDeque<u64>,
    /// Keys inserted since the log writer last took them; at most
    /// `capacity` (while the store is away, the oldest are not logged).
    unlogged: VecDeque<u64>,
}

/// The key an id is kept under. Worth computing once per intent and
/// carrying: a SHA-256 is most of what a lookup or an insert costs.
pub(super) fn key(id: &str) -> u64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

impl DedupCache {
    /// A cache of `capacity` ids; 0 turns suppression off.
    pub fn new(capacity: usize) -> Self {
        DedupCache {
            capacity,
            ids: HashSet::new(),
            order: VecDeque::new(),
            unlogged: VecDeque::new(),
        }
    }

    /// Whether `id` was delivered recently.
    pub fn contains(&self, id: &str) -> bool {
        self.contains_key(key(id))
    }

    /// Whether the id of [`key`] `k` was delivered recently.
    pub(super) fn contains_key(&self, k: u64) -> bool {
        self.ids.contains(&k)
    }

    /// Remembers the delivered id of [`key`] `k`, and queues it for the log.
    pub fn insert(&mut self, k: u64) {
        if self.remember(k) {
            if self.unlogged.len() == self.capacity {
                self.unlogged.pop_front();
            }
            self.unlogged.push_back(k);
        }
    }

    /// Adds `k`; returns whether it was new.
    fn remember(&mut self, k: u64) -> bool {
        if self.capacity == 0 || !self.ids.insert(k) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.order.push_back(k);
        true
    }

    /// Keys read back from the log, oldest first; not logged again.
    fn restore(&mut self, keys: impl IntoIterator<Item = u64>) {
        for k in keys {
            self.remember(k);
        }
    }

    /// The keys the log has not seen yet.
    fn take_unlogged(&mut self) -> Vec<u64> {
        self.unlogged.drain(..).collect()
    }
}

fn lock(cache: &Mutex<DedupCache>) -> std::sync::MutexGuard<'_, DedupCache> {
    cache.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fills `cache` from the store's log, before anything is consumed. A store
/// that cannot say leaves the cache empty: at-least-once still holds, only
/// more may be sent twice.
pub async fn load(store: &Store, cache: &Mutex<DedupCache>, capacity: usize) {
    if capacity == 0 {
        return;
    }
    match store.recent_delivered(capacity).await {
        Ok(keys) => {
            let n = keys.len();
            lock(cache).restore(keys.into_iter().map(|k| k as u64));
            tracing::info!(
                ids = n,
                "read the delivered log: redeliveries of these are acked, not sent"
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the delivered log; what the last run sent but had not acked may be sent again");
        }
    }
}

/// Writes what `cache` takes in to the store's log until `stop` fires,
/// then once more, and keeps the log to the cache's capacity. Failures are
/// told when they start and when they end, not per write.
pub async fn write_log(
    store: Store,
    cache: Arc<Mutex<DedupCache>>,
    capacity: usize,
    mut stop: oneshot::Receiver<()>,
) {
    if capacity == 0 {
        return;
    }
    let mut tick = tokio::time::interval(LOG_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut trimmed = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut stop => true,
        };
        let keys: Vec<i64> = lock(&cache)
            .take_unlogged()
            .into_iter()
            .map(|k| k as i64)
            .collect();
        if !keys.is_empty() {
            match store.log_delivered(&keys, crate::clock::now_ms()).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("writing the delivered log again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot write the delivered log; a crash now would send these intents twice");
                }
                Err(_) => {}
            }
        }
        if trimmed.elapsed() >= TRIM_INTERVAL {
            trimmed = tokio::time::Instant::now();
            if let Err(e) = store.trim_delivered(capacity).await {
                tracing::debug!(error = %e, "cannot trim the delivered log");
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_up_to_capacity_and_forgets_the_oldest() {
        let mut c = DedupCache::new(2);
        c.insert(key("a"));
        c.insert(key("b"));
        c.insert(key("a"));
        assert!(c.contains("a") && c.contains("b"));
        c.insert(key("c"));
        assert!(!c.contains("a"));
        assert!(c.contains("b") && c.contains("c"));
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let mut c = DedupCache::new(0);
        c.insert(key("a"));
        assert!(!c.contains("a"));
        assert!(c.take_unlogged().is_empty());
    }

    #[test]
    fn new_ids_are_logged_once_and_restored_ones_not_again() {
        let mut c = DedupCache::new(3);
        c.insert(key("a"));
        c.insert(key("a"));
        c.insert(key("b"));
        assert_eq!(c.take_unlogged(), vec![key("a"), key("b")]);
        assert!(c.take_unlogged().is_empty());

        let mut next = DedupCache::new(3);
        next.restore([key("a"), key("b")]);
        assert!(next.contains("a") && next.contains("b"));
        assert!(next.take_unlogged().is_empty());
    }

    #[test]
    fn the_unlogged_queue_never_outgrows_the_capacity() {
        let mut c = DedupCache::new(2);
        for id in ["a", "b", "c", "d"] {
            c.insert(key(id));
        }
        assert_eq!(c.take_unlogged(), vec![key("c"), key("d")]);
    }

    #[test]
    fn keys_are_stable_across_builds() {
        // The log outlives the binary: an upgrade must read the same keys.
        assert_eq!(key("order-42"), 0x3b_f8_b1_57_c4_23_8e_ef);
    }
}
