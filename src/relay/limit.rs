//! What RabbitMQ gave up on. An intent handed out
//! [`DELIVERY_LIMIT`](crate::amqp::DELIVERY_LIMIT) times without an ack is
//! dead-lettered by the broker into the limit queue
//! ([`crate::amqp::limit_queue`]); this drains it into the dead-letter
//! store with reason `delivery_limit`, replayable like every dead letter,
//! and acks each message only once its row is committed. Order does not
//! matter here, so every worker drains the queue as a competing consumer.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio::time::MissedTickBehavior;

use super::session::{self, LIVENESS_INTERVAL};
use super::{reconnect_waits, sleep_or_shutdown, RelayError};
use crate::amqp::{self, DELIVERY_LIMIT};
use crate::clock::now_ms;
use crate::config::Config;
use crate::deadletter::{replay, DeadLetterReason, NewDeadLetter, Store};
use crate::intent::{self, DecodeContext};
use crate::metrics;
use crate::shutdown::Shutdown;

/// Messages taken at a time: each is one insert, and they are rare.
const PREFETCH: u16 = 50;

/// Headers the broker adds when it dead-letters, left out of the stored
/// row: what they say is in the row's error, and a replay is a new message.
const BROKER_HEADERS: &[&str] = &[
    "x-death",
    "x-delivery-count",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// Drains the limit queue until shutdown, reconnecting with backoff.
pub(super) async fn drain(
    cfg: Config,
    store: Store,
    mut shutdown: Shutdown,
) -> Result<(), RelayError> {
    let queue = amqp::limit_queue(&cfg.amqp);
    let mut waits = reconnect_waits();
    while !shutdown.is_shutdown() {
        match drain_once(&cfg, &store, &queue, &mut shutdown).await {
            Ok(()) => break,
            Err(e) => {
                let wait = waits.next().unwrap_or(Duration::from_secs(15));
                tracing::warn!(%queue, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot drain intents that reached the delivery limit; retrying");
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// One connection's worth of draining; `Ok` on shutdown. A message whose
/// row cannot be stored stays unacked and goes back with the channel.
async fn drain_once(
    config: &Config,
    store: &Store,
    queue: &str,
    shutdown: &mut Shutdown,
) -> Result<(), String> {
    let cfg = &config.amqp;
    let conn = amqp::connect(cfg, &format!("pusher-relay delivery limit {queue}"))
        .await
        .map_err(|e| e.to_string())?;
    let channel = amqp::open_channel(&conn).await.map_err(|e| e.to_string())?;
    // Declared here too, so that draining never waits for a session.
    amqp::declare_limit_queue(&channel, cfg)
        .await
        .map_err(|e| e.to_string())?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .map_err(|e| format!("setting prefetch: {e}"))?;
    let mut consumer = channel
        .basic_consume(
            queue,
            "pusher-relay-delivery-limit",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("starting the consumer: {e}"))?;
    let mut liveness = tokio::time::interval(LIVENESS_INTERVAL);
    liveness.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            _ = shutdown.recv() => break Ok(()),
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    let tag = delivery.delivery_tag;
                    let row = dead_letter(config, delivery);
                    tracing::error!(id = row.intent_id.as_deref().unwrap_or_default(), channels = ?row.channels, error = %row.error, "an intent reached RabbitMQ's delivery limit; stored as a dead letter");
                    if let Err(e) = store.insert(&row).await {
                        break Err(format!("cannot store it: {e}"));
                    }
                    metrics::dead_letter(DeadLetterReason::DeliveryLimit.as_str());
                    if let Err(e) = channel.basic_ack(tag, BasicAckOptions::default()).await {
                        break Err(format!("ack failed: {e}"));
                    }
                }
                Some(Err(e)) => break Err(e.to_string()),
                None => break Err("the broker cancelled the consumer".into()),
            },
            _ = liveness.tick() => {
                if !channel.status().connected() {
                    break Err("RabbitMQ closed the channel or the connection".into());
                }
            }
        }
    };
    let _ = channel.close(200, "pusher-relay stopping").await;
    let _ = conn.close(200, "pusher-relay stopping").await;
    result
}

/// The row a limit-queue message becomes: as much of its intent as can be
/// read, the routing key it was first published with, and where and why
/// the broker gave up on it.
fn dead_letter(cfg: &Config, delivery: lapin::message::Delivery) -> NewDeadLetter {
    let props = delivery.properties;
    let now = now_ms();
    let death = first_death(props.headers().as_ref());
    let message_id = props.message_id().as_ref().map(|m| m.as_str().to_string());
    let ctx = DecodeContext {
        message_id: message_id.as_deref(),
        enqueued_at_ms: props.timestamp().map(|s| (s as i64).saturating_mul(1000)),
        now_ms: now,
        max_event_bytes: cfg.pusher.max_event_bytes,
        templates: &cfg.relay.templates,
    };
    let (intent_id, intent_type, channels) = match intent::decode(&delivery.data, &ctx) {
        Ok(intent) => (Some(intent.id), Some(intent.kind), intent.trigger.channels),
        Err(_) => (
            message_id,
            Some(session::loose_type(&delivery.data)).filter(|k| !k.is_empty()),
            Vec::new(),
        ),
    };
    let from = death.queue.as_deref().unwrap_or("an intent queue");
    NewDeadLetter {
        routing_key: death
            .routing_key
            .unwrap_or_else(|| delivery.routing_key.as_str().to_string()),
        headers: amqp::properties_json(&without_broker_headers(&props)),
        intent_id,
        intent_type,
        channels,
        reason: DeadLetterReason::DeliveryLimit,
        error: format!(
            "RabbitMQ handed it out {DELIVERY_LIMIT} times from {from:?} without an ack \
             (x-delivery-limit): each time a worker crashed, lost its connection or gave it \
             back while holding it. Replay it once the cause is fixed"
        ),
        pusher_status: None,
        pusher_body: None,
        attempts: 0,
        first_seen_at_ms: now,
        dead_lettered_at_ms: now,
        replay_of: replay::replay_of(&props),
        body: delivery.data,
    }
}

/// Where the broker first dead-lettered a message, from its `x-death`.
#[derive(Debug, Default, PartialEq)]
struct Death {
    queue: Option<String>,
    routing_key: Option<String>,
}

fn first_death(headers: Option<&FieldTable>) -> Death {
    let text = |v: &AMQPValue| match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    };
    let Some(AMQPValue::FieldArray(deaths)) = headers.and_then(|h| h.inner().get("x-death")) else {
        return Death::default();
    };
    // The broker puts the most recent death first; the original routing key
    // is the same in each, the queue that gave up is the first's.
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        return Death::default();
    };
    let death = death.inner();
    Death {
        queue: death.get("queue").and_then(text),
        routing_key: match death.get("routing-keys") {
            Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(text),
            _ => None,
        },
    }
}

