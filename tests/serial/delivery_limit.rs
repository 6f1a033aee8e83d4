//! Nothing vanishes at the broker's delivery limit: RabbitMQ 4 gives every
//! quorum queue a limit of 20 deliveries and drops what passes it unless
//! the queue names a dead-letter target. The worker declares its own limit
//! and target, holds nothing through a Pusher outage (so neither a crash
//! loop nor the consumer timeout counts against it), and notices a
//! connection the broker closes whatever Pusher is doing.
//!
//! `scripts/test` runs these on the machine's RabbitMQ 3.10 and again on
//! the 4.0 node of `scripts/rabbitmq4` (`TEST_AMQP_URL`); each holds on
//! both.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    assert_in_order_once, chat, close_broker_connection, eventually, metric_sum, rabbitmqctl,
    relay_config, rig, Broker, Db, FakePusher, Process, Proxy, Received,
};
use lapin::options::BasicGetOptions;
use pusher_relay::amqp::DELIVERY_LIMIT;
use pusher_relay::deadletter::{DeadLetterReason, Filter};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// Each intent's first delivery, in the order Pusher got them.
fn first_occurrences(received: &[Received]) -> Vec<Received> {
    let mut seen = std::collections::HashSet::new();
    received
        .iter()
        .filter(|e| seen.insert(e.data.clone()))
        .cloned()
        .collect()
}

/// Waits until the worker has started and found Pusher away: its queues
/// are declared and its circuit is open.
async fn wait_paused(worker: &Process) {
    worker
        .wait_readyz(|_, body| body["circuit"].as_str().is_some_and(|c| c != "closed"))
        .await;
}

