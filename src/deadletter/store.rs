//! The [`Store`] handle and the operations the worker relies on: storing
//! dead letters (one failure is one row), reading one back, counting, and the
//! readiness ping. Operator queries are in `ops.rs`, opening the store in
//! `connect.rs`; each is written once over the seam in `backend.rs`.

use std::borrow::Cow;
use std::fmt;

use super::backend::{Args, Bind, Dialect, Pool, Tx};
use super::error::StoreError;
use super::record::{DeadLetter, NewDeadLetter};
use super::row::{columns, RawRow};

/// Rounds of "insert, else read the pending row it conflicts with" before an
/// insert gives up with [`StoreError::Contended`]. The row read can stop being
/// pending between the two statements (a replay marks it, an operator deletes
/// it), and the next round then inserts; each further round needs yet another
/// writer racing on the same failure, so three is already far-fetched.
const INSERT_ROUNDS: usize = 3;

/// Handle to the dead-letter store. Cheap to clone (it wraps a pool).
#[derive(Clone)]
pub struct Store {
    pub(super) pool: Pool,
    /// Where the delivered log is written (see `delivered.rs`): on a SQLite
    /// file, a connection of its own that does not sync each commit; else
    /// `pool` itself.
    pub(super) log_pool: Pool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately no connect options: PgConnectOptions' Debug shows the password.
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Which backend this store uses: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.pool.dialect().name()
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
        let ids = self
            .insert_in_one_transaction(std::slice::from_ref(dl), "insert")
            .await?;
        Ok(ids[0])
    }

    /// Stores several dead letters in one transaction: all or none. Ids are
    /// returned in input order; a dead letter already stored (see
    /// [`Store::insert`]), also earlier in the same batch, gets the id of the
    /// existing row.
    pub async fn insert_many(&self, dls: &[NewDeadLetter]) -> Result<Vec<i64>, StoreError> {
        if dls.is_empty() {
            return Ok(Vec::new());
        }
        self.insert_in_one_transaction(dls, "insert_many").await
    }

    /// One code path for a lone dead letter and a batch: a transaction whose
    /// statements, for one, are those a lone insert would run. One id per
    /// dead letter, in order.
    async fn insert_in_one_transaction(
        &self,
        dls: &[NewDeadLetter],
        op: &'static str,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin(op).await?;
        let mut ids = Vec::with_capacity(dls.len());
        for dl in dls {
            ids.push(insert_one(&mut tx, self.pool.dialect(), dl, op).await?);
        }
        tx.commit(op).await?;
        Ok(ids)
    }

    /// Fetches one dead letter by id; `None` if there is no such row.
    pub async fn get(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        let dialect = self.pool.dialect();
        let mut args = Args::new(dialect);
        let sql = format!(
            "SELECT {} FROM dead_letters WHERE id = {}",
            columns(dialect, true),
            args.bind(Bind::int(id))
        );
        let rows: Vec<RawRow> = self.pool.fetch("get", &sql, &args.binds).await?;
        rows.into_iter()
            .next()
            .map(RawRow::into_dead_letter)
            .transpose()
    }

    /// Number of stored dead letters, whatever their status.
    pub async fn count(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM dead_letters";
        let rows: Vec<(i64,)> = self.pool.fetch("count", sql, &[]).await?;
        Ok(rows.first().map_or(0, |&(n,)| n))
    }

    /// Round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.execute("ping", "SELECT 1", &[]).await.map(drop)
    }

    /// Closes the pool, waiting for connections in use to be returned. Later
    /// calls fail with an unavailable error.
    pub async fn close(&self) {
        self.log_pool.close().await;
        self.pool.close().await
    }
}

