//! A real RabbitMQ restart (`rabbitmqctl stop_app` / `start_app`) under a
//! running worker, of the tests' broker (the machine's 3.10 node, or the 4.0
//! node with `TEST_AMQP_URL`). In the serial binary, which runs one test
//! at a time, and cargo runs test binaries one after another, so no other
//! test shares the broker while it is down.

use crate::common;

use std::time::Duration;

use common::{assert_in_order_once, chat, eventually, relay_config, rig, Db};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

fn rabbitmqctl(args: &[&str]) {
    let status = common::rabbitmqctl()
        .args(args)
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// Starts the broker application again even if the test fails midway, so
/// the rest of the suite finds RabbitMQ running.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = common::rabbitmqctl().arg("start_app").status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_under_load_loses_nothing_and_keeps_order() {
    let (fake, server, broker, db) = rig("restart", Db::sqlite()).await;
    let worker = common::start_worker(relay_config(&server.uri(), &broker, &db, &[])).await;

    let first: Vec<Value> = (0..200).map(|seq| chat(seq % 4, seq / 4)).collect();
    broker.publish(&first).await;
    eventually(WAIT, "some delivered before the restart", || {
        fake.received().len() >= 20
    })
    .await;

    let restart = Restart;
    rabbitmqctl(&["stop_app"]);
    eventually(WAIT, "the worker notices the broker is gone", || {
        !worker.health.readiness().broker
    })
    .await;
    assert!(!worker.health.readiness().ready);
    rabbitmqctl(&["start_app"]);
    drop(restart);
    rabbitmqctl(&["await_startup"]);

    eventually(WAIT, "the worker is back", || {
        worker.health.readiness().ready
    })
    .await;
    let broker = broker.reconnect().await;
    let second: Vec<Value> = (200..400).map(|seq| chat(seq % 4, seq / 4)).collect();
    broker.publish(&second).await;
    eventually(WAIT, "everything delivered", || {
        fake.received().len() >= 400
    })
    .await;
    broker.wait_acked(WAIT).await;

    // The quorum queue kept what was not acked; redelivered intents the
    // worker had already sent are dropped by id.
    assert_in_order_once(&fake.received(), 4, 100);
    let metrics = common::metrics_text(&worker).await;
    assert!(
        metrics.contains("pusher_relay_broker_connections_lost_total"),
        "{metrics}"
    );
    common::stop(worker).await;
    assert_eq!(broker.ready_settled().await, 0);
    assert_eq!(db.store().await.count().await.expect("count"), 0);
}
