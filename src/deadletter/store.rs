//! The dead-letter store: SQLite or PostgreSQL behind one [`Store`] handle.
//!
//! Queries are built at run time (no `query!` macros) because there is no
//! database at build time.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::config::redact_url;

use serde::{Deserialize, Serialize};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, Row, SqliteConnection};

/// How long a writer waits on SQLite's lock before giving up with `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an operation waits for a pooled connection. Bounded so that a
/// readiness probe or an insert fails (and is retried by the caller) instead
/// of hanging while the database is away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Rounds of "insert, else read the pending row it conflicts with" before an
/// insert gives up with [`StoreError::Contended`]. The row read can stop being
/// pending between the two statements (a replay marks it, an operator deletes
/// it), and the next round then inserts; each further round needs yet another
/// writer racing on the same failure, so three is already far-fetched.
const INSERT_ROUNDS: usize = 3;

/// Why an intent became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The intent failed decoding or validation; retrying cannot help.
    Invalid,
    /// An event's encoded data exceeds Pusher's size limit.
    TooLarge,
    /// Pusher answered with a permanent 4xx for this intent's event(s).
    Rejected,
    /// The retry budget was spent while Pusher was otherwise healthy.
    Exhausted,
    /// The intent was older than `RELAY_MAX_INTENT_AGE` when it came up.
    Expired,
}

impl Reason {
    /// Every reason, in a fixed order (used for stats so absent reasons show as 0).
    pub const ALL: &'static [Reason] = &[
        Reason::Invalid,
        Reason::TooLarge,
        Reason::Rejected,
        Reason::Exhausted,
        Reason::Expired,
    ];

    /// The stable name stored in the database and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Invalid => "invalid",
            Reason::TooLarge => "too_large",
            Reason::Rejected => "rejected",
            Reason::Exhausted => "exhausted",
            Reason::Expired => "expired",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of [`Reason::ALL`]'s names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dead-letter reason {value:?}: expected one of invalid, too_large, rejected, exhausted, expired")]
pub struct ParseReasonError {
    /// The rejected input, so a CLI filter error can echo it back.
    pub value: String,
}

impl FromStr for Reason {
    type Err = ParseReasonError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseReasonError {
                value: s.to_owned(),
            })
    }
}

/// A dead letter about to be stored: everything needed to understand and
/// replay the intent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    /// The original AMQP body, byte for byte (replay republishes it as is).
    pub body: Vec<u8>,
    /// The original routing key (the intent type on the wire).
    pub routing_key: String,
    /// JSON object of the AMQP headers and properties.
    pub headers: serde_json::Value,
    /// The intent id, when one could be determined.
    pub intent_id: Option<String>,
    /// The intent type, when the body could be decoded far enough.
    pub intent_type: Option<String>,
    /// The Pusher channels the intent addressed, for filtering by channel.
    pub channels: Vec<String>,
    /// Why it was dead-lettered.
    pub reason: Reason,
    /// Human-readable error text (which rule and field, or Pusher's error).
    pub error: String,
    /// Pusher's HTTP status, when Pusher answered.
    pub pusher_status: Option<u16>,
    /// An excerpt of Pusher's response body, when Pusher answered.
    pub pusher_body: Option<String>,
    /// Delivery attempts made before giving up.
    pub attempts: u32,
    /// When the worker first saw the intent (unix ms).
    pub first_seen_at_ms: i64,
    /// When it was dead-lettered (unix ms).
    pub dead_lettered_at_ms: i64,
    /// The dead letter whose replay this delivery was (the
    /// [`DEAD_LETTER_HEADER`](super::replay::DEAD_LETTER_HEADER) it carried),
    /// `None` for a first failure. Part of what makes two failures one: a
    /// replay that fails is a new failure even while the row it came from is
    /// still pending (replay marks that row only after the broker confirmed).
    pub replay_of: Option<i64>,
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Store-assigned id; never reused, even after a purge.
    pub id: i64,
    /// The original AMQP body, byte for byte.
    pub body: Vec<u8>,
    /// The original routing key.
    pub routing_key: String,
    /// JSON object of the AMQP headers and properties.
    pub headers: serde_json::Value,
    /// The intent id, when known.
    pub intent_id: Option<String>,
    /// The intent type, when known.
    pub intent_type: Option<String>,
    /// The Pusher channels the intent addressed.
    pub channels: Vec<String>,
    /// Why it was dead-lettered.
    pub reason: Reason,
    /// Human-readable error text.
    pub error: String,
    /// Pusher's HTTP status, when Pusher answered.
    pub pusher_status: Option<u16>,
    /// An excerpt of Pusher's response body.
    pub pusher_body: Option<String>,
    /// Delivery attempts made before giving up.
    pub attempts: u32,
    /// When the worker first saw the intent (unix ms).
    pub first_seen_at_ms: i64,
    /// When it was dead-lettered (unix ms).
    pub dead_lettered_at_ms: i64,
    /// How many times it has been replayed.
    pub replay_count: i64,
    /// When it was last replayed (unix ms).
    pub last_replayed_at_ms: Option<i64>,
    /// Whether it still waits for a replay.
    pub status: Status,
}

