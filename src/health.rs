//! What `/readyz` reports: each part of the worker sets its own flag, the
//! listener reads them. Plain atomics and a mutex: written rarely, read on
//! every probe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Readiness of the worker's parts.
#[derive(Debug, Default)]
pub struct Health {
    broker: AtomicBool,
    consumer: AtomicBool,
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
    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::Relaxed);
    }

    pub fn set_consumer(&self, up: bool) {
        self.consumer.store(up, Ordering::Relaxed);
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
        let broker = self.broker.load(Ordering::Relaxed);
        let consumer = self.consumer.load(Ordering::Relaxed);
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
        assert!(!h.readiness().ready);
        h.set_broker(true);
        h.set_consumer(true);
        h.set_store(None);
        assert!(h.readiness().ready);
        h.set_circuit(Some("outage: connect refused".into()));
        assert!(!h.readiness().ready);
        h.set_circuit(None);
        h.set_shutting_down();
        assert!(!h.readiness().ready);
    }
}
