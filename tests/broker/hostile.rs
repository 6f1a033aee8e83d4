//! Hostile AMQP input, sent byte for byte: messages that lapin alone cannot
//! read (it aborts the process on deep header tables and drops the
//! connection on strings that are not UTF-8) and bodies of any size. Each
//! must end as a dead letter naming what was wrong, while the good intents
//! around it are delivered once and in order, and the worker stays up.

use crate::common;
#[path = "../common/raw_amqp.rs"]
mod raw_amqp;

use std::time::{Duration, Instant};

use common::{assert_in_order_once, chat, eventually, relay_config, rig, Db};
use pusher_relay::deadletter::{DeadLetter, DeadLetterReason, Store};
use raw_amqp::{nested_table, table, RawMessage, RawPublisher, HEADERS};

const WAIT: Duration = Duration::from_secs(30);

async fn dead_letters(store: &Store) -> Vec<DeadLetter> {
    let mut out = Vec::new();
    for id in 1..200 {
        if let Some(dl) = store.get(id).await.expect("get") {
            out.push(dl);
        }
    }
    out
}

fn intent_body() -> Vec<u8> {
    chat(9, 0).to_string().into_bytes()
}

/// Publishes good intents for room 1, then `poison`, then more good ones,
/// starts the worker, and returns the dead letters once the good intents
/// are delivered: every one once and in order.
async fn poison_between_good(
    name: &str,
    poison: Vec<RawMessage>,
    extra: &[(&str, &str)],
) -> Vec<DeadLetter> {
    let (fake, server, broker, db) = rig(name, Db::sqlite()).await;
    let mut topology = broker.amqp_config();
    topology.single_active = extra.contains(&("RELAY_SINGLE_ACTIVE", "true"));
    pusher_relay::amqp::declare_topology(&broker.conn, &topology)
        .await
        .expect("topology");
    let expected = poison.len();

    broker.publish(&[chat(1, 0), chat(1, 1)]).await;
    let mut raw = RawPublisher::connect().await;
    for msg in &poison {
        raw.publish(&broker.exchange, msg).await;
    }
    broker.publish(&[chat(1, 2), chat(1, 3)]).await;

    let started = Instant::now();
    let worker = common::start_worker(relay_config(&server.uri(), &broker, &db, extra)).await;
    eventually(WAIT, "the good intents behind the poison", || {
        fake.received().len() >= 4
    })
    .await;
    eprintln!(
        "{name}: good intents delivered {:?} after the worker started",
        started.elapsed()
    );
    let store = db.store().await;
    let mut dls = Vec::new();
    for _ in 0..500 {
        dls = dead_letters(&store).await;
        if dls.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        dls.len(),
        expected,
        "one dead letter per poison message: {dls:#?}"
    );

    // Still the same connection and session: one more intent flows.
    broker.publish(&[chat(1, 4)]).await;
    eventually(WAIT, "an intent after the poison", || {
        fake.received().len() >= 5
    })
    .await;
    assert_in_order_once(&fake.received(), 1, 5);
    assert!(worker.health.readiness().ready, "ready after the poison");

    common::stop(worker).await;
    assert_eq!(
        broker.ready_settled().await,
        0,
        "the poison was acked once stored"
    );
    store.close().await;
    dls
}

