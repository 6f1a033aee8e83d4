//! The Node (clients/node) and Python (clients/python) producers publishing
//! into the Rust worker: each typed helper's intent arrives at a Pusher that
//! checks every signature, as the channel, event and data the seed app used
//! to send; every message carries the wire contract's properties and its
//! ordering key; and a publish nobody receives is an error, not a silent
//! drop. A publisher whose connection the broker closes publishes again on
//! a new one, each intent once. Each producer, the PHP client too, publishes
//! over `amqps` with RabbitMQ's URI TLS parameters (a private CA and a
//! client certificate the TLS terminator in front of the broker demands).
//!
//! Needs `clients/node/node_modules` and pika: `clients/node/run-tests.sh`
//! and `clients/python/run-tests.sh` install them.

use crate::common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, relay_config, rig, Broker, Db, FakePusher};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;
use serde_json::{json, Value};

/// A producer library and the two scripts an app would write with it.
struct Producer {
    name: &'static str,
    /// The interpreter and the arguments before the script.
    program: &'static str,
    args: &'static [&'static str],
    /// How the script finds the library.
    env: (&'static str, &'static str),
    /// What a setup step must have installed, and which step.
    needs: Option<(&'static str, &'static str)>,
    /// One call per helper, in order (the chat room's three intents must
    /// arrive in the order they were published), then a publish to an
    /// exchange with no queue bound; prints `{"ids": .., "unroutable": ..}`.
    delivery: &'static str,
    /// Publishes once, waits for a line on stdin, publishes again, printing
    /// each id.
    twice: &'static str,
}

const NODE: Producer = Producer {
    name: "node",
    program: "node",
    args: &["--input-type=module", "-e"],
    env: (
        "PUSHER_RELAY_CLIENT",
        concat!(env!("CARGO_MANIFEST_DIR"), "/clients/node/src/index.js"),
    ),
    needs: Some((
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/clients/node/node_modules/amqplib"
        ),
        "clients/node/run-tests.sh (npm ci from the lockfile)",
    )),
    delivery: r#"
const { IntentPublisher, PublishFailed } = await import(process.env.PUSHER_RELAY_CLIENT);
const publisher = IntentPublisher.fromEnv(process.env, { appId: 'node-e2e' });
const ids = {};
ids.trigger = await publisher.trigger('orders', 'order-created', { id: 7, total: 19.5 }, { socketId: '123.456' });
ids.batch = await publisher.triggerBatch(['admin-alerts', 'user-updates'], 'system-announcement', { title: 'Maintenance' });
ids.notify = await publisher.notifyUser(42, 'Your order has been shipped!', { level: 'success' });
ids.announce = await publisher.announce('Maintenance tonight', { priority: 'high' });
ids.chat = await publisher.postChatMessage(5, 7, 'Ada', 'hello');
ids.joined = await publisher.userJoinedRoom(5, 'u-8', 'Bob');
ids.left = await publisher.userLeftRoom(5, 'u-8', 'Bob');
ids.order = await publisher.updateOrderStatus('A-17', 'shipped', { customerId: 9 });
ids.metrics = await publisher.updateDashboardMetrics({ active_users: 12 });
ids.stock = await publisher.updateInventory('sku-556', 0.5);
ids.activity = await publisher.broadcastUserActivity(42, 'typing');
await publisher.close();

const unbound = IntentPublisher.fromEnv({ ...process.env, AMQP_EXCHANGE: process.env.UNBOUND_EXCHANGE });
let unroutable = 'published';
try {
  await unbound.announce('nobody listens');
} catch (error) {
  unroutable = error instanceof PublishFailed ? error.reason : String(error);
}
await unbound.close();
console.log(JSON.stringify({ ids, unroutable }));
"#,
    twice: r#"
const { IntentPublisher } = await import(process.env.PUSHER_RELAY_CLIENT);
const { createInterface } = await import('node:readline');
const publisher = IntentPublisher.fromEnv(process.env, { appId: process.env.APP_ID });
console.log(await publisher.announce('before the cut'));
const lines = createInterface({ input: process.stdin });
await new Promise((resolve) => lines.once('line', resolve));
console.log(await publisher.announce('after the cut'));
lines.close();
await publisher.close();
"#,
};

