//! The parked log: intents of hot channels, kept in the store's database
//! beside the dead letters while the relay serves every other channel from
//! the queue (the why is in `relay::parking`).
//!
//! The store is the place because it is already what a delivery's ack waits
//! on (a dead letter is committed before its ack) and already shared by the
//! workers that may take a queue over. Rows are read back by group in `seq`
//! order, a page at a time, so a burst of any size costs memory for one page.
//! Each operation is written once over the seam in `backend.rs`.

use super::backend::{Args, Bind};
use super::error::StoreError;
use super::store::Store;

/// Rows inserted by one statement at most: 10 binds each stays far below
/// either backend's limit on parameters.
const ROWS_PER_STATEMENT: usize = 100;

/// An intent to park.
#[derive(Debug, Clone, PartialEq)]
pub struct NewParked {
    /// Empty when the intent has none (then it cannot be matched on redelivery).
    pub intent_id: String,
    pub channels: Vec<String>,
    /// The original AMQP body, decoded again when the row is read back.
    pub body: Vec<u8>,
    pub routing_key: String,
    /// JSON object of the AMQP headers and properties, for a dead letter.
    pub headers: serde_json::Value,
    pub enqueued_at_ms: Option<i64>,
    pub first_seen_at_ms: i64,
    pub parked_at_ms: i64,
    /// The dead letter this intent is a replay of.
    pub replay_of: Option<i64>,
}

/// A parked intent read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Parked {
    pub seq: i64,
    pub row: NewParked,
}

/// One parked group of a log, as a worker rebuilds its parked set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedGroup {
    pub group: String,
    pub rows: u64,
    /// Every channel its rows address.
    pub channels: Vec<String>,
    pub oldest_parked_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct RawParked {
    seq: i64,
    intent_id: String,
    channels: String,
    body: Vec<u8>,
    routing_key: String,
    headers: String,
    enqueued_at_ms: Option<i64>,
    first_seen_at_ms: i64,
    parked_at_ms: i64,
    replay_of: Option<i64>,
}

fn corrupt(what: &str, seq: i64, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        id: seq,
        detail: format!("parked intent's {what} is not valid JSON: {e}"),
    }
}

impl RawParked {
    fn into_parked(self) -> Result<Parked, StoreError> {
        Ok(Parked {
            seq: self.seq,
            row: NewParked {
                intent_id: self.intent_id,
                channels: serde_json::from_str(&self.channels)
                    .map_err(|e| corrupt("channels", self.seq, e))?,
                body: self.body,
                routing_key: self.routing_key,
                headers: serde_json::from_str(&self.headers)
                    .map_err(|e| corrupt("headers", self.seq, e))?,
                enqueued_at_ms: self.enqueued_at_ms,
                first_seen_at_ms: self.first_seen_at_ms,
                parked_at_ms: self.parked_at_ms,
                replay_of: self.replay_of,
            },
        })
    }
}

