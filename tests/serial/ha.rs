//! Beyond one host, against the three-node cluster of `scripts/cluster`:
//! the worker binary given every node, nodes stopped under it mid-drain, a
//! hot standby killed, shards spread over three workers and one of them
//! killed, a rolling update of three sharded workers as Kubernetes does
//! it, and producers publishing while a node is down.
//!
//! Every test counts exactly, from what the signature-checking fake Pusher
//! received: published, delivered (first arrivals), lost, duplicates, and
//! order violations among first arrivals (an event arriving before an
//! earlier one of its channel). Each prints its counts (`--nocapture`).

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::distant::{now_ms, Distant};
use common::{unique, Process, KEY, SECRET};
use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pusher_relay::config::AmqpConfig;

const BIN: &str = env!("CARGO_BIN_EXE_pusher-relay");

/// Requests in flight per worker and the fake's distance: 4 × 10 events per
/// 20 ms is about 2,000 events/s per worker, so a drain lasts long enough
/// for a failure to land in the middle of it.
const IN_FLIGHT: &str = "4";
const LATENCY: Duration = Duration::from_millis(20);

/// The test's names: queue `{name}`, exchanges `{name}.x` and `{name}.w`.
struct Names {
    queue: String,
    db: PathBuf,
}

impl Names {
    fn new(prefix: &str) -> Names {
        let queue = unique(prefix);
        let db = std::env::temp_dir().join(format!("{queue}.db"));
        Names { queue, db }
    }

    fn amqp(&self, urls: &[String], single_active: bool, shards: u16) -> AmqpConfig {
        let mut cfg = AmqpConfig::new(
            &urls.join(","),
            &format!("{}.x", self.queue),
            &self.queue,
            &format!("{}.w", self.queue),
        );
        cfg.single_active = single_active;
        cfg.shards = shards;
        cfg
    }
}

