//! Pusher webhook ingress: `POST /webhooks/pusher` verifies the request and
//! republishes each event to the webhook exchange, so handling webhooks is
//! no longer a synchronous side effect of an HTTP request.
//!
//! Pusher retries a non-2xx webhook for five minutes, so the answer is 200
//! only once RabbitMQ has confirmed every event, and 503 while the broker is
//! unavailable: Pusher then keeps the webhook and tries again.
//!
//! Replays: a webhook whose `time_ms` is more than [`WEBHOOK_WINDOW`] from
//! this server's clock is refused (403), and one seen before within the
//! window is answered 200 without being published again (a bounded
//! in-memory set, `Seen`), since that may be Pusher retrying after a lost 200.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use crate::amqp;
use crate::config::{AmqpConfig, Secret};
use crate::metrics;
use crate::pusher::webhook::{self, WebhookToken};

/// Largest webhook body accepted; Pusher's batched webhooks are far smaller.
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// How long one publish may wait for its confirm before the webhook is
/// answered 503 (Pusher wants an answer within a few seconds).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(3);

/// How far a webhook's `time_ms` may be from this server's clock, either
/// way: 10 minutes. Pusher retries a webhook it got no 2xx for during up to
/// 5 minutes, so its last retry carries a `time_ms` about 5 minutes old;
/// the other 5 minutes absorb clock skew between Pusher and this host and
/// slow deliveries. Older (or further ahead) is refused 403 as a possible
/// replay, and within it a repeat is recognised by [`Seen`].
pub const WEBHOOK_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Webhooks remembered at most; beyond it the one expiring first is
/// forgotten (16-byte digest, its expiry and its place in the expiry
/// order: about 10 MB at most). Only Pusher can sign new webhooks, so
/// this is reached only by a very busy app, not by an attacker.
const SEEN_CAPACITY: usize = 100_000;

/// The refusal, duplicate and forgetting logs each write at most one line
/// this often, saying how many they held back since (the metrics count
/// every refusal and duplicate).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Verifies webhooks and publishes their events.
pub struct WebhookIngress {
    key: String,
    secret: Secret,
    amqp: AmqpConfig,
    /// One confirmed channel, opened on first use and replaced after a failure.
    link: Mutex<Option<(Connection, Channel)>>,
    /// Webhooks published (or being published) within the window.
    seen: std::sync::Mutex<Seen>,
    refusals: LogThrottle,
    duplicates: LogThrottle,
    forgetting: LogThrottle,
}

impl WebhookIngress {
    pub fn new(key: String, secret: Secret, amqp: AmqpConfig) -> Arc<WebhookIngress> {
        Arc::new(WebhookIngress {
            key,
            secret,
            amqp,
            link: Mutex::new(None),
            seen: std::sync::Mutex::new(Seen::new(SEEN_CAPACITY)),
            refusals: LogThrottle::new(LOG_EVERY),
            duplicates: LogThrottle::new(LOG_EVERY),
            forgetting: LogThrottle::new(LOG_EVERY),
        })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // Nothing panics while holding it; if something did, the set is
        // still a valid set.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `digest` for publishing: `Ok` with a guard that forgets the
    /// claim unless [`Claimed::published`] is called (a failed or dropped
    /// publish must not make Pusher's retry look like a duplicate).
    fn claim(&self, digest: BodyDigest, time_ms: i64, now_ms: i64) -> Result<Claimed<'_>, Repeat> {
        let expires_ms = time_ms.saturating_add(window_ms());
        let (answer, forgot) = self.seen().claim(digest, expires_ms, now_ms);
        if forgot {
            if let Some(suppressed) = self.forgetting.admit(Instant::now()) {
                tracing::warn!(
                    capacity = SEEN_CAPACITY,
                    suppressed_since_last_warning = suppressed,
                    "more webhooks within the replay window than remembered; forgot the one expiring first"
                );
            }
        }
        answer.map(|()| Claimed {
            ingress: self,
            digest,
            done: false,
        })
    }

    async fn channel(&self) -> Result<Channel, String> {
        let mut link = self.link.lock().await;
        if let Some((conn, channel)) = link.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let conn = amqp::connect(&self.amqp, "pusher-relay webhooks")
            .await
            .map_err(|e| e.to_string())?;
        let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        *link = Some((conn, channel.clone()));
        Ok(channel)
    }

