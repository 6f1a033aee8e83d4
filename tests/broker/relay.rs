//! The worker against real RabbitMQ and real dead-letter stores, with Pusher
//! faked by a wiremock server that checks every request's signature. Each
//! test owns its exchange, queue and store, so they run in parallel.

use crate::common;

use std::time::Duration;

use common::{assert_in_order_once, chat, eventually, relay_config, rig, Db, Process};
use pusher_relay::app::Worker;
use pusher_relay::deadletter::{DeadLetter, DeadLetterReason, Store};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

async fn dead_letters(store: &Store) -> Vec<DeadLetter> {
    let n = store.count().await.expect("count");
    let mut out = Vec::new();
    let mut id = 1;
    while out.len() < n as usize && id < 10_000 {
        if let Some(dl) = store.get(id).await.expect("get") {
            out.push(dl);
        }
        id += 1;
    }
    out
}

/// The store's dead letters once there are at least `n` (or after 10 s,
/// so that the caller's exact assertion reports what is there).
async fn wait_for_dead_letters(store: &Store, n: usize) -> Vec<DeadLetter> {
    let mut dls = Vec::new();
    for _ in 0..500 {
        dls = dead_letters(store).await;
        if dls.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_intent_arrives_once_in_order_per_channel_under_concurrency_and_injected_503s() {
    let (fake, server, broker, db) = rig("order", Db::sqlite()).await;
    fake.plan().fail_one_in = Some(3);
    let worker = Process::start(&server.uri(), &broker, &db, &[("RELAY_MAX_IN_FLIGHT", "8")]).await;

    let (rooms, per_room) = (20, 40);
    let intents: Vec<Value> = (0..per_room)
        .flat_map(|seq| (0..rooms).map(move |room| chat(room, seq)))
        .collect();
    broker.publish(&intents).await;
    eventually(WAIT, "all events at Pusher", || {
        fake.received().len() >= rooms * per_room
    })
    .await;

    assert_in_order_once(&fake.received(), rooms, per_room);
    // A worker process of its own: no other test moves these counters.
    let metrics = worker.metrics_text().await;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    assert!(value("pusher_relay_events_delivered_total ") >= (rooms * per_room) as f64);
    assert!(
        value("pusher_relay_intents_consumed_total{type=\"chat.message\"}")
            >= (rooms * per_room) as f64
    );
    assert!(value("pusher_relay_delivery_latency_seconds_count ") >= (rooms * per_room) as f64);
    assert!(value("pusher_relay_retries_total{reason=\"5xx\"}") >= 1.0);
    assert!(fake
        .plan()
        .batch_sizes
        .iter()
        .all(|&n| (1..=10).contains(&n)));
    worker.stop().await;
    assert_eq!(broker.ready_settled().await, 0, "everything was acked");
    assert_eq!(
        db.store().await.count().await.expect("count"),
        0,
        "a 503 is retried, never dead-lettered"
    );
}

async fn poison_in_a_stream_of_good_ones(db: Db) {
    let (fake, server, broker, db) = rig("poison", db).await;
    let worker = common::start_worker(relay_config(&server.uri(), &broker, &db, &[])).await;

    broker.publish(&[chat(1, 0)]).await;
    broker
        .publish_raw("chat.message", b"{not json")
        .await
        .await
        .expect("confirm");
    let too_many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    broker
        .publish(&[
            json!({"type": "teleport", "to": "mars"}),
            json!({"type": "chat.message", "user_id": 1, "user_name": "ada", "message": "no room"}),
            json!({"type": "event", "channels": ["bad channel"], "event": "e", "data": {}}),
            json!({"type": "event", "channels": too_many, "event": "e", "data": {}}),
            json!({"type": "event", "channels": ["big"], "event": "e", "data": "x".repeat(20_000)}),
        ])
        .await;
    broker.publish(&[chat(1, 1)]).await;

    eventually(WAIT, "good neighbours delivered", || {
        fake.received().len() >= 2
    })
    .await;
    let store = db.store().await;
    let dls = wait_for_dead_letters(&store, 6).await;
    assert_in_order_once(&fake.received(), 1, 2);
    let summary: Vec<(DeadLetterReason, String)> =
        dls.iter().map(|d| (d.reason, d.error.clone())).collect();
    assert_eq!(dls.len(), 6, "{summary:#?}");
    let expect = [
        (DeadLetterReason::Invalid, "not JSON"),
        (DeadLetterReason::Invalid, "teleport"),
        (DeadLetterReason::Invalid, "room_id"),
        (DeadLetterReason::Invalid, "bad channel"),
        (DeadLetterReason::Invalid, "101"),
        (DeadLetterReason::TooLarge, "limit 10240"),
    ];
    for (reason, needle) in expect {
        assert!(
            summary
                .iter()
                .any(|(r, e)| *r == reason && e.to_lowercase().contains(&needle.to_lowercase())),
            "no {reason:?} dead letter mentioning {needle:?} in {summary:#?}"
        );
    }
    let raw = dls
        .iter()
        .find(|d| d.body == b"{not json")
        .expect("the original body is kept byte for byte");
    assert_eq!(raw.routing_key, "chat.message");

    common::stop(worker).await;
    assert_eq!(
        broker.ready_settled().await,
        0,
        "dead letters are acked once stored"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_neighbours_delivered_sqlite() {
    poison_in_a_stream_of_good_ones(Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_neighbours_delivered_postgres() {
    poison_in_a_stream_of_good_ones(Db::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_event_in_a_batch_of_ten_is_dead_lettered_and_the_other_nine_delivered() {
    let (fake, server, broker, db) = rig("split", Db::postgres().await).await;
    fake.plan().reject_containing = Some("poison-pill".into());
    broker.declare().await;
    let mut intents: Vec<Value> = (0..10).map(|room| chat(room, 0)).collect();
    intents[6]["message"] = json!("poison-pill");
    broker.publish(&intents).await;
    // Published before the worker starts, so the ten arrive together and
    // linger long enough to share one request.
    let worker = Worker::start(relay_config(
        &server.uri(),
        &broker,
        &db,
        &[("RELAY_LINGER_MS", "200")],
    ))
    .await
    .expect("worker");
    eventually(WAIT, "nine delivered", || fake.received().len() >= 9).await;
    let store = db.store().await;
    let dls = wait_for_dead_letters(&store, 1).await;
    assert_eq!(fake.received().len(), 9);
    assert!(fake
        .received()
        .iter()
        .all(|e| !e.data.contains("poison-pill")));
    assert_eq!(dls.len(), 1);
    let dl = &dls[0];
    assert_eq!(dl.reason, DeadLetterReason::Rejected);
    assert_eq!(dl.pusher_status, Some(400));
    assert!(
        dl.pusher_body
            .as_deref()
            .unwrap_or_default()
            .contains("rejected by test"),
        "{dl:?}"
    );
    assert_eq!(dl.intent_id.as_deref(), Some("m-6-0"));
    assert_eq!(dl.intent_type.as_deref(), Some("chat.message"));
    assert_eq!(dl.channels, ["chat-room-6"]);
    let first_request = fake.plan().batch_sizes.clone();
    assert!(
        first_request.iter().sum::<usize>() == 9,
        "{first_request:?}"
    );
    common::stop(worker).await;
    assert_eq!(broker.ready_settled().await, 0);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_down_for_a_while_then_back_delivers_everything_with_zero_dead_letters() {
    let (fake, server, broker, db) = rig("outage", Db::sqlite()).await;
    fake.plan().down = true;
    // A budget far shorter than the outage: were the outage counted
    // against it, everything would be dead-lettered as exhausted.
    let extra = [
        ("RELAY_MAX_ATTEMPTS", "2"),
        ("RELAY_MAX_RETRY_DURATION", "200ms"),
    ];
    // A worker process of its own, so that the circuit it opens is the only
    // one its counter counts (the 401 test opens one too).
    let worker = Process::start(&server.uri(), &broker, &db, &extra).await;
    let intents: Vec<Value> = (0..30).map(|seq| chat(seq % 3, seq / 3)).collect();
    broker.publish(&intents).await;

    worker
        .wait_readyz(|_, body| body["circuit"].as_str().is_some_and(|c| c != "closed"))
        .await;
    let (status, body) = worker.readyz().await.expect("readyz answers");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["circuit"]
            .as_str()
            .unwrap_or_default()
            .contains("unreachable"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(fake.received().is_empty());

    fake.plan().down = false;
    eventually(WAIT, "everything delivered after the outage", || {
        fake.received().len() >= 30
    })
    .await;
    assert_in_order_once(&fake.received(), 3, 10);
    worker.wait_ready().await;
    let metrics = worker.metrics_text().await;
    assert!(
        common::metric_sum(&metrics, "pusher_relay_circuit_opens_total") >= 1.0,
        "{metrics}"
    );
    worker.stop().await;
    assert_eq!(
        db.store().await.count().await.expect("count"),
        0,
        "an outage is not a dead letter"
    );
    assert_eq!(broker.ready_settled().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_pauses_delivery_instead_of_dead_lettering() {
    let (fake, server, broker, db) = rig("auth", Db::sqlite()).await;
    fake.plan().status_override = Some(401);
    let worker = common::start_worker(relay_config(&server.uri(), &broker, &db, &[])).await;
    broker.publish(&[chat(1, 0), chat(1, 1)]).await;
    eventually(WAIT, "circuit open on 401", || {
        worker.health.readiness().circuit.contains("credentials")
    })
    .await;
    assert!(!worker.health.readiness().ready);
    fake.plan().status_override = None;
    eventually(WAIT, "delivered once credentials work", || {
        fake.received().len() >= 2
    })
    .await;
    assert_in_order_once(&fake.received(), 1, 2);
    common::stop(worker).await;
    assert_eq!(db.store().await.count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_channel_intents_use_the_events_endpoint_and_redelivered_ids_are_sent_once() {
    let (fake, server, broker, db) = rig("multi", Db::sqlite()).await;
    let worker = common::start_worker(relay_config(&server.uri(), &broker, &db, &[])).await;
    let order = json!({"type": "order.status", "id": "o-1", "order_id": 7, "status": "shipped", "customer_id": 9});
    broker.publish(std::slice::from_ref(&order)).await;
    eventually(WAIT, "order delivered", || fake.received().len() >= 2).await;
    broker.publish(&[order]).await;
    broker.publish(&[chat(1, 0)]).await;
    eventually(WAIT, "chat delivered", || fake.received().len() >= 3).await;
    // Acked means sent or dropped: were the duplicate sent, it is here now.
    broker.wait_acked(WAIT).await;
    let got = fake.received();
    assert_eq!(got.len(), 3, "the duplicate id was not sent again: {got:?}");
    let channels: Vec<&str> = got[..2].iter().map(|e| e.channel.as_str()).collect();
    assert_eq!(channels, ["private-order-7", "private-customer-9"]);
    assert!(got[..2].iter().all(|e| e.event == "order-status-changed"));
    common::stop(worker).await;
    assert_eq!(broker.ready_settled().await, 0, "the duplicate was acked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_older_than_the_max_age_are_dead_lettered_as_expired() {
    let (fake, server, broker, db) = rig("expiry", Db::sqlite()).await;
    let worker = common::start_worker(relay_config(
        &server.uri(),
        &broker,
        &db,
        &[("RELAY_MAX_INTENT_AGE", "1m")],
    ))
    .await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let mut old = chat(1, 0);
    old["created_at"] = json!(now_ms - 3_600_000);
    broker.publish(&[old, chat(2, 0)]).await;
    eventually(WAIT, "fresh one delivered", || !fake.received().is_empty()).await;
    let store = db.store().await;
    let dls = wait_for_dead_letters(&store, 1).await;
    assert_eq!(dls.len(), 1);
    assert_eq!(dls[0].reason, DeadLetterReason::Expired);
    assert_eq!(fake.received()[0].channel, "chat-room-2");
    common::stop(worker).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_flushes_in_flight_work_and_leaves_the_rest_unacked() {
    let (fake, server, broker, db) = rig("shutdown", Db::sqlite()).await;
    broker.declare().await;
    let total = 2000;
    let intents: Vec<Value> = (0..total).map(|seq| chat(seq % 10, seq / 10)).collect();
    broker.publish(&intents).await;
    let worker = Worker::start(relay_config(
        &server.uri(),
        &broker,
        &db,
        &[("RELAY_PREFETCH", "200")],
    ))
    .await
    .expect("worker");
    eventually(WAIT, "some delivered", || fake.received().len() >= 100).await;
    common::stop(worker).await;
    let delivered = fake.received().len();
    let left = broker.ready_settled().await as usize;
    assert_eq!(delivered + left, total, "every intent is either delivered and acked, or back in the queue: delivered {delivered}, left {left}");
}