/// Where a dead letter is in its life. Stored as text; no CHECK constraint,
/// so a later status needs no table rebuild on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored and not replayed yet.
    Pending,
    /// Republished to the intent exchange at least once.
    Replayed,
}

impl Status {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Replayed => "replayed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    /// The error is the expectation, for filter messages to embed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Status::Pending),
            "replayed" => Ok(Status::Replayed),
            other => Err(format!(
                "unknown status {other:?}: expected pending or replayed"
            )),
        }
    }
}

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
        reason: Reason,
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

#[derive(Clone)]
pub(super) enum Inner {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle to the dead-letter store. Cheap to clone (it wraps a pool).
#[derive(Clone)]
pub struct Store {
    pub(super) inner: Inner,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately no connect options: PgConnectOptions' Debug shows the password.
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

fn sqlite_migrator() -> Migrator {
    let mut m = sqlx::migrate!("./migrations/sqlite");
    // A newer worker may have applied a later, additive migration to a shared
    // store; older workers must still start during a rolling upgrade.
    m.set_ignore_missing(true);
    m
}

fn postgres_migrator() -> Migrator {
    let mut m = sqlx::migrate!("./migrations/postgres");
    m.set_ignore_missing(true);
    m
}

impl Store {
    /// Opens the store named by `url` and applies pending migrations.
    ///
    /// * `sqlite://PATH` or `sqlite:PATH` (`sqlite:///abs/path.db` for an
    ///   absolute path; `?`, `#` and `%` in a path must be percent-encoded;
    ///   `sqlite::memory:` for a throwaway store). The file is created if
    ///   missing and opened in WAL mode with `synchronous=FULL`, so a row is
    ///   on disk once `insert` returns.
    /// * `postgres://...` or `postgresql://...`: tables go in the first schema
    ///   of the role's search_path; see [`Store::connect_postgres_schema`] to
    ///   pick one.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let scheme = url_scheme(url);
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => connect_sqlite(url).await,
            "postgres" | "postgresql" => {
                let opts = pg_options(url)?;
                connect_postgres(url, opts, None).await
            }
            _ => Err(StoreError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// Opens a PostgreSQL store whose tables live in `schema` (created if it
    /// does not exist), so several stores or test runs can share one database.
    ///
    /// `schema` must be a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most
    /// 63 bytes); it is used case-sensitively.
    pub async fn connect_postgres_schema(url: &str, schema: &str) -> Result<Store, StoreError> {
        let scheme = url_scheme(url);
        if !matches!(
            scheme.to_ascii_lowercase().as_str(),
            "postgres" | "postgresql"
        ) {
            return Err(StoreError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            });
        }
        if !valid_schema_name(schema) {
            return Err(StoreError::Connect {
                url: redact_url(url),
                source: sqlx::Error::Configuration(
                    format!(
                        "invalid schema name {schema:?}: expected [A-Za-z_][A-Za-z0-9_]*, at most 63 bytes"
                    )
                    .into(),
                ),
            });
        }
        // Quoted so the name is taken as written in both places; the
        // validation above keeps quotes and spaces out of the startup options,
        // which sqlx does not escape.
        let quoted = format!("\"{schema}\"");
        let opts = pg_options(url)?.options([("search_path", quoted.as_str())]);
        connect_postgres(url, opts, Some(&quoted)).await
    }

