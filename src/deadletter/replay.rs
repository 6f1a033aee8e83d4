//! Replay: republish dead letters to the intent exchange so the worker tries
//! them again.
//!
//! The run is a loop over batches, so memory holds one batch whatever the
//! number of rows:
//!
//! 1. claim up to [`ReplayOptions::batch_size`] rows in the database (see
//!    [`Store::claim`]); claims live in the rows, not in this process, so two
//!    runs at once (two operators, CLI and API, two hosts on PostgreSQL)
//!    never take the same row;
//! 2. publish each row's original body with its original routing key,
//!    properties and headers, plus [`DEAD_LETTER_HEADER`] naming the row,
//!    with publisher confirms and `mandatory` (an unroutable message counts
//!    as failed, not as sent);
//! 3. await the batch's confirms, then mark the confirmed rows replayed in one
//!    statement and release the claims of the others.
//!
//! Crash between a confirm and the mark: the row stays claimed, its claim
//! goes stale after [`ReplayOptions::stale_claim_after`], and a later run
//! republishes it. Replay is at-least-once, like the rest of the relay.
//!
//! The worker reads the header back ([`replay_of`]) into the dead letter of a
//! replay that fails again, which makes it a new row even while the row it
//! came from is still pending, between the publish and the mark.

use std::time::{Duration, SystemTime};

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use serde::Serialize;

use super::error::StoreError;
use super::filter::{unix_ms, Filter};
use super::ops::{ClaimRequest, Claimed};
use super::store::Store;
use crate::amqp::AmqpError;
use crate::config::AmqpConfig;
use crate::metrics;

/// The AMQP header a replayed message carries: the dead letter's id, as a
/// string (every AMQP client reads strings the same way).
pub const DEAD_LETTER_HEADER: &str = "x-pusher-relay-dead-letter";

/// The dead letter a delivery is a replay of, read back from its
/// [`DEAD_LETTER_HEADER`]; `None` for an intent an application published.
/// A header that is not an id (only an application could have set one) is
/// ignored: the delivery is then taken as a first failure.
pub fn replay_of(props: &BasicProperties) -> Option<i64> {
    match props.headers().as_ref()?.inner().get(DEAD_LETTER_HEADER)? {
        AMQPValue::LongString(id) => std::str::from_utf8(id.as_bytes()).ok()?.parse().ok(),
        _ => None,
    }
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Replay rows already replayed too.
    pub force: bool,
    /// Rows claimed, published and marked together: bounds memory and the
    /// work repeated after a crash.
    pub batch_size: u32,
    /// A claim older than this is taken to belong to a run that died. Far
    /// above the time one batch takes, so a live run's claim is not stolen.
    pub stale_claim_after: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            force: false,
            batch_size: 500,
            stale_claim_after: Duration::from_secs(300),
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Rows matching the filter.
    pub matched: u64,
    /// Of those, rows the run would take (pending, or all with force).
    pub eligible: u64,
    /// Matching rows skipped because they were already replayed (no force).
    pub skipped_replayed: u64,
    /// Republished, confirmed and marked replayed.
    pub replayed: u64,
    /// Could not be republished (nack, unroutable, channel error); left pending.
    pub failed: u64,
    /// Why some failed: the first few messages.
    pub errors: Vec<String>,
    /// True when nothing was published (`--dry-run`).
    pub dry_run: bool,
}

/// Failed messages kept in a report; the rest are counted only.
const MAX_REPORTED_ERRORS: usize = 10;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store failed; rows this run had claimed are released by staleness.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// RabbitMQ could not be reached or its channel closed.
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    /// The channel closed mid-run; the report says what was done before.
    #[error("RabbitMQ channel closed during replay after {} replayed: {detail}", report.replayed)]
    ChannelClosed {
        /// What was done before the channel closed.
        report: ReplayReport,
        /// The broker's reason, as far as known.
        detail: String,
    },
}

