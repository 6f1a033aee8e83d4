//! Recently delivered intent ids. A crash or a lost ack redelivers intents
//! the worker already sent; remembering the last N ids lets it ack those
//! without sending them to Pusher twice. Bounded: the oldest id is forgotten
//! first, so memory stays flat however long the worker runs.

use std::collections::{HashSet, VecDeque};

/// A set of at most `capacity` ids, evicting the oldest.
#[derive(Debug)]
pub struct DedupCache {
    capacity: usize,
    ids: HashSet<String>,
    order: VecDeque<String>,
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
        self.ids.contains(id)
    }

    /// Remembers a delivered id.
    pub fn insert(&mut self, id: &str) {
        if self.capacity == 0 || self.ids.contains(id) {
            return;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.ids.insert(id.to_string());
        self.order.push_back(id.to_string());
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
