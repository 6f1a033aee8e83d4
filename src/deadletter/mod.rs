//! Dead letters: intents the relay could not deliver, stored durably so that
//! an operator can understand and replay them.
//!
//! An intent is only acked after its dead letter is committed, so the store is
//! part of the delivery guarantee: a failed insert means "do not ack", and
//! [`StoreError::is_unavailable`] tells the caller whether to wait and retry.
//! A worker that dies after the commit and before the ack gets the intent
//! again; the store then returns the pending row of that failure instead of
//! adding one, so one failure is one row (see [`Store::insert`]).
//!
//! Two backends share one API and one column layout: SQLite (the embedded
//! default for a single worker host) and PostgreSQL (several workers sharing a
//! store). Their schemas live in `migrations/sqlite` and `migrations/postgres`
//! and are applied by [`Store::connect`].
//!
//! The store, by concept:
//! - `record`: what is stored ([`NewDeadLetter`], [`DeadLetter`],
//!   [`DeadLetterReason`], [`DeadLetterStatus`]);
//! - `error`: [`StoreError`], and which failures are outages;
//! - `connect`: URLs, connection settings and migrations;
//! - `backend`: the seam to SQLite or PostgreSQL, where every difference
//!   between the two lives, so each operation below is written once;
//! - `row`: reading rows back, checked;
//! - `store`: the [`Store`] handle and what the worker needs (insert, get,
//!   count, ping);
//! - `parked`: the parked log of hot channels' intents (park, read a page,
//!   unpark, the groups a worker rebuilds its parked set from);
//! - `lease`: leases on competing workers' parked logs, and the adoption of
//!   a log whose worker is gone;
//! - `delivered`: the delivered log, the relay's dedup cache kept across
//!   restarts.
//!
//! Operations for operators (the `dlq` CLI and the admin API):
//! - [`filter`]: which rows (reason, type, channel, time, status, ids), the
//!   page cursor, and the `WHERE` clause they become;
//! - [`ops`]: list, count, stats, delete, purge and replay claims on [`Store`];
//! - [`replay`]: republishing to the intent exchange, safe under concurrency;
//! - [`view`]: the shapes the CLI's `--json`, the API and the console show.

mod backend;
mod connect;
mod delivered;
mod error;
pub mod filter;
mod lease;
pub mod ops;
mod parked;
mod record;
pub mod replay;
mod row;
mod store;
pub mod view;

pub use connect::{tls_endpoint, unverified_mode};
pub use error::StoreError;
pub use filter::{Cursor, Filter, FilterError, FilterSpec};
pub use lease::Adopted;
pub use ops::{Count, Page, Stats, Unreadable};
pub use parked::{NewParked, Parked, ParkedGroup};
pub use record::{DeadLetter, DeadLetterReason, DeadLetterStatus, NewDeadLetter, ParseReasonError};
pub use replay::{ReplayError, ReplayOptions, ReplayReport};
pub use store::Store;
