//! Parking a hot channel, on the real RabbitMQ and the worker binary against
//! a fake Pusher 20 ms away: a burst to one channel while other channels
//! flow. Every event arrives in its channel's order and none is lost, the
//! parked gauge rises and falls, and a kill -9 in the middle (also between
//! the parked log's commit and the queue's ack), sharded queues and a hot
//! standby taking over change none of it. Behaviour only: how much sooner
//! the cold channels are served is the benchmark's business.

use crate::common;

use std::time::Duration;

use common::distant::{now_ms, Distant};
use common::{eventually, Broker, Db, Process, Proxy, KEY, SECRET};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);
const LATENCY: Duration = Duration::from_millis(20);
const HOT: usize = 3_000;
const COLD_CHANNELS: usize = 20;
const COLD_EACH: usize = 20;

fn intent(channel: &str, seq: usize) -> Value {
    json!({"type": "event", "id": format!("{channel}-{seq}"), "channels": [channel],
           "event": "tick", "data": {"seq": seq, "t": now_ms()}})
}

fn hot(prefix: &str, from: usize, to: usize) -> Vec<Value> {
    (from..to)
        .map(|s| intent(&format!("{prefix}-hot"), s))
        .collect()
}

fn cold(prefix: &str) -> Vec<Value> {
    (0..COLD_EACH)
        .flat_map(|s| (0..COLD_CHANNELS).map(move |c| (c, s)))
        .map(|(c, s)| intent(&format!("{prefix}-cold-{c}"), s))
        .collect()
}

/// A worker that parks early: a window of 400, a channel parked past 50.
fn settings<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut s = vec![
        ("RELAY_PREFETCH", "400"),
        ("RELAY_PARK_THRESHOLD", "50"),
        ("RUST_LOG", "info"),
    ];
    s.extend_from_slice(extra);
    s
}

fn total() -> usize {
    HOT + COLD_CHANNELS * COLD_EACH
}

