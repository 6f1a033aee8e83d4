//! Pusher Channels HTTP API: request signing, the REST client, channel and
//! user auth, webhook verification and end-to-end encryption.
//!
//! The rules it follows are summed up in docs/architecture.md ("Pusher's
//! HTTP API as the code relies on it"); the official SDKs' test vectors
//! (`tests/vectors.rs`) pin the byte-level behaviour.

pub mod auth;
pub mod client;
pub mod crypto;
pub mod error;
pub mod sign;
pub mod tls;
pub mod webhook;

/// Pusher's input rules; they live in config, the bottom layer, because
/// settings are checked against them at load.
pub use crate::config::pusher_rules as validate;

pub use client::{BatchEvent, ChannelInfo, ChannelList, Client, Trigger};
pub use error::{ErrorKind, PusherError};
