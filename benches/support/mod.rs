//! What the benchmark and the soak share: a confirmed channel to the local
//! RabbitMQ, a quorum queue, publishing the intents the fake Pusher checks
//! order by, and the worker binary started on its own queue,
//! exchanges and SQLite store against a fake Pusher on loopback.

// Each benchmark uses part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::distant::now_ms;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub async fn channel() -> (Connection, Channel) {
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ at 127.0.0.1:5672");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(Default::default())
        .await
        .expect("confirms");
    (conn, ch)
}

pub async fn declare_quorum(ch: &Channel, queue: &str) {
    use lapin::types::AMQPValue;
    let text = |s: &str| AMQPValue::LongString(s.into());
    // The arguments the worker declares its queues with (its delivery limit
    // and the target beside it), so that it finds the queue as its own.
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(pusher_relay::amqp::DELIVERY_LIMIT),
    );
    args.insert("x-dead-letter-exchange".into(), text(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        text(&format!("{queue}.delivery-limit")),
    );
    args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    args.insert("x-overflow".into(), text("reject-publish"));
    ch.queue_declare(
        queue,
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("queue");
}

/// `bin run` for app 1 with `key`/`secret` at 127.0.0.1:`pusher_port`,
/// consuming `queue` (exchanges `{queue}.x` and `{queue}.w`), dead letters
/// in `db`, warnings only on stderr; the caller adds the rest and spawns.
pub fn worker(
    bin: &str,
    key: &str,
    secret: &str,
    pusher_port: u16,
    queue: &str,
    db: &Path,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .current_dir(std::env::temp_dir())
        .env("PUSHER_APP_ID", "1")
        .env("PUSHER_APP_KEY", key)
        .env("PUSHER_APP_SECRET", secret)
        .env("PUSHER_HOST", "127.0.0.1")
        .env("PUSHER_PORT", pusher_port.to_string())
        .env("PUSHER_SCHEME", "http")
        .env("AMQP_EXCHANGE", format!("{queue}.x"))
        .env("AMQP_WEBHOOK_EXCHANGE", format!("{queue}.w"))
        .env("AMQP_QUEUE", queue)
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    cmd
}

/// Removes what [`worker`] and [`declare_quorum`] made for `queue`.
pub async fn cleanup(ch: &Channel, queue: &str, db: &Path) {
    let _ = ch.queue_delete(queue, Default::default()).await;
    let _ = ch
        .queue_delete(&format!("{queue}.delivery-limit"), Default::default())
        .await;
    let _ = ch
        .exchange_delete(&format!("{queue}.x"), Default::default())
        .await;
    let _ = ch
        .exchange_delete(&format!("{queue}.w"), Default::default())
        .await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

pub fn intent(channel: &str, seq: usize) -> String {
    format!("{{\"type\":\"event\",\"channels\":[\"{channel}\"],\"event\":\"tick\",\"data\":{{\"seq\":{seq},\"t\":{}}}}}", now_ms())
}

/// Publishes one intent per name from `channels` (in that order) to the
/// default exchange, each channel's `seq` counting up from `seqs`'s entry.
pub async fn publish(
    ch: &Channel,
    queue: &str,
    channels: &[String],
    seqs: &mut HashMap<String, usize>,
) {
    publish_to(ch, "", queue, channels, seqs, false).await;
}

/// As [`publish`], to `exchange` with `routing_key`; `keyed` sets each
/// intent's ordering key (its channel) and message id, as producers do.
pub async fn publish_to(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    channels: &[String],
    seqs: &mut HashMap<String, usize>,
    keyed: bool,
) {
    let mut confirms = Vec::with_capacity(5000);
    for channel in channels {
        let seq = seqs.entry(channel.clone()).or_default();
        let body = intent(channel, *seq);
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        if keyed {
            props = props
                .with_headers(pusher_relay::publish::ordering_headers(channel))
                .with_message_id(format!("{channel}/{seq}").into());
        }
        *seq += 1;
        confirms.push(
            ch.basic_publish(
                exchange,
                routing_key,
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .expect("publish"),
        );
        if confirms.len() == 5000 {
            for c in confirms.drain(..) {
                c.await.expect("confirm");
            }
        }
    }
    for c in confirms {
        c.await.expect("confirm");
    }
}
