//! Operator queries on the store: list (keyset pages), count, stats,
//! delete, purge, and the row claims replay relies on. Each runs in bounded
//! memory whatever the table's size: listing and claiming take at most one
//! page or batch, purge deletes in batches.

use serde::Serialize;

use super::backend::Bind;
use super::error::StoreError;
use super::filter::{Cursor, Filter, Where};
use super::record::{DeadLetter, DeadLetterReason};
use super::row::{columns, RawRow};
use super::store::Store;

/// Largest page a listing returns, whatever the caller asks: a page is held
/// in memory whole (bodies included).
pub const MAX_PAGE: u32 = 1000;

/// Rows deleted per statement by [`Store::purge`]: small enough that one
/// statement does not hold SQLite's write lock (and so the worker's
/// dead-letter inserts) for long.
pub const PURGE_BATCH: u32 = 2000;

/// One page of a listing, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The dead letters on this page, without their body and headers
    /// (`body` is empty and `headers` is `{}`): a page never loads bodies,
    /// which may be up to `RELAY_MAX_BODY_BYTES` each. [`Store::get`] has
    /// them.
    pub items: Vec<DeadLetter>,
    /// Rows of this page that cannot be shown (edited by hand, written by
    /// another version), with what is wrong: flagged, so that one bad row
    /// does not hide the others.
    pub unreadable: Vec<Unreadable>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A row of a page that cannot be turned back into a [`DeadLetter`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The row's id (to inspect or delete it).
    pub id: i64,
    /// Which column holds what.
    pub error: String,
}

/// Counts for one key (a reason, type or day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    /// The reason, intent type (`(unknown)` when undecodable) or UTC day.
    pub key: String,
    /// Dead letters with this key.
    pub total: i64,
    /// Of which still pending.
    pub pending: i64,
}

/// The oldest dead letter still waiting for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Oldest {
    /// Its id.
    pub id: i64,
    /// When it was dead-lettered (unix ms).
    pub dead_lettered_at_ms: i64,
}

/// What `dlq stats` and `GET /api/dead-letters/stats` show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Matching dead letters.
    pub total: i64,
    /// Of which pending.
    pub pending: i64,
    /// Every reason (zero included), in [`DeadLetterReason::ALL`] order.
    pub by_reason: Vec<Count>,
    /// The most frequent intent types, at most [`STATS_TOP_TYPES`].
    pub by_type: Vec<Count>,
    /// The most recent UTC days with dead letters, at most [`STATS_DAYS`].
    pub by_day: Vec<Count>,
    /// The oldest pending dead letter, if any.
    pub oldest_pending: Option<Oldest>,
}

/// Types listed in stats; the long tail of a misbehaving producer's random
/// types would otherwise make the output unbounded.
pub const STATS_TOP_TYPES: u32 = 50;
/// Days listed in stats.
pub const STATS_DAYS: u32 = 31;

/// A dead letter claimed for replay: what republishing needs, no more.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its id (for the replay header and the later mark).
    pub id: i64,
    /// The original body.
    pub body: Vec<u8>,
    /// The original routing key.
    pub routing_key: String,
    /// Stored AMQP properties and headers (`{}` if unreadable).
    pub headers: serde_json::Value,
}

/// The parameters of one claim, see [`Store::claim`].
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// The rows to consider.
    pub filter: &'a Filter,
    /// Unique per replay run; written to `claimed_by`.
    pub claim_id: &'a str,
    /// Also claim rows already replayed, if replayed before `started_ms`.
    pub force: bool,
    /// When the replay run began (unix ms).
    pub started_ms: i64,
    /// Now (unix ms), written to `claimed_at_ms`.
    pub now_ms: i64,
    /// Claims taken before this (unix ms) are abandoned and may be taken over.
    pub stale_before_ms: i64,
    /// Only ids above this: the run's progress, so each row is tried once.
    pub after_id: i64,
    /// At most this many rows.
    pub limit: u32,
}