fn with_headers(headers: Vec<u8>) -> RawMessage {
    RawMessage {
        routing_key: b"chat.message".to_vec(),
        flags: HEADERS,
        properties: headers,
        body: intent_body(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_nested_1200_and_18000_levels_deep_are_dead_lettered_and_the_worker_lives() {
    // 18,000 levels is about as deep as RabbitMQ's default frame_max
    // (128 KiB) lets a content header go.
    let dls = poison_between_good(
        "deep",
        vec![
            with_headers(nested_table(1200)),
            with_headers(nested_table(18_000)),
        ],
        // Past RELAY_MAX_HEADER_BYTES, the 18,000 levels would be dropped
        // whole as too large, not cut: this test is about the cut.
        &[("RELAY_MAX_HEADER_BYTES", "1048576")],
    )
    .await;
    for dl in &dls {
        assert_eq!(dl.reason, DeadLetterReason::Invalid);
        assert!(
            dl.error.contains("nest deeper than 16 levels"),
            "{}",
            dl.error
        );
        assert_eq!(dl.body, intent_body(), "the body is kept");
        // What is stored reads back as JSON (depth bounded).
        assert!(dl.headers.get("headers").is_some(), "{}", dl.headers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routing_key_and_a_header_key_that_are_not_utf8_do_not_stall_the_queue() {
    let bad_key = RawMessage {
        routing_key: b"event.\xff\xfe".to_vec(),
        flags: 0,
        properties: Vec::new(),
        body: intent_body(),
    };
    let bad_header = with_headers(table(&[(b"\xff\xfe", b't', vec![1])]));
    // content_type (bit 15) that is not UTF-8 either.
    let bad_property = RawMessage {
        routing_key: b"chat.message".to_vec(),
        flags: 1 << 15,
        properties: vec![2, 0xc3, 0x28],
        body: intent_body(),
    };
    let dls = poison_between_good("utf8", vec![bad_key, bad_header, bad_property], &[]).await;
    let errors: Vec<&str> = dls.iter().map(|d| d.error.as_str()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains(r#"routing key "event.\xff\xfe" is not UTF-8"#)),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains(r#"header key "\xff\xfe" is not UTF-8"#)),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains(r#"property content_type "\xc3(" is not UTF-8"#)),
        "{errors:#?}"
    );
    assert!(dls.iter().all(|d| d.reason == DeadLetterReason::Invalid));
    let rk = dls
        .iter()
        .find(|d| d.error.contains("routing key"))
        .expect("routing key dead letter");
    assert_eq!(rk.routing_key, "event.??");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_a_single_active_queue_does_not_block_it() {
    let dls = poison_between_good(
        "utf8-sac",
        vec![
            with_headers(table(&[(b"\xff", b't', vec![1])])),
            with_headers(nested_table(5000)),
        ],
        &[("RELAY_SINGLE_ACTIVE", "true")],
    )
    .await;
    assert_eq!(dls.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_megabyte_body_is_cut_to_an_excerpt_and_dead_lettered_as_too_large() {
    let big = RawMessage {
        routing_key: b"chat.message".to_vec(),
        flags: 0,
        properties: Vec::new(),
        body: vec![b'x'; 5 << 20],
    };
    let dls = poison_between_good("big", vec![big], &[("RELAY_MAX_BODY_BYTES", "65536")]).await;
    let dl = &dls[0];
    assert_eq!(dl.reason, DeadLetterReason::TooLarge);
    assert!(
        dl.error
            .contains("body of 5242880 bytes exceeds RELAY_MAX_BODY_BYTES (65536)"),
        "{}",
        dl.error
    );
    assert_eq!(dl.body.len(), pusher_relay::amqp::guard::BODY_EXCERPT_BYTES);
}

/// A message carrying the worker's wake-up header. Only a worker's own
/// wake-up (an empty body sent straight to the queue) is taken for one;
/// anything else with the header is an ordinary intent, delivered or
/// dead-lettered, never acked and dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producers_wake_up_header_makes_no_message_vanish() {
    use lapin::types::{AMQPValue, FieldTable};
    let (fake, server, broker, db) = rig("wake", Db::sqlite()).await;
    broker.declare().await;
    let wake = || {
        let mut headers = FieldTable::default();
        headers.insert(
            pusher_relay::relay::session::WAKE_HEADER.into(),
            AMQPValue::Boolean(true),
        );
        lapin::BasicProperties::default().with_headers(headers)
    };
    let publish = |exchange: &str, key: &str, body: Vec<u8>| {
        let (exchange, key) = (exchange.to_string(), key.to_string());
        let channel = broker.channel.clone();
        let props = wake();
        async move {
            let confirm = channel
                .basic_publish(&exchange, &key, Default::default(), &body, props)
                .await
                .expect("publish");
            assert!(confirm.await.expect("confirm").is_ack());
        }
    };
    // An intent with the header, through the exchange: delivered.
    publish(
        &broker.exchange,
        "chat.message",
        chat(1, 0).to_string().into_bytes(),
    )
    .await;
    // A body with the header, straight to the queue: not an intent, so a
    // dead letter, as without the header.
    publish("", &broker.queue, b"not an intent".to_vec()).await;
    // The worker's own form: a wake-up.
    publish("", &broker.queue, Vec::new()).await;
    broker.publish(&[chat(1, 1)]).await;

    let worker = common::start_worker(relay_config(&server.uri(), &broker, &db, &[])).await;
    eventually(WAIT, "both intents delivered", || {
        fake.received().len() >= 2
    })
    .await;
    broker.wait_acked(WAIT).await;
    let metrics = common::metrics_text(&worker).await;
    common::stop(worker).await;
    assert_in_order_once(&fake.received(), 1, 2);
    let dls = dead_letters(&db.store().await).await;
    assert_eq!(dls.len(), 1, "{dls:#?}");
    assert_eq!(dls[0].reason, DeadLetterReason::Invalid);
    assert_eq!(
        common::metric_sum(
            &metrics,
            "pusher_relay_intents_consumed_total{type=\"wake\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        common::metric_sum(
            &metrics,
            "pusher_relay_intents_settled_total{outcome=\"wake\"}"
        ),
        1.0,
        "the wake-up is settled as one: {metrics}"
    );
}

/// A length-prefixed table of `entries` copies of `entry`.
fn table_of(entries: usize, entry: &[u8]) -> Vec<u8> {
    let body = entry.repeat(entries);
    let mut t = (body.len() as u32).to_be_bytes().to_vec();
    t.extend_from_slice(&body);
    t
}

/// One header entry: arrays nested `levels` deep, the innermost holding
/// `leaves` empty arrays, each one level deeper still.
fn empty_arrays_under(levels: usize, leaves: usize) -> Vec<u8> {
    let inner = [b'A', 0, 0, 0, 0].repeat(leaves);
    let mut v = vec![b'A'];
    v.extend_from_slice(&(inner.len() as u32).to_be_bytes());
    v.extend_from_slice(&inner);
    for _ in 1..levels {
        let mut outer = vec![b'A'];
        outer.extend_from_slice(&(v.len() as u32).to_be_bytes());
        outer.extend_from_slice(&v);
        v = outer;
    }
    let mut entry = vec![1, b'k'];
    entry.extend_from_slice(&v);
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_the_rewrite_could_blow_up_or_that_hold_too_much_are_dead_lettered_and_the_queue_flows(
) {
    // 6,000 empty arrays 17 levels down, 30 KB: each rewritten as a note
    // of 31 bytes, they once made a 186 KB content header, past frame_max,
    // and lapin's FRAME_ERROR reconnected the worker onto the same message
    // thousands of times.
    let deep = with_headers(table_of(1, &empty_arrays_under(16, 6000)));
    // 12,000 void values under distinct keys (RabbitMQ 4 keeps one entry
    // of a repeated key), 84 KB that lapin would hold in over 1 MB.
    let entries: Vec<u8> = (0..12_000)
        .flat_map(|i: u32| {
            let mut entry = vec![5];
            entry.extend_from_slice(format!("{i:05}").as_bytes());
            entry.push(b'V');
            entry
        })
        .collect();
    let voids = with_headers(table_of(1, &entries));
    let dls = poison_between_good(
        "blowup",
        vec![deep, voids],
        // Room for the deep one's 6,016 values (one per 16 bytes); the
        // voids' 12,000 are too many.
        &[("RELAY_MAX_HEADER_BYTES", "131072")],
    )
    .await;
    let deep = dls
        .iter()
        .find(|dl| dl.reason == DeadLetterReason::Invalid)
        .unwrap_or_else(|| panic!("the deep one is invalid: {dls:#?}"));
    assert!(deep.error.contains("deeper than 16"), "{}", deep.error);
    let big = dls
        .iter()
        .find(|dl| dl.reason == DeadLetterReason::TooLarge)
        .unwrap_or_else(|| panic!("the voids are too large: {dls:#?}"));
    assert!(
        big.error
            .contains("more than 8192 entries exceed RELAY_MAX_HEADER_BYTES (131072)")
            && big.error.contains("12000 entries at the top"),
        "{}",
        big.error
    );
    assert_eq!(big.body, intent_body(), "the body is kept");
}

/// Peak resident memory of a process, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb / 1024.0
}

/// The memory bound is in bytes, not only in the prefetch count: 1,000
/// intents with 90 KB headers of void values (lapin holds each in 32 bytes
/// or more) and 1,000 with 60 KB bodies, queued through an outage and then
/// sent to a Pusher that answers slowly, are all delivered in order while
/// the worker stays under 150 MB. Without `RELAY_MAX_HELD_BYTES` it takes
/// the whole window at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_large_headers_and_bodies_stay_within_the_byte_budget() {
    use common::{distant::Distant, Broker, Process, KEY, SECRET};
    use lapin::types::{AMQPValue, FieldTable};

    let pusher = Distant::start(KEY, SECRET, Duration::ZERO, Duration::ZERO).await;
    pusher.set_status(Some(503));
    let broker = Broker::new("held").await;
    broker.declare().await;
    let db = Db::sqlite();
    let settings = [
        ("RELAY_MAX_HEADER_BYTES", "131072"),
        ("PUSHER_MAX_EVENT_BYTES", "65536"),
        (
            "RELAY_MAX_HELD_BYTES",
            option_env!("HELD").unwrap_or("16777216"),
        ),
    ];
    let worker = Process::spawn_for(&pusher.uri(), &broker, &db, &settings);
    worker
        .wait_readyz(|_, body| body["circuit"].as_str().is_some_and(|c| c != "closed"))
        .await;

    // 5,700 entries of 16 bytes: a one-byte length, a 14-byte key, a void.
    let mut headers = FieldTable::default();
    for i in 0..5_700 {
        headers.insert(format!("k{i:013}").into(), AMQPValue::Void);
    }
    let channels = 20;
    let per_kind = 1_000;
    let mut confirms = Vec::new();
    for n in 0..2 * per_kind {
        let (room, seq) = (n % channels, n / channels);
        let big_body = n >= per_kind;
        let pad = if big_body {
            "x".repeat(60_000)
        } else {
            String::new()
        };
        let body = serde_json::json!({
            "type": "event",
            "channels": [format!("held-{room}")],
            "event": "e",
            "data": {"seq": seq, "pad": pad},
        })
        .to_string();
        let headers = (!big_body).then(|| headers.clone());
        confirms.push(
            broker
                .publish_with_headers("event", body.as_bytes(), headers)
                .await,
        );
    }
    for c in confirms {
        assert!(
            c.await.expect("confirm").is_ack(),
            "broker refused a publish"
        );
    }

    // Pusher back, but slow: the worker takes what it may and holds it.
    pusher.set_latency(Duration::from_millis(300), Duration::ZERO);
    pusher.set_status(None);
    pusher
        .wait_for(2 * per_kind, Duration::from_secs(240))
        .await;
    broker.wait_acked(WAIT).await;
    let peak = peak_rss_mb(worker.child.id());
    let held_back = worker
        .metric("pusher_relay_intake_held_back_total")
        .await
        .unwrap_or_default();
    let seen = pusher.seen();
    println!(
        "2,000 large intents: peak RSS {peak:.1} MB (limit 150), held back {held_back} times, {} duplicates, {} order violations",
        seen.duplicates, seen.violations
    );
    assert_eq!(seen.violations, 0, "every channel in order");
    assert_eq!(seen.duplicates, 0, "each once");
    assert!(held_back > 0.0, "the byte budget held deliveries back");
    assert!(peak <= 150.0, "peak RSS {peak:.1} MB, over 150 MB");
}

/// Pusher goes away while the worker's held bytes are at their budget: the
/// session returns what it holds and closes its channel, although the
/// answer to the close's round trip waits behind a delivery the guard holds
/// back (it waited forever before the round trip was bounded); everything
/// is delivered in order once Pusher answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_the_byte_budget_full_returns_what_is_held() {
    use common::{distant::Distant, Broker, Process, KEY, SECRET};

    let pusher = Distant::start(KEY, SECRET, Duration::from_secs(2), Duration::ZERO).await;
    let broker = Broker::new("heldout").await;
    broker.declare().await;
    let db = Db::sqlite();
    let settings = [
        ("PUSHER_MAX_EVENT_BYTES", "65536"),
        ("RELAY_MAX_HELD_BYTES", "1048576"),
    ];
    let worker = Process::start(&pusher.uri(), &broker, &db, &settings).await;
    let (channels, per_channel) = (3, 20);
    let pad = "x".repeat(60_000);
    let intents: Vec<serde_json::Value> = (0..per_channel)
        .flat_map(|seq| {
            let pad = pad.clone();
            (0..channels).map(move |c| {
                serde_json::json!({"type": "event", "id": format!("heldout-{c}-{seq}"),
                    "channels": [format!("heldout-{c}")], "event": "e",
                    "data": {"seq": seq, "pad": pad}})
            })
        })
        .collect();
    broker.publish(&intents).await;
    let deadline = Instant::now() + WAIT;
    while worker
        .metric("pusher_relay_intake_held_back_total")
        .await
        .unwrap_or_default()
        == 0.0
    {
        assert!(Instant::now() < deadline, "the budget never filled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pusher.set_status(Some(503));
    worker
        .wait_readyz(|_, body| body["circuit"].as_str().is_some_and(|c| c != "closed"))
        .await;
    // Paused: the session gave its window back and closed its channel.
    let deadline = Instant::now() + WAIT;
    while worker
        .metric("pusher_relay_held_bytes")
        .await
        .unwrap_or_default()
        > 0.0
    {
        assert!(
            Instant::now() < deadline,
            "the session still holds its deliveries: its close is stuck"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pusher.set_latency(Duration::ZERO, Duration::ZERO);
    pusher.set_status(None);
    pusher
        .wait_for(channels * per_channel, Duration::from_secs(120))
        .await;
    broker.wait_acked(WAIT).await;
    let violations = pusher.seen().violations;
    assert_eq!(violations, 0, "every channel in order");
    worker.stop().await;
}