/// Starts the worker binary on the test's names, every node in `urls`, and
/// the distant fake; its log goes to a file named after `label`.
fn spawn_worker(
    names: &Names,
    urls: &[String],
    fake: &Distant,
    label: &str,
    extra: &[(&str, &str)],
) -> Process {
    let log = std::env::temp_dir().join(format!("{}-{label}.log", names.queue));
    let mut vars: Vec<(String, String)> = [
        ("PUSHER_APP_ID", "1".to_string()),
        ("PUSHER_APP_KEY", KEY.to_string()),
        ("PUSHER_APP_SECRET", SECRET.to_string()),
        ("PUSHER_HOST", "127.0.0.1".to_string()),
        ("PUSHER_PORT", fake.port.to_string()),
        ("PUSHER_SCHEME", "http".to_string()),
        ("AMQP_URL", urls.join(",")),
        ("AMQP_EXCHANGE", format!("{}.x", names.queue)),
        ("AMQP_WEBHOOK_EXCHANGE", format!("{}.w", names.queue)),
        ("AMQP_QUEUE", names.queue.clone()),
        ("DATABASE_URL", format!("sqlite://{}", names.db.display())),
        ("RELAY_CONCURRENCY", "fixed".to_string()),
        ("RELAY_MAX_IN_FLIGHT", IN_FLIGHT.to_string()),
        ("RUST_LOG", "info".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Process::spawn(&vars, Some(log))
}

/// Where a worker of [`spawn_worker`] logs.
fn log_of(worker: &Process) -> std::path::Display<'_> {
    worker
        .log
        .as_deref()
        .unwrap_or(std::path::Path::new("(stderr)"))
        .display()
}

/// Each worker's `pusher_relay_shards_active`, 0 for one not answering.
async fn shards_active(workers: &[Process]) -> Vec<usize> {
    let mut active = Vec::with_capacity(workers.len());
    for w in workers {
        active.push(w.metric("pusher_relay_shards_active").await.unwrap_or(0.0) as usize);
    }
    active
}

async fn connect(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("a cluster node");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(Default::default())
        .await
        .expect("confirms");
    (conn, ch)
}

/// The body the fake reads `seq` and `t` from.
fn body(channel: &str, seq: usize) -> String {
    format!(
        "{{\"type\":\"event\",\"channels\":[\"{channel}\"],\"event\":\"tick\",\"data\":{{\"seq\":{seq},\"t\":{}}}}}",
        now_ms()
    )
}

/// Publishes `(channel, seq)` intents to the intent exchange as a producer
/// of the wire contract does: persistent, with a message id and (when
/// `keyed`) the ordering key, every one confirmed.
async fn publish(ch: &Channel, exchange: &str, intents: &[(String, usize)], keyed: bool) {
    let mut confirms = Vec::with_capacity(intents.len());
    for (channel, seq) in intents {
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(format!("{channel}/{seq}").into());
        if keyed {
            props = props.with_headers(pusher_relay::publish::ordering_headers(channel));
        }
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        confirms.push(
            ch.basic_publish(
                exchange,
                "event",
                options,
                body(channel, *seq).as_bytes(),
                props,
            )
            .await
            .expect("publish"),
        );
    }
    for c in confirms {
        let confirm = c.await.expect("confirm");
        assert!(confirm.is_ack(), "the broker refused an intent");
        assert!(confirm.take_message().is_none(), "an intent was unroutable");
    }
}

/// [`publish`] through a connection of its own to `url`.
async fn publish_through(url: &str, exchange: &str, intents: &[(String, usize)], keyed: bool) {
    let (conn, ch) = connect(url).await;
    publish(&ch, exchange, intents, keyed).await;
    let _ = conn.close(200, "published").await;
}

/// `per_channel` intents on each of `channels` channels, interleaved as
/// traffic is: every channel's 0, then every channel's 1, and so on.
fn backlog(prefix: &str, channels: usize, per_channel: usize) -> Vec<(String, usize)> {
    (0..per_channel)
        .flat_map(|seq| (0..channels).map(move |c| (format!("{prefix}-{c}"), seq)))
        .collect()
}

/// Exact counts from the fake.
#[derive(Debug)]
struct Counts {
    published: usize,
    delivered: usize,
    lost: usize,
    duplicates: usize,
    violations: usize,
}

fn counts(fake: &Distant, published: usize) -> Counts {
    let seen = fake.seen();
    let delivered = seen.accepted() - seen.duplicates;
    assert_eq!(seen.bad_signatures, 0, "every request is correctly signed");
    Counts {
        published,
        delivered,
        lost: published.saturating_sub(delivered),
        duplicates: seen.duplicates,
        violations: seen.violations,
    }
}

/// Waits until `n` distinct events have arrived, then a little longer for
/// late duplicates; panics with the counts after `timeout`.
async fn drained(fake: &Distant, n: usize, timeout: Duration) -> Counts {
    let deadline = Instant::now() + timeout;
    loop {
        let c = counts(fake, n);
        if c.delivered >= c.published {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return counts(fake, n);
        }
        assert!(
            Instant::now() < deadline,
            "not drained in {timeout:?}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn delivered_at_least(fake: &Distant, n: usize) {
    fake.wait_for(n, Duration::from_secs(60)).await;
}

/// The cluster node (1..=3) holding the AMQP connection named `name`: the
/// server port in the connection's own name, `client:port -> server:port`.
fn connection_node(cluster: &Cluster, name: &str) -> Option<usize> {
    let out = cluster.ctl(&[
        "-q",
        "list_connections",
        "name",
        "client_properties",
        "--formatter",
        "json",
    ]);
    let conns: serde_json::Value = serde_json::from_str(&out).ok()?;
    conns.as_array()?.iter().find_map(|c| {
        let props = c["client_properties"].to_string();
        if !props.contains(name) {
            return None;
        }
        let port: u16 = c["name"].as_str()?.rsplit(':').next()?.parse().ok()?;
        (5681..=5683)
            .contains(&port)
            .then(|| usize::from(port - 5680))
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// Removes the queues, exchanges and store of a test.
async fn cleanup(url: &str, names: &Names, shards: u16) {
    let (conn, ch) = connect(url).await;
    let cfg = names.amqp(&[url.to_string()], false, shards);
    let mut queues = pusher_relay::amqp::consumed_queues(&cfg);
    queues.push(names.queue.clone());
    queues.push(pusher_relay::amqp::roll_call_queue(&cfg));
    for q in queues {
        let _ = ch.queue_delete(&q, QueueDeleteOptions::default()).await;
    }
    let x = &cfg.exchange;
    for e in [
        x.clone(),
        cfg.webhook_exchange.clone(),
        format!("{x}.shards"),
        format!("{x}.by-key"),
        format!("{x}.by-id"),
    ] {
        let _ = ch
            .exchange_delete(&e, ExchangeDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done").await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", names.db.display()));
    }
}

async fn declare(url: &str, cfg: &AmqpConfig) {
    let (conn, _) = connect(url).await;
    pusher_relay::amqp::declare_topology(&conn, cfg)
        .await
        .expect("topology");
    let _ = conn.close(200, "done").await;
}

/// A node fails under a draining worker; the worker is expected to go on
/// through another node with nothing lost and nothing reordered.
async fn drain_through_a_node_failure(prefix: &str, pick: Pick) -> Counts {
    const TOTAL: usize = 20_000;
    const PREFETCH: usize = 2_000;
    let cluster = blocking(Cluster::ensure).await;
    let _serial = cluster.serial().await;
    let names = Names::new(prefix);
    let urls = cluster.urls();
    declare(&urls[0], &names.amqp(&urls, false, 0)).await;
    let leader = {
        let queue = names.queue.clone();
        blocking(move || Cluster::ensure().quorum_leader(&queue)).await
    }
    .expect("the queue has a leader");
    assert_eq!(
        cluster.members(&names.queue),
        [1, 2, 3],
        "the intent queue is replicated to every node"
    );
    // Publish through a node that stays up.
    let survivor = if leader == 1 { 2 } else { 1 };
    publish_through(
        &cluster.url_of(survivor),
        &format!("{}.x", names.queue),
        &backlog("c", 200, TOTAL / 200),
        true,
    )
    .await;

    let fake = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    // For the leader test the worker is given the other nodes only, so the
    // failure is the queue leader's and not the worker's connection.
    let worker_urls: Vec<String> = match pick {
        Pick::WorkersNode => urls.clone(),
        Pick::Leader => (1..=3)
            .filter(|&n| n != leader)
            .map(|n| cluster.url_of(n))
            .collect(),
    };
    let prefetch = PREFETCH.to_string();
    let worker = spawn_worker(
        &names,
        &worker_urls,
        &fake,
        "w",
        &[("RELAY_PREFETCH", prefetch.as_str())],
    );
    worker.wait_ready().await;
    delivered_at_least(&fake, TOTAL / 4).await;
    let victim = match pick {
        Pick::WorkersNode => {
            let name = format!("pusher-relay {}", names.queue);
            blocking(move || connection_node(Cluster::ensure(), &name))
                .await
                .expect("the worker's connection is on a cluster node")
        }
        Pick::Leader => leader,
    };
    let before = counts(&fake, TOTAL).delivered;
    blocking(move || Cluster::ensure().stop_node(victim)).await;
    let result = tokio::time::timeout(
        Duration::from_secs(180),
        drained(&fake, TOTAL, Duration::from_secs(170)),
    )
    .await;
    blocking(move || Cluster::ensure().start_node(victim)).await;
    let c = result.unwrap_or_else(|_| panic!("not drained; log {}", log_of(&worker)));
    println!(
        "{prefix}: stopped node {victim} (leader was {leader}) after {before} of {TOTAL} delivered: {c:?}"
    );
    drop(worker);
    cleanup(&cluster.url_of(survivor), &names, 0).await;
    assert!(
        c.duplicates <= PREFETCH,
        "at most a prefetch window delivered twice: {c:?}"
    );
    c
}

#[derive(Clone, Copy)]
enum Pick {
    WorkersNode,
    Leader,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_a_worker_is_connected_to_stops_mid_drain() {
    let c = drain_through_a_node_failure("ha-conn", Pick::WorkersNode).await;
    assert_eq!((c.lost, c.violations), (0, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quorum_leader_stops_mid_drain() {
    let c = drain_through_a_node_failure("ha-leader", Pick::Leader).await;
    assert_eq!((c.lost, c.violations), (0, 0), "{c:?}");
}

#[derive(Clone, Copy, Debug)]
enum Stop {
    /// kill -9: RabbitMQ sees the connection die.
    Kill,
    /// SIGTERM, as in a rolling restart.
    Term,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_standby_takes_over_from_a_killed_worker_in_order() {
    let c = standby_takes_over(Stop::Kill).await;
    assert_eq!((c.lost, c.violations), (0, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_standby_takes_over_from_a_stopped_worker_in_order_without_duplicates() {
    let c = standby_takes_over(Stop::Term).await;
    assert_eq!((c.lost, c.violations, c.duplicates), (0, 0, 0), "{c:?}");
}

async fn standby_takes_over(stop: Stop) -> Counts {
    const TOTAL: usize = 20_000;
    let cluster = blocking(Cluster::ensure).await;
    let _serial = cluster.serial().await;
    let names = Names::new("ha-standby");
    let urls = cluster.urls();
    declare(&urls[0], &names.amqp(&urls, true, 0)).await;
    publish_through(
        &urls[0],
        &format!("{}.x", names.queue),
        &backlog("s", 200, TOTAL / 200),
        true,
    )
    .await;

    let fake = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let single = [("RELAY_SINGLE_ACTIVE", "true")];
    let mut active = spawn_worker(&names, &urls, &fake, "active", &single);
    active.wait_ready().await;
    let standby = spawn_worker(&names, &urls, &fake, "standby", &single);
    standby.wait_ready().await;
    delivered_at_least(&fake, TOTAL / 4).await;
    let delivered = "pusher_relay_events_delivered_total";
    assert!(
        active.metric(delivered).await.unwrap_or(0.0) > 0.0,
        "the first worker is the active one"
    );
    assert_eq!(
        standby.metric(delivered).await.unwrap_or(0.0),
        0.0,
        "the standby delivers nothing while the active worker lives"
    );
    let killed_at = fake.elapsed();
    match stop {
        Stop::Kill => active.kill(),
        Stop::Term => {
            let term = Command::new("kill")
                .args(["-TERM", &active.child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(term.success());
            let exited = active.child.wait().expect("the worker exits");
            assert!(exited.success(), "exit after SIGTERM: {exited}");
        }
    }
    let before = counts(&fake, TOTAL).delivered;
    let c = drained(&fake, TOTAL, Duration::from_secs(120)).await;
    let takeover = fake
        .seen()
        .events
        .iter()
        .map(|e| e.at)
        .find(|&at| at > killed_at)
        .map(|at| at - killed_at)
        .expect("events after the kill");
    println!(
        "standby ({stop:?}): stopped the active worker after {before} of {TOTAL}; first event from the standby {takeover:?} later; {c:?}"
    );
    drop(standby);
    cleanup(&urls[0], &names, 0).await;
    assert!(
        takeover < Duration::from_secs(10),
        "takeover in {takeover:?}"
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_spread_over_three_workers_keep_order_and_survive_a_kill() {
    const SHARDS: u16 = 8;
    const CHANNELS: usize = 1_000;
    const TOTAL: usize = 30_000;
    const UNKEYED: usize = 300;
    let cluster = blocking(Cluster::ensure).await;
    let _serial = cluster.serial().await;
    let names = Names::new("ha-shards");
    let urls = cluster.urls();
    declare(&urls[0], &names.amqp(&urls, false, SHARDS)).await;
    let fake = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let shards = SHARDS.to_string();
    let env = [("RELAY_SHARDS", shards.as_str())];
    let mut workers = Vec::new();
    for label in ["a", "b", "c"] {
        let w = spawn_worker(&names, &urls, &fake, label, &env);
        w.wait_ready().await;
        workers.push(w);
    }

    // Half as a backlog, so that the shards are handed over while the
    // workers hold full prefetch windows (where a handoff could reorder),
    // the rest over some 10 s while traffic flows, as in production.
    let exchange = format!("{}.x", names.queue);
    let url = urls[0].clone();
    let all = backlog("k", CHANNELS, TOTAL / CHANNELS);
    publish_through(&url, &exchange, &all[..TOTAL / 2], true).await;
    let publisher = tokio::spawn(async move {
        let (conn, ch) = connect(&url).await;
        for chunk in all[TOTAL / 2..].chunks(750) {
            publish(&ch, &exchange, chunk, true).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Intents without the ordering key, each alone on its channel:
        // hashed on their id, delivered all the same.
        publish(&ch, &exchange, &backlog("unkeyed", UNKEYED, 1), false).await;
        let _ = conn.close(200, "published").await;
    });

    // Until every worker is active on at least 2 shards at once, in a
    // consistent reading (the gauges are set every rebalancing round).
    // Generous: 8 sessions share each worker's 4 requests in flight, so
    // batches are small and the drain (and the handoffs' in-flight waits)
    // slow; traffic lasts well over a minute.
    let deadline = Instant::now() + Duration::from_secs(90);
    let spread = loop {
        let active = shards_active(&workers).await;
        if active.iter().all(|&n| n >= 2) && active.iter().sum::<usize>() == usize::from(SHARDS) {
            break active;
        }
        assert!(
            Instant::now() < deadline,
            "shards not spread in 90 s: {active:?}; logs in {}",
            log_of(&workers[0])
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let spread_after = fake.elapsed();

    // kill -9 the first worker; its shards go to the others.
    let mut victim = workers.remove(0);
    victim.kill();
    let before = counts(&fake, TOTAL + UNKEYED).delivered;
    let deadline = Instant::now() + Duration::from_secs(40);
    let after = loop {
        let active = shards_active(&workers).await;
        if active.iter().sum::<usize>() == usize::from(SHARDS) {
            break active;
        }
        assert!(
            Instant::now() < deadline,
            "the killed worker's shards were not taken over in 40 s: {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    publisher.await.expect("publisher");
    let c = drained(&fake, TOTAL + UNKEYED, Duration::from_secs(120)).await;
    println!(
        "shards: active per worker {spread:?} at {spread_after:?}; killed one after {before} delivered; then {after:?}; {c:?}"
    );
    drop(workers);
    cleanup(&urls[0], &names, SHARDS).await;
    assert_eq!((c.lost, c.violations), (0, 0), "{c:?}");
}

/// `RELAY_SHARDS` as the Kubernetes base sets it, so the rolling update is
/// measured on the value that ships.
fn kubernetes_shards() -> u16 {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/configmap.yaml"
    );
    let text = std::fs::read_to_string(path).expect("the Kubernetes ConfigMap");
    text.lines()
        .find_map(|l| l.strip_prefix("  RELAY_SHARDS: "))
        .and_then(|v| v.trim().trim_matches('"').parse().ok())
        .filter(|&n| n > 0)
        .expect("configmap.yaml sets RELAY_SHARDS to a number above 0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_of_three_sharded_workers_keeps_order_while_intents_flow() {
    // What the Kubernetes base's Deployment does (maxSurge 1,
    // maxUnavailable 0): for each old worker, a new one with the same
    // settings starts and is ready (registered on every shard), then the
    // old one gets SIGTERM; the next new one starts without waiting for
    // the old one's exit, as the kubelet's drain does not hold the rollout.
    const WORKERS: usize = 3;
    const CHANNELS: usize = 500;
    const TOTAL: usize = 20_000;
    const CHUNK: usize = 250;
    // Published only once the update is over, so intents flow through all
    // of it however long it takes on a loaded machine.
    const AFTER: usize = 2_000;
    let shards = kubernetes_shards();
    let cluster = blocking(Cluster::ensure).await;
    let _serial = cluster.serial().await;
    let names = Names::new("ha-rolling");
    let urls = cluster.urls();
    declare(&urls[0], &names.amqp(&urls, false, shards)).await;
    let fake = Distant::start(KEY, SECRET, LATENCY, Duration::ZERO).await;
    let shards_var = shards.to_string();
    let env = [("RELAY_SHARDS", shards_var.as_str())];
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let w = spawn_worker(&names, &urls, &fake, &format!("old-{i}"), &env);
        w.wait_ready().await;
        workers.push(w);
    }

    // At most 1,000 intents a second (each chunk confirmed before the
    // next, so slower on a loaded machine), every channel's in order, until
    // AFTER are left; those wait for the update to end.
    let exchange = format!("{}.x", names.queue);
    let url = urls[0].clone();
    let all = backlog("r", CHANNELS, TOTAL / CHANNELS);
    let (rolled_tx, rolled_rx) = tokio::sync::oneshot::channel::<()>();
    let publisher = tokio::spawn(async move {
        let (conn, ch) = connect(&url).await;
        let (during, after) = all.split_at(TOTAL - AFTER);
        let started = Instant::now();
        for chunk in during.chunks(CHUNK) {
            publish(&ch, &exchange, chunk, true).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let waited = Instant::now();
        let _ = rolled_rx.await;
        let waited = waited.elapsed();
        for chunk in after.chunks(CHUNK) {
            publish(&ch, &exchange, chunk, true).await;
        }
        let _ = conn.close(200, "published").await;
        (started.elapsed(), waited)
    });

    // Steady state before the update: every worker active on some shards.
    let deadline = Instant::now() + Duration::from_secs(90);
    let spread = loop {
        let active = shards_active(&workers).await;
        if active.iter().all(|&n| n >= 1) && active.iter().sum::<usize>() == usize::from(shards) {
            break active;
        }
        assert!(
            Instant::now() < deadline,
            "shards not spread in 90 s: {active:?}; logs in {}",
            log_of(&workers[0])
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let rolling = Instant::now();
    let before = counts(&fake, TOTAL).delivered;
    let mut leaving = Vec::new();
    for i in 0..WORKERS {
        let new = spawn_worker(&names, &urls, &fake, &format!("new-{i}"), &env);
        new.wait_ready().await;
        let old = workers.remove(0);
        leaving.push(tokio::spawn(old.terminate()));
        workers.push(new);
    }
    for (i, exit) in leaving.into_iter().enumerate() {
        let exit = exit.await.expect("terminate");
        assert!(exit.success(), "old worker {i} after SIGTERM: {exit}");
    }
    let rolled = rolling.elapsed();
    let during = counts(&fake, TOTAL).delivered - before;
    let _ = rolled_tx.send(());
    let (publishing, waited) = publisher.await.expect("publisher");
    let c = drained(&fake, TOTAL, Duration::from_secs(180)).await;
    println!(
        "rolling update: {WORKERS} workers, {shards} shards, spread {spread:?}; replaced one by one in {rolled:.1?} \
         ({during} delivered meanwhile, {before} before; the publisher held its last {AFTER} for {waited:.1?} and published all in {publishing:.1?}); \
         all delivered {:.1?} after the first; {c:?}",
        fake.elapsed()
    );
    drop(workers);
    cleanup(&urls[0], &names, shards).await;
    assert_eq!((c.lost, c.violations), (0, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_publish_through_the_nodes_that_are_up() {
    const PER_RUN: usize = 100;
    const RUNS: usize = 4;
    let cluster = blocking(Cluster::ensure).await;
    let _serial = cluster.serial().await;
    let names = Names::new("ha-producers");
    let urls = cluster.urls();
    declare(&urls[0], &names.amqp(&urls, false, 0)).await;
    let fake = Distant::start(KEY, SECRET, Duration::ZERO, Duration::ZERO).await;
    let worker = spawn_worker(&names, &urls, &fake, "w", &[]);
    worker.wait_ready().await;
    blocking(|| Cluster::ensure().stop_node(2)).await;

    // The stopped node is listed first: every producer must pass it over
    // whatever order it tries them in.
    let listed = [cluster.url_of(2), cluster.url_of(1), cluster.url_of(3)].join(",");
    let mut published = 0;
    let mut per_channel: HashMap<String, usize> = HashMap::new();
    for run in 0..RUNS {
        let lines: String = (0..PER_RUN)
            .map(|i| {
                let channel = format!("cli-{}", i % 10);
                let seq = per_channel.entry(channel.clone()).or_default();
                let line = body(&channel, *seq);
                *seq += 1;
                line + "\n"
            })
            .collect();
        let out = Command::new(BIN)
            .args(["publish", "--file", "-"])
            .env("AMQP_URL", &listed)
            .env("AMQP_EXCHANGE", format!("{}.x", names.queue))
            .env("PUSHER_APP_ID", "1")
            .env("PUSHER_APP_KEY", KEY)
            .env("PUSHER_APP_SECRET", SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(lines.as_bytes())?;
                child.wait_with_output()
            })
            .expect("publish runs");
        assert!(
            out.status.success(),
            "publish run {run} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        published += PER_RUN;
    }

    let php = Command::new("php")
        .arg("-r")
        .arg(PHP_PUBLISH)
        .env(
            "AUTOLOAD",
            concat!(env!("CARGO_MANIFEST_DIR"), "/clients/php/autoload.php"),
        )
        .env("AMQP_URL", &listed)
        .env("AMQP_EXCHANGE", format!("{}.x", names.queue))
        .env("PUSHER_APP_ID", "1")
        .env("PUSHER_APP_KEY", KEY)
        .env("PUSHER_APP_SECRET", SECRET)
        .env("COUNT", PER_RUN.to_string())
        .output()
        .expect("php runs");
    let php_out = String::from_utf8_lossy(&php.stdout);
    assert!(
        php.status.success(),
        "php failed: {php_out} {}",
        String::from_utf8_lossy(&php.stderr)
    );
    published += PER_RUN;

    let result = tokio::time::timeout(
        Duration::from_secs(60),
        drained(&fake, published, Duration::from_secs(55)),
    )
    .await;
    blocking(|| Cluster::ensure().start_node(2)).await;
    let c = result.expect("drained");
    println!("producers with node 2 down: {c:?}; php said {php_out}");
    drop(worker);
    cleanup(&urls[0], &names, 0).await;
    assert_eq!((c.lost, c.violations), (0, 0), "{c:?}");
}

/// Publishes COUNT events on one channel through the PHP client, each
/// confirmed, with AMQP_URL listing a stopped node.
const PHP_PUBLISH: &str = r#"
require getenv('AUTOLOAD');
$service = new \PusherRelay\QueuedPusherService();
for ($i = 0; $i < (int) getenv('COUNT'); $i++) {
    $data = ['seq' => $i, 't' => (int) (microtime(true) * 1000)];
    if (!$service->trigger('php-0', 'tick', $data)) {
        fwrite(STDERR, "intent $i: " . $service->getLastError() . "\n");
        exit(1);
    }
}
echo "published " . getenv('COUNT');
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_declared_otherwise_stops_the_worker_with_the_way_out() {
    let names = Names::new("ha-mismatch");
    let urls = [common::amqp_url()];
    declare(&urls[0], &names.amqp(&urls, false, 0)).await;
    let fake = Distant::start(KEY, SECRET, Duration::ZERO, Duration::ZERO).await;
    let mut worker = spawn_worker(
        &names,
        &urls,
        &fake,
        "w",
        &[("RELAY_SINGLE_ACTIVE", "true")],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = worker.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker kept running on a queue it cannot use"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(worker.log.as_deref().unwrap_or(std::path::Path::new("")))
        .unwrap_or_default();
    cleanup(&urls[0], &names, 0).await;
    assert!(!status.success(), "{log}");
    for needed in [
        "inequivalent arg 'x-single-active-consumer'",
        "new AMQP_QUEUE",
        "drain the old queue",
    ] {
        assert!(log.contains(needed), "{needed:?} missing from: {log}");
    }
}
