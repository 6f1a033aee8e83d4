//! Shared test fixtures, one concern per file:
//!
//! - [`pusher`]: a fake Pusher that checks every request's signature, and
//!   configuration pointing at any Pusher-like server;
//! - [`broker`] and [`db`]: a test's own RabbitMQ names and dead-letter
//!   store, removed when dropped ([`teardown`] says how);
//! - [`rig`]: the three together, the setup most worker tests start from;
//! - [`worker`]: the worker under test, in this process or as the binary;
//! - [`wait`]: waiting on state with a deadline, and reading `/metrics`;
//! - [`tls`]: a CA of the test's own, its certificates as PEM files, and a
//!   TLS terminator in front of a plain service;
//! - [`intents`], [`proxy`], [`sockudo`], [`raw_amqp`], [`cluster`],
//!   [`distant`]: what some of the tests need besides.
//!
//! Names are unique per test and run, so the tests of a binary run in
//! parallel.
// Each test binary (offline, broker, e2e, serial) uses a part of these
// fixtures of its own (offline only what pusher_http needs), and dead code
// is found per binary: without this line each would warn about the parts
// only the others use. A fixture no binary uses is deleted, not allowed:
// with this line removed, it is the item all four binaries warn about.
#![allow(dead_code, unused_imports)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod broker;
pub mod cluster;
pub mod db;
pub mod distant;
pub mod intents;
pub mod pg_server;
pub mod proxy;
pub mod pusher;
pub mod rig;
pub mod sockudo;
pub mod teardown;
pub mod tls;
pub mod wait;
pub mod worker;

pub use broker::{
    amqp_addr, amqp_url, close_broker_connection, close_connections_mentioning, on_rabbitmq4,
    rabbitmqctl, Broker,
};
pub use db::Db;
pub use intents::{assert_in_order_once, chat};
pub use proxy::Proxy;
pub use pusher::{config_for, signed, FakePusher, Received};
pub use rig::{relay_config, relay_vars, rig};
pub use sockudo::Sockudo;
pub use wait::{eventually, metric, metric_sum};
pub use worker::{metrics_text, start_worker, stop, Process};

pub const APP_ID: &str = "4242";
pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret";

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
