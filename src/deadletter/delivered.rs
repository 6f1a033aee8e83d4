//! The delivered log: hashes of the intent ids the relay delivered lately,
//! written through from its dedup cache (`relay::dedup`) so that the cache
//! outlives the process. A worker killed while Pusher had accepted events
//! it had not yet acked reads them back at start, and acks their
//! redeliveries instead of sending them again.
//!
//! It sits in the store because the store is already the one durable thing
//! every worker of a queue shares. Only the newest rows are kept, as many as
//! the cache holds, so its size is bounded by `RELAY_DEDUP_CAPACITY`.
//!
//! On SQLite it is written on a connection of its own with
//! `synchronous=NORMAL` (`Store::log_pool`): what a crash of the worker must
//! not lose is in the WAL file either way, and what a power loss may take
//! costs duplicates, not intents.

use super::backend::{Args, Bind};
use super::error::StoreError;
use super::store::Store;

impl Store {
    /// Records that the intents hashed to `keys` were delivered at `at_ms`.
    /// A key already there keeps its row.
    pub async fn log_delivered(&self, keys: &[i64], at_ms: i64) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let dialect = self.log_pool.dialect();
        let mut args = Args::new(dialect);
        let list = args.bind(Bind::Ids(keys));
        let sql = format!(
            "INSERT INTO delivered_intents (id_hash, delivered_at_ms) \
             SELECT k, {} FROM ({}) AS ids WHERE true ON CONFLICT (id_hash) DO NOTHING",
            args.bind(Bind::int(at_ms)),
            dialect.each_id(&list),
        );
        self.log_pool
            .execute("log_delivered", &sql, &args.binds)
            .await?;
        Ok(())
    }

    /// The newest `limit` keys, oldest first (the order a cache evicts in).
    pub async fn recent_delivered(&self, limit: usize) -> Result<Vec<i64>, StoreError> {
        let mut args = Args::new(self.log_pool.dialect());
        let sql = format!(
            "SELECT id_hash FROM delivered_intents ORDER BY delivered_at_ms DESC LIMIT {}",
            args.bind(Bind::int(limit as i64)),
        );
        let rows: Vec<(i64,)> = self
            .log_pool
            .fetch("recent_delivered", &sql, &args.binds)
            .await?;
        Ok(rows.into_iter().rev().map(|(k,)| k).collect())
    }

    /// Deletes all but (about) the newest `keep` rows; returns how many went.
    /// Rows that share the cut's timestamp stay, so a few more may remain.
    pub async fn trim_delivered(&self, keep: usize) -> Result<u64, StoreError> {
        let mut args = Args::new(self.log_pool.dialect());
        let sql = format!(
            "DELETE FROM delivered_intents WHERE delivered_at_ms < (SELECT delivered_at_ms \
             FROM delivered_intents ORDER BY delivered_at_ms DESC LIMIT 1 OFFSET {})",
            args.bind(Bind::int(keep as i64)),
        );
        self.log_pool
            .execute("trim_delivered", &sql, &args.binds)
            .await
    }
}
