//! The seam between the store's operations and its two backends.
//!
//! Each [`Store`](super::Store) operation is written once: SQL text built
//! for a [`Dialect`], parameters as [`Bind`]s numbered by [`Args`], and rows
//! read into tuples or structs deriving `sqlx::FromRow` (which sqlx
//! implements for either backend's rows). Only this file knows which pool is
//! behind the handle: [`Pool`] and [`Tx`] run a statement on it, and
//! [`Dialect`] spells what the two SQLs write differently (placeholders, list
//! parameters, the JSON and array columns, dates, row locks).
//!
//! Why not sqlx's `Any` driver, which would hide the backend entirely: it
//! connects from a URL alone, so SQLite's WAL, `synchronous=FULL` and busy
//! timeout and PostgreSQL's `search_path` (see `connect.rs`) would have to
//! become URL parameters or per-connection pragmas; and it has no array
//! type, so PostgreSQL's `channels TEXT[]` column and `= ANY($1)` lists (the
//! forms its indexes serve) would have to be rewritten through JSON. Native
//! pools behind one enum keep both, for one `match` per primitive here.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{FromRow, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use super::error::{query_err, StoreError};

/// The two SQL dialects the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The name [`Store::backend`](super::Store::backend) reports.
    pub(super) fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// `column` is one of the list bound at `p` (a [`Bind::Ids`] or
    /// [`Bind::Texts`]).
    pub(super) fn in_list(self, column: &str, p: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{column} IN (SELECT value FROM json_each({p}))"),
            Dialect::Postgres => format!("{column} = ANY({p})"),
        }
    }

    /// The list of ids bound at `p` (a [`Bind::Ids`]) as rows of one
    /// column, `k`.
    pub(super) fn each_id(self, p: &str) -> String {
        match self {
            Dialect::Sqlite => format!("SELECT value AS k FROM json_each({p})"),
            Dialect::Postgres => format!("SELECT unnest({p}) AS k"),
        }
    }

    /// The row addressed the channel bound at `p`.
    pub(super) fn has_channel(self, p: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!("EXISTS (SELECT 1 FROM json_each(channels) WHERE value = {p})")
            }
            // @> is the form the GIN index on channels serves.
            Dialect::Postgres => format!("channels @> ARRAY[{p}]::text[]"),
        }
    }

    /// A JSON text parameter as the `headers` column takes it.
    pub(super) fn json_param(self, p: String) -> String {
        match self {
            Dialect::Sqlite => p,
            Dialect::Postgres => format!("{p}::jsonb"),
        }
    }

    /// `headers` read back as JSON text: sqlx's `json` feature is not enabled.
    pub(super) fn headers_text(self) -> &'static str {
        match self {
            Dialect::Sqlite => "headers",
            Dialect::Postgres => "headers::text AS headers",
        }
    }

    /// The UTC day (`YYYY-MM-DD`) a row was dead-lettered.
    pub(super) fn dead_lettered_day(self) -> &'static str {
        match self {
            Dialect::Sqlite => "date(dead_lettered_at_ms / 1000, 'unixepoch')",
            Dialect::Postgres => {
                "to_char(to_timestamp(dead_lettered_at_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            }
        }
    }

    /// What a claim's row subquery ends with. SQLite serialises writers, so
    /// it needs nothing; PostgreSQL skips rows a concurrent claim has locked
    /// instead of waiting for them.
    pub(super) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// Whether text columns can hold NUL (PostgreSQL text and JSONB cannot).
    pub(super) fn stores_nul(self) -> bool {
        self == Dialect::Sqlite
    }

    fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }
}

/// One value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bind<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Bytes(&'a [u8]),
    /// A list of ids: a JSON array on SQLite (`json_each`), `BIGINT[]` on PostgreSQL.
    Ids(&'a [i64]),
    /// A list of texts: a JSON array on SQLite, `TEXT[]` on PostgreSQL.
    Texts(Vec<&'a str>),
}

impl<'a> Bind<'a> {
    pub(super) fn int(v: i64) -> Bind<'a> {
        Bind::Int(Some(v))
    }

    pub(super) fn text(v: &'a str) -> Bind<'a> {
        Bind::Text(Some(v))
    }
}

/// A statement's parameters, with numbered placeholders (`?N` on SQLite,
/// `$N` on PostgreSQL) so that the SQL text may use them in any order and
/// further binds (limits, claim ids) can follow a generated clause's.
#[derive(Debug, Clone)]
pub(super) struct Args<'a> {
    pub dialect: Dialect,
    pub binds: Vec<Bind<'a>>,
}