/// Counts what [`replay`] would do, changing nothing.
pub async fn plan(store: &Store, filter: &Filter, force: bool) -> Result<ReplayReport, StoreError> {
    let matched = u64::try_from(store.count_matching(filter).await?).unwrap_or(0);
    let eligible = u64::try_from(store.count_replayable(filter, force).await?).unwrap_or(0);
    Ok(ReplayReport {
        matched,
        eligible,
        skipped_replayed: matched.saturating_sub(eligible),
        dry_run: true,
        ..ReplayReport::default()
    })
}

/// Republishes every matching dead letter (pending ones unless `force`) to
/// `amqp.exchange`; `progress(done, eligible)` is called after each batch.
pub async fn replay(
    store: &Store,
    amqp: &AmqpConfig,
    filter: &Filter,
    opts: &ReplayOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReplayReport, ReplayError> {
    let mut report = plan(store, filter, opts.force).await?;
    report.dry_run = false;
    if report.eligible == 0 {
        return Ok(report);
    }
    let started = SystemTime::now();
    let started_ms = unix_ms(started);
    let claim_id = format!(
        "replay-{}-{}-{:016x}",
        std::process::id(),
        started_ms,
        rand::random::<u64>()
    );
    let (conn, channel) = crate::amqp::connect_confirmed(amqp, "pusher-relay replay").await?;
    let mut after_id = 0;
    let result = loop {
        let now_ms = unix_ms(SystemTime::now());
        let stale_ms = i64::try_from(opts.stale_claim_after.as_millis()).unwrap_or(i64::MAX);
        let batch = match store
            .claim(&ClaimRequest {
                filter,
                claim_id: &claim_id,
                force: opts.force,
                started_ms,
                now_ms,
                stale_before_ms: now_ms.saturating_sub(stale_ms),
                after_id,
                limit: opts.batch_size.max(1),
            })
            .await
        {
            Ok(batch) => batch,
            Err(e) => break Err(e.into()),
        };
        let Some(last) = batch.last() else {
            break Ok(());
        };
        after_id = last.id;
        let (ok, failed) = publish_batch(&channel, &amqp.exchange, &batch, &mut report).await;
        let marked = store
            .mark_replayed(&ok, &claim_id, unix_ms(SystemTime::now()))
            .await;
        let released = store.release_claims(&failed, &claim_id).await;
        report.replayed += ok.len() as u64;
        report.failed += failed.len() as u64;
        metrics::replays("replayed", ok.len() as u64);
        metrics::replays("failed", failed.len() as u64);
        if let Err(e) = marked.and(released) {
            break Err(e.into());
        }
        progress(report.replayed + report.failed, report.eligible);
        if !channel.status().connected() {
            break Err(ReplayError::ChannelClosed {
                report: report.clone(),
                detail: report
                    .errors
                    .last()
                    .cloned()
                    .unwrap_or_else(|| "no reason given".into()),
            });
        }
    };
    let _ = conn.close(200, "replay done").await;
    result.map(|()| report)
}

/// Publishes the whole batch, then awaits every confirm: one round trip per
/// batch instead of one per row. Returns (confirmed ids, failed ids).
async fn publish_batch(
    channel: &Channel,
    exchange: &str,
    batch: &[Claimed],
    report: &mut ReplayReport,
) -> (Vec<i64>, Vec<i64>) {
    let note = |report: &mut ReplayReport, msg: String| {
        if report.errors.len() < MAX_REPORTED_ERRORS {
            report.errors.push(msg);
        }
    };
    let options = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let mut waiting = Vec::with_capacity(batch.len());
    let mut failed = Vec::new();
    for row in batch {
        let props = properties(row);
        match channel
            .basic_publish(exchange, &row.routing_key, options, &row.body, props)
            .await
        {
            Ok(confirm) => waiting.push((row.id, confirm)),
            Err(e) => {
                note(
                    report,
                    format!("dead letter {}: publish failed: {e}", row.id),
                );
                failed.push(row.id);
            }
        }
    }
    let mut ok = Vec::with_capacity(waiting.len());
    for (id, confirm) in waiting {
        match confirm.await {
            Ok(c) if c.is_nack() => {
                note(
                    report,
                    format!("dead letter {id}: the broker refused it (nack)"),
                );
                failed.push(id);
            }
            Ok(c) => {
                if c.take_message().is_some() {
                    note(
                        report,
                        format!("dead letter {id}: unroutable on exchange {exchange:?} (no queue bound)"),
                    );
                    failed.push(id);
                } else {
                    ok.push(id);
                }
            }
            Err(e) => {
                note(report, format!("dead letter {id}: not confirmed: {e}"));
                failed.push(id);
            }
        }
    }
    (ok, failed)
}

/// The stored properties and headers, back as AMQP properties, plus the
/// replay header. The timestamp is the replay time: it is when this message
/// was enqueued, and the original one would make `RELAY_MAX_INTENT_AGE`
/// expire the replay at once (an intent's own `created_at` still counts).
fn properties(row: &Claimed) -> BasicProperties {
    let h = &row.headers;
    let text = |k: &str| h.get(k).and_then(|v| v.as_str());
    let mut props = BasicProperties::default()
        .with_content_type(text("content_type").unwrap_or("application/json").into())
        .with_delivery_mode(
            h.get("delivery_mode")
                .and_then(|v| v.as_u64())
                .and_then(|v| u8::try_from(v).ok())
                .unwrap_or(2),
        )
        .with_timestamp(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        );
    if let Some(v) = text("message_id") {
        props = props.with_message_id(v.into());
    }
    if let Some(v) = text("correlation_id") {
        props = props.with_correlation_id(v.into());
    }
    if let Some(v) = text("app_id") {
        props = props.with_app_id(v.into());
    }
    if let Some(v) = text("content_encoding") {
        props = props.with_content_encoding(v.into());
    }
    if let Some(v) = h.get("priority").and_then(|v| v.as_u64()) {
        props = props.with_priority(u8::try_from(v).unwrap_or(u8::MAX));
    }
    if let Some(v) = text("reply_to") {
        props = props.with_reply_to(v.into());
    }
    if let Some(v) = text("expiration") {
        props = props.with_expiration(v.into());
    }
    if let Some(v) = text("type") {
        props = props.with_type(v.into());
    }
    if let Some(v) = text("cluster_id") {
        props = props.with_cluster_id(v.into());
    }
    // `user_id` is kept in the store but not sent again: RabbitMQ refuses a
    // user_id other than the publishing connection's user, and would close
    // the replay's channel half-way.
    let mut table = h
        .get("headers")
        .and_then(|v| serde_json::from_value::<FieldTable>(v.clone()).ok())
        .unwrap_or_default();
    table.insert(
        DEAD_LETTER_HEADER.into(),
        AMQPValue::LongString(row.id.to_string().into()),
    );
    props.with_headers(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_sends_every_stored_property_but_user_id() {
        let original = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("identity".into())
            .with_delivery_mode(2)
            .with_priority(7)
            .with_correlation_id("corr-1".into())
            .with_reply_to("replies".into())
            .with_expiration("60000".into())
            .with_message_id("m-1".into())
            .with_type("chat.message".into())
            .with_user_id("guest".into())
            .with_app_id("shop".into())
            .with_cluster_id("c-1".into());
        let row = Claimed {
            id: 9,
            body: Vec::new(),
            routing_key: "chat.message".into(),
            headers: crate::amqp::properties_json(&original),
        };
        let replayed = properties(&row);
        assert_eq!(replayed.content_encoding(), original.content_encoding());
        assert_eq!(replayed.priority(), original.priority());
        assert_eq!(replayed.correlation_id(), original.correlation_id());
        assert_eq!(replayed.reply_to(), original.reply_to());
        assert_eq!(replayed.expiration(), original.expiration());
        assert_eq!(replayed.message_id(), original.message_id());
        assert_eq!(replayed.kind(), original.kind());
        assert_eq!(replayed.app_id(), original.app_id());
        assert_eq!(replayed.cluster_id(), original.cluster_id());
        assert_eq!(replayed.delivery_mode(), original.delivery_mode());
        assert_eq!(replayed.user_id(), &None);
        assert_eq!(row.headers["user_id"], "guest", "kept in the store");
    }
}
