//! Dead letters: intents the relay could not deliver, stored durably so that
//! an operator can understand and replay them.
//!
//! An intent is only acked after its dead letter is committed, so the store is
//! part of the delivery guarantee: a failed insert means "do not ack", and
//! [`StoreError::is_unavailable`] tells the caller whether to wait and retry.
//!
//! Two backends share one API and one column layout: SQLite (the embedded
//! default for a single worker host) and PostgreSQL (several workers sharing a
//! store). Their schemas live in `migrations/sqlite` and `migrations/postgres`
//! and are applied by [`Store::connect`].

pub mod store;

pub use store::{DeadLetter, NewDeadLetter, ParseReasonError, Reason, Store, StoreError};
