//! The whole product end to end: intents published to RabbitMQ, delivered
//! by the worker through sockudo (a real Pusher-protocol server whose rate
//! limiter answers 429 with Retry-After), and received by a WebSocket
//! subscriber on public, private and end-to-end encrypted channels.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, relay_config, Broker, Db, Sockudo};
use pusher_relay::pusher::{Client, Trigger};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);
const MASTER_KEY: &str = "zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_reach_websocket_subscribers_through_a_rate_limited_pusher() {
    // 10 requests a second: far fewer than the worker would send, so it must
    // back off on 429s and still deliver everything, in order.
    let server = Sockudo::start(Some(10));
    let broker = Broker::new("sockudo-relay").await;
    let db = Db::sqlite();
    let app = [
        ("PUSHER_APP_ID", "123456"),
        ("PUSHER_APP_KEY", "app-key"),
        ("PUSHER_APP_SECRET", "app-secret"),
        ("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", MASTER_KEY),
        ("RELAY_LINGER_MS", "1"),
    ];
    let cfg = relay_config(&server.uri(), &broker, &db, &app);

    let rooms = ["chat-room-1", "chat-room-2", "chat-room-3"];
    let encrypted = "private-encrypted-vault";
    let private = "private-user-7";
    let channels: Vec<String> = rooms
        .iter()
        .copied()
        .chain([private, encrypted])
        .map(String::from)
        .collect();
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let listener_cfg = cfg.pusher.clone();
    let listen_channels = channels.clone();
    let listener = tokio::spawn(async move {
        pusher_relay::listen::listen(&listener_cfg, &listen_channels, |event| {
            sink.lock().expect("events").push(event)
        })
        .await
    });

    // Subscriptions are asynchronous: trigger a warm-up event on every
    // channel until the listener has one from each.
    let client = Client::new(&cfg.pusher).expect("client");
    let heard = |channel: &str| {
        got.lock()
            .expect("events")
            .iter()
            .any(|e| e["channel"] == channel && e["event"] == "warm-up")
    };
    for _ in 0..100 {
        for channel in &channels {
            if !heard(channel) {
                let t = Trigger {
                    event: "warm-up".into(),
                    channels: vec![channel.clone()],
                    data: "{}".into(),
                    socket_id: None,
                    info: None,
                };
                let _ = client.trigger(&t).await;
            }
        }
        if channels.iter().all(|c| heard(c)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        channels.iter().all(|c| heard(c)),
        "the listener subscribed to every channel"
    );

    let worker = common::start_worker(cfg).await;
    let per_room = 100;
    let mut intents: Vec<Value> = (0..per_room)
        .flat_map(|seq| {
            (1..=3).map(move |room| json!({"type": "chat.message", "id": format!("r{room}-{seq}"), "room_id": room, "user_id": 1, "user_name": "Ada", "message": seq.to_string()}))
        })
        .collect();
    intents.push(json!({"type": "notification", "user_id": 7, "message": "your order shipped"}));
    intents.push(
        json!({"type": "event", "channels": [encrypted], "event": "secret", "data": {"pin": 1234}}),
    );
    broker.publish(&intents).await;

    let delivered = |got: &[Value]| got.iter().filter(|e| e["event"] != "warm-up").count();
    eventually(WAIT, "every intent at the subscriber", || {
        delivered(&got.lock().expect("events")) >= 3 * per_room + 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events: Vec<Value> = got
        .lock()
        .expect("events")
        .iter()
        .filter(|e| e["event"] != "warm-up")
        .cloned()
        .collect();
    assert_eq!(events.len(), 3 * per_room + 2, "each intent exactly once");
    for room in rooms {
        let seqs: Vec<usize> = events
            .iter()
            .filter(|e| e["channel"] == room)
            .map(|e| {
                let data: Value =
                    serde_json::from_str(e["data"].as_str().unwrap_or("{}")).expect("data");
                data["message"]
                    .as_str()
                    .and_then(|m| m.parse().ok())
                    .expect("seq")
            })
            .collect();
        assert_eq!(seqs, (0..per_room).collect::<Vec<_>>(), "order on {room}");
    }
    let note = events
        .iter()
        .find(|e| e["channel"] == private)
        .expect("the private notification");
    assert!(note["data"]
        .as_str()
        .unwrap_or_default()
        .contains("your order shipped"));
    let secret = events
        .iter()
        .find(|e| e["channel"] == encrypted)
        .expect("the encrypted event");
    assert_eq!(
        secret["data"], "{\"pin\":1234}",
        "encrypted by the worker, decrypted by the subscriber"
    );

    let metrics = common::metrics_text(&worker).await;
    assert!(
        metrics.contains("pusher_relay_retries_total{reason=\"429\"}"),
        "the rate limiter was hit and backed off from: {metrics}"
    );
    common::stop(worker).await;
    listener.abort();
    assert_eq!(
        db.store().await.count().await.expect("count"),
        0,
        "a 429 is never a dead letter"
    );
    assert_eq!(broker.ready_settled().await, 0);
}