impl Store {
    /// One page of matching dead letters, newest (highest id) first, at most
    /// `limit` (capped at [`MAX_PAGE`]) rows after `cursor`.
    pub async fn list(
        &self,
        filter: &Filter,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let dialect = self.pool.dialect();
        let mut w = Where::filter(dialect, filter);
        if let Some(c) = cursor {
            w.push(Bind::int(c.before_id), |p| format!("id < {p}"));
        }
        // One extra row tells whether another page exists.
        let lim = w.bind(Bind::int(i64::from(limit) + 1));
        let sql = format!(
            "SELECT {} FROM dead_letters {} ORDER BY id DESC LIMIT {lim}",
            columns(dialect, false),
            w.sql()
        );
        let raws: Vec<RawRow> = self.pool.fetch("list", &sql, &w.args.binds).await?;
        let more = raws.len() > limit as usize;
        let mut items = Vec::new();
        let mut unreadable = Vec::new();
        let mut last_id = None;
        for raw in raws.into_iter().take(limit as usize) {
            last_id = Some(raw.id());
            match raw.into_dead_letter() {
                Ok(dl) => items.push(dl),
                Err(StoreError::Corrupt { id, detail }) => {
                    unreadable.push(Unreadable { id, error: detail })
                }
                Err(e) => return Err(e),
            }
        }
        let next_cursor = last_id
            .filter(|_| more)
            .map(|before_id| Cursor { before_id }.encode());
        Ok(Page {
            items,
            unreadable,
            next_cursor,
        })
    }

    /// How many dead letters match.
    pub async fn count_matching(&self, filter: &Filter) -> Result<i64, StoreError> {
        let w = Where::filter(self.pool.dialect(), filter);
        self.count_where("count_matching", &w).await
    }

    /// How many matching dead letters a replay would take: pending ones, or
    /// all with `force`.
    pub async fn count_replayable(&self, filter: &Filter, force: bool) -> Result<i64, StoreError> {
        let mut w = Where::filter(self.pool.dialect(), filter);
        if !force {
            w.push_raw("status = 'pending'");
        }
        self.count_where("count_replayable", &w).await
    }

