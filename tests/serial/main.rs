//! The tests that must not run beside any other: `scripts/test` runs this
//! binary with `--test-threads=1`, and so must whoever runs it by hand
//! (`cargo test --test serial -- --test-threads=1`).
//!
//! - broker_restart restarts the tests' RabbitMQ node;
//! - ha and cluster stop nodes of the cluster of `scripts/cluster`;
//! - delivery_limit sets the consumer timeout of whole nodes (the 4.0 node,
//!   or the cluster's), which every other test on them would meet;
//! - dlq measures this process's peak memory while it replays 100,000 dead
//!   letters, and http_limits this process's memory under floods and
//!   answers within a second: another test's memory or CPU would count as
//!   theirs.
//!
//! Cargo runs test binaries one after another, so none of these shares the
//! machine with a test of another binary either. One module per former
//! test file.

#[path = "../common/mod.rs"]
mod common;

mod broker_restart;
mod cluster;
mod delivery_limit;
mod dlq;
mod ha;
mod http_limits;
