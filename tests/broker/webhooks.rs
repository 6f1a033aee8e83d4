//! Webhook ingress: real signed webhooks (bodies as Pusher sends them) into
//! the worker's HTTP listener, read back from RabbitMQ. Each test runs the
//! worker binary in a process of its own, so the webhook counters it checks
//! are moved by that test alone.

use crate::common;

use std::time::Duration;

use common::{rig, Broker, Db, Process, Proxy, KEY, SECRET};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(30);

fn signature(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn post(
    worker: &Process,
    body: &str,
    key: Option<&str>,
    sig: Option<String>,
) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{}/webhooks/pusher", worker.http_addr))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        req = req.header("X-Pusher-Key", key);
    }
    if let Some(sig) = sig {
        req = req.header("X-Pusher-Signature", sig);
    }
    let resp = req.send().await.expect("answered");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

/// A temporary queue bound to the test's webhook exchange.
async fn webhook_queue(broker: &Broker) -> lapin::Consumer {
    let q = broker
        .channel
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("temp queue");
    broker
        .channel
        .queue_bind(
            q.name().as_str(),
            &broker.webhooks,
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    broker
        .channel
        .basic_consume(
            q.name().as_str(),
            "test",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume")
}

fn now_ms() -> i64 {
    pusher_relay::clock::now_ms()
}

/// Nothing (more) arrives on `consumer` for half a second.
async fn quiet(consumer: &mut lapin::Consumer) -> bool {
    tokio::time::timeout(Duration::from_millis(500), consumer.next())
        .await
        .is_err()
}

/// The value of the counter `series` (name and labels) in `/metrics` text.
fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn next(consumer: &mut lapin::Consumer) -> (String, Value) {
    let d = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("an event in time")
        .expect("open")
        .expect("delivery");
    (
        d.routing_key.as_str().to_string(),
        serde_json::from_slice(&d.data).expect("JSON event"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_webhook_events_are_published_by_name_with_time_ms() {
    let (_fake, server, broker, db) = rig("webhooks", Db::sqlite()).await;
    let worker = Process::start(&server.uri(), &broker, &db, &[]).await;
    let mut events = webhook_queue(&broker).await;

    // A fresh time_ms: webhooks outside the replay window are refused.
    let time_ms = now_ms();
    let body = format!(
        r#"{{"time_ms":{time_ms},"events":[{{"channel":"presence-room-1","name":"channel_occupied"}},{{"channel":"presence-room-1","name":"member_added","user_id":"42"}},{{"channel":"private-x","name":"client_event","event":"client-typing","data":"{{}}","socket_id":"1.2"}}]}}"#
    );
    let body = body.as_str();
    let (status, answer) = post(&worker, body, Some(KEY), Some(signature(body))).await;
    assert_eq!(status, 200, "{answer}");

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next(&mut events).await);
    }
    let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["channel_occupied", "member_added", "client_event"]);
    assert!(got.iter().all(|(_, e)| e["time_ms"] == time_ms));
    assert_eq!(got[1].1["user_id"], "42");
    assert_eq!(got[2].1["event"], "client-typing");

    let metrics = worker.metrics_text().await;
    assert!(
        metrics.contains("pusher_relay_webhook_events_published_total{name=\"member_added\"} 1"),
        "{metrics}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverifiable_webhooks_are_refused_and_nothing_is_published() {
    let (_fake, server, broker, db) = rig("webhooks-bad", Db::sqlite()).await;
    let worker = Process::start(&server.uri(), &broker, &db, &[]).await;
    let mut events = webhook_queue(&broker).await;

    let body = r#"{"time_ms":1,"events":[{"channel":"a","name":"channel_vacated"}]}"#;
    assert_eq!(
        post(&worker, body, None, Some(signature(body))).await.0,
        401,
        "missing key"
    );
    assert_eq!(
        post(&worker, body, Some("other-key"), Some(signature(body)))
            .await
            .0,
        401,
        "wrong key"
    );
    assert_eq!(
        post(&worker, body, Some(KEY), None).await.0,
        401,
        "missing signature"
    );
    assert_eq!(
        post(&worker, body, Some(KEY), Some("00".repeat(32)))
            .await
            .0,
        401,
        "wrong signature"
    );
    let tampered = body.replace("channel_vacated", "channel_occupied");
    assert_eq!(
        post(&worker, &tampered, Some(KEY), Some(signature(body)))
            .await
            .0,
        401,
        "body changed after signing"
    );
    let not_json = "{not json";
    assert_eq!(
        post(&worker, not_json, Some(KEY), Some(signature(not_json)))
            .await
            .0,
        400
    );
    let huge = format!(
        "{{\"time_ms\":1,\"events\":[],\"pad\":\"{}\"}}",
        "x".repeat(300 * 1024)
    );
    assert_eq!(
        post(&worker, &huge, Some(KEY), Some(signature(&huge)))
            .await
            .0,
        413
    );

    assert!(
        tokio::time::timeout(Duration::from_millis(500), events.next())
            .await
            .is_err(),
        "nothing was published"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_answered_503_while_the_broker_is_unreachable() {
    let (_fake, server, broker, db) = rig("webhooks-down", Db::sqlite()).await;
    let proxy = Proxy::start(&common::amqp_addr()).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let worker = Process::start(&server.uri(), &broker, &db, &[("AMQP_URL", url.as_str())]).await;
    proxy.cut();
    let body = format!(
        r#"{{"time_ms":{},"events":[{{"channel":"a","name":"channel_vacated"}}]}}"#,
        now_ms()
    );
    let body = body.as_str();
    let (status, _) = post(&worker, body, Some(KEY), Some(signature(body))).await;
    assert_eq!(status, 503, "Pusher must retry later");
    proxy.restore();
    let mut answered = 0;
    for _ in 0..100 {
        answered = post(&worker, body, Some(KEY), Some(signature(body)))
            .await
            .0;
        if answered == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered, 200, "accepted again once the broker is back");
    worker.stop().await;
}

/// The report: a correctly signed webhook from 2023 was accepted every time
/// it was posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correctly_signed_webhook_from_2023_is_refused_and_nothing_is_published() {
    let (_fake, server, broker, db) = rig("webhooks-2023", Db::sqlite()).await;
    let worker = Process::start(&server.uri(), &broker, &db, &[]).await;
    let mut events = webhook_queue(&broker).await;

    let body = r#"{"time_ms":1700000000123,"events":[{"channel":"presence-room-1","name":"channel_occupied"},{"channel":"presence-room-1","name":"member_added","user_id":"42"},{"channel":"private-x","name":"client_event","event":"client-typing","data":"{}","socket_id":"1.2"}]}"#;
    for _ in 0..3 {
        let (status, answer) = post(&worker, body, Some(KEY), Some(signature(body))).await;
        assert_eq!(status, 403, "{answer}");
        assert!(answer.contains("time_ms 1700000000123"), "{answer}");
        assert!(answer.contains("600000 ms"), "{answer}");
        assert!(answer.contains("possible replay"), "{answer}");
    }
    assert!(quiet(&mut events).await, "nothing was published");
    // Exactly ours: the worker is a process of its own, so the extreme
    // time_ms test's stale refusals are counted elsewhere.
    let metrics = worker.metrics_text().await;
    assert_eq!(
        counter(
            &metrics,
            "pusher_relay_webhooks_rejected_total{reason=\"stale\"}"
        ),
        3,
        "{metrics}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_fresh_signed_webhook_posted_three_times_is_published_once() {
    let (_fake, server, broker, db) = rig("webhooks-replay", Db::sqlite()).await;
    let worker = Process::start(&server.uri(), &broker, &db, &[]).await;
    let mut events = webhook_queue(&broker).await;

    let at = |time_ms: i64| {
        format!(
            r#"{{"time_ms":{time_ms},"events":[{{"channel":"presence-lobby","name":"member_removed","user_id":"7"}}]}}"#
        )
    };
    let time_ms = now_ms();
    let body = at(time_ms);
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(post(&worker, &body, Some(KEY), Some(signature(&body))).await);
    }
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    assert_eq!(answers[0].1.trim(), r#"{"published":1}"#);
    assert!(answers[1..]
        .iter()
        .all(|(_, a)| a.contains(r#""duplicate":true"#)));
    // The same body with the signature spelled differently (it verifies
    // the same) is still the same webhook.
    let shouted = format!("  {}", signature(&body).to_uppercase());
    let (status, answer) = post(&worker, &body, Some(KEY), Some(shouted)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""duplicate":true"#), "{answer}");

    let (key, event) = next(&mut events).await;
    assert_eq!(key, "member_removed");
    assert_eq!(event["user_id"], "7");
    assert!(quiet(&mut events).await, "published once only");
    let metrics = worker.metrics_text().await;
    assert!(
        metrics.contains("pusher_relay_webhook_events_published_total{name=\"member_removed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pusher_relay_webhooks_duplicate_total 3"),
        "{metrics}"
    );

    // A different webhook (a later time_ms) is published as usual.
    let later = at(time_ms + 1);
    let (status, answer) = post(&worker, &later, Some(KEY), Some(signature(&later))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(next(&mut events).await.0, "member_removed");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_time_ms_is_refused_without_a_panic() {
    let (_fake, server, broker, db) = rig("webhooks-extreme", Db::sqlite()).await;
    let worker = Process::start(&server.uri(), &broker, &db, &[]).await;
    let mut events = webhook_queue(&broker).await;

    let cases = [
        (i64::MIN.to_string(), 403),
        (i64::MAX.to_string(), 403),
        (u64::MAX.to_string(), 400),
    ];
    for (time_ms, want) in cases {
        let body =
            format!(r#"{{"time_ms":{time_ms},"events":[{{"channel":"a","name":"cache_miss"}}]}}"#);
        let (status, answer) = post(&worker, &body, Some(KEY), Some(signature(&body))).await;
        assert_eq!(status, want, "time_ms {time_ms}: {answer}");
    }
    assert!(quiet(&mut events).await, "nothing was published");

    // Still serving.
    let body = format!(
        r#"{{"time_ms":{},"events":[{{"channel":"a","name":"cache_miss"}}]}}"#,
        now_ms()
    );
    let (status, answer) = post(&worker, &body, Some(KEY), Some(signature(&body))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(next(&mut events).await.0, "cache_miss");
    worker.stop().await;
}
