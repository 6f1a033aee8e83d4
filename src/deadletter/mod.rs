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
//! Operations for operators (the `dlq` CLI and the admin API) are split by
//! concern:
//! - [`filter`]: which rows (reason, type, channel, time, status, ids), the
//!   page cursor, and the SQL they become;
//! - [`ops`]: list, count, stats, delete, purge and replay claims on [`Store`];
//! - [`replay`]: republishing to the intent exchange, safe under concurrency.

pub mod filter;
pub mod ops;
pub mod replay;
pub mod store;
pub mod view;

pub use filter::{Cursor, Filter, FilterError, FilterSpec};
pub use ops::{Count, Page, Stats, Unreadable};
pub use replay::{ReplayError, ReplayOptions, ReplayReport};
pub use store::{DeadLetter, NewDeadLetter, ParseReasonError, Reason, Status, Store, StoreError};
