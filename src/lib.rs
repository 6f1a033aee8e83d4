//! pusher-relay: reliable Pusher Channels delivery from RabbitMQ.
//!
//! Applications publish small JSON *intents* to RabbitMQ; the worker turns
//! them into Pusher events, batches them into as few signed requests as the
//! API allows, retries what fails transiently, and keeps what can never be
//! delivered as a dead letter. The modules, in the order data flows:
//!
//! - [`config`]: every setting, read once from the environment and validated.
//! - [`intent`]: wire contract v1: decode an AMQP body into a Pusher trigger.
//! - [`pusher`]: the Pusher Channels HTTP API: signing, REST client, channel
//!   and user auth, webhooks, end-to-end encryption, typed errors.
//! - [`deadletter`]: the store of intents that can never be delivered
//!   (SQLite embedded, PostgreSQL shared), written before the ack.
//! - [`amqp`]: RabbitMQ connection, topology, acking in runs, and the frame
//!   guard that makes hostile messages readable before lapin parses them.
//! - [`relay`]: lanes, batcher, dispatcher (retry, circuit, split), the
//!   event loop, and the [`relay::Worker`] that runs it.
//! - [`http`], [`health`], [`metrics`]: `/metrics`, `/healthz`, `/readyz`
//!   and every metric's name and help text.
//! - [`webhooks`]: Pusher webhook ingress into RabbitMQ, and `webhooks tail`.
//! - [`admin`]: the dead-letter admin API under `/api` (on with
//!   `RELAY_ADMIN_TOKEN`); [`dlq`]: what the `dlq` CLI commands print.
//! - [`ui`]: the ops console under `/ui` (on with `RELAY_ADMIN_TOKEN`): live
//!   delivery, the circuit, the backlog, and dead letters to replay.
//! - [`shutdown`]: the signal every task listens to.
//! - [`publish`]: typed intents and a confirmed, reconnecting publisher.
//! - [`listen`]: a WebSocket subscriber that prints arriving events.
//! - [`commands`]: the one-shot CLI commands (`check`, `trigger`, ...).

pub mod admin;
pub mod amqp;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod deadletter;
pub mod dlq;
pub mod http;
pub mod intent;
pub mod listen;
pub mod metrics;
pub mod publish;
pub mod pusher;
pub mod relay;
pub mod shutdown;
pub mod ui;
pub mod webhooks;

// Until the relay's own files say `super::health`.
pub use relay::health;