const PYTHON: Producer = Producer {
    name: "python",
    program: "python3",
    args: &["-c"],
    env: (
        "PYTHONPATH",
        concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python"),
    ),
    needs: None,
    delivery: r#"
import json, os
from pusher_relay import IntentPublisher, PublishFailed

ids = {}
with IntentPublisher.from_env(app_id="python-e2e") as publisher:
    ids["trigger"] = publisher.trigger("orders", "order-created", {"id": 7, "total": 19.5}, socket_id="123.456")
    ids["batch"] = publisher.trigger_batch(["admin-alerts", "user-updates"], "system-announcement", {"title": "Maintenance"})
    ids["notify"] = publisher.notify_user(42, "Your order has been shipped!", "success")
    ids["announce"] = publisher.announce("Maintenance tonight", "high")
    ids["chat"] = publisher.post_chat_message(5, 7, "Ada", "hello")
    ids["joined"] = publisher.user_joined_room(5, "u-8", "Bob")
    ids["left"] = publisher.user_left_room(5, "u-8", "Bob")
    ids["order"] = publisher.update_order_status("A-17", "shipped", customer_id=9)
    ids["metrics"] = publisher.update_dashboard_metrics({"active_users": 12})
    ids["stock"] = publisher.update_inventory("sku-556", 0.5)
    ids["activity"] = publisher.broadcast_user_activity(42, "typing")

unroutable = "published"
try:
    with IntentPublisher.from_env(dict(os.environ, AMQP_EXCHANGE=os.environ["UNBOUND_EXCHANGE"])) as unbound:
        unbound.announce("nobody listens")
except PublishFailed as error:
    unroutable = error.reason
print(json.dumps({"ids": ids, "unroutable": unroutable}))
"#,
    twice: r#"
import os, sys
from pusher_relay import IntentPublisher

with IntentPublisher.from_env(app_id=os.environ["APP_ID"]) as publisher:
    print(publisher.announce("before the cut"), flush=True)
    sys.stdin.readline()
    print(publisher.announce("after the cut"), flush=True)
"#,
};

