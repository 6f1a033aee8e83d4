//! Opening a store: which backend a URL names, the connection settings that
//! make an acked dead letter durable, and the schema migrations, applied
//! before the first operation.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Executor};

use super::backend::Pool;
use super::error::StoreError;
use super::store::Store;
use crate::config::redact_url;
use crate::tls::{self, Endpoint, Link, Preamble, TlsError, Verify};

/// How long a writer waits on SQLite's lock before giving up with `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an operation waits for a pooled connection. Bounded so that a
/// readiness probe or an insert fails (and is retried by the caller) instead
/// of hanging while the database is away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

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
    ///   on disk once `insert` returns. The delivered log alone is written on
    ///   a connection with `synchronous=NORMAL` (see `delivered.rs`).
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
    let log_opts = opts.clone().synchronous(SqliteSynchronous::Normal);
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
    // The delivered log is written every few milliseconds while intents are
    // delivered, and syncing each of those commits to the disk cost the
    // worker dearly (docs/benchmarks.md, "Relay and soak"). In WAL mode a commit without the sync still outlives
    // the process (it is in the file, the OS writes it back); only a power
    // loss can take the last ones, and a lost row costs a duplicate, never
    // an intent. An in-memory store has one connection, so it shares it.
    let log_pool = if in_memory {
        pool.clone()
    } else {
        SqlitePoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .max_connections(1)
            .connect_lazy_with(log_opts)
    };
    Ok(Store {
        pool: Pool::Sqlite(pool),
        log_pool: Pool::Sqlite(log_pool),
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

/// How the store's PostgreSQL connections use TLS, as sqlx makes them from
/// `url` (libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, and the
/// `PGSSL*` variables beneath them): `None` for SQLite, `sslmode=disable`
/// or `allow` (sqlx takes `allow` as `disable`) and a Unix socket.
///
/// sqlx's own rules, mirrored: `prefer` (the default) and `require` encrypt
/// without verifying; `verify-full` verifies the chain and the host name,
/// and so does `verify-ca`: sqlx 0.8's verifier for it lets through
/// rustls's old name-mismatch error but not the one rustls 0.23.24 and
/// later return (launchbadge/sqlx#3793), so its client checks the name too,
/// and the probe refuses what that client refuses. The roots are the
/// system store plus `sslrootcert`.
pub fn tls_endpoint(url: &str) -> Result<Option<Endpoint>, StoreError> {
    if !matches!(
        url_scheme(url).to_ascii_lowercase().as_str(),
        "postgres" | "postgresql"
    ) {
        return Ok(None);
    }
    let opts = pg_options(url)?;
    let tls_err = |e: TlsError| StoreError::Connect {
        url: redact_url(url),
        source: sqlx::Error::Tls(Box::new(e)),
    };
    let verify = match opts.get_ssl_mode() {
        PgSslMode::Disable | PgSslMode::Allow => return Ok(None),
        PgSslMode::Prefer | PgSslMode::Require => Verify::Nothing,
        PgSslMode::VerifyCa | PgSslMode::VerifyFull => Verify::Full,
    };
    if opts.get_socket().is_some() {
        return Ok(None);
    }
    let files = TlsFiles::of(&opts);
    let mut roots = rustls::RootCertStore::empty();
    if verify != Verify::Nothing {
        roots = tls::system_roots();
        if let Some(ca) = &files.root_cert {
            ca.add_to(&mut roots).map_err(tls_err)?;
        }
    }
    // sqlx refuses the connection on half an identity too.
    let identity = match tls::both_or_neither(
        files.cert.as_ref(),
        files.key.as_ref(),
        ("sslcert", "sslkey"),
    )
    .map_err(tls_err)?
    {
        Some((cert, key)) => Some(
            tls::client_identity(
                &cert.read().map_err(tls_err)?,
                &key.read().map_err(tls_err)?,
                &cert.name(),
                &key.name(),
            )
            .map_err(tls_err)?,
        ),
        None => None,
    };
    let host = opts.get_host().to_owned();
    Ok(Some(Endpoint {
        link: Link::Postgres,
        server_name: tls::server_name(&host).map_err(tls_err)?,
        port: opts.get_port(),
        config: Arc::new(tls::client_config(roots, verify, identity).map_err(tls_err)?),
        preamble: Preamble::PostgresSslRequest {
            required: !matches!(opts.get_ssl_mode(), PgSslMode::Prefer),
        },
        host,
        verify,
    }))
}

/// The `sslmode` of a PostgreSQL store reached over the network without a
/// verified certificate (`disable`, `allow`, `prefer`, which sqlx uses when
/// none is given and which falls back to plain text without a word, or
/// `require`), for the warning at start; `None` for SQLite, a Unix socket,
/// loopback, `verify-ca` and `verify-full`, and a URL that does not parse
/// (connecting reports that).
pub fn unverified_mode(url: &str) -> Option<&'static str> {
    if !matches!(
        url_scheme(url).to_ascii_lowercase().as_str(),
        "postgres" | "postgresql"
    ) {
        return None;
    }
    let opts = pg_options(url).ok()?;
    if opts.get_socket().is_some() || is_loopback(opts.get_host()) {
        return None;
    }
    match opts.get_ssl_mode() {
        PgSslMode::Disable => Some("disable"),
        PgSslMode::Allow => Some("allow"),
        PgSslMode::Prefer => Some("prefer"),
        PgSslMode::Require => Some("require"),
        PgSslMode::VerifyCa | PgSslMode::VerifyFull => None,
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A certificate or key as sqlx holds it: a file, or PEM text (a `PGSSL*`
/// variable may carry either).
enum Pem {
    File(std::path::PathBuf),
    Inline(Vec<u8>),
}

impl Pem {
    /// sqlx shows a file as `file: PATH` and inline PEM as itself.
    fn parse(shown: &str) -> Pem {
        match shown.strip_prefix("file: ") {
            Some(path) => Pem::File(path.into()),
            None if shown.trim_start().starts_with("-----BEGIN") => {
                Pem::Inline(shown.as_bytes().to_vec())
            }
            None => Pem::File(shown.into()),
        }
    }

    fn name(&self) -> String {
        match self {
            Pem::File(path) => path.display().to_string(),
            Pem::Inline(_) => "(inline PEM)".into(),
        }
    }

    fn read(&self) -> Result<Vec<u8>, TlsError> {
        match self {
            Pem::Inline(pem) => Ok(pem.clone()),
            Pem::File(path) => std::fs::read(path).map_err(|e| TlsError::ReadClient {
                what: "certificate or key",
                path: path.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    fn add_to(&self, roots: &mut rustls::RootCertStore) -> Result<usize, TlsError> {
        match self {
            Pem::File(path) => tls::add_pem_file(roots, path),
            Pem::Inline(pem) => tls::add_pem(roots, pem, "sslrootcert (inline PEM)"),
        }
    }
}

/// The TLS files of options sqlx parsed. Its fields are private; its URL
/// form carries them, with the `PGSSL*` variables already applied.
struct TlsFiles {
    root_cert: Option<Pem>,
    cert: Option<Pem>,
    key: Option<Pem>,
}

impl TlsFiles {
    fn of(opts: &PgConnectOptions) -> TlsFiles {
        let url = opts.to_url_lossy();
        let find = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| Pem::parse(&v))
        };
        TlsFiles {
            root_cert: find("sslrootcert"),
            cert: find("sslcert"),
            key: find("sslkey"),
        }
    }
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
        log_pool: Pool::Postgres(pool.clone()),
        pool: Pool::Postgres(pool),
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_store_reached_over_the_network_without_verification_is_named() {
        let mode = |url: &str| unverified_mode(url);
        assert_eq!(
            mode("postgres://u:p@db.internal/x"),
            Some("prefer"),
            "sqlx's default"
        );
        assert_eq!(
            mode("postgres://u:p@db.internal/x?sslmode=require"),
            Some("require")
        );
        assert_eq!(
            mode("postgres://u:p@10.0.0.5/x?sslmode=disable"),
            Some("disable")
        );
        assert_eq!(
            mode("postgres://u:p@db.internal/x?sslmode=verify-full"),
            None
        );
        assert_eq!(mode("postgres://u:p@db.internal/x?sslmode=verify-ca"), None);
        assert_eq!(mode("postgres://u:p@127.0.0.1/x"), None, "loopback");
        assert_eq!(mode("postgres://u:p@localhost/x?sslmode=disable"), None);
        assert_eq!(mode("postgres://u:p@[::1]/x"), None);
        assert_eq!(
            mode("postgres:///x?host=/var/run/postgresql"),
            None,
            "a socket"
        );
        assert_eq!(mode("sqlite://dead.db"), None);
    }

    #[test]
    fn tls_follows_sslmode_as_sqlx_does() {
        let endpoint = |q: &str| tls_endpoint(&format!("postgres://u@db.example:6432/x{q}"));
        assert!(endpoint("?sslmode=disable").unwrap().is_none());
        assert!(endpoint("?sslmode=allow").unwrap().is_none());
        assert!(tls_endpoint("sqlite::memory:").unwrap().is_none());
        let require = endpoint("?sslmode=require").unwrap().expect("TLS");
        assert_eq!(require.verify, Verify::Nothing);
        assert_eq!(require.address(), "db.example:6432");
        assert_eq!(
            require.preamble,
            Preamble::PostgresSslRequest { required: true }
        );
        let full = endpoint("?sslmode=verify-full").unwrap().expect("TLS");
        assert_eq!(full.verify, Verify::Full);
        assert_eq!(
            endpoint("?sslmode=verify-ca").unwrap().expect("TLS").verify,
            Verify::Full
        );
    }

    #[test]
    fn tls_reads_the_files_sqlx_would() {
        // sqlx's URL form is how the file names are read back; a change in
        // it shows here.
        let opts =
            pg_options("postgres://db/x?sslrootcert=/etc/ssl/rds.pem&sslcert=/c.pem&sslkey=/k.pem")
                .unwrap();
        let files = TlsFiles::of(&opts);
        assert_eq!(
            files.root_cert.map(|p| p.name()).as_deref(),
            Some("/etc/ssl/rds.pem")
        );
        assert_eq!(files.cert.map(|p| p.name()).as_deref(), Some("/c.pem"));
        assert_eq!(files.key.map(|p| p.name()).as_deref(), Some("/k.pem"));
        let e = tls_endpoint(
            "postgres://u:hunter2@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .unwrap_err();
        let text = format!("{e}: {}", std::error::Error::source(&e).unwrap());
        assert!(text.contains("\"/nonexistent/ca.pem\""), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let half = tls_endpoint("postgres://db/x?sslmode=require&sslcert=/c.pem").unwrap_err();
        let text = std::error::Error::source(&half).unwrap().to_string();
        assert!(text.contains("sslcert is set without sslkey"), "{text}");
    }

    #[test]
    fn schemes() {
        assert_eq!(url_scheme("mysql://x"), "mysql");
        assert_eq!(url_scheme("/tmp/a.db"), "");
        assert_eq!(url_scheme("sqlite:a.db"), "sqlite");
    }
}
