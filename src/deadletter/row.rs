//! Reading dead letters back: the columns a row selects on each backend, and
//! the checked conversion of a row into a [`DeadLetter`].

use super::backend::Dialect;
use super::error::StoreError;
use super::record::{DeadLetter, DeadLetterReason, DeadLetterStatus};

/// The columns a [`RawRow`] reads. A page (`with_body` false) reads every
/// column but the body and the headers, which read as empty so that rows
/// keep one shape: a page never loads bodies.
pub(super) fn columns(dialect: Dialect, with_body: bool) -> String {
    let (body, headers) = match (with_body, dialect) {
        (true, _) => ("body", dialect.headers_text()),
        (false, Dialect::Sqlite) => ("X'' AS body", "'{}' AS headers"),
        (false, Dialect::Postgres) => ("''::bytea AS body", "'{}'::text AS headers"),
    };
    // PostgreSQL's channels are TEXT[]; read as JSON like SQLite's, so that
    // one row type serves both. Its pusher_status is INTEGER, read as i64.
    let (channels, pusher_status) = match dialect {
        Dialect::Sqlite => ("channels", "pusher_status"),
        Dialect::Postgres => (
            "array_to_json(channels)::text AS channels",
            "pusher_status::bigint AS pusher_status",
        ),
    };
    format!(
        "id, {body}, routing_key, {headers}, intent_id, intent_type, {channels}, reason, error, \
         {pusher_status}, pusher_body, attempts, first_seen_at_ms, dead_lettered_at_ms, \
         replay_count, last_replayed_at_ms, status"
    )
}

/// A row as the database returns it, before the checks that can mark it corrupt.
#[derive(sqlx::FromRow)]
pub(super) struct RawRow {
    id: i64,
    body: Vec<u8>,
    routing_key: String,
    headers: String,
    intent_id: Option<String>,
    intent_type: Option<String>,
    /// A JSON array of strings on both backends (see [`columns`]).
    channels: String,
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
        let channels = serde_json::from_str(&self.channels)
            .map_err(|e| corrupt(format!("channels is not a JSON array of strings: {e}")))?;
        let reason = self
            .reason
            .parse::<DeadLetterReason>()
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
        let status = self.status.parse::<DeadLetterStatus>().map_err(corrupt)?;
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