    /// Publishes every event, then waits for all confirms.
    async fn publish(
        &self,
        time_ms: Option<i64>,
        events: &[serde_json::Value],
    ) -> Result<(), String> {
        let channel = self.channel().await?;
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let name = event
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("unknown")
                .to_string();
            let mut body = event.clone();
            if let (Some(obj), Some(t)) = (body.as_object_mut(), time_ms) {
                obj.insert("time_ms".into(), t.into());
            }
            let mut headers = FieldTable::default();
            if let Some(t) = time_ms {
                headers.insert("x-pusher-time-ms".into(), AMQPValue::LongLongInt(t));
            }
            let mut props = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_headers(headers);
            if let Some(t) = time_ms {
                props = props.with_timestamp((t / 1000).max(0) as u64);
            }
            let confirm = channel
                .basic_publish(
                    &self.amqp.webhook_exchange,
                    &name,
                    BasicPublishOptions::default(),
                    body.to_string().as_bytes(),
                    props,
                )
                .await
                .map_err(|e| e.to_string())?;
            confirms.push((name, confirm));
        }
        for (name, confirm) in confirms {
            let answer = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
                .await
                .map_err(|_| "RabbitMQ did not confirm in time".to_string())?
                .map_err(|e| e.to_string())?;
            if answer.is_nack() {
                return Err(format!("RabbitMQ refused the {name} event"));
            }
            metrics::webhook_event_published(&name);
        }
        Ok(())
    }

    async fn forget_link(&self) {
        *self.link.lock().await = None;
    }
}

fn window_ms() -> i64 {
    WEBHOOK_WINDOW.as_millis() as i64
}

/// The `POST /webhooks/pusher` handler.
pub async fn receive(
    State(ingress): State<Arc<WebhookIngress>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    metrics::webhook_received();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let tokens = [WebhookToken {
        key: &ingress.key,
        secret: ingress.secret.expose(),
    }];
    let now_ms = crate::clock::now_ms();
    let hook = match webhook::verify(
        &tokens,
        header("x-pusher-key"),
        header("x-pusher-signature"),
        &body,
        Some((now_ms, window_ms())),
    ) {
        Ok(hook) => hook,
        Err(e) => {
            metrics::webhook_rejected(e.reason());
            let status = match e {
                webhook::WebhookError::BadJson(_) | webhook::WebhookError::MissingTime => {
                    StatusCode::BAD_REQUEST
                }
                webhook::WebhookError::Stale { .. } => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            // Anyone can send these, as often as they like: one line per
            // LOG_EVERY, the rest counted in it (and in the metric).
            if let Some(suppressed) = ingress.refusals.admit(Instant::now()) {
                tracing::warn!(
                    reason = e.reason(),
                    error = %e,
                    suppressed_since_last_warning = suppressed,
                    "webhook refused"
                );
            }
            return (status, format!("{e}\n"));
        }
    };
    // verify() with a window returns only webhooks that have a time_ms.
    let time_ms = hook.time_ms.unwrap_or(now_ms);
    let claimed = match ingress.claim(BodyDigest::of(&body), time_ms, now_ms) {
        Ok(claimed) => claimed,
        Err(Repeat::Published) => {
            crate::metrics::webhook_duplicate();
            if let Some(suppressed) = ingress.duplicates.admit(Instant::now()) {
                tracing::info!(
                    time_ms,
                    suppressed_since_last_line = suppressed,
                    "webhook already published; answering 200 without publishing it again"
                );
            }
            return (
                StatusCode::OK,
                "{\"published\":0,\"duplicate\":true}\n".into(),
            );
        }
        Err(Repeat::InFlight) => {
            // Not 200: the first copy may still fail, and then Pusher's
            // retry of this one is what delivers it.
            metrics::webhook_rejected("in_flight");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the same webhook is being published right now; retry later\n".into(),
            );
        }
    };
    // Re-read the events as raw JSON so fields this version does not model
    // reach consumers unchanged.
    let raw: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let events: Vec<serde_json::Value> = raw
        .get("events")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    match ingress.publish(hook.time_ms, &events).await {
        Ok(()) => {
            claimed.published();
            (
                StatusCode::OK,
                format!("{{\"published\":{}}}\n", events.len()),
            )
        }
        Err(e) => {
            drop(claimed);
            ingress.forget_link().await;
            metrics::webhook_rejected("broker_unavailable");
            tracing::error!(error = %e, "cannot publish webhook events; answering 503 so that Pusher retries");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "broker unavailable, retry later\n".into(),
            )
        }
    }
}