    /// Which backend this store uses: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(_) => "postgres",
        }
    }

    /// Stores one dead letter and returns its id. The row is committed (and,
    /// on SQLite, synced to disk) when this returns, so the caller may ack.
    ///
    /// One failure is one row: when a pending dead letter with the same
    /// intent id, reason and `replay_of` is already stored, nothing is added
    /// and that row's id is returned. This is the redelivery of a delivery
    /// whose dead letter was committed but whose ack was lost (the worker
    /// died in between). Dead letters without an intent id are always added.
    pub async fn insert(&self, dl: &NewDeadLetter) -> Result<i64, StoreError> {
        let op = "insert";
        match &self.inner {
            Inner::Sqlite(pool) => {
                let mut conn = pool.acquire().await.map_err(query_err(op))?;
                sqlite_insert(&mut conn, dl, op).await
            }
            Inner::Postgres(pool) => {
                let mut conn = pool.acquire().await.map_err(query_err(op))?;
                pg_insert(&mut conn, dl, op).await
            }
        }
    }

    /// Stores several dead letters in one transaction: all or none. Ids are
    /// returned in input order; a dead letter already stored (see
    /// [`Store::insert`]), also earlier in the same batch, gets the id of the
    /// existing row.
    pub async fn insert_many(&self, dls: &[NewDeadLetter]) -> Result<Vec<i64>, StoreError> {
        let op = "insert_many";
        if dls.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(dls.len());
        match &self.inner {
            Inner::Sqlite(pool) => {
                let mut tx = pool.begin().await.map_err(query_err(op))?;
                for dl in dls {
                    ids.push(sqlite_insert(&mut tx, dl, op).await?);
                }
                tx.commit().await.map_err(query_err(op))?;
            }
            Inner::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(query_err(op))?;
                for dl in dls {
                    ids.push(pg_insert(&mut tx, dl, op).await?);
                }
                tx.commit().await.map_err(query_err(op))?;
            }
        }
        Ok(ids)
    }

    /// Fetches one dead letter by id; `None` if there is no such row.
    pub async fn get(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        let op = "get";
        let raw = match &self.inner {
            Inner::Sqlite(pool) => {
                let sql = format!("SELECT {SQLITE_COLUMNS} FROM dead_letters WHERE id = ?");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(query_err(op))?;
                match row {
                    Some(row) => Some(RawRow::from_sqlite(&row).map_err(query_err(op))?),
                    None => None,
                }
            }
            Inner::Postgres(pool) => {
                let sql = format!("SELECT {PG_COLUMNS} FROM dead_letters WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(query_err(op))?;
                match row {
                    Some(row) => Some(RawRow::from_pg(&row).map_err(query_err(op))?),
                    None => None,
                }
            }
        };
        raw.map(RawRow::into_dead_letter).transpose()
    }

    /// Number of stored dead letters, whatever their status.
    pub async fn count(&self) -> Result<i64, StoreError> {
        let op = "count";
        let sql = "SELECT COUNT(*) FROM dead_letters";
        match &self.inner {
            Inner::Sqlite(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
            Inner::Postgres(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
        }
        .map_err(query_err(op))
    }

    /// Dead letters per reason, one entry for every reason in [`Reason::ALL`]
    /// order (zero included, so a metrics gauge drops to 0 after a purge).
    /// A reason this build does not know (written by a newer worker sharing
    /// the store) is logged and left out rather than failing stats.
    pub async fn count_by_reason(&self) -> Result<Vec<(Reason, i64)>, StoreError> {
        let op = "count_by_reason";
        let sql = "SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason";
        let rows: Vec<(String, i64)> = match &self.inner {
            Inner::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            Inner::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        }
        .map_err(query_err(op))?;
        let mut counts: Vec<(Reason, i64)> = Reason::ALL.iter().map(|&r| (r, 0)).collect();
        for (reason, n) in rows {
            match reason.parse::<Reason>() {
                Ok(r) => {
                    if let Some(slot) = counts.iter_mut().find(|(k, _)| *k == r) {
                        slot.1 += n;
                    }
                }
                Err(_) => {
                    tracing::warn!(reason = %reason, count = n, "dead letters with an unknown reason")
                }
            }
        }
        Ok(counts)
    }

    /// Round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let op = "ping";
        match &self.inner {
            Inner::Sqlite(pool) => pool.execute("SELECT 1").await.map(drop),
            Inner::Postgres(pool) => pool.execute("SELECT 1").await.map(drop),
        }
        .map_err(query_err(op))
    }

    /// Closes the pool, waiting for connections in use to be returned. Later
    /// calls fail with an unavailable error.
    pub async fn close(&self) {
        match &self.inner {
            Inner::Sqlite(pool) => pool.close().await,
            Inner::Postgres(pool) => pool.close().await,
        }
    }
}

pub(super) fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

async fn connect_sqlite(url: &str) -> Result<Store, StoreError> {
    let connect_err = |source| StoreError::Connect {
        url: redact_url(url),
        source,
    };
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(connect_err)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL syncs the WAL on every commit; NORMAL (the usual WAL pairing)
        // could lose the last commits on power loss after we acked.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let mut pool_opts = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
    if in_memory {
        // A shared in-memory database lives only while a connection is open,
        // so keep exactly one for the life of the pool.
        pool_opts = pool_opts
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    } else {
        // One writer at a time anyway; a few connections let readers
        // (stats, readiness) proceed while a write waits on the disk.
        pool_opts = pool_opts.max_connections(4);
    }
    let pool = pool_opts.connect_with(opts).await.map_err(connect_err)?;
    let migrated = match pool.acquire().await {
        Ok(mut conn) => migrate_sqlite(&mut conn).await.map_err(StoreError::Migrate),
        Err(source) => Err(connect_err(source)),
    };
    if let Err(e) = migrated {
        pool.close().await;
        return Err(e);
    }
    Ok(Store {
        inner: Inner::Sqlite(pool),
    })
}

fn pg_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    // sqlx would misread the rest of such a password as host, database or
    // parameters, and repeat them in its errors and log lines.
    if crate::config::userinfo_is_ambiguous(url) {
        return Err(StoreError::Connect {
            url: redact_url(url),
            source: sqlx::Error::Configuration(
                format!("the URL {}", crate::config::AMBIGUOUS_USERINFO).into(),
            ),
        });
    }
    PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
        url: redact_url(url),
        source,
    })
}