/// Takes the head of the test's queue and goes away without an ack, as a
/// worker killed while holding it does, until RabbitMQ gives up on it;
/// returns how many times it was handed out.
async fn take_until_dead_lettered(broker: &Broker) -> i64 {
    let mut deliveries = 0;
    loop {
        let channel = broker.conn.create_channel().await.expect("channel");
        let got = channel
            .basic_get(&broker.queue, BasicGetOptions { no_ack: false })
            .await
            .expect("basic.get");
        let _ = channel.close(200, "gone without an ack").await;
        if got.is_none() {
            return deliveries;
        }
        deliveries += 1;
        assert!(
            deliveries <= DELIVERY_LIMIT + 1,
            "still handed out after {deliveries} deliveries"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_through_an_outage_loses_nothing_and_spends_nothing_of_the_limit() {
    let (fake, server, broker, db) = rig("crashloop", Db::sqlite()).await;
    fake.plan().down = true;
    broker.declare().await;
    let (rooms, per_room) = (5, 100);
    let intents: Vec<Value> = (0..per_room)
        .flat_map(|seq| (0..rooms).map(move |room| chat(room, seq)))
        .collect();
    broker.publish(&intents).await;

    // More kills than RabbitMQ 4's default limit of 20: were the worker to
    // take its window before finding Pusher away, each kill would count.
    let kills = 30;
    for _ in 0..kills {
        let mut worker = Process::spawn_for(&server.uri(), &broker, &db, &[]);
        wait_paused(&worker).await;
        worker.kill();
    }
    assert_eq!(
        broker.ready_settled().await as usize,
        rooms * per_room,
        "every intent still waits in the queue after {kills} kills"
    );
    // And none was ever handed out: the head of the queue has no delivery
    // count. Closing the channel puts it back at the head.
    let channel = broker.conn.create_channel().await.expect("channel");
    let head = channel
        .basic_get(&broker.queue, BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
        .expect("a message");
    let count = head
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned());
    // 4.0 leaves the header out of a first delivery, 3.10 sets it to 0.
    let never = matches!(count, None | Some(lapin::types::AMQPValue::LongLongInt(0)));
    assert!(
        !head.delivery.redelivered && never,
        "the head was handed out before: redelivered {}, x-delivery-count {count:?}",
        head.delivery.redelivered
    );
    let _ = channel.close(200, "looked").await;

    fake.plan().down = false;
    let worker = Process::start(&server.uri(), &broker, &db, &[]).await;
    eventually(WAIT, "everything delivered once Pusher is back", || {
        first_occurrences(&fake.received()).len() >= rooms * per_room
    })
    .await;
    broker.wait_acked(WAIT).await;
    drop(worker);
    assert_in_order_once(&fake.received(), rooms, per_room);
    assert_eq!(
        db.store().await.count().await.expect("count"),
        0,
        "nothing reached the delivery limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_redelivered_past_the_limit_is_a_replayable_dead_letter_naming_it() {
    let (fake, server, broker, db) = rig("limit", Db::sqlite()).await;
    broker.declare().await;
    broker.publish(&[chat(1, 0)]).await;

    assert_eq!(
        take_until_dead_lettered(&broker).await,
        DELIVERY_LIMIT + 1,
        "RabbitMQ dead-letters once the limit is passed"
    );

    let worker = common::start_worker(relay_config(&server.uri(), &broker, &db, &[])).await;
    let store = db.store().await;
    let filter = Filter {
        reasons: vec![DeadLetterReason::DeliveryLimit],
        ..Filter::default()
    };
    let mut stored = Vec::new();
    for _ in 0..600 {
        stored = store.list(&filter, None, 10).await.expect("list").items;
        if !stored.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let [dl] = stored.as_slice() else {
        panic!("one delivery_limit dead letter, got {stored:?}");
    };
    assert_eq!(
        dl.routing_key, "chat.message",
        "the routing key it was published with"
    );
    assert_eq!(dl.channels, vec!["chat-room-1".to_string()]);
    assert!(
        dl.error.contains(&DELIVERY_LIMIT.to_string()) && dl.error.contains(&broker.queue),
        "the error names the limit and the queue: {}",
        dl.error
    );
    let metrics = common::metrics_text(&worker).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "pusher_relay_dead_letters_total{reason=\"delivery_limit\"}"
        ),
        1.0,
        "{metrics}"
    );

    // Replayed like every dead letter: the worker delivers it this time.
    let report = pusher_relay::deadletter::replay::replay(
        &store,
        &broker.amqp_config(),
        &filter,
        &Default::default(),
        |_, _| {},
    )
    .await
    .expect("replay");
    assert_eq!(report.replayed, 1, "{report:?}");
    eventually(WAIT, "the replayed intent delivered", || {
        !fake.received().is_empty()
    })
    .await;
    common::stop(worker).await;
    assert_in_order_once(&fake.received(), 1, 1);
}

/// Sets RabbitMQ's consumer timeout on the tests' own node (never the
/// machine's 3.10 node, which other test binaries share): the 4.0 node of
/// `scripts/rabbitmq4`, or the nodes of `scripts/cluster`. Restored on drop.
struct ConsumerTimeout {
    url: String,
}

impl ConsumerTimeout {
    fn set(ms: u64) -> ConsumerTimeout {
        let url = if common::on_rabbitmq4() {
            common::amqp_url()
        } else {
            common::cluster::Cluster::ensure().url_of(1)
        };
        Self::apply(&format!(
            "rpc:multicall(application, set_env, [rabbit, consumer_timeout, {ms}])."
        ));
        ConsumerTimeout { url }
    }

    fn apply(expr: &str) {
        let out = if common::on_rabbitmq4() {
            let out = rabbitmqctl().args(["eval", expr]).output().expect("ctl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            common::cluster::Cluster::ensure().ctl(&["eval", expr])
        };
        assert!(out.contains("ok"), "{expr}: {out}");
    }
}

impl Drop for ConsumerTimeout {
    fn drop(&mut self) {
        Self::apply("rpc:multicall(application, unset_env, [rabbit, consumer_timeout]).");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_consumer_timeout_loses_nothing_and_keeps_order() {
    let timeout = ConsumerTimeout::set(5_000);
    let (fake, server) = FakePusher::start().await;
    let db = Db::sqlite();
    let broker = Broker::at(&timeout.url, "ctimeout").await;
    broker.declare().await;
    let worker = Process::start(&server.uri(), &broker, &db, &[]).await;
    let first: Vec<Value> = (0..20).map(|seq| chat(seq % 2, seq / 2)).collect();
    broker.publish(&first).await;
    eventually(WAIT, "delivered before the outage", || {
        fake.received().len() >= 20
    })
    .await;

    fake.plan().down = true;
    let rest: Vec<Value> = (20..200).map(|seq| chat(seq % 2, seq / 2)).collect();
    broker.publish(&rest).await;
    wait_paused(&worker).await;
    // RabbitMQ looks for late acks about once a minute: past that, a worker
    // still holding deliveries would have had its channel closed.
    tokio::time::sleep(Duration::from_secs(70)).await;
    fake.plan().down = false;
    eventually(WAIT, "everything delivered after the outage", || {
        first_occurrences(&fake.received()).len() >= 200
    })
    .await;
    let metrics = worker.metrics_text().await;
    assert_eq!(
        metric_sum(&metrics, "pusher_relay_broker_connections_lost_total"),
        0.0,
        "the broker never closed the worker's channel: {metrics}"
    );
    // Stopped gracefully, it acks what it delivered; anything else would
    // be back in the queue now.
    assert!(worker.terminate().await.success());
    assert_eq!(broker.ready_settled().await, 0);
    assert_in_order_once(&fake.received(), 2, 100);
    assert_eq!(db.store().await.count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_broker_closes_during_an_outage_is_replaced_within_5_s() {
    let (fake, server, broker, db) = rig("closed", Db::sqlite()).await;
    fake.plan().down = true;
    broker.declare().await;
    let intents: Vec<Value> = (0..50).map(|seq| chat(seq % 5, seq / 5)).collect();
    broker.publish(&intents).await;
    // Through a proxy that counts the worker's connections as they come.
    let proxy = Proxy::start(&common::amqp_addr()).await;
    let via_proxy = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let worker = Process::start(
        &server.uri(),
        &broker,
        &db,
        &[("AMQP_URL", via_proxy.as_str())],
    )
    .await;
    wait_paused(&worker).await;
    eventually(
        WAIT,
        "the worker connected for the drain and the wait",
        || proxy.connections() >= 2,
    )
    .await;
    let before = proxy.connections();
    // Timed from before the listing that finds the connection: the close
    // itself comes a second or so later.
    let closed_at = Instant::now();
    assert!(close_broker_connection(&broker.queue), "closed it");
    eventually(
        Duration::from_secs(5),
        "a new connection within 5 s",
        || proxy.connections() > before,
    )
    .await;
    let took = closed_at.elapsed();
    eprintln!("closed during an outage: reconnected after {took:?}");
    assert!(took <= Duration::from_secs(5), "reconnected after {took:?}");
    let metrics = worker.metrics_text().await;
    assert!(
        metric_sum(&metrics, "pusher_relay_broker_connections_lost_total") >= 1.0,
        "the loss was seen: {metrics}"
    );

    fake.plan().down = false;
    eventually(WAIT, "everything delivered once Pusher is back", || {
        first_occurrences(&fake.received()).len() >= 50
    })
    .await;
    broker.wait_acked(WAIT).await;
    drop(worker);
    assert_in_order_once(&fake.received(), 5, 10);
}

/// A policy of the test's own, cleared on drop.
struct Policy(String);

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = rabbitmqctl().args(["clear_policy", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_an_earlier_version_is_used_and_check_prints_the_policy_that_limits_it() {
    let (_fake, server, broker, db) = rig("legacy", Db::sqlite()).await;
    // As an earlier version declared it: quorum, nothing else.
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    broker
        .channel
        .queue_declare(
            &broker.queue,
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .expect("legacy queue");

    let vars = common::relay_vars(&server.uri(), &broker, &db, &[]);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pusher-relay"))
        .args(["check", "--json"])
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(vars)
        .output()
        .await
        .expect("check runs");
    let report: Value = serde_json::from_slice(&out.stdout).expect("check --json prints JSON");
    assert!(
        out.status.success(),
        "usable, so not a failed check: {report}"
    );
    let queue = &report["queues"][0];
    assert_eq!(queue["queue"], broker.queue.as_str(), "{report}");
    assert!(
        queue["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("declared by an earlier version")),
        "{report}"
    );
    let fix = queue["fix"].as_str().expect("a fix").to_string();
    assert!(fix.starts_with("rabbitmqctl set_policy "), "{fix}");

    // The printed line, as an operator would paste it (under a policy name
    // of this test's own), gives the queue the limit and its target.
    let name = common::unique("limit-policy");
    let _policy = Policy(name.clone());
    let ctl = if common::on_rabbitmq4() {
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rabbitmq4 ctl")
    } else {
        "rabbitmqctl"
    };
    let line = fix
        .replacen("rabbitmqctl", ctl, 1)
        .replace("pusher-relay-delivery-limit", &name);
    let applied = std::process::Command::new("sh")
        .args(["-c", &line])
        .output()
        .expect("sh");
    assert!(
        applied.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    eventually(WAIT, "the policy applied to the queue", || {
        let out = rabbitmqctl()
            .args(["list_queues", "name", "policy", "-q", "--no-table-headers"])
            .output()
            .expect("rabbitmqctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with(&format!("{}\t{name}", broker.queue)))
    })
    .await;

    // The worker's declaration uses the queue as it is.
    broker.declare().await;
    broker.publish(&[chat(1, 0)]).await;
    assert_eq!(take_until_dead_lettered(&broker).await, DELIVERY_LIMIT + 1);

    // A process of its own: the in-process metrics are the other test's.
    let worker = Process::start(&server.uri(), &broker, &db, &[]).await;
    let store = db.store().await;
    let filter = Filter {
        reasons: vec![DeadLetterReason::DeliveryLimit],
        ..Filter::default()
    };
    let mut stored = 0;
    for _ in 0..600 {
        stored = store.count_matching(&filter).await.expect("count");
        if stored > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 1, "the policy's target is the worker's limit queue");
    assert!(worker.terminate().await.success());
}