impl<'a> Args<'a> {
    pub(super) fn new(dialect: Dialect) -> Args<'a> {
        Args {
            dialect,
            binds: Vec::new(),
        }
    }

    /// Adds a bind and returns its placeholder.
    pub(super) fn bind(&mut self, b: Bind<'a>) -> String {
        self.binds.push(b);
        self.dialect.placeholder(self.binds.len())
    }
}

fn sqlite_query<'q>(sql: &'q str, binds: &'q [Bind<'q>]) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    binds.iter().fold(sqlx::query(sql), |q, b| match b {
        Bind::Int(v) => q.bind(*v),
        Bind::Text(v) => q.bind(*v),
        Bind::Bytes(v) => q.bind(*v),
        Bind::Ids(v) => q.bind(serde_json::Value::from(*v).to_string()),
        Bind::Texts(v) => q.bind(serde_json::Value::from(v.as_slice()).to_string()),
    })
}

fn pg_query<'q>(sql: &'q str, binds: &'q [Bind<'q>]) -> Query<'q, Postgres, PgArguments> {
    binds.iter().fold(sqlx::query(sql), |q, b| match b {
        Bind::Int(v) => q.bind(*v),
        Bind::Text(v) => q.bind(*v),
        Bind::Bytes(v) => q.bind(*v),
        Bind::Ids(v) => q.bind(*v),
        Bind::Texts(v) => q.bind(v.as_slice()),
    })
}

/// Runs `query` on `executor` (a pool or a transaction of the query's
/// backend) and reads its rows as `T`.
async fn fetch_all<'q, 'c, DB, E, T>(
    query: Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    executor: E,
) -> Result<Vec<T>, sqlx::Error>
where
    DB: sqlx::Database,
    DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    E: 'q + sqlx::Executor<'c, Database = DB>,
    T: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
{
    query.try_map(|r| T::from_row(&r)).fetch_all(executor).await
}

/// What a statement's rows are read into: a tuple, or a struct deriving
/// `sqlx::FromRow`, which then reads either backend's rows.
pub(super) trait Decode:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Decode for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// The store's connections: a native sqlx pool of either backend.
#[derive(Clone)]
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Every row the statement returns.
    pub(super) async fn fetch<T: Decode>(
        &self,
        op: &'static str,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Pool::Sqlite(p) => fetch_all(sqlite_query(sql, binds), p).await,
            Pool::Postgres(p) => fetch_all(pg_query(sql, binds), p).await,
        }
        .map_err(query_err(op))
    }

    /// Runs the statement; returns how many rows it changed.
    pub(super) async fn execute(
        &self,
        op: &'static str,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> Result<u64, StoreError> {
        match self {
            Pool::Sqlite(p) => sqlite_query(sql, binds)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Pool::Postgres(p) => pg_query(sql, binds)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        }
        .map_err(query_err(op))
    }

    pub(super) async fn begin(&self, op: &'static str) -> Result<Tx, StoreError> {
        match self {
            Pool::Sqlite(p) => p.begin().await.map(Tx::Sqlite),
            Pool::Postgres(p) => p.begin().await.map(Tx::Postgres),
        }
        .map_err(query_err(op))
    }

    /// Waits for connections in use to be returned; later calls fail with
    /// `PoolClosed`.
    pub(super) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// A transaction on either backend; dropped without [`Tx::commit`], it rolls back.
pub(super) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Every row the statement returns.
    pub(super) async fn fetch<T: Decode>(
        &mut self,
        op: &'static str,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Tx::Sqlite(tx) => fetch_all(sqlite_query(sql, binds), &mut **tx).await,
            Tx::Postgres(tx) => fetch_all(pg_query(sql, binds), &mut **tx).await,
        }
        .map_err(query_err(op))
    }

    /// Runs the statement; returns how many rows it changed.
    pub(super) async fn execute(
        &mut self,
        op: &'static str,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> Result<u64, StoreError> {
        match self {
            Tx::Sqlite(tx) => sqlite_query(sql, binds)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()),
            Tx::Postgres(tx) => pg_query(sql, binds)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()),
        }
        .map_err(query_err(op))
    }

    pub(super) async fn commit(self, op: &'static str) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
        .map_err(query_err(op))
    }
}