    async fn count_where(&self, op: &'static str, w: &Where<'_>) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM dead_letters {}", w.sql());
        let rows: Vec<(i64,)> = self.pool.fetch(op, &sql, &w.args.binds).await?;
        Ok(rows.first().map_or(0, |&(n,)| n))
    }

    /// Pending dead letters per reason, one entry for every reason in
    /// [`DeadLetterReason::ALL`] order (zero included, so the
    /// `pusher_relay_dead_letters_pending` gauge drops to 0 after a purge or
    /// a replay). A reason this build does not know (written by a newer
    /// worker sharing the store) is left out rather than failing the count.
    pub async fn pending_by_reason(&self) -> Result<Vec<(DeadLetterReason, i64)>, StoreError> {
        let sql = "SELECT reason, COUNT(*) FROM dead_letters \
                   WHERE status = 'pending' GROUP BY reason";
        let rows: Vec<(String, i64)> = self.pool.fetch("pending_by_reason", sql, &[]).await?;
        Ok(DeadLetterReason::ALL
            .iter()
            .map(|&r| {
                let n = rows
                    .iter()
                    .filter(|(k, _)| k == r.as_str())
                    .map(|(_, n)| n)
                    .sum();
                (r, n)
            })
            .collect())
    }

    /// Rows in the tables that grow with traffic, as `(table, rows)`: the
    /// parked log and the dead letters (the delivered log is kept to
    /// `RELAY_DEDUP_CAPACITY` rows).
    pub async fn table_rows(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let mut out = Vec::new();
        for table in ["parked_intents", "dead_letters"] {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let rows: Vec<(i64,)> = self.pool.fetch("table_rows", &sql, &[]).await?;
            out.push((table, rows.first().map_or(0, |&(n,)| n)));
        }
        Ok(out)
    }

    /// Counts by reason, type and day, and the oldest pending, over the
    /// matching dead letters. Aggregated in the database, so the table's
    /// size does not matter to memory.
    pub async fn stats(&self, filter: &Filter) -> Result<Stats, StoreError> {
        let op = "stats";
        let dialect = self.pool.dialect();
        let w = Where::filter(dialect, filter);
        let binds = &w.args.binds;
        let wsql = w.sql();
        let pending = "SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END)";
        // `(key, total, pending)` rows.
        let grouped = |key: &str, order: &str, limit: Option<u32>| {
            let limit = limit.map(|n| format!("LIMIT {n}")).unwrap_or_default();
            format!(
                "SELECT {key}, COUNT(*), {pending} FROM dead_letters {wsql} \
                 GROUP BY 1 ORDER BY {order} {limit}"
            )
        };
        type KeyCounts = Vec<(String, i64, Option<i64>)>;
        let reasons: KeyCounts = self
            .pool
            .fetch(op, &grouped("reason", "1", None), binds)
            .await?;
        let by_type: KeyCounts = self
            .pool
            .fetch(
                op,
                &grouped(
                    "COALESCE(intent_type, '(unknown)')",
                    "2 DESC, 1",
                    Some(STATS_TOP_TYPES),
                ),
                binds,
            )
            .await?;
        let day = dialect.dead_lettered_day();
        let by_day: KeyCounts = self
            .pool
            .fetch(op, &grouped(day, "1 DESC", Some(STATS_DAYS)), binds)
            .await?;
        let mut ow = w.clone();
        ow.push_raw("status = 'pending'");
        let sql = format!(
            "SELECT id, dead_lettered_at_ms FROM dead_letters {} \
             ORDER BY dead_lettered_at_ms, id LIMIT 1",
            ow.sql()
        );
        let oldest: Vec<(i64, i64)> = self.pool.fetch(op, &sql, &ow.args.binds).await?;
        let oldest_pending = oldest.first().map(|&(id, dead_lettered_at_ms)| Oldest {
            id,
            dead_lettered_at_ms,
        });

        let to_count = |(key, total, pending): (String, i64, Option<i64>)| Count {
            key,
            total,
            pending: pending.unwrap_or(0),
        };
        let by_reason: Vec<Count> = DeadLetterReason::ALL
            .iter()
            .map(|r| {
                let (total, pending) = reasons
                    .iter()
                    .filter(|(k, _, _)| k == r.as_str())
                    .fold((0, 0), |(t, p), (_, n, q)| (t + n, p + q.unwrap_or(0)));
                Count {
                    key: r.as_str().to_owned(),
                    total,
                    pending,
                }
            })
            .collect();
        let total = reasons.iter().map(|(_, n, _)| n).sum();
        let pending = reasons.iter().map(|(_, _, p)| p.unwrap_or(0)).sum();
        Ok(Stats {
            total,
            pending,
            by_reason,
            by_type: by_type.into_iter().map(to_count).collect(),
            by_day: by_day.into_iter().map(to_count).collect(),
            oldest_pending,
        })
    }

    /// Deletes the dead letters with these ids; returns how many existed.
    pub async fn delete(&self, ids: &[i64]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let dialect = self.pool.dialect();
        let mut w = Where::new(dialect);
        w.push(Bind::Ids(ids), |p| dialect.in_list("id", p));
        let sql = format!("DELETE FROM dead_letters {}", w.sql());
        self.pool.execute("delete", &sql, &w.args.binds).await
    }

    /// Deletes every matching dead letter, [`PURGE_BATCH`] rows per
    /// statement, calling `progress` with the running total after each.
    /// Returns how many were deleted.
    pub async fn purge(
        &self,
        filter: &Filter,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, StoreError> {
        let mut w = Where::filter(self.pool.dialect(), filter);
        let lim = w.bind(Bind::int(i64::from(PURGE_BATCH)));
        // A subquery because SQLite's DELETE ... LIMIT is a compile-time
        // option that the bundled build does not enable.
        let sql = format!(
            "DELETE FROM dead_letters WHERE id IN \
             (SELECT id FROM dead_letters {} ORDER BY id LIMIT {lim})",
            w.sql()
        );
        let mut deleted = 0;
        loop {
            let n = self.pool.execute("purge", &sql, &w.args.binds).await?;
            if n == 0 {
                return Ok(deleted);
            }
            deleted += n;
            progress(deleted);
        }
    }

    /// Atomically claims up to `limit` replayable rows for one replay run and
    /// returns them in id order.
    ///
    /// A row is claimable when it matches the filter, has an id above
    /// `after_id`, is pending (or, with `force`, was last replayed before this
    /// run started: a concurrent forced run's fresh replay is not repeated),
    /// and is unclaimed or its claim is stale. The claim is one `UPDATE ...
    /// RETURNING`: on SQLite writers are serialised, so two runs cannot both
    /// take a row; on PostgreSQL the subquery locks the rows `FOR UPDATE SKIP
    /// LOCKED`, so a concurrent run skips them instead of waiting, and the
    /// row's conditions are rechecked after the lock.
    pub async fn claim(&self, req: &ClaimRequest<'_>) -> Result<Vec<Claimed>, StoreError> {
        let dialect = self.pool.dialect();
        let mut w = Where::filter(dialect, req.filter);
        w.push(Bind::int(req.after_id), |p| format!("id > {p}"));
        if req.force {
            w.push(Bind::int(req.started_ms), |p| {
                format!(
                    "(status = 'pending' OR last_replayed_at_ms IS NULL OR last_replayed_at_ms < {p})"
                )
            });
        } else {
            w.push_raw("status = 'pending'");
        }
        w.push(Bind::int(req.stale_before_ms), |p| {
            format!("(claimed_by IS NULL OR claimed_at_ms < {p})")
        });
        let lim = w.bind(Bind::int(i64::from(req.limit)));
        let by = w.bind(Bind::text(req.claim_id));
        let at = w.bind(Bind::int(req.now_ms));
        let sql = format!(
            "UPDATE dead_letters SET claimed_by = {by}, claimed_at_ms = {at} WHERE id IN \
             (SELECT id FROM dead_letters {} ORDER BY id LIMIT {lim} {}) \
             RETURNING id, body, routing_key, {}",
            w.sql(),
            dialect.skip_locked(),
            dialect.headers_text()
        );
        let rows: Vec<(i64, Vec<u8>, String, String)> =
            self.pool.fetch("claim", &sql, &w.args.binds).await?;
        let mut out: Vec<Claimed> = rows
            .into_iter()
            .map(|(id, body, routing_key, headers)| {
                let headers = serde_json::from_str(&headers).unwrap_or_else(|e| {
                    tracing::warn!(id, error = %e, "dead letter headers are not JSON; replaying without them");
                    serde_json::json!({})
                });
                Claimed {
                    id,
                    body,
                    routing_key,
                    headers,
                }
            })
            .collect();
        // RETURNING order is unspecified on both backends.
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// Marks rows this run claimed as replayed (count + 1, time, claim
    /// cleared) in one statement. A row whose claim was taken over is left
    /// to its new owner.
    pub async fn mark_replayed(
        &self,
        ids: &[i64],
        claim_id: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let dialect = self.pool.dialect();
        let mut w = Where::new(dialect);
        let set_at = w.bind(Bind::int(now_ms));
        w.push(Bind::Ids(ids), |p| dialect.in_list("id", p));
        w.push(Bind::text(claim_id), |p| format!("claimed_by = {p}"));
        let sql = format!(
            "UPDATE dead_letters SET status = 'replayed', replay_count = replay_count + 1, \
             last_replayed_at_ms = {set_at}, claimed_by = NULL, claimed_at_ms = NULL {}",
            w.sql()
        );
        self.pool
            .execute("mark_replayed", &sql, &w.args.binds)
            .await
    }

    /// Releases this run's claims on rows it could not republish, so a later
    /// run can take them at once.
    pub async fn release_claims(&self, ids: &[i64], claim_id: &str) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let dialect = self.pool.dialect();
        let mut w = Where::new(dialect);
        w.push(Bind::Ids(ids), |p| dialect.in_list("id", p));
        w.push(Bind::text(claim_id), |p| format!("claimed_by = {p}"));
        let sql = format!(
            "UPDATE dead_letters SET claimed_by = NULL, claimed_at_ms = NULL {}",
            w.sql()
        );
        self.pool
            .execute("release_claims", &sql, &w.args.binds)
            .await
    }
}