impl Producer {
    fn command(&self, script: &str) -> Command {
        if let Some((path, step)) = self.needs {
            assert!(
                std::path::Path::new(path).is_dir(),
                "{path} is missing: run {step}"
            );
        }
        let mut command = Command::new(self.program);
        command
            .args(self.args)
            .arg(script)
            .env(self.env.0, self.env.1)
            .env("AMQP_URL", common::amqp_url())
            .env_remove("RELAY_CHANNEL_STYLE");
        command
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_published_by_the_node_client_are_delivered_by_the_worker() {
    delivered_by_the_worker(&NODE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_published_by_the_python_client_are_delivered_by_the_worker() {
    delivered_by_the_worker(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_publisher_whose_connection_the_broker_closed_publishes_on_a_new_one() {
    publishes_across_a_closed_connection(&NODE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_publisher_whose_connection_the_broker_closed_publishes_on_a_new_one() {
    publishes_across_a_closed_connection(&PYTHON).await;
}

async fn delivered_by_the_worker(producer: &Producer) {
    let (fake, server, broker, db) = rig(producer.name, Db::sqlite()).await;
    let worker = common::start_worker(relay_config(&server.uri(), &broker, &db, &[])).await;
    let unbound = format!("{}.unbound", broker.exchange);
    let tap = tap_queue(&broker, &unbound).await;

    let out = producer
        .command(producer.delivery)
        .env("AMQP_EXCHANGE", &broker.exchange)
        .env("UNBOUND_EXCHANGE", &unbound)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", producer.program));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed: {stdout} {}",
        producer.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(stdout.trim()).expect("JSON from the script");
    assert_eq!(answer["unroutable"], "returned", "{answer}");

    let ids: HashMap<String, String> =
        serde_json::from_value(answer["ids"].clone()).expect("an id per helper");
    let app_id = format!("{}-e2e", producer.name);
    let published = check_published(&broker, &tap, &ids, &app_id).await;
    check_delivered(&fake, &broker, &ids, &published).await;

    common::stop(worker).await;
    assert_eq!(
        db.store().await.count().await.expect("count"),
        0,
        "no dead letters"
    );
}

async fn publishes_across_a_closed_connection(producer: &Producer) {
    let broker = Broker::new(&format!("{}-cut", producer.name)).await;
    broker.declare().await;
    let app_id = common::unique(&format!("{}-cut-app", producer.name));
    let child = producer
        .command(producer.twice)
        .env("AMQP_EXCHANGE", &broker.exchange)
        .env("APP_ID", &app_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} runs: {e}", producer.program));
    publish_across_a_closed_connection(child, &broker, &app_id).await;
}

/// Declares the exchange no queue is bound to, and a queue that receives a
/// copy of everything published to the intent exchange, to read the
/// messages' properties; returns the queue's name.
async fn tap_queue(broker: &Broker, unbound: &str) -> String {
    broker
        .channel
        .exchange_declare(
            unbound,
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare the unbound exchange");
    let tap = format!("{}.tap", broker.queue);
    broker.delete_on_drop(&[&tap], &[unbound]);
    broker
        .channel
        .queue_declare(&tap, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("declare the tap queue");
    broker
        .channel
        .queue_bind(
            &tap,
            &broker.exchange,
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind the tap queue");
    tap
}

/// The helper behind each id, its routing key and its ordering key.
const EXPECTED_KEYS: [(&str, &str, &str); 11] = [
    ("trigger", "event", "orders"),
    ("batch", "event", "user-updates"),
    ("notify", "notification", "private-user-42"),
    ("announce", "announcement", "system"),
    ("chat", "chat.message", "chat-room-5"),
    ("joined", "chat.joined", "chat-room-5"),
    ("left", "chat.left", "chat-room-5"),
    ("order", "order.status", "private-customer-9"),
    ("metrics", "dashboard.metrics", "dashboard"),
    ("stock", "inventory.stock", "inventory"),
    ("activity", "presence.activity", "presence-activity"),
];

/// Reads every message from the tap and checks the wire contract's
/// properties; returns each intent's body by id.
async fn check_published(
    broker: &Broker,
    tap: &str,
    ids: &HashMap<String, String>,
    app_id: &str,
) -> HashMap<String, Value> {
    let mut bodies = HashMap::new();
    while let Some(message) = broker
        .channel
        .basic_get(tap, BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        let delivery = message.delivery;
        let body: Value = serde_json::from_slice(&delivery.data).expect("a JSON body");
        let id = body["id"].as_str().expect("the body has its id").to_owned();
        let (helper, routing_key, key) = EXPECTED_KEYS
            .iter()
            .find(|(helper, _, _)| ids.get(*helper) == Some(&id))
            .unwrap_or_else(|| panic!("a message no helper returned the id of: {body}"));
        let props = &delivery.properties;
        let created_at = body["created_at"].as_u64().expect("created_at, unix ms");
        assert_eq!(delivery.routing_key.as_str(), *routing_key, "{helper}");
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json"),
            "{helper}"
        );
        assert_eq!(*props.delivery_mode(), Some(2), "{helper}: persistent");
        assert_eq!(
            props.message_id().as_ref().map(|s| s.as_str()),
            Some(id.as_str()),
            "{helper}"
        );
        assert_eq!(
            *props.timestamp(),
            Some(created_at / 1000),
            "{helper}: enqueue time, seconds"
        );
        assert_eq!(
            props.app_id().as_ref().map(|s| s.as_str()),
            Some(app_id),
            "{helper}"
        );
        let headers = props.headers().as_ref().expect("headers");
        assert_eq!(
            headers.inner().get("ordering-key"),
            Some(&AMQPValue::LongString((*key).into())),
            "{helper}: the ordering key, a long string"
        );
        bodies.insert(id, body);
    }
    assert_eq!(
        bodies.len(),
        EXPECTED_KEYS.len(),
        "one message per helper call"
    );
    let unique: std::collections::HashSet<&String> = ids.values().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "every intent has its own id: {ids:?}"
    );
    assert_eq!(bodies[&ids["trigger"]]["socket_id"], "123.456");
    bodies
}

/// Waits for the 13 events the 11 intents make and checks each one exactly.
async fn check_delivered(
    fake: &FakePusher,
    broker: &Broker,
    ids: &HashMap<String, String>,
    bodies: &HashMap<String, Value>,
) {
    eventually(Duration::from_secs(30), "13 events at Pusher", || {
        fake.received().len() >= 13
    })
    .await;
    // Anything more (a duplicate, a stray event) is sent before the worker
    // acks what it came from.
    broker.wait_acked(Duration::from_secs(30)).await;
    let got = fake.received();
    let seconds = |helper: &str| {
        bodies[&ids[helper]]["created_at"]
            .as_i64()
            .expect("created_at")
            / 1000
    };
    let id = |helper: &str| ids[helper].clone();
    let expected = [
        ("orders", "order-created", json!({"id": 7, "total": 19.5})),
        (
            "admin-alerts",
            "system-announcement",
            json!({"title": "Maintenance"}),
        ),
        (
            "user-updates",
            "system-announcement",
            json!({"title": "Maintenance"}),
        ),
        (
            "private-user-42",
            "notification",
            json!({"id": id("notify"), "message": "Your order has been shipped!", "type": "success", "timestamp": seconds("notify")}),
        ),
        (
            "system",
            "announcement",
            json!({"id": id("announce"), "message": "Maintenance tonight", "priority": "high", "timestamp": seconds("announce")}),
        ),
        (
            "chat-room-5",
            "new-message",
            json!({"id": id("chat"), "user_id": 7, "user_name": "Ada", "message": "hello", "room_id": 5, "timestamp": seconds("chat")}),
        ),
        (
            "chat-room-5",
            "user-joined",
            json!({"user_id": "u-8", "user_name": "Bob", "timestamp": seconds("joined")}),
        ),
        (
            "chat-room-5",
            "user-left",
            json!({"user_id": "u-8", "user_name": "Bob", "timestamp": seconds("left")}),
        ),
        (
            "private-order-A-17",
            "order-status-changed",
            json!({"order_id": "A-17", "status": "shipped", "timestamp": seconds("order")}),
        ),
        (
            "private-customer-9",
            "order-status-changed",
            json!({"order_id": "A-17", "status": "shipped", "timestamp": seconds("order")}),
        ),
        (
            "dashboard",
            "metrics-update",
            json!({"metrics": {"active_users": 12}, "timestamp": seconds("metrics")}),
        ),
        (
            "inventory",
            "stock-update",
            json!({"product_id": "sku-556", "quantity": 0.5, "timestamp": seconds("stock")}),
        ),
        (
            "presence-activity",
            "user-activity",
            json!({"user_id": 42, "activity": "typing", "timestamp": seconds("activity")}),
        ),
    ];
    let received: Vec<(String, String, Value)> = got
        .iter()
        .map(|e| {
            let data = serde_json::from_str(&e.data).unwrap_or_else(|err| {
                panic!("data on {} is not JSON ({err}): {}", e.channel, e.data)
            });
            (e.channel.clone(), e.event.clone(), data)
        })
        .collect();
    for (channel, event, data) in &expected {
        let on_channel: Vec<&(String, String, Value)> =
            received.iter().filter(|(c, _, _)| c == channel).collect();
        assert!(
            on_channel.iter().any(|(_, e, d)| e == event && d == data),
            "no {event} {data} on {channel}; it received {on_channel:?}"
        );
    }
    // One channel's events arrive in the order they were published.
    let room: Vec<&str> = received
        .iter()
        .filter(|(c, _, _)| c == "chat-room-5")
        .map(|(_, e, _)| e.as_str())
        .collect();
    assert_eq!(room, ["new-message", "user-joined", "user-left"]);
    assert_eq!(
        received.len(),
        expected.len(),
        "exactly these events: {received:?}"
    );
}

/// Runs `child` (a script that publishes once, prints the id, waits for a
/// line on stdin, publishes again and prints that id), closing its
/// connection between the two publishes; both intents must reach the queue,
/// once each.
async fn publish_across_a_closed_connection(
    mut child: std::process::Child,
    broker: &Broker,
    app_id: &str,
) {
    use std::io::{BufRead, BufReader, Write};

    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the first id");
    assert!(!first.trim().is_empty(), "no id from the first publish");
    assert_eq!(
        // The producer puts the app id in its connection name.
        common::close_connections_mentioning(app_id),
        1,
        "the producer's one connection was closed"
    );

    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(b"go\n")
        .expect("tell the script to go on");
    let mut second = String::new();
    stdout.read_line(&mut second).expect("the second id");
    let status = child.wait().expect("the script ends");
    assert!(
        status.success(),
        "the second publish failed after the connection was closed"
    );

    let mut ids = Vec::new();
    for _ in 0..50 {
        while let Some(message) = broker
            .channel
            .basic_get(&broker.queue, BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            let id = message
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string());
            ids.push(id.unwrap_or_default());
        }
        if ids.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ids,
        [first.trim(), second.trim()],
        "each intent once, in order"
    );
}

/// Each client publishes one intent through a TLS terminator that presents
/// a certificate of a private CA and demands a client certificate, with
/// `cacertfile`, `certfile` and `keyfile` in `AMQP_URL`; without the client
/// certificate, the publish fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_producer_publishes_over_amqps_with_a_client_certificate() {
    use common::tls::{server_config, Ca, TlsTerminator};
    let ca = Ca::new("producers broker CA");
    let clients = Ca::new("producers clients CA");
    let client = clients.client("producer");
    let broker_addr: std::net::SocketAddr = "127.0.0.1:5672".parse().expect("address");
    let front = TlsTerminator::start(
        broker_addr,
        server_config(&ca.server(&["localhost"]), &ca, Some(&clients)),
    )
    .await;
    let base = format!(
        "amqps://guest:guest@localhost:{}/%2f?cacertfile={}",
        front.port,
        ca.cert_file.display()
    );
    let with_cert = format!(
        "{base}&certfile={}&keyfile={}",
        client.cert_file.display(),
        client.key_file.display()
    );
    let php = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/php/autoload.php");
    let scripts: [(&str, Command); 3] = [
        (
            "node",
            NODE.command(
                r#"
const { IntentPublisher } = await import(process.env.PUSHER_RELAY_CLIENT);
const publisher = IntentPublisher.fromEnv(process.env, { appId: 'tls' });
try { await publisher.announce('over TLS'); console.log('published'); }
catch (error) { console.log(`failed: ${error.message}`); }
await publisher.close();
"#,
            ),
        ),
        (
            "python",
            PYTHON.command(
                r#"
from pusher_relay import IntentPublisher
try:
    with IntentPublisher.from_env(app_id="tls") as publisher:
        publisher.announce("over TLS")
    print("published")
except Exception as error:
    print(f"failed: {error}")
"#,
            ),
        ),
        ("php", {
            let mut c = Command::new("php");
            c.args(["-r", r#"
require getenv('PUSHER_RELAY_AUTOLOAD');
$s = new PusherRelay\QueuedPusherService();
echo $s->trigger('orders', 'order-created', ['id' => 7]) ? 'published' : 'failed: ' . $s->getLastError();
"#])
            .env("PUSHER_RELAY_AUTOLOAD", php)
            .env("PUSHER_APP_ID", common::APP_ID)
            .env("PUSHER_APP_KEY", common::KEY)
            .env("PUSHER_APP_SECRET", common::SECRET);
            c
        }),
    ];
    for (name, mut command) in scripts {
        let broker = Broker::new(&format!("{name}-amqps")).await;
        broker.declare().await;
        command.env("AMQP_EXCHANGE", &broker.exchange);
        let run = |command: &mut Command, url: &str| {
            let out = command
                .env("AMQP_URL", url)
                .output()
                .unwrap_or_else(|e| panic!("{name} runs: {e}"));
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        };
        let refused = run(&mut command, &base);
        assert!(
            refused.starts_with("failed"),
            "{name} without a client certificate: {refused}"
        );
        assert_eq!(
            broker.ready().await,
            0,
            "{name}: nothing published without it"
        );
        let said = run(&mut command, &with_cert);
        assert_eq!(said, "published", "{name} over amqps");
        // Confirmed before the script says so, hence in the queue now.
        assert_eq!(broker.ready().await, 1, "{name}: the intent in the queue");
    }
}