/// The first 16 bytes of the body's SHA-256. Keyed by the body, not by the
/// `X-Pusher-Signature` text, so that the same webhook with its signature
/// in upper case or padded with spaces (which verify the same) is still a
/// repeat; under one secret the same body is the same signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct BodyDigest([u8; 16]);

impl BodyDigest {
    fn of(body: &[u8]) -> BodyDigest {
        let full = Sha256::digest(body);
        let mut d = [0; 16];
        d.copy_from_slice(&full[..16]);
        BodyDigest(d)
    }
}

/// Why a webhook is not published again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// It was, within the window: answer 200.
    Published,
    /// Another request is publishing it now.
    InFlight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Publishing,
    Published,
}

/// Webhooks accepted within the window, each until its `time_ms` plus the
/// window (after which [`webhook::verify`] refuses it anyway), at most
/// `capacity` of them: memory stays bounded under a flood, and expired
/// entries go on every claim.
#[derive(Debug)]
struct Seen {
    capacity: usize,
    entries: HashMap<BodyDigest, (i64, Progress)>,
    /// (expires_ms, digest), soonest first.
    by_expiry: BTreeSet<(i64, BodyDigest)>,
}

impl Seen {
    fn new(capacity: usize) -> Seen {
        Seen {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// `Ok` when `digest` is new (now remembered as being published), with
    /// whether a live entry had to be forgotten to make room.
    fn claim(
        &mut self,
        digest: BodyDigest,
        expires_ms: i64,
        now_ms: i64,
    ) -> (Result<(), Repeat>, bool) {
        self.expire(now_ms);
        if let Some((_, state)) = self.entries.get(&digest) {
            let repeat = match state {
                Progress::Published => Repeat::Published,
                Progress::Publishing => Repeat::InFlight,
            };
            return (Err(repeat), false);
        }
        let mut forgot = false;
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.by_expiry.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
            forgot = true;
        }
        self.entries
            .insert(digest, (expires_ms, Progress::Publishing));
        self.by_expiry.insert((expires_ms, digest));
        (Ok(()), forgot)
    }

    fn published(&mut self, digest: BodyDigest) {
        if let Some((_, state)) = self.entries.get_mut(&digest) {
            *state = Progress::Published;
        }
    }

    /// Forgets a claim whose publish failed.
    fn abandon(&mut self, digest: BodyDigest) {
        if let Some((expires_ms, Progress::Publishing)) = self.entries.get(&digest).copied() {
            self.entries.remove(&digest);
            self.by_expiry.remove(&(expires_ms, digest));
        }
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some(&(expires_ms, digest)) = self.by_expiry.first() {
            if expires_ms >= now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.entries.remove(&digest);
        }
    }
}

/// A webhook being published; forgotten again when dropped unpublished.
struct Claimed<'a> {
    ingress: &'a WebhookIngress,
    digest: BodyDigest,
    done: bool,
}

impl Claimed<'_> {
    fn published(mut self) {
        self.ingress.seen().published(self.digest);
        self.done = true;
    }
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.ingress.seen().abandon(self.digest);
        }
    }
}

