//! The store's one error type, and which of its failures are outages (wait
//! and retry, do not ack) rather than requests that cannot succeed.

use sqlx::migrate::MigrateError;

use super::record::DeadLetterReason;

/// Errors from the dead-letter store.
///
/// `Display` never includes a password. The underlying `sqlx` error is the
/// `source()`, not part of `Display`, so log with the error chain (e.g.
/// anyhow's `{:#}`) to see it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL's scheme names no supported backend.
    #[error("unsupported dead-letter store URL scheme {scheme:?}: expected sqlite:// (or sqlite:), postgres:// or postgresql://")]
    UnsupportedUrl {
        /// The scheme as given (the text before the first `:`), empty if none.
        scheme: String,
    },
    /// Opening the database (or preparing its schema) failed.
    #[error("cannot connect to dead-letter store {url}")]
    Connect {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What went wrong.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed.
    #[error("dead-letter store migration failed")]
    Migrate(#[source] MigrateError),
    /// A statement failed.
    #[error("dead-letter store {op} failed")]
    Query {
        /// The store operation that failed (`insert`, `get`, ...).
        op: &'static str,
        /// What went wrong.
        #[source]
        source: sqlx::Error,
    },
    /// Every round of inserting a dead letter met a pending row of the same
    /// failure that was gone (replayed or deleted) by the time it was read.
    #[error("dead letter of intent {intent_id:?} ({reason}) kept meeting a pending copy that was replayed or deleted before it could be read; not stored")]
    Contended {
        /// The intent whose dead letter was not stored.
        intent_id: String,
        /// Its reason.
        reason: DeadLetterReason,
    },
    /// A stored row cannot be turned back into a [`DeadLetter`].
    #[error("dead letter {id} is corrupt: {detail}")]
    Corrupt {
        /// The row's id.
        id: i64,
        /// Which column holds what.
        detail: String,
    },
}

impl StoreError {
    /// True when the database is unreachable or overloaded rather than the
    /// request being wrong: the caller should wait and retry (and not ack),
    /// because the same operation can succeed once the database is back.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Connect { source, .. } | StoreError::Query { source, .. } => {
                sqlx_unavailable(source)
            }
            StoreError::Migrate(MigrateError::Execute(source))
            | StoreError::Migrate(MigrateError::ExecuteMigration(source, _)) => {
                sqlx_unavailable(source)
            }
            // Other writers won each round; the next attempt meets a settled
            // row or none.
            StoreError::Contended { .. } => true,
            StoreError::Migrate(_)
            | StoreError::UnsupportedUrl { .. }
            | StoreError::Corrupt { .. } => false,
        }
    }
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // A certificate refused during a run (rotated to one this worker
        // does not trust) is waited out like any outage; at start, the TLS
        // probe (`link_probes`) has already stopped the worker on one.
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = pg.code();
                // 08: connection exception; 53: insufficient resources (disk
                // full, too many connections); 57P01-03: the server is shutting
                // down or starting up. All clear up without changing the request.
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(code, "57P01" | "57P02" | "57P03")
            } else if let Some(code) = db.code() {
                // SQLite reports extended codes; the low byte is the primary
                // one. BUSY/LOCKED outlast busy_timeout under contention,
                // IOERR/FULL are the disk, PROTOCOL is a WAL lock race.
                let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(-1);
                matches!(primary, 5 | 6 | 10 | 13 | 15)
            } else {
                false
            }
        }
        _ => false,
    }
}

pub(super) fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}
