//! What `/readyz` reports: each part of the worker sets its own flag, the
//! listener reads them. Plain atomics and a mutex: written rarely, read on
//! every probe.
//!
//! `/readyz` is unauthenticated, so it answers [`PublicReadiness`]: states
//! only. The error texts behind them (a database URL's host and user in a
//! store error, a Pusher request URL in a circuit cause) stay in the logs
//! and in [`Readiness`], which the signed-in console shows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use super::circuit::Cause;

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

/// Readiness with its reasons: for the worker itself, its tests and the
/// signed-in console. Not for `/readyz` (see [`Readiness::public`]).
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

/// The `/readyz` body, which anyone who reaches the listener may read: the
/// same states as [`Readiness`], no error text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicReadiness {
    pub ready: bool,
    pub broker: bool,
    pub consumer: bool,
    pub store: bool,
    /// `closed`, or the fixed wording of why it is open (outage, credentials
    /// refused, delivery forbidden) without the error that opened it.
    pub circuit: &'static str,
    pub shutting_down: bool,
}

impl Readiness {
    /// What `/readyz` may show of this.
    pub fn public(&self) -> PublicReadiness {
        PublicReadiness {
            ready: self.ready,
            broker: self.broker,
            consumer: self.consumer,
            store: self.store,
            circuit: public_circuit(&self.circuit),
            shutting_down: self.shutting_down,
        }
    }
}

/// The circuit's state as `/readyz` shows it: "closed", or the fixed part of
/// [`Cause::describe`] (it reads `<fixed wording> (<error>)`), or plain
/// "open" for a wording not recognised, so that an error text never gets
/// through, whatever `describe` becomes.
fn public_circuit(circuit: &str) -> &'static str {
    static OPEN: OnceLock<Vec<String>> = OnceLock::new();
    if circuit == "closed" {
        return "closed";
    }
    let fixed = OPEN.get_or_init(|| {
        [
            Cause::Outage(String::new()),
            Cause::Unauthorized(String::new()),
            Cause::Forbidden(String::new()),
        ]
        .iter()
        .filter_map(|cause| Some(cause.describe().strip_suffix(" ()")?.to_owned()))
        .collect()
    });
    fixed
        .iter()
        .find(|f| {
            circuit
                .strip_prefix(f.as_str())
                .is_some_and(|rest| rest.starts_with(" ("))
        })
        .map_or("open", String::as_str)
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

    /// `/readyz` shows only whether the store is up, so the reason is logged
    /// here, once per change (the store is pinged every few seconds).
    pub fn set_store(&self, error: Option<String>) {
        self.store.store(error.is_none(), Ordering::Relaxed);
        let mut current = lock(&self.store_error);
        if *current != error {
            match (&error, current.is_some()) {
                (Some(e), _) => {
                    tracing::warn!(error = %e, "not ready: the dead-letter store is down")
                }
                (None, true) => tracing::info!("the dead-letter store is up again"),
                (None, false) => {}
            }
        }
        *current = error;
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

    #[test]
    fn the_public_readiness_has_states_but_no_error_text() {
        let h = Health::default();
        h.set_queues(1);
        h.set_store(Some(
            "error connecting to postgres://relay@db.internal:5432: password authentication failed"
                .into(),
        ));
        let secret = "auth_key=test-key&auth_signature=0123abcd";
        let opened = [
            (
                Cause::Outage(format!("GET https://api.pusher.com/?{secret} (timed out)")),
                "open: Pusher unreachable or failing every request",
            ),
            (
                Cause::Unauthorized(format!("401 Unauthorized ({secret})")),
                "open: Pusher refuses our credentials; check PUSHER_APP_KEY/PUSHER_APP_SECRET",
            ),
            (
                Cause::Forbidden(format!("403 ({secret})")),
                "open: Pusher forbids delivery (app disabled or over quota)",
            ),
        ];
        for (cause, shown) in opened {
            h.set_circuit(Some(cause.describe()));
            let public = h.readiness().public();
            assert_eq!(public.circuit, shown);
            let json = serde_json::to_string(&public).expect("JSON");
            for leak in [
                "db.internal",
                "relay@",
                "password",
                secret,
                "api.pusher.com",
            ] {
                assert!(!json.contains(leak), "{leak} in {json}");
            }
            assert!(!public.store && !public.ready, "{json}");
        }
        h.set_circuit(Some("a wording of the future: secret".into()));
        assert_eq!(h.readiness().public().circuit, "open");
        h.set_circuit(None);
        assert_eq!(h.readiness().public().circuit, "closed");
    }
}