/// Lets one log line through per `every`, counting the ones it holds back.
#[derive(Debug)]
struct LogThrottle {
    every: Duration,
    /// When a line last went through, and how many were held back since.
    state: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the last line)` when a line may be written now.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, held) = &mut *state;
        match last {
            Some(t) if now.saturating_duration_since(*t) < self.every => {
                *held += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(held))
            }
        }
    }
}

/// `pusher-relay webhooks tail`: binds a temporary queue (exclusive,
/// deleted when this process goes) to the webhook exchange and hands each
/// arriving event to `on_event` with its routing key.
pub async fn tail(
    amqp_cfg: &AmqpConfig,
    mut on_event: impl FnMut(&str, serde_json::Value),
) -> Result<(), amqp::AmqpError> {
    use futures_util::StreamExt;
    use lapin::options::{
        BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };

    let conn = amqp::connect(amqp_cfg, "pusher-relay webhooks tail").await?;
    let channel = amqp::open_channel(&conn).await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            &amqp_cfg.webhook_exchange,
            lapin::ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(|source| amqp::AmqpError::Declare {
            what: format!("topic exchange {:?}", amqp_cfg.webhook_exchange),
            source,
        })?;
    let temp = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("", temp, FieldTable::default())
        .await
        .map_err(|source| amqp::AmqpError::Declare {
            what: "a temporary queue".into(),
            source,
        })?;
    channel
        .queue_bind(
            queue.name().as_str(),
            &amqp_cfg.webhook_exchange,
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| amqp::AmqpError::Declare {
            what: "the temporary queue's binding".into(),
            source,
        })?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = channel
        .basic_consume(
            queue.name().as_str(),
            "webhooks-tail",
            no_ack,
            FieldTable::default(),
        )
        .await
        .map_err(|source| amqp::AmqpError::Channel {
            doing: "consuming webhook events",
            source,
        })?;
    tracing::info!(exchange = %amqp_cfg.webhook_exchange, "waiting for webhook events");
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.map_err(|source| amqp::AmqpError::Channel {
            doing: "consuming webhook events",
            source,
        })?;
        let event = serde_json::from_slice(&delivery.data).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&delivery.data).into_owned())
        });
        on_event(delivery.routing_key.as_str(), event);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_760_000_000_000;

    fn d(n: u8) -> BodyDigest {
        BodyDigest([n; 16])
    }

    #[test]
    fn webhook_seen_once_published_is_a_duplicate_until_it_expires() {
        let mut seen = Seen::new(10);
        let expires = NOW + window_ms();
        assert_eq!(seen.claim(d(1), expires, NOW).0, Ok(()));
        assert_eq!(seen.claim(d(1), expires, NOW).0, Err(Repeat::InFlight));
        seen.published(d(1));
        assert_eq!(seen.claim(d(1), expires, NOW + 1).0, Err(Repeat::Published));
        assert_eq!(seen.claim(d(1), expires, expires).0, Err(Repeat::Published));
        // Past its expiry it is gone (verify() refuses it as stale by then).
        assert_eq!(seen.claim(d(2), expires + 5, expires + 1).0, Ok(()));
        assert_eq!(seen.entries.len(), 1);
        assert_eq!(seen.claim(d(1), expires + 5, expires + 1).0, Ok(()));
    }

    #[test]
    fn webhook_whose_publish_failed_is_not_a_duplicate() {
        let mut seen = Seen::new(10);
        assert_eq!(seen.claim(d(1), NOW + 10, NOW).0, Ok(()));
        seen.abandon(d(1));
        assert_eq!(seen.entries.len(), 0);
        assert_eq!(seen.claim(d(1), NOW + 10, NOW).0, Ok(()));
        seen.published(d(1));
        // Abandoning a published one (a late drop) keeps it.
        seen.abandon(d(1));
        assert_eq!(seen.claim(d(1), NOW + 10, NOW).0, Err(Repeat::Published));
    }

    #[test]
    fn webhook_memory_stays_bounded_under_a_flood_forgetting_the_soonest_to_expire() {
        let mut seen = Seen::new(100);
        for i in 0..10_000u32 {
            let mut b = [0; 16];
            b[..4].copy_from_slice(&i.to_be_bytes());
            // Later ones expire later, except one that expires last of all.
            let expires = if i == 3 { i64::MAX } else { NOW + i64::from(i) };
            let (answer, forgot) = seen.claim(BodyDigest(b), expires, NOW);
            assert_eq!(answer, Ok(()));
            assert_eq!(forgot, i >= 100);
            seen.published(BodyDigest(b));
            assert!(seen.entries.len() <= 100);
            assert_eq!(seen.entries.len(), seen.by_expiry.len());
        }
        let mut three = [0; 16];
        three[..4].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(
            seen.claim(BodyDigest(three), i64::MAX, NOW).0,
            Err(Repeat::Published)
        );
    }

    #[test]
    fn webhook_digest_is_of_the_body() {
        assert_eq!(BodyDigest::of(b"{}"), BodyDigest::of(b"{}"));
        assert_ne!(BodyDigest::of(b"{}"), BodyDigest::of(b"{ }"));
    }

    #[test]
    fn webhook_refusal_log_is_one_line_per_interval_with_the_count_held_back() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.admit(start), Some(0));
        for i in 1..=5 {
            assert_eq!(t.admit(start + Duration::from_secs(i)), None);
        }
        assert_eq!(t.admit(start + Duration::from_secs(10)), Some(5));
        assert_eq!(t.admit(start + Duration::from_secs(11)), None);
        assert_eq!(t.admit(start + Duration::from_secs(25)), Some(1));
        // A clock that seems to go back does not panic and holds the line.
        assert_eq!(t.admit(start), None);
    }
}