async fn wait_metric(worker: &Process, name: &str, what: &str, ok: impl Fn(f64) -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if worker.metric(name).await.is_some_and(&ok) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {name} = {:?}",
            worker.metric(name).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_complete_in_order(pusher: &Distant, allow_duplicates: bool) -> usize {
    let seen = pusher.seen();
    assert_eq!(seen.bad_signatures, 0);
    assert_eq!(seen.violations, 0, "per-channel order");
    assert_eq!(seen.max_channel_in_flight, 1, "one request per channel");
    let first = seen.accepted() - seen.duplicates;
    assert_eq!(first, total(), "every intent, once at least");
    if !allow_duplicates {
        assert_eq!(seen.duplicates, 0);
    }
    seen.duplicates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_one_channel_is_parked_and_delivered_in_order_beside_the_others() {
    let pusher = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let broker = Broker::new("park").await;
    let db = Db::sqlite();
    let worker = Process::start(&pusher.uri(), &broker, &db, &settings(&[])).await;

    broker.publish(&hot("park", 0, HOT)).await;
    broker.publish(&cold("park")).await;
    wait_metric(&worker, "pusher_relay_parked_channels", "parked", |v| {
        v == 1.0
    })
    .await;
    // The cold channels behind the burst in the queue are served while the
    // hot one is still parked.
    let cold_done = || {
        let seen = pusher.seen();
        let cold = seen
            .events
            .iter()
            .filter(|e| e.channel.contains("-cold-"))
            .count();
        cold >= COLD_CHANNELS * COLD_EACH
    };
    eventually(WAIT, "cold channels delivered", cold_done).await;
    assert_eq!(
        worker.metric("pusher_relay_parked_channels").await,
        Some(1.0),
        "the hot channel is still parked when the cold ones are through"
    );
    pusher.wait_for(total(), WAIT).await;
    wait_metric(&worker, "pusher_relay_parked_channels", "unparked", |v| {
        v == 0.0
    })
    .await;
    assert_complete_in_order(&pusher, false);
    let parked = worker
        .metric("pusher_relay_intents_parked_total")
        .await
        .expect("parked counter");
    let unparked = worker
        .metric("pusher_relay_intents_unparked_total")
        .await
        .expect("unparked counter");
    assert!(parked > 0.0 && parked < HOT as f64, "{parked}");
    assert_eq!(parked, unparked, "every parked intent came back");
    let store = db.store().await;
    let log = format!("{}@{}", broker.queue, host_name());
    assert!(store.parked_groups(&log).await.expect("log").is_empty());
    broker.wait_acked(WAIT).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_parking_off_nothing_is_parked() {
    let pusher = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let broker = Broker::new("park-off").await;
    let db = Db::sqlite();
    let worker = Process::start(
        &pusher.uri(),
        &broker,
        &db,
        &settings(&[("RELAY_PARKING", "off")]),
    )
    .await;
    broker.publish(&hot("park-off", 0, 500)).await;
    pusher.wait_for(500, WAIT).await;
    assert_eq!(
        worker.metric("pusher_relay_intents_parked_total").await,
        None
    );
    assert_eq!(pusher.seen().violations, 0);
    worker.stop().await;
}

/// The worker's host name, which names a competing worker's parked log.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_the_parked_write_and_the_ack_loses_and_reorders_nothing() {
    let pusher = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let broker = Broker::new("park-kill").await;
    let db = Db::sqlite();
    let proxy = Proxy::start(&common::amqp_addr()).await;
    let via_proxy = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let mut worker = Process::start(
        &pusher.uri(),
        &broker,
        &db,
        &settings(&[("AMQP_URL", via_proxy.as_str())]),
    )
    .await;

    // From the start the broker sees no acks, so what the worker parks is
    // in the log and still unacked in the queue when it dies. Holding from
    // the start, not from the first parked intent, keeps that true however
    // fast the worker parks: the window (400) is all it ever gets.
    proxy.hold_from_clients();
    broker.publish(&hot("park-kill", 0, HOT)).await;
    broker.publish(&cold("park-kill")).await;
    let store = db.store().await;
    let log = format!("{}@{}", broker.queue, host_name());
    let rows = || async {
        store
            .parked_groups(&log)
            .await
            .expect("log")
            .iter()
            .map(|g| g.rows)
            .sum::<u64>()
    };
    wait_metric(
        &worker,
        "pusher_relay_intents_parked_total",
        "parked while held",
        |v| v >= 100.0,
    )
    .await;
    worker.kill();
    proxy.cut();
    let in_log = rows().await as usize;
    let ready = broker.ready_settled().await as usize;
    let delivered = {
        let seen = pusher.seen();
        seen.accepted() - seen.duplicates
    };
    assert!(
        in_log + ready + delivered > total(),
        "some intents are both in the log and back in the queue: {in_log} + {ready} + {delivered}"
    );

    let worker = Process::start(&pusher.uri(), &broker, &db, &settings(&[])).await;
    pusher.wait_for(total(), WAIT).await;
    broker.wait_acked(WAIT).await;
    wait_metric(&worker, "pusher_relay_parked_channels", "unparked", |v| {
        v == 0.0
    })
    .await;
    let duplicates = assert_complete_in_order(&pusher, true);
    println!("duplicates after the kill: {duplicates}");
    assert_eq!(rows().await, 0, "the log is empty again");
    worker.stop().await;
}

/// On the cluster (see tests/serial/ha.rs), the shards of one worker: the hot
/// channel's shard parks it, the others flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_queues_park_and_survive_a_kill() {
    let pusher = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    // The consistent-hash exchanges of shards need the plugin, which the
    // nodes of scripts/cluster have.
    let url = common::cluster::Cluster::ensure().url_of(1);
    let broker = Broker::at(&url, "park-shards").await;
    let shard_queues: Vec<String> = (0..4)
        .map(|i| format!("{}.shard-{i}", broker.queue))
        .collect();
    let mut names: Vec<&str> = shard_queues.iter().map(String::as_str).collect();
    let workers_queue = format!("{}.workers", broker.queue);
    names.push(&workers_queue);
    let by_key = format!("{}.by-key", broker.exchange);
    let by_id = format!("{}.by-id", broker.exchange);
    broker.delete_on_drop(&names, &[&by_key, &by_id]);
    let db = Db::sqlite();
    let extra = settings(&[("RELAY_SHARDS", "4"), ("AMQP_URL", url.as_str())]);
    let mut worker = Process::start(&pusher.uri(), &broker, &db, &extra).await;

    broker.publish(&hot("park-shards", 0, HOT)).await;
    broker.publish(&cold("park-shards")).await;
    wait_metric(
        &worker,
        "pusher_relay_intents_parked_total",
        "parking",
        |v| v > 200.0,
    )
    .await;
    worker.kill();
    let worker = Process::start(&pusher.uri(), &broker, &db, &extra).await;
    pusher.wait_for(total(), WAIT).await;
    wait_metric(&worker, "pusher_relay_parked_channels", "unparked", |v| {
        v == 0.0
    })
    .await;
    let duplicates = assert_complete_in_order(&pusher, true);
    println!("duplicates after the kill: {duplicates}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_standby_goes_on_with_the_parked_log_of_the_worker_it_replaces() {
    let pusher = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let broker = Broker::new("park-standby").await;
    let db = Db::postgres().await;
    let extra = settings(&[("RELAY_SINGLE_ACTIVE", "true")]);
    let mut active = Process::start(&pusher.uri(), &broker, &db, &extra).await;
    let standby = Process::start(&pusher.uri(), &broker, &db, &extra).await;

    broker.publish(&hot("park-standby", 0, HOT)).await;
    broker.publish(&cold("park-standby")).await;
    wait_metric(
        &active,
        "pusher_relay_intents_parked_total",
        "parking",
        |v| v > 200.0,
    )
    .await;
    active.kill();
    // The queue may be empty by now, every intent left in the log: the
    // standby learns it is active from its own wake-up marker.
    pusher.wait_for(total(), WAIT).await;
    wait_metric(&standby, "pusher_relay_parked_channels", "unparked", |v| {
        v == 0.0
    })
    .await;
    let duplicates = assert_complete_in_order(&pusher, true);
    println!("duplicates after the takeover: {duplicates}");
    let store = db.store().await;
    assert!(store
        .parked_groups(&broker.queue)
        .await
        .expect("log")
        .is_empty());
    standby.stop().await;
}

/// Every message the worker takes is finished in exactly one outcome, so
/// the outcome counter adds up to what was consumed: delivered, parked (a
/// hot channel), dead-lettered (bodies that are not intents) and duplicate
/// (the same intents published again after they were sent). Wake-ups are
/// counted by `tests/broker/hostile.rs`, where a producer's header is shown to be
/// an ordinary intent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_taken_is_counted_in_exactly_one_outcome() {
    let pusher = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let broker = Broker::new("outcomes").await;
    let db = Db::sqlite();
    let worker = Process::start(&pusher.uri(), &broker, &db, &settings(&[])).await;

    broker.publish(&hot("outcomes", 0, HOT)).await;
    broker.publish(&cold("outcomes")).await;
    let invalid = 5;
    for _ in 0..invalid {
        let confirm = broker.publish_raw("event", b"not an intent").await;
        assert!(confirm.await.expect("confirm").is_ack());
    }
    pusher.wait_for(total(), WAIT).await;
    // The same ids again: the worker sent them already.
    let again: Vec<Value> = cold("outcomes").into_iter().take(20).collect();
    broker.publish(&again).await;
    broker.wait_acked(WAIT).await;

    let text = worker.metrics_text().await;
    let consumed = common::metric_sum(&text, "pusher_relay_intents_consumed_total");
    let outcome = |o: &str| {
        common::metric_sum(
            &text,
            &format!("pusher_relay_intents_settled_total{{outcome=\"{o}\"}}"),
        )
    };
    let settled = common::metric_sum(&text, "pusher_relay_intents_settled_total");
    let published = (total() + invalid + again.len()) as f64;
    println!(
        "consumed {consumed}, settled {settled}: delivered {}, parked {}, dead_lettered {}, duplicate {}",
        outcome("delivered"),
        outcome("parked"),
        outcome("dead_lettered"),
        outcome("duplicate")
    );
    assert_eq!(consumed, published, "each message taken once");
    assert_eq!(settled, consumed, "every message taken is in one outcome");
    assert!(outcome("parked") > 0.0, "the hot channel was parked");
    assert_eq!(outcome("dead_lettered"), invalid as f64);
    assert_eq!(outcome("duplicate"), again.len() as f64);
    assert_eq!(
        outcome("delivered") + outcome("parked"),
        total() as f64,
        "each intent delivered from the queue or parked, once"
    );
    worker.stop().await;
}

/// Rows in one parked log.
async fn rows_in(store: &pusher_relay::deadletter::Store, log: &str) -> u64 {
    store
        .parked_groups(log)
        .await
        .expect("log")
        .iter()
        .map(|g| g.rows)
        .sum()
}

/// Competing consumers on a PostgreSQL store, as the Kubernetes overlay
/// runs them: a worker stopped (scaled in) with its parked log full leaves
/// nothing behind. Another worker adopts the log once its lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_workers_parked_log_is_adopted_by_a_live_one() {
    let pusher = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let broker = Broker::new("park-adopt").await;
    let db = Db::postgres().await;
    let worker_on = |host| settings(&[("HOSTNAME", host), ("RELAY_PARKED_LEASE", "3s")]);
    let a = Process::start(&pusher.uri(), &broker, &db, &worker_on("relay-a")).await;
    broker.publish(&hot("park-adopt", 0, HOT)).await;
    // Every intent is parked or delivered, as the worker's own count of
    // settled messages says: the queue holds none of them, so the next
    // worker has only the log to go on from. (The broker's queue counts are
    // sampled every few seconds and can say empty too early; a tail left in
    // the queue would then go out before the log, across workers.)
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = a.metrics_text().await;
        if common::metric_sum(&text, "pusher_relay_intents_settled_total") >= HOT as f64 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "every intent settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.wait_acked(WAIT).await;
    a.stop().await;
    let store = db.store().await;
    let log_a = format!("{}@relay-a", broker.queue);
    let left = rows_in(&store, &log_a).await;
    assert!(left > 0, "the stopped worker left rows in its log");
    println!("rows left in the stopped worker's log: {left}");

    let b = Process::start(&pusher.uri(), &broker, &db, &worker_on("relay-b")).await;
    wait_metric(
        &b,
        "pusher_relay_parked_logs_adopted_total",
        "adopted",
        |v| v >= 1.0,
    )
    .await;
    pusher.wait_for(HOT, WAIT).await;
    let log_b = format!("{}@relay-b", broker.queue);
    let emptied =
        || async { rows_in(&store, &log_a).await == 0 && rows_in(&store, &log_b).await == 0 };
    let deadline = std::time::Instant::now() + WAIT;
    while !emptied().await {
        assert!(std::time::Instant::now() < deadline, "both logs empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let seen = pusher.seen();
        assert_eq!(seen.bad_signatures, 0);
        assert_eq!(seen.accepted() - seen.duplicates, HOT, "every intent");
        assert_eq!(seen.violations, 0, "in order");
        assert_eq!(seen.duplicates, 0, "the delivered log is shared");
    }
    b.stop().await;
}

/// `RELAY_PARKED_MAX_ROWS`: past it the hot channel's intents stay in
/// RabbitMQ, unacked and in order, and the log never grows past the cap and
/// one window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_parked_log_leaves_the_rest_in_rabbitmq_in_order() {
    let pusher = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let broker = Broker::new("park-full").await;
    let db = Db::sqlite();
    let worker = Process::start(
        &pusher.uri(),
        &broker,
        &db,
        &settings(&[("RELAY_PARKED_MAX_ROWS", "100")]),
    )
    .await;
    broker.publish(&hot("park-full", 0, HOT)).await;
    broker.publish(&cold("park-full")).await;
    wait_metric(
        &worker,
        "pusher_relay_parked_waiting_for_room",
        "intents wait for room",
        |v| v >= 1.0,
    )
    .await;
    let store = db.store().await;
    let log = format!("{}@{}", broker.queue, host_name());
    let mut most = 0;
    let deadline = std::time::Instant::now() + WAIT;
    while pusher.seen().accepted() < total() {
        most = most.max(rows_in(&store, &log).await);
        assert!(
            std::time::Instant::now() < deadline,
            "every intent delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("most rows in the log: {most}");
    assert!(most <= 100 + 400, "the cap and one window at most: {most}");
    assert_complete_in_order(&pusher, false);
    wait_metric(
        &worker,
        "pusher_relay_parked_waiting_for_room",
        "none waits",
        |v| v == 0.0,
    )
    .await;
    worker.stop().await;
}

/// A multi-channel intent naming a parked channel holds its other channel
/// back only until it is itself on its way: the side channel's later
/// intents do not wait for the hot channel's later backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tie_to_a_parked_channel_lasts_only_until_the_tying_intent_is_sent() {
    let pusher = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let broker = Broker::new("park-tie").await;
    let db = Db::sqlite();
    let worker = Process::start(&pusher.uri(), &broker, &db, &settings(&[])).await;
    let (hot_ch, side) = ("park-tie-hot", "park-tie-side");
    broker.publish(&hot("park-tie", 0, 1_500)).await;
    broker
        .publish(&[json!({"type": "event", "id": "tie", "channels": [hot_ch, side],
                          "event": "tick", "data": {"seqs": {hot_ch: 1_500, side: 0}, "t": now_ms()}})])
        .await;
    broker.publish(&hot("park-tie", 1_501, 3_001)).await;
    let sides: Vec<Value> = (1..=20).map(|s| intent(side, s)).collect();
    broker.publish(&sides).await;
    let events = 1_500 + 2 + 1_500 + 20;
    pusher.wait_for(events, WAIT).await;
    {
        let seen = pusher.seen();
        assert_eq!(seen.bad_signatures, 0);
        assert_eq!(seen.violations, 0, "per-channel order");
        assert_eq!(seen.accepted() - seen.duplicates, events);
        let at = |channel: &str, seq: u64| {
            seen.events
                .iter()
                .position(|e| e.channel == channel && e.seq == seq)
                .expect("delivered")
        };
        // Tied for good, the side channel's intents would come out of the hot
        // channel's log after hot 3,000, at the very end; untied, they follow
        // the multi-channel intent.
        let (side_last, hot_2000) = (at(side, 20), at(hot_ch, 2_000));
        println!("side 20 delivered {side_last}th, hot 2000 {hot_2000}th");
        assert!(
            side_last < hot_2000,
            "the side channel went on long before the hot one's later backlog was through"
        );
        assert_eq!(seen.duplicates, 0);
    }
    worker.stop().await;
}