/// Connects once directly, then hands out a lazy pool. The direct connection
/// reports the real cause (e.g. connection refused) at once, where a pool
/// would retry refused connections until its acquire timeout and report only
/// "pool timed out"; the caller owns the retry policy.
async fn connect_postgres(
    url: &str,
    opts: PgConnectOptions,
    create_schema: Option<&str>,
) -> Result<Store, StoreError> {
    let connect_err = |source| StoreError::Connect {
        url: redact_url(url),
        source,
    };
    let mut conn = opts.connect().await.map_err(connect_err)?;
    let prepared = async {
        if let Some(quoted) = create_schema {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {quoted}");
            if let Err(e) = conn.execute(sql.as_str()).await {
                // Two workers starting together can both pass IF NOT EXISTS;
                // the loser sees unique_violation although the schema exists.
                let raced =
                    matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"));
                if !raced {
                    return Err(connect_err(e));
                }
            }
        }
        migrate_postgres(&mut conn)
            .await
            .map_err(StoreError::Migrate)
    }
    .await;
    // Best effort: the result that matters is `prepared`.
    let _ = conn.close().await;
    prepared?;
    let pool = PgPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(opts);
    Ok(Store {
        inner: Inner::Postgres(pool),
    })
}

/// Migrates on a connection with `run_direct`: `Migrator::run` goes through
/// sqlx's per-lifetime `Acquire`, which makes the caller's future not `Send`
/// for every lifetime, so the worker could not connect the store inside a
/// spawned task.
async fn migrate_sqlite(conn: &mut sqlx::SqliteConnection) -> Result<(), MigrateError> {
    // SQLite has no migration lock: workers starting at once on a new file
    // both apply a migration, and the later one's record of it fails (its
    // transaction rolls back). Run again, it finds the migration applied.
    let mut retries = 0;
    loop {
        match sqlite_migrator().run_direct(&mut *conn).await {
            Err(e) if retries < 3 => {
                retries += 1;
                tracing::debug!(error = %e, "SQLite migration raced another worker; running it again");
                tokio::time::sleep(Duration::from_millis(100 * retries)).await;
            }
            done => return done,
        }
    }
}

