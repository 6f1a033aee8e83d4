//! A session's broker I/O: connecting and consuming, acks, the lag sample,
//! the wake-up a standby session publishes, and the close.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use tokio::time::Instant;

use super::ConsumedQueue;
use crate::amqp::acker::AckTracker;
use crate::amqp::{self, AmqpError};
use crate::config::AmqpConfig;
use crate::metrics;

/// How often the queue depth is sampled for the lag gauge.
pub(crate) const LAG_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a lag sample may hold the event loop (see `sample_lag`).
const LAG_SAMPLE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the close waits for its round trip (see [`close`]).
const CLOSE_SYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a closing session waits for RabbitMQ to apply its last acks.
const SETTLE_PAUSE: Duration = Duration::from_millis(300);

const CONSUMER_TAG: &str = "pusher-relay";

/// A standby session publishes a wake-up to its queue when the queue's
/// parked log has rows, so that whichever consumer is active learns it is
/// (single-active consumers are told nothing else) and goes on with the log
/// even while the queue is empty. A wake-up is this header on an empty body
/// published straight to the queue (the default exchange), as a worker
/// sends it; see `intake::is_wake`.
pub const WAKE_HEADER: &str = "x-pusher-relay-wake";

/// The connection's name as the management UI shows it: the queue in it
/// tells operators (and tests) which worker a connection belongs to.
pub fn connection_name(queue: &str) -> String {
    format!("pusher-relay {queue}")
}

/// Connects, declares the topology and starts consuming `queue` with its
/// share of the prefetch window.
pub(super) async fn consume(
    cfg: &AmqpConfig,
    held: &Arc<amqp::Budget>,
    queue: &ConsumedQueue,
) -> Result<(Connection, Channel, lapin::Consumer), AmqpError> {
    // The queue in the connection name tells operators (and tests) which
    // worker a connection in the management UI belongs to.
    let conn = amqp::connect_within(cfg, &connection_name(&queue.name), held).await?;
    let declared = amqp::declare_topology(&conn, cfg).await?;
    if declared.without_limit.contains(&queue.name)
        && !queue.warned_without_limit.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(queue = %queue.name, fix = %amqp::limit_policy_command(cfg), "this queue was declared by an earlier version, without a delivery limit and its dead-letter target; RabbitMQ 4 drops what a quorum queue redelivers 20 times unless it has a target. The policy below gives it both (`pusher-relay check` reports it too)");
    }
    let channel = amqp::open_channel(&conn).await?;
    channel
        .basic_qos(queue.prefetch, BasicQosOptions::default())
        .await
        .map_err(|source| AmqpError::Channel {
            doing: "setting prefetch",
            source,
        })?;
    let consumer = channel
        .basic_consume(
            &queue.name,
            CONSUMER_TAG,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| AmqpError::Channel {
            doing: "starting the consumer",
            source,
        })?;
    Ok((conn, channel, consumer))
}

/// Stops the consumer, leaving the channel open for the acks still to come.
pub(super) async fn cancel(channel: &Channel) {
    let _ = channel
        .basic_cancel(CONSUMER_TAG, BasicCancelOptions::default())
        .await;
}

/// Sends the acks that are due (see [`AckTracker::take_acks`]).
pub(super) async fn send_acks(
    channel: &Channel,
    acks: &mut AckTracker,
    stragglers: Option<Duration>,
) -> Result<(), String> {
    for ack in acks.take_acks(Instant::now().into_std(), stragglers) {
        channel
            .basic_ack(
                ack.tag,
                BasicAckOptions {
                    multiple: ack.multiple,
                },
            )
            .await
            .map_err(|e| format!("ack failed: {e}"))?;
    }
    Ok(())
}

/// Publishes a wake-up to `queue` (see [`WAKE_HEADER`]); a failure is
/// harmless, as the next tick sends another.
pub(super) async fn publish_wake(channel: &Channel, queue: &str) {
    let mut headers = FieldTable::default();
    headers.insert(WAKE_HEADER.into(), AMQPValue::Boolean(true));
    let props = lapin::BasicProperties::default().with_headers(headers);
    let _ = channel
        .basic_publish("", queue, BasicPublishOptions::default(), &[], props)
        .await;
}

/// Samples the queue's depth for the lag gauge. The event loop waits on
/// this broker round trip, so it is bounded by [`LAG_SAMPLE_TIMEOUT`]: a
/// broker that stops answering while the connection looks alive (a
/// partition the heartbeat has not caught yet) would otherwise hold every
/// delivery, ack and Pusher answer behind it. A sample that times out is
/// skipped.
pub(crate) async fn sample_lag(
    channel: &Channel,
    queue: &ConsumedQueue,
    queues: &[Arc<ConsumedQueue>],
) {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declared = tokio::time::timeout(
        LAG_SAMPLE_TIMEOUT,
        channel.queue_declare(&queue.name, passive, FieldTable::default()),
    )
    .await;
    if let Ok(Ok(declared)) = declared {
        queue
            .ready
            .store(declared.message_count(), Ordering::Relaxed);
        let total: u64 = queues
            .iter()
            .map(|q| u64::from(q.ready.load(Ordering::Relaxed)))
            .sum();
        metrics::consumer_lag(total);
    }
}

pub(super) async fn close(conn: Connection, channel: Channel, queue: &str) {
    // A synchronous round trip first: the broker answers it only after it has
    // processed every ack sent before it on this channel, so none of them can
    // be lost to the close. Unacked deliveries then go back to the queue.
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    // Bounded: with the held bytes at their budget, the answer waits behind
    // a delivery the guard holds back, and only the channel's close
    // releases it.
    let answered = tokio::time::timeout(
        CLOSE_SYNC_TIMEOUT,
        channel.queue_declare(queue, passive, FieldTable::default()),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    // Processed by the channel is not yet applied by a quorum queue: its
    // leader settles acks through Raft, and a channel closed meanwhile has
    // some of them dropped and their messages returned (rabbitmq-server
    // #10327, open). On this project's 2-core machines about one graceful
    // shutdown in twenty sent tens of delivered intents around again. A
    // channel that no longer answers (the connection was lost) has nothing
    // left to settle, and its reconnect should not wait.
    if answered {
        tokio::time::sleep(SETTLE_PAUSE).await;
    }
    let _ = channel.close(200, "pusher-relay stopping").await;
    let _ = conn.close(200, "pusher-relay stopping").await;
}
