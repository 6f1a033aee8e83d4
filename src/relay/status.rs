//! A read-only view of the running relay, for whatever shows its state (the
//! console, its history sampler): they read the relay's parts through this,
//! never hold them, so nothing above the relay can steer it.

use std::sync::Arc;

use super::circuit::{Circuit, OpenCircuit};
use super::concurrency::Limiter;
use super::health::{Health, Readiness};
use super::parking::{Board, GroupView};

/// Cloned freely; every read is of the live value.
#[derive(Clone)]
pub struct RelayStatus {
    health: Arc<Health>,
    circuit: Arc<Circuit>,
    limiter: Arc<Limiter>,
    parked: Arc<Board>,
}

impl RelayStatus {
    pub(crate) fn new(
        health: Arc<Health>,
        circuit: Arc<Circuit>,
        limiter: Arc<Limiter>,
        parked: Arc<Board>,
    ) -> RelayStatus {
        RelayStatus {
            health,
            circuit,
            limiter,
            parked,
        }
    }

    /// Hot channels parked now, with their backlog and rate.
    pub fn parked(&self) -> Vec<GroupView> {
        self.parked.groups()
    }

    /// Readiness with its reasons (not the public `/readyz` form).
    pub fn readiness(&self) -> Readiness {
        self.health.readiness()
    }

    /// Why delivery is paused, or `None` while the circuit is closed.
    pub fn circuit(&self) -> Option<OpenCircuit> {
        self.circuit.status()
    }

    /// Requests to Pusher in flight now.
    pub fn in_flight(&self) -> usize {
        self.limiter.in_flight()
    }

    /// Requests to Pusher allowed in flight now (the adaptive limit).
    pub fn concurrency_limit(&self) -> usize {
        self.limiter.limit()
    }
}