/// See [`migrate_sqlite`].
async fn migrate_postgres(conn: &mut sqlx::PgConnection) -> Result<(), MigrateError> {
    postgres_migrator().run_direct(conn).await
}

fn valid_schema_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

/// The text before the first `:` if it looks like a URL scheme, else "".
/// Only that much is echoed in errors, so a mistyped URL cannot leak a
/// password through `UnsupportedUrl`.
fn url_scheme(url: &str) -> &str {
    match url.split_once(':') {
        Some((s, _))
            if s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            s
        }
        _ => "",
    }
}

// The conflict target is migration 0002's partial unique index, spelled as
// in the index so both backends match it. A conflict inserts nothing and
// returns no row; the caller then reads the row it conflicted with.
const INSERT_SQLITE: &str = "INSERT INTO dead_letters \
    (body, routing_key, headers, intent_id, intent_type, channels, reason, error, \
     pusher_status, pusher_body, attempts, first_seen_at_ms, dead_lettered_at_ms, replay_of) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (intent_id, reason, COALESCE(replay_of, 0)) \
    WHERE status = 'pending' AND intent_id IS NOT NULL DO NOTHING RETURNING id";

const INSERT_PG: &str = "INSERT INTO dead_letters \
    (body, routing_key, headers, intent_id, intent_type, channels, reason, error, \
     pusher_status, pusher_body, attempts, first_seen_at_ms, dead_lettered_at_ms, replay_of) \
    VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
    ON CONFLICT (intent_id, reason, COALESCE(replay_of, 0)) \
    WHERE status = 'pending' AND intent_id IS NOT NULL DO NOTHING RETURNING id";

// The pending row an insert conflicted with; served by the same index.
const PENDING_ID_SQLITE: &str = "SELECT id FROM dead_letters \
    WHERE intent_id = ? AND reason = ? AND COALESCE(replay_of, 0) = ? AND status = 'pending'";

const PENDING_ID_PG: &str = "SELECT id FROM dead_letters \
    WHERE intent_id = $1 AND reason = $2 AND COALESCE(replay_of, 0) = $3 AND status = 'pending'";

pub(super) const SQLITE_COLUMNS: &str =
    "id, body, routing_key, headers, intent_id, intent_type, channels, \
    reason, error, pusher_status, pusher_body, attempts, first_seen_at_ms, dead_lettered_at_ms, \
    replay_count, last_replayed_at_ms, status";

// headers comes back as text because sqlx's `json` feature is not enabled.
pub(super) const PG_COLUMNS: &str =
    "id, body, routing_key, headers::text AS headers, intent_id, intent_type, \
    channels, reason, error, pusher_status::bigint AS pusher_status, pusher_body, attempts, \
    first_seen_at_ms, dead_lettered_at_ms, replay_count, last_replayed_at_ms, status";

/// What a page selects: every column but the body and the headers, which
/// read as empty so that rows keep one shape.
pub(super) const SQLITE_LIST_COLUMNS: &str =
    "id, X'' AS body, routing_key, '{}' AS headers, intent_id, intent_type, channels, \
    reason, error, pusher_status, pusher_body, attempts, first_seen_at_ms, dead_lettered_at_ms, \
    replay_count, last_replayed_at_ms, status";

