//! The PHP drop-in (clients/php) publishing into the Rust worker: what the
//! existing app enqueues arrives at a Pusher that checks every signature.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, relay_config, rig, Db};
use serde_json::Value;

const PHP: &str = r#"
require getenv('PUSHER_RELAY_AUTOLOAD');
$s = new PusherRelay\QueuedPusherService();
$results = [
    $s->trigger('orders', 'order-created', ['id' => 7, 'total' => 19.5]),
    $s->notifyUser(42, 'Your order has been shipped!', 'success'),
    $s->triggerBatch(['admin-alerts', 'user-updates'], 'system-announcement', ['title' => 'Maintenance']),
    $s->postChatMessage(5, 7, 'Ada', 'hello'),
];
echo json_encode(['results' => $results, 'error' => $s->getLastError()]);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_enqueued_by_the_php_service_are_delivered_by_the_worker() {
    let (fake, server, broker, db) = rig("php", Db::sqlite()).await;
    let worker = common::start_worker(relay_config(&server.uri(), &broker, &db, &[])).await;

    let autoload = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/php/autoload.php");
    let out = Command::new("php")
        .args(["-r", PHP])
        .env("PUSHER_RELAY_AUTOLOAD", autoload)
        .env("PUSHER_APP_ID", common::APP_ID)
        .env("PUSHER_APP_KEY", common::KEY)
        .env("PUSHER_APP_SECRET", common::SECRET)
        .env("AMQP_URL", common::amqp_url())
        .env("AMQP_EXCHANGE", &broker.exchange)
        .output()
        .expect("php runs (scripts/test installs php-cli and php-amqplib)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "php failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(stdout.trim()).expect("JSON from the PHP script");
    assert_eq!(
        answer["results"],
        serde_json::json!([true, true, true, true]),
        "{answer}"
    );

    eventually(Duration::from_secs(30), "five events at Pusher", || {
        fake.received().len() >= 5
    })
    .await;
    let got = fake.received();
    let find = |channel: &str| {
        got.iter()
            .find(|e| e.channel == channel)
            .unwrap_or_else(|| panic!("nothing on {channel}: {got:?}"))
            .clone()
    };
    let order = find("orders");
    assert_eq!(order.event, "order-created");
    assert_eq!(
        serde_json::from_str::<Value>(&order.data).expect("data"),
        serde_json::json!({"id": 7, "total": 19.5})
    );
    let note = find("private-user-42");
    assert_eq!(note.event, "notification");
    let note_data: Value = serde_json::from_str(&note.data).expect("data");
    assert_eq!(
        (note_data["message"].as_str(), note_data["type"].as_str()),
        (Some("Your order has been shipped!"), Some("success"))
    );
    assert_eq!(find("admin-alerts").event, "system-announcement");
    assert_eq!(find("user-updates").event, "system-announcement");
    assert_eq!(find("chat-room-5").event, "new-message");
    assert_eq!(got.len(), 5);

    common::stop(worker).await;
    assert_eq!(db.store().await.count().await.expect("count"), 0);
}
