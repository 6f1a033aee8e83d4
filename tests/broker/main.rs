//! The tests against the machine's RabbitMQ and PostgreSQL: the worker in
//! this process or as the binary, with faults, hostile input, parking,
//! webhooks, adaptive concurrency, `publish --file` and the dead-letter
//! store. Sharded parking uses the cluster of `scripts/cluster`. One module
//! per former test file; the tests run in parallel, each on exchanges,
//! queues, stores and schemas of its own.
//!
//! `scripts/test` runs the modules relay, relay_faults, hostile, parking,
//! dead_letter_crash and webhooks a second time against RabbitMQ 4.0, by
//! module-path filters (`cargo test --test broker -- relay:: ...`).

#[path = "../common/mod.rs"]
mod common;

mod concurrency;
mod dead_letter_crash;
mod deadletter_store;
mod hostile;
mod parking;
mod publish_file;
mod relay;
mod relay_faults;
mod webhooks;