pub(super) const PG_LIST_COLUMNS: &str =
    "id, ''::bytea AS body, routing_key, '{}'::text AS headers, intent_id, intent_type, \
    channels, reason, error, pusher_status::bigint AS pusher_status, pusher_body, attempts, \
    first_seen_at_ms, dead_lettered_at_ms, replay_count, last_replayed_at_ms, status";

/// Inserts `dl`, or returns the id of the pending row of the same failure.
async fn sqlite_insert(
    conn: &mut SqliteConnection,
    dl: &NewDeadLetter,
    op: &'static str,
) -> Result<i64, StoreError> {
    let channels = serde_json::Value::from(dl.channels.as_slice()).to_string();
    for _ in 0..INSERT_ROUNDS {
        let inserted = sqlx::query_scalar::<_, i64>(INSERT_SQLITE)
            .bind(dl.body.as_slice())
            .bind(dl.routing_key.as_str())
            .bind(storable_headers(&dl.headers))
            .bind(dl.intent_id.as_deref())
            .bind(dl.intent_type.as_deref())
            .bind(channels.as_str())
            .bind(dl.reason.as_str())
            .bind(dl.error.as_str())
            .bind(dl.pusher_status.map(i64::from))
            .bind(dl.pusher_body.as_deref())
            .bind(i64::from(dl.attempts))
            .bind(dl.first_seen_at_ms)
            .bind(dl.dead_lettered_at_ms)
            .bind(dl.replay_of)
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_err(op))?;
        if let Some(id) = inserted {
            return Ok(id);
        }
        let existing = sqlx::query_scalar::<_, i64>(PENDING_ID_SQLITE)
            .bind(dl.intent_id.as_deref())
            .bind(dl.reason.as_str())
            .bind(dl.replay_of.unwrap_or(0))
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_err(op))?;
        if let Some(id) = existing {
            log_already_stored(id, dl);
            return Ok(id);
        }
    }
    Err(contended(dl))
}

/// Inserts `dl`, or returns the id of the pending row of the same failure.
async fn pg_insert(
    conn: &mut PgConnection,
    dl: &NewDeadLetter,
    op: &'static str,
) -> Result<i64, StoreError> {
    // PostgreSQL text (and JSONB strings) cannot hold NUL. A dead letter must
    // still be storable, or its message would be redelivered forever, so NUL
    // in the metadata becomes U+FFFD; the body (BYTEA) is kept exact.
    let mut lossy = false;
    let mut text = |s: &str| -> String {
        if s.contains('\0') {
            lossy = true;
            s.replace('\0', "\u{FFFD}")
        } else {
            s.to_owned()
        }
    };
    let routing_key = text(&dl.routing_key);
    let intent_id = dl.intent_id.as_deref().map(&mut text);
    let intent_type = dl.intent_type.as_deref().map(&mut text);
    let channels: Vec<String> = dl.channels.iter().map(|c| text(c)).collect();
    let error = text(&dl.error);
    let pusher_body = dl.pusher_body.as_deref().map(&mut text);
    let headers = strip_nul_json(&dl.headers);
    if lossy || matches!(headers, Cow::Owned(_)) {
        tracing::warn!(
            intent_id = intent_id.as_deref().unwrap_or(""),
            "dead letter metadata contains NUL characters; stored as U+FFFD in PostgreSQL"
        );
    }
    let headers = storable_headers(&headers);
    for _ in 0..INSERT_ROUNDS {
        let inserted = sqlx::query_scalar::<_, i64>(INSERT_PG)
            .bind(dl.body.as_slice())
            .bind(routing_key.as_str())
            .bind(headers.as_str())
            .bind(intent_id.as_deref())
            .bind(intent_type.as_deref())
            .bind(channels.as_slice())
            .bind(dl.reason.as_str())
            .bind(error.as_str())
            .bind(dl.pusher_status.map(i32::from))
            .bind(pusher_body.as_deref())
            .bind(i64::from(dl.attempts))
            .bind(dl.first_seen_at_ms)
            .bind(dl.dead_lettered_at_ms)
            .bind(dl.replay_of)
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_err(op))?;
        if let Some(id) = inserted {
            return Ok(id);
        }
        // The stored intent id is the NUL-free one, so look that one up.
        let existing = sqlx::query_scalar::<_, i64>(PENDING_ID_PG)
            .bind(intent_id.as_deref())
            .bind(dl.reason.as_str())
            .bind(dl.replay_of.unwrap_or(0))
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_err(op))?;
        if let Some(id) = existing {
            log_already_stored(id, dl);
            return Ok(id);
        }
    }
    Err(contended(dl))
}