impl Store {
    /// Appends `rows` to `group` of `log`, in order, in one transaction, after
    /// moving every row of the groups in `merge` into `group` (a
    /// multi-channel intent tied them together). Committed (on SQLite,
    /// synced) when this returns, so the caller may ack. Returns how many
    /// rows were added: an intent id already in the log adds nothing.
    pub async fn park(
        &self,
        log: &str,
        group: &str,
        merge: &[String],
        rows: &[NewParked],
    ) -> Result<u64, StoreError> {
        const OP: &str = "park";
        let dialect = self.pool.dialect();
        let mut tx = self.pool.begin(OP).await?;
        for from in merge {
            let mut args = Args::new(dialect);
            let sql = format!(
                "UPDATE parked_intents SET grp = {} WHERE log = {} AND grp = {}",
                args.bind(Bind::text(group)),
                args.bind(Bind::text(log)),
                args.bind(Bind::text(from)),
            );
            tx.execute(OP, &sql, &args.binds).await?;
        }
        let mut added = 0;
        let texts: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    serde_json::Value::from(r.channels.as_slice()).to_string(),
                    r.headers.to_string(),
                )
            })
            .collect();
        for (chunk, texts) in rows
            .chunks(ROWS_PER_STATEMENT)
            .zip(texts.chunks(ROWS_PER_STATEMENT))
        {
            let mut args = Args::new(dialect);
            let mut values = Vec::with_capacity(chunk.len());
            for (r, (channels, headers)) in chunk.iter().zip(texts) {
                // PostgreSQL text cannot hold NUL; such an id simply cannot
                // be matched on redelivery, as if it had none.
                let id = if dialect.stores_nul() || !r.intent_id.contains('\0') {
                    r.intent_id.as_str()
                } else {
                    ""
                };
                values.push(format!(
                    "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                    args.bind(Bind::text(log)),
                    args.bind(Bind::text(group)),
                    args.bind(Bind::text(id)),
                    args.bind(Bind::text(channels)),
                    args.bind(Bind::Bytes(&r.body)),
                    args.bind(Bind::text(&r.routing_key)),
                    args.bind(Bind::text(headers)),
                    args.bind(Bind::Int(r.enqueued_at_ms)),
                    args.bind(Bind::int(r.first_seen_at_ms)),
                    args.bind(Bind::int(r.parked_at_ms)),
                    args.bind(Bind::Int(r.replay_of)),
                ));
            }
            let sql = format!(
                "INSERT INTO parked_intents (log, grp, intent_id, channels, body, routing_key, \
                 headers, enqueued_at_ms, first_seen_at_ms, parked_at_ms, replay_of) VALUES {} \
                 ON CONFLICT DO NOTHING",
                values.join(", ")
            );
            added += tx.execute(OP, &sql, &args.binds).await?;
        }
        tx.commit(OP).await?;
        Ok(added)
    }

    /// The first `limit` rows of `group` in `log`, oldest first.
    pub async fn parked_page(
        &self,
        log: &str,
        group: &str,
        limit: usize,
    ) -> Result<Vec<Parked>, StoreError> {
        let mut args = Args::new(self.pool.dialect());
        let sql = format!(
            "SELECT seq, intent_id, channels, body, routing_key, headers, enqueued_at_ms, \
             first_seen_at_ms, parked_at_ms, replay_of FROM parked_intents \
             WHERE log = {} AND grp = {} ORDER BY seq LIMIT {}",
            args.bind(Bind::text(log)),
            args.bind(Bind::text(group)),
            args.bind(Bind::int(limit as i64)),
        );
        let rows: Vec<RawParked> = self.pool.fetch("parked_page", &sql, &args.binds).await?;
        rows.into_iter().map(RawParked::into_parked).collect()
    }

    /// Removes finished rows; returns how many were there.
    pub async fn unpark(&self, seqs: &[i64]) -> Result<u64, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let dialect = self.pool.dialect();
        let mut args = Args::new(dialect);
        let sql = format!(
            "DELETE FROM parked_intents WHERE {}",
            dialect.in_list("seq", &args.bind(Bind::Ids(seqs)))
        );
        self.pool.execute("unpark", &sql, &args.binds).await
    }

    /// The groups `log` has rows in, with the channels each addresses.
    pub async fn parked_groups(&self, log: &str) -> Result<Vec<ParkedGroup>, StoreError> {
        const OP: &str = "parked_groups";
        let mut args = Args::new(self.pool.dialect());
        let p = args.bind(Bind::text(log));
        let sql = format!(
            "SELECT grp, COUNT(*), MIN(parked_at_ms) FROM parked_intents WHERE log = {p} \
             GROUP BY grp ORDER BY grp"
        );
        let counts: Vec<(String, i64, i64)> = self.pool.fetch(OP, &sql, &args.binds).await?;
        let sql = format!("SELECT DISTINCT grp, channels FROM parked_intents WHERE log = {p}");
        let lists: Vec<(String, String)> = self.pool.fetch(OP, &sql, &args.binds).await?;
        let mut groups: Vec<ParkedGroup> = counts
            .into_iter()
            .map(|(group, rows, oldest)| ParkedGroup {
                group,
                rows: rows.max(0) as u64,
                channels: Vec::new(),
                oldest_parked_at_ms: oldest,
            })
            .collect();
        for (group, list) in lists {
            let channels: Vec<String> =
                serde_json::from_str(&list).map_err(|e| corrupt("channels", 0, e))?;
            if let Some(g) = groups.iter_mut().find(|g| g.group == group) {
                for c in channels {
                    if !g.channels.contains(&c) {
                        g.channels.push(c);
                    }
                }
            }
        }
        for g in &mut groups {
            g.channels.sort();
        }
        Ok(groups)
    }

    /// The parked time of the oldest row of `log`, if it has any.
    pub async fn oldest_parked(&self, log: &str) -> Result<Option<i64>, StoreError> {
        let mut args = Args::new(self.pool.dialect());
        let sql = format!(
            "SELECT MIN(parked_at_ms) FROM parked_intents WHERE log = {}",
            args.bind(Bind::text(log))
        );
        let rows: Vec<(Option<i64>,)> = self.pool.fetch("oldest_parked", &sql, &args.binds).await?;
        Ok(rows.first().and_then(|&(ms,)| ms))
    }
}