fn without_broker_headers(props: &lapin::BasicProperties) -> lapin::BasicProperties {
    let Some(headers) = props.headers() else {
        return props.clone();
    };
    let kept: std::collections::BTreeMap<_, _> = headers
        .inner()
        .iter()
        .filter(|(k, _)| !BROKER_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    props.clone().with_headers(FieldTable::from(kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::FieldArray;

    fn death(queue: &str, key: &str) -> AMQPValue {
        let mut t = FieldTable::default();
        t.insert("queue".into(), AMQPValue::LongString(queue.into()));
        t.insert(
            "reason".into(),
            AMQPValue::LongString("delivery_limit".into()),
        );
        t.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(key.into())])),
        );
        AMQPValue::FieldTable(t)
    }

    #[test]
    fn the_first_death_names_the_queue_and_the_original_routing_key() {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![
                death("intents.shard-3", "chat.message"),
                death("older", "other"),
            ])),
        );
        assert_eq!(
            first_death(Some(&headers)),
            Death {
                queue: Some("intents.shard-3".into()),
                routing_key: Some("chat.message".into()),
            }
        );
        assert_eq!(first_death(None), Death::default());
        let mut odd = FieldTable::default();
        odd.insert("x-death".into(), AMQPValue::LongString("not a list".into()));
        assert_eq!(
            first_death(Some(&odd)),
            Death::default(),
            "a producer's own x-death is not trusted to be well formed"
        );
    }

    #[test]
    fn the_stored_row_leaves_the_brokers_headers_out_and_keeps_the_producers() {
        let mut headers = FieldTable::default();
        headers.insert("x-death".into(), death("q", "k"));
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(50));
        headers.insert(
            "ordering-key".into(),
            AMQPValue::LongString("room-1".into()),
        );
        let props = lapin::BasicProperties::default().with_headers(headers);
        let kept = without_broker_headers(&props);
        let names: Vec<String> = kept
            .headers()
            .as_ref()
            .map(|h| h.inner().keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["ordering-key".to_string()]);
    }
}
