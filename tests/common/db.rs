//! Dead-letter stores for the integration tests: a temporary SQLite file or
//! a PostgreSQL schema of the test's own, removed when the [`Db`] is
//! dropped (see [`teardown`]).

use super::{teardown, unique};

pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Db {
    pub fn sqlite() -> Db {
        Db::Sqlite(std::env::temp_dir().join(format!("{}.db", unique("relay-test"))))
    }

    pub async fn postgres() -> Db {
        let schema = unique("relay_test").replace('-', "_");
        let pool = sqlx::PgPool::connect(PG_URL)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432");
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&pool)
            .await
            .expect("schema");
        pool.close().await;
        Db::Postgres(schema)
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("sqlite://{}", path.display()),
            Db::Postgres(schema) => format!("{PG_URL}?options=-c%20search_path%3D{schema}"),
        }
    }

    pub async fn store(&self) -> pusher_relay::deadletter::Store {
        match self {
            Db::Sqlite(_) => pusher_relay::deadletter::Store::connect(&self.url())
                .await
                .expect("store"),
            Db::Postgres(schema) => {
                pusher_relay::deadletter::Store::connect_postgres_schema(PG_URL, schema)
                    .await
                    .expect("store")
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        match self {
            Db::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Db::Postgres(schema) => {
                let schema = std::mem::take(schema);
                teardown::run(move || async move {
                    use sqlx::Connection;
                    let Ok(mut conn) = sqlx::PgConnection::connect(PG_URL).await else {
                        return;
                    };
                    // A worker a failed test left running may still hold a
                    // lock in the schema: give up rather than wait on it.
                    let _ = sqlx::query("SET lock_timeout = '5s'")
                        .execute(&mut conn)
                        .await;
                    let _ = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                });
            }
        }
    }
}
