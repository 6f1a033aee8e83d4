//! Recently delivered intent ids. A crash or a lost ack redelivers intents
//! the worker already sent; remembering the last N ids lets it ack those
//! without sending them to Pusher twice. Bounded: the oldest id is forgotten
//! first, so memory stays flat however long the worker runs.
//!
//! Ids are kept as 64-bit hashes (16 bytes each with the eviction queue,
//! about 2 MB at the default 100,000) rather than strings. Two different ids
//! colliding is a 1-in-2^64 event per pair, and its cost would be one
//! intent acked as a duplicate: far below the broker's own failure rates.

use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

/// A set of at most `capacity` ids, evicting the oldest.
#[derive(Debug)]
pub struct DedupCache {
    capacity: usize,
    ids: HashSet<u64>,
    order: VecDeque<u64>,
}

/// A stable hash of an id: `DefaultHasher::new()` uses fixed keys, so the
/// same id always hashes the same within (and across) runs.
fn key(id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl DedupCache {
    /// A cache of `capacity` ids; 0 turns suppression off.
    pub fn new(capacity: usize) -> Self {
        DedupCache {
            capacity,
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `id` was delivered recently.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(&key(id))
    }

    /// Remembers a delivered id.
    pub fn insert(&mut self, id: &str) {
        let k = key(id);
        if self.capacity == 0 || !self.ids.insert(k) {
            return;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.order.push_back(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_up_to_capacity_and_forgets_the_oldest() {
        let mut c = DedupCache::new(2);
        c.insert("a");
        c.insert("b");
        c.insert("a");
        assert!(c.contains("a") && c.contains("b"));
        c.insert("c");
        assert!(!c.contains("a"));
        assert!(c.contains("b") && c.contains("c"));
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let mut c = DedupCache::new(0);
        c.insert("a");
        assert!(!c.contains("a"));
    }
}
