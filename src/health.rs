//! What `/readyz` reports: each part of the worker sets its own flag, the
//! listener reads them. Plain atomics and a mutex: written rarely, read on
//! every probe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Readiness of the worker's parts.
#[derive(Debug, Default)]
pub struct Health {
    /// Per consumed queue (one, or one per shard): connected, consuming.
    /// A standby's consumer waiting its turn on a single-active queue counts
    /// as consuming: it takes over without a restart.
    queues: Mutex<Vec<(bool, bool)>>,
    store: AtomicBool,
    shutting_down: AtomicBool,
    /// Why the store is down, or why delivery is paused (circuit open).
    store_error: Mutex<Option<String>>,
    circuit: Mutex<Option<String>>,
}

/// The `/readyz` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub broker: bool,
    pub consumer: bool,
    pub store: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// `closed`, or why it is open.
    pub circuit: String,
    pub shutting_down: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the Option half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Health {
    /// How many queues the worker consumes; each starts down.
    pub fn set_queues(&self, n: usize) {
        *lock(&self.queues) = vec![(false, false); n];
    }

    pub fn set_broker(&self, queue: usize, up: bool) {
        if let Some(q) = lock(&self.queues).get_mut(queue) {
            q.0 = up;
        }
    }

    pub fn set_consumer(&self, queue: usize, up: bool) {
        if let Some(q) = lock(&self.queues).get_mut(queue) {
            q.1 = up;
        }
    }

    pub fn set_store(&self, error: Option<String>) {
        self.store.store(error.is_none(), Ordering::Relaxed);
        *lock(&self.store_error) = error;
    }

    /// `Some(reason)` while delivery is paused.
    pub fn set_circuit(&self, open: Option<String>) {
        *lock(&self.circuit) = open;
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn readiness(&self) -> Readiness {
        let (broker, consumer) = {
            let queues = lock(&self.queues);
            (
                !queues.is_empty() && queues.iter().all(|q| q.0),
                !queues.is_empty() && queues.iter().all(|q| q.1),
            )
        };
        let store = self.store.load(Ordering::Relaxed);
        let shutting_down = self.shutting_down.load(Ordering::Relaxed);
        let circuit = lock(&self.circuit).clone();
        Readiness {
            ready: broker && consumer && store && circuit.is_none() && !shutting_down,
            broker,
            consumer,
            store,
            store_error: lock(&self.store_error).clone(),
            circuit: circuit.unwrap_or_else(|| "closed".into()),
            shutting_down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_part_is_up_and_the_circuit_closed() {
        let h = Health::default();
        h.set_queues(2);
        h.set_store(None);
        for q in 0..2 {
            assert!(!h.readiness().ready);
            h.set_broker(q, true);
            h.set_consumer(q, true);
        }
        assert!(h.readiness().ready);
        h.set_circuit(Some("outage: connect refused".into()));
        assert!(!h.readiness().ready);
        h.set_circuit(None);
        h.set_shutting_down();
        assert!(!h.readiness().ready);
    }
}