/// Inserts `dl`, or returns the id of the pending row of the same failure.
async fn insert_one<'a>(
    tx: &mut Tx,
    dialect: Dialect,
    dl: &'a NewDeadLetter,
    op: &'static str,
) -> Result<i64, StoreError> {
    // PostgreSQL text (and JSONB strings) cannot hold NUL. A dead letter must
    // still be storable, or its message would be redelivered forever, so NUL
    // in the metadata becomes U+FFFD there; the body (BYTEA) is kept exact.
    let mut lossy = false;
    let mut text = |s: &'a str| -> Cow<'a, str> {
        if !dialect.stores_nul() && s.contains('\0') {
            lossy = true;
            Cow::Owned(s.replace('\0', "\u{FFFD}"))
        } else {
            Cow::Borrowed(s)
        }
    };
    let routing_key = text(&dl.routing_key);
    let intent_id = dl.intent_id.as_deref().map(&mut text);
    let intent_type = dl.intent_type.as_deref().map(&mut text);
    let channels: Vec<Cow<'a, str>> = dl.channels.iter().map(|c| text(c)).collect();
    let error = text(&dl.error);
    let pusher_body = dl.pusher_body.as_deref().map(&mut text);
    let headers = if dialect.stores_nul() {
        Cow::Borrowed(&dl.headers)
    } else {
        strip_nul_json(&dl.headers)
    };
    if lossy || matches!(headers, Cow::Owned(_)) {
        tracing::warn!(
            intent_id = intent_id.as_deref().unwrap_or(""),
            "dead letter metadata contains NUL characters; stored as U+FFFD in PostgreSQL"
        );
    }
    let headers = storable_headers(&headers);

    let mut values = Args::new(dialect);
    let placeholders = [
        values.bind(Bind::Bytes(&dl.body)),
        values.bind(Bind::text(&routing_key)),
        dialect.json_param(values.bind(Bind::text(&headers))),
        values.bind(Bind::Text(intent_id.as_deref())),
        values.bind(Bind::Text(intent_type.as_deref())),
        values.bind(Bind::Texts(channels.iter().map(|c| c.as_ref()).collect())),
        values.bind(Bind::text(dl.reason.as_str())),
        values.bind(Bind::text(&error)),
        values.bind(Bind::Int(dl.pusher_status.map(i64::from))),
        values.bind(Bind::Text(pusher_body.as_deref())),
        values.bind(Bind::int(i64::from(dl.attempts))),
        values.bind(Bind::int(dl.first_seen_at_ms)),
        values.bind(Bind::int(dl.dead_lettered_at_ms)),
        values.bind(Bind::Int(dl.replay_of)),
    ];
    // The conflict target is migration 0002's partial unique index, spelled
    // as in the index so both backends match it. A conflict inserts nothing
    // and returns no row; the pending row it conflicted with is then read,
    // served by the same index.
    let insert = format!(
        "INSERT INTO dead_letters \
         (body, routing_key, headers, intent_id, intent_type, channels, reason, error, \
          pusher_status, pusher_body, attempts, first_seen_at_ms, dead_lettered_at_ms, replay_of) \
         VALUES ({}) \
         ON CONFLICT (intent_id, reason, COALESCE(replay_of, 0)) \
         WHERE status = 'pending' AND intent_id IS NOT NULL DO NOTHING RETURNING id",
        placeholders.join(", ")
    );
    // The stored intent id is the NUL-free one, so look that one up.
    let mut key = Args::new(dialect);
    let pending = format!(
        "SELECT id FROM dead_letters WHERE intent_id = {} AND reason = {} \
         AND COALESCE(replay_of, 0) = {} AND status = 'pending'",
        key.bind(Bind::Text(intent_id.as_deref())),
        key.bind(Bind::text(dl.reason.as_str())),
        key.bind(Bind::int(dl.replay_of.unwrap_or(0))),
    );
    for _ in 0..INSERT_ROUNDS {
        let inserted: Vec<(i64,)> = tx.fetch(op, &insert, &values.binds).await?;
        if let Some(&(id,)) = inserted.first() {
            return Ok(id);
        }
        let existing: Vec<(i64,)> = tx.fetch(op, &pending, &key.binds).await?;
        if let Some(&(id,)) = existing.first() {
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
const MAX_STORED_JSON_DEPTH: usize = 64;

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
}
