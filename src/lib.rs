//! pusher-relay: reliable Pusher Channels delivery from RabbitMQ.
//!
//! Applications publish small JSON *intents* to RabbitMQ; the worker turns
//! them into Pusher events, batches them into as few signed requests as the
//! API allows, retries what fails transiently, and keeps what can never be
//! delivered as a dead letter. Dependencies point one way, down this list
//! (docs/architecture.md draws the map and gives the reasons):
//!
//! - Settings: [`config`], every setting from one table, read once from
//!   the environment (or `_FILE`s), validated and redacted.
//! - Domain: [`intent`] (wire contract v1: an AMQP body into a Pusher
//!   trigger), [`pusher`] (signing, REST client, auth, webhooks, end-to-end
//!   encryption, typed errors), [`deadletter`] (the store of what can never
//!   be delivered, SQLite or PostgreSQL, and its views), [`amqp`]
//!   (connections, the frame guard, topology, acks in runs), [`tls`] (trust
//!   stores, verifiers, and a probe of a link's peer), [`clock`],
//!   [`metrics`] (every metric's name and help text), [`shutdown`] (the
//!   signal every task listens to).
//! - Engine: [`relay`]: lanes, batcher, dispatch (retry, circuit, split),
//!   adaptive concurrency, the session's event loop, and the read-only
//!   [`relay::RelayStatus`] and [`relay::health`] it reports.
//! - Interfaces: [`http`] (one listener: `/metrics`, `/healthz`, `/readyz`
//!   and the routes below), [`webhooks`] (Pusher webhooks into RabbitMQ),
//!   [`admin`] (the dead-letter API under `/api`), [`ui`] (the ops console
//!   under `/ui`), [`admin_token`] (the admin token check both use),
//!   [`cli`] (every command, one file per group, with what the `dlq`
//!   commands print and the one-shot Pusher commands), [`publish`] (typed
//!   intents and a confirmed, reconnecting publisher), [`listen`] (a
//!   WebSocket subscriber), [`link_probes`] (each link's TLS, probed at
//!   start, by `check` and for the expiry gauge).
//! - Root: [`app`] builds the relay and the interfaces around it and awaits
//!   every task it started; `main.rs` parses arguments and calls [`cli`].

pub mod admin;
pub mod admin_token;
pub mod amqp;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deadletter;
pub mod http;
pub mod intent;
pub mod link_probes;
pub mod listen;
pub mod metrics;
pub mod publish;
pub mod pusher;
pub mod relay;
pub mod shutdown;
pub mod tls;
pub mod ui;
pub mod webhooks;