/// Operators see in the log why a dead letter they expected twice is there once.
fn log_already_stored(id: i64, dl: &NewDeadLetter) {
    tracing::info!(
        id,
        intent_id = dl.intent_id.as_deref().unwrap_or(""),
        reason = dl.reason.as_str(),
        "this failure is already stored as a pending dead letter (a redelivery after its ack was lost); not storing it again"
    );
}

fn contended(dl: &NewDeadLetter) -> StoreError {
    StoreError::Contended {
        intent_id: dl.intent_id.clone().unwrap_or_default(),
        reason: dl.reason,
    }
}

/// How deep stored headers may nest: serde_json reads back at most 128
/// levels, and a row it cannot read cannot be shown or replayed.
pub const MAX_STORED_JSON_DEPTH: usize = 64;

/// The headers as stored: as given, or, nested deeper than
/// [`MAX_STORED_JSON_DEPTH`], a note in their place.
fn storable_headers(v: &serde_json::Value) -> String {
    if json_depth(v) > MAX_STORED_JSON_DEPTH {
        return serde_json::json!({
            "unreadable": format!("headers nested deeper than {MAX_STORED_JSON_DEPTH} JSON levels were not stored")
        })
        .to_string();
    }
    v.to_string()
}

/// How many arrays and objects nest, as serde_json's recursion limit counts
/// them; without recursion (the value may be arbitrarily deep).
fn json_depth(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    let mut deepest = 0;
    let mut stack = vec![(v, 1)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            Value::Object(o) => stack.extend(o.values().map(|c| (c, depth + 1))),
            _ => continue,
        }
        deepest = deepest.max(depth);
    }
    deepest
}

/// Borrowed when there is nothing to replace, which is the normal case.
fn strip_nul_json(v: &serde_json::Value) -> Cow<'_, serde_json::Value> {
    use serde_json::Value;
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(has_nul),
            Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn strip(v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(s.replace('\0', "\u{FFFD}")),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), strip(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if has_nul(v) {
        Cow::Owned(strip(v))
    } else {
        Cow::Borrowed(v)
    }
}

/// A row as the database returns it, before the checks that can mark it corrupt.
pub(super) struct RawRow {
    id: i64,
    body: Vec<u8>,
    routing_key: String,
    headers: String,
    intent_id: Option<String>,
    intent_type: Option<String>,
    channels: Result<Vec<String>, String>,
    reason: String,
    error: String,
    pusher_status: Option<i64>,
    pusher_body: Option<String>,
    attempts: i64,
    first_seen_at_ms: i64,
    dead_lettered_at_ms: i64,
    replay_count: i64,
    last_replayed_at_ms: Option<i64>,
    status: String,
}

impl RawRow {
    pub(super) fn from_sqlite(row: &SqliteRow) -> Result<RawRow, sqlx::Error> {
        let channels_text: String = row.try_get("channels")?;
        Ok(RawRow {
            id: row.try_get("id")?,
            body: row.try_get("body")?,
            routing_key: row.try_get("routing_key")?,
            headers: row.try_get("headers")?,
            intent_id: row.try_get("intent_id")?,
            intent_type: row.try_get("intent_type")?,
            channels: serde_json::from_str(&channels_text)
                .map_err(|e| format!("channels is not a JSON array of strings: {e}")),
            reason: row.try_get("reason")?,
            error: row.try_get("error")?,
            pusher_status: row.try_get("pusher_status")?,
            pusher_body: row.try_get("pusher_body")?,
            attempts: row.try_get("attempts")?,
            first_seen_at_ms: row.try_get("first_seen_at_ms")?,
            dead_lettered_at_ms: row.try_get("dead_lettered_at_ms")?,
            replay_count: row.try_get("replay_count")?,
            last_replayed_at_ms: row.try_get("last_replayed_at_ms")?,
            status: row.try_get("status")?,
        })
    }

