//! `cargo bench --bench relay`: the worker's throughput, latency and memory
//! against a ceiling measured in the same run on the same broker.
//!
//! 1. Ceiling: a plain lapin consumer drains 50,000 messages, acking with
//!    `multiple: true` every 250 deliveries (and when the stream goes quiet).
//! 2. Drain: 50,000 single-channel intents over 100 channels are drained by
//!    the release binary through a local HTTP server that verifies every
//!    signature; events/s, requests per event, order violations.
//! 3. Memory: the worker's peak RSS (VmHWM) draining a 100,000 backlog.
//! 4. Latency: 1,000 intents/s for 5 s; p50/p99 from publish to Pusher.
//!
//! Figures are printed as ratios to the ceiling, never asserted: these
//! machines are noisy. Needs RabbitMQ on 127.0.0.1:5672.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pusher_relay::pusher::sign;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret";
const CHANNELS: usize = 100;
const DRAIN: usize = 50_000;
const BACKLOG: usize = 100_000;
const RATE: usize = 1_000;
const LINGER_MS: u64 = 10;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// What the fake Pusher saw.
#[derive(Default)]
struct Seen {
    events: usize,
    requests: usize,
    bad_signatures: usize,
    violations: usize,
    last_seq: HashMap<String, u64>,
    latencies_ms: Vec<u64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

type Shared = Arc<Mutex<Seen>>;

fn verified(method: &str, path: &str, query: &str, body: &[u8]) -> bool {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let given = params
        .iter()
        .find(|(k, _)| k == "auth_signature")
        .map(|(_, v)| v.clone());
    let mut unsigned: Vec<(String, String)> = params
        .into_iter()
        .filter(|(k, _)| k != "auth_signature")
        .collect();
    if !body.is_empty()
        && !unsigned
            .iter()
            .any(|(k, v)| k == "body_md5" && *v == sign::body_md5(body))
    {
        return false;
    }
    unsigned.sort();
    let expected = sign::hmac_sha256_hex(
        SECRET.as_bytes(),
        sign::string_to_sign(method, path, &unsigned).as_bytes(),
    );
    given.as_deref() == Some(expected.as_str())
}

async fn batch(
    State(seen): State<Shared>,
    Path(app): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> StatusCode {
    let path = format!("/apps/{app}/batch_events");
    let now = Instant::now();
    let arrived_ms = now_ms();
    let mut s = seen.lock().expect("seen");
    if !verified("POST", &path, q.as_deref().unwrap_or_default(), &body) {
        s.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    s.requests += 1;
    s.first.get_or_insert(now);
    s.last = Some(now);
    for item in v["batch"].as_array().into_iter().flatten() {
        let channel = item["channel"].as_str().unwrap_or_default().to_string();
        let data: serde_json::Value =
            serde_json::from_str(item["data"].as_str().unwrap_or("{}")).unwrap_or_default();
        let seq = data["seq"].as_u64().unwrap_or_default();
        let sent = data["t"].as_u64().unwrap_or(arrived_ms);
        s.events += 1;
        s.latencies_ms.push(arrived_ms.saturating_sub(sent));
        let prev = s.last_seq.insert(channel, seq);
        if prev.is_some_and(|p| seq != p + 1) || (prev.is_none() && seq != 0) {
            s.violations += 1;
        }
    }
    StatusCode::OK
}

async fn fake_pusher() -> (String, Shared) {
    let seen = Shared::default();
    let app = Router::new()
        .route("/apps/{app}/batch_events", post(batch))
        .route(
            "/apps/{app}/channels",
            get(|| async { "{\"channels\":{}}" }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("{}", addr.port()), seen)
}

async fn channel() -> (Connection, Channel) {
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ at 127.0.0.1:5672");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(Default::default())
        .await
        .expect("confirms");
    (conn, ch)
}

async fn declare_quorum(ch: &Channel, queue: &str) {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
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

/// Publishes `n` intents (round-robin over the channels, each channel's
/// `seq` counting up from `first_seq`) to the default exchange.
async fn fill(ch: &Channel, queue: &str, n: usize, first_seq: usize) {
    let mut confirms = Vec::with_capacity(1000);
    for i in 0..n {
        let seq = first_seq + i / CHANNELS;
        let body = intent(i % CHANNELS, seq);
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        confirms.push(
            ch.basic_publish(
                "",
                queue,
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .expect("publish"),
        );
        if confirms.len() == 1000 {
            for c in confirms.drain(..) {
                c.await.expect("confirm");
            }
        }
    }
    for c in confirms {
        c.await.expect("confirm");
    }
}

fn intent(channel: usize, seq: usize) -> String {
    format!("{{\"type\":\"event\",\"channels\":[\"bench-{channel}\"],\"event\":\"tick\",\"data\":{{\"seq\":{seq},\"t\":{}}}}}", now_ms())
}

/// Plain lapin consume + ack with `multiple: true` every 250 deliveries.
async fn ceiling(ch: &Channel, queue: &str, n: usize) -> f64 {
    ch.basic_qos(1000, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = ch
        .basic_consume(
            queue,
            "ceiling",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut started = None;
    let mut unacked_last = None;
    let mut count = 0;
    while count < n {
        let next = tokio::time::timeout(Duration::from_millis(5), consumer.next()).await;
        match next {
            Ok(Some(Ok(d))) => {
                started.get_or_insert_with(Instant::now);
                count += 1;
                unacked_last = Some(d.delivery_tag);
                if count % 250 == 0 {
                    ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true })
                        .await
                        .expect("ack");
                    unacked_last = None;
                }
            }
            Ok(_) => panic!("consumer ended"),
            Err(_) => {
                if let Some(tag) = unacked_last.take() {
                    ch.basic_ack(tag, BasicAckOptions { multiple: true })
                        .await
                        .expect("ack");
                }
            }
        }
    }
    if let Some(tag) = unacked_last {
        ch.basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .expect("ack");
    }
    n as f64 / started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(1.0)
}

fn spawn_worker(port: &str, queue: &str, db: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pusher-relay"))
        .arg("run")
        .current_dir(std::env::temp_dir())
        .env("PUSHER_APP_ID", "1")
        .env("PUSHER_APP_KEY", KEY)
        .env("PUSHER_APP_SECRET", SECRET)
        .env("PUSHER_HOST", "127.0.0.1")
        .env("PUSHER_PORT", port)
        .env("PUSHER_SCHEME", "http")
        .env("AMQP_EXCHANGE", format!("{queue}.x"))
        .env("AMQP_WEBHOOK_EXCHANGE", format!("{queue}.w"))
        .env("AMQP_QUEUE", queue)
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("HTTP_ADDR", "127.0.0.1:0")
        .env("RELAY_LINGER_MS", LINGER_MS.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("release binary")
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of those, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// RabbitMQ's Erlang VM, to see how much of the machine the broker takes.
fn broker_pid() -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-o", "beam.smp"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn wait_for(seen: &Shared, events: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while seen.lock().expect("seen").events < events {
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {events} events",
            seen.lock().expect("seen").events
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn cleanup(ch: &Channel, queue: &str) {
    let _ = ch.queue_delete(queue, QueueDeleteOptions::default()).await;
    let _ = ch
        .exchange_delete(&format!("{queue}.x"), Default::default())
        .await;
    let _ = ch
        .exchange_delete(&format!("{queue}.w"), Default::default())
        .await;
}

#[tokio::main]
async fn main() {
    let run = format!("bench-{}-{}", std::process::id(), now_ms());
    let (_conn, ch) = channel().await;
    let db = std::env::temp_dir().join(format!("{run}.db"));

    // 1. Ceiling.
    let q0 = format!("{run}.ceiling");
    declare_quorum(&ch, &q0).await;
    fill(&ch, &q0, DRAIN, 0).await;
    let (_c2, ch2) = channel().await;
    let ceiling = ceiling(&ch2, &q0, DRAIN).await;
    cleanup(&ch, &q0).await;

    // 2. Drain.
    let (port, seen) = fake_pusher().await;
    let q1 = format!("{run}.drain");
    declare_quorum(&ch, &q1).await;
    fill(&ch, &q1, DRAIN, 0).await;
    let beam = broker_pid();
    let beam_before = beam.map(cpu_seconds).unwrap_or(f64::NAN);
    let bench_before = cpu_seconds(std::process::id());
    let wall = Instant::now();
    let mut worker = spawn_worker(&port, &q1, &db);
    wait_for(&seen, DRAIN, Duration::from_secs(300)).await;
    let wall = wall.elapsed().as_secs_f64();
    let drain_rss = peak_rss_mb(worker.id());
    let worker_cpu = cpu_seconds(worker.id());
    let beam_cpu = beam.map(cpu_seconds).unwrap_or(f64::NAN) - beam_before;
    let bench_cpu = cpu_seconds(std::process::id()) - bench_before;
    let _ = worker.kill();
    let _ = worker.wait();
    let (events, requests, violations, bad, secs) = {
        let s = seen.lock().expect("seen");
        let secs = match (s.first, s.last) {
            (Some(a), Some(b)) => (b - a).as_secs_f64().max(1e-3),
            _ => f64::NAN,
        };
        (s.events, s.requests, s.violations, s.bad_signatures, secs)
    };
    let rate = events as f64 / secs;
    cleanup(&ch, &q1).await;

    // 3. Memory with a 100k backlog.
    let (port, seen) = fake_pusher().await;
    let q2 = format!("{run}.backlog");
    declare_quorum(&ch, &q2).await;
    fill(&ch, &q2, BACKLOG, 0).await;
    let mut worker = spawn_worker(&port, &q2, &db);
    wait_for(&seen, BACKLOG, Duration::from_secs(600)).await;
    let backlog_rss = peak_rss_mb(worker.id());
    let backlog_violations = seen.lock().expect("seen").violations;
    let _ = worker.kill();
    let _ = worker.wait();
    cleanup(&ch, &q2).await;

    // 4. Latency at a steady 1,000 intents/s.
    let (port, seen) = fake_pusher().await;
    let q3 = format!("{run}.latency");
    declare_quorum(&ch, &q3).await;
    let mut worker = spawn_worker(&port, &q3, &db);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let total = RATE * 5;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0;
    let mut confirms = Vec::with_capacity(total);
    while sent < total {
        tick.tick().await;
        let burst = RATE / 100;
        for i in sent..sent + burst {
            let body = intent(i % CHANNELS, i / CHANNELS);
            let props = BasicProperties::default().with_delivery_mode(2);
            confirms.push(
                ch.basic_publish(
                    "",
                    &q3,
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                )
                .await
                .expect("publish"),
            );
        }
        sent += burst;
    }
    for c in confirms {
        c.await.expect("confirm");
    }
    wait_for(&seen, total, Duration::from_secs(60)).await;
    let mut lat = seen.lock().expect("seen").latencies_ms.clone();
    lat.sort_unstable();
    let _ = worker.kill();
    let _ = worker.wait();
    cleanup(&ch, &q3).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    println!(
        "pusher-relay benchmark ({DRAIN} intents over {CHANNELS} channels, linger {LINGER_MS} ms)"
    );
    println!("  ceiling (lapin consume + multiple ack):  {ceiling:>9.0} msg/s");
    println!("  worker drain:                            {rate:>9.0} events/s   ratio {:.2} (target >= 0.80)", rate / ceiling);
    println!(
        "  requests per event:                      {:>9.3}            (target <= 0.105)",
        requests as f64 / events as f64
    );
    println!("  order violations:                        {:>9}            (target 0; {backlog_violations} in the backlog run)", violations);
    println!("  bad signatures seen by the fake Pusher:  {bad:>9}");
    println!(
        "  CPU during the drain ({wall:.2} s wall, 2 cores = {:.2} core-s): worker {worker_cpu:.2} s ({:.1} us/event), RabbitMQ {beam_cpu:.2} s, fake Pusher + publisher {bench_cpu:.2} s",
        wall * 2.0,
        worker_cpu * 1e6 / events as f64
    );
    println!("  peak RSS draining {DRAIN}:                 {drain_rss:>9.1} MB");
    println!(
        "  peak RSS draining a {BACKLOG} backlog:      {backlog_rss:>9.1} MB      (target <= 50)"
    );
    println!(
        "  latency at {RATE}/s, p50 / p99:            {p50:>5} / {p99} ms  (target p99 <= {} ms)",
        LINGER_MS + 20
    );
}