    pub(super) fn from_pg(row: &PgRow) -> Result<RawRow, sqlx::Error> {
        Ok(RawRow {
            id: row.try_get("id")?,
            body: row.try_get("body")?,
            routing_key: row.try_get("routing_key")?,
            headers: row.try_get("headers")?,
            intent_id: row.try_get("intent_id")?,
            intent_type: row.try_get("intent_type")?,
            channels: Ok(row.try_get("channels")?),
            reason: row.try_get("reason")?,
            error: row.try_get("error")?,
            pusher_status: row.try_get("pusher_status")?,
            pusher_body: row.try_get("pusher_body")?,
            attempts: row.try_get("attempts")?,
            first_seen_at_ms: row.try_get("first_seen_at_ms")?,
            dead_lettered_at_ms: row.try_get("dead_lettered_at_ms")?,
            replay_count: row.try_get("replay_count")?,
            last_replayed_at_ms: row.try_get("last_replayed_at_ms")?,
            status: row.try_get("status")?,
        })
    }

    pub(super) fn id(&self) -> i64 {
        self.id
    }

    /// Rows may have been edited by hand or written by another version, so
    /// every conversion is checked rather than assumed.
    pub(super) fn into_dead_letter(self) -> Result<DeadLetter, StoreError> {
        let id = self.id;
        let corrupt = |detail: String| StoreError::Corrupt { id, detail };
        let headers = serde_json::from_str(&self.headers)
            .map_err(|e| corrupt(format!("headers is not JSON: {e}")))?;
        let channels = self.channels.map_err(corrupt)?;
        let reason = self
            .reason
            .parse::<Reason>()
            .map_err(|e| corrupt(e.to_string()))?;
        let pusher_status = self
            .pusher_status
            .map(u16::try_from)
            .transpose()
            .map_err(|_| {
                corrupt(format!(
                    "pusher_status {:?} is not a u16",
                    self.pusher_status
                ))
            })?;
        let attempts = u32::try_from(self.attempts)
            .map_err(|_| corrupt(format!("attempts {} is not a u32", self.attempts)))?;
        let status = self.status.parse::<Status>().map_err(corrupt)?;
        Ok(DeadLetter {
            id,
            body: self.body,
            routing_key: self.routing_key,
            headers,
            intent_id: self.intent_id,
            intent_type: self.intent_type,
            channels,
            reason,
            error: self.error,
            pusher_status,
            pusher_body: self.pusher_body,
            attempts,
            first_seen_at_ms: self.first_seen_at_ms,
            dead_lettered_at_ms: self.dead_lettered_at_ms,
            replay_count: self.replay_count,
            last_replayed_at_ms: self.last_replayed_at_ms,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_nested_past_the_limit_are_replaced_by_a_note() {
        let mut deep = serde_json::json!({});
        for _ in 0..70 {
            deep = serde_json::json!({ "a": deep });
        }
        let stored = storable_headers(&deep);
        assert!(stored.contains("nested deeper than 64"), "{stored}");
        let shallow = serde_json::json!({"headers": {"k": [1, {"x": 2}]}});
        assert_eq!(storable_headers(&shallow), shallow.to_string());
        assert_eq!(json_depth(&shallow), 4);
    }

    #[test]
    fn reason_names_round_trip() {
        for &r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>(), Ok(r));
        }
        let err = "bogus".parse::<Reason>().expect_err("bogus is no reason");
        assert!(err.to_string().contains("too_large"), "{err}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:hunter2@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss/w@rd@db/x?sslmode=require&password=hunter2"),
            "postgres://u:***@db/x?sslmode=require&password=***"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }

    #[test]
    fn schemes() {
        assert_eq!(url_scheme("mysql://x"), "mysql");
        assert_eq!(url_scheme("/tmp/a.db"), "");
        assert_eq!(url_scheme("sqlite:a.db"), "sqlite");
    }
}
