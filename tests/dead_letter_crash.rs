//! The worker killed between a dead letter's commit and its ack, for real:
//! the binary reaches RabbitMQ through a proxy of the test's that holds
//! everything the worker sends from the moment the intent is published, so
//! the dead letter is committed and the ack never arrives. SIGKILL then, the
//! broker requeues, a new worker fails the intent again, and the store must
//! find the row it has instead of adding a second one.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{chat, Broker, Db, FakePusher, Proxy};
use pusher_relay::deadletter::{Filter, Reason, Status, Store};

const WAIT: Duration = Duration::from_secs(60);

/// The text the fake Pusher answers 400 to: a permanent rejection, so the
/// intent is dead-lettered on its first attempt.
const REJECTED: &str = "rejected-by-the-test";

/// Starts `pusher-relay run` on the test's queue, store and fake Pusher,
/// reaching RabbitMQ at `amqp_url` and serving `/readyz` on `http_port`.
fn spawn_worker(
    pusher_uri: &str,
    amqp_url: &str,
    broker: &Broker,
    db: &Db,
    http_port: u16,
) -> Child {
    let pusher = url::Url::parse(pusher_uri).expect("fake Pusher uri");
    Command::new(env!("CARGO_BIN_EXE_pusher-relay"))
        .arg("run")
        // Outside the repository, so no developer .env is picked up.
        .current_dir(std::env::temp_dir())
        .env("PUSHER_APP_ID", common::APP_ID)
        .env("PUSHER_APP_KEY", common::KEY)
        .env("PUSHER_APP_SECRET", common::SECRET)
        .env("PUSHER_HOST", pusher.host_str().unwrap_or("127.0.0.1"))
        .env("PUSHER_PORT", pusher.port().unwrap_or(80).to_string())
        .env("PUSHER_SCHEME", "http")
        .env("AMQP_URL", amqp_url)
        .env("AMQP_EXCHANGE", &broker.exchange)
        .env("AMQP_QUEUE", &broker.queue)
        .env("AMQP_WEBHOOK_EXCHANGE", &broker.webhooks)
        .env("DATABASE_URL", db.url())
        .env("HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("RELAY_LINGER_MS", "5")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the pusher-relay binary starts")
}

/// Waits until the worker on `http_port` answers `/readyz` with 200:
/// connected to the broker and the store, and consuming.
async fn wait_ready(http_port: u16) {
    let url = format!("http://127.0.0.1:{http_port}/readyz");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the worker was not ready within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `/metrics` of the worker on `http_port` counts one stored
/// rejected dead letter: the writer's insert returned, so the ack is due.
async fn wait_dead_letter_counted(http_port: u16) {
    let url = format!("http://127.0.0.1:{http_port}/metrics");
    let wanted = "pusher_relay_dead_letters_total{reason=\"rejected\"} 1";
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = reqwest::get(&url).await {
            if r.text().await.is_ok_and(|t| t.contains(wanted)) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no {wanted} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the store holds `n` dead letters (whatever their status).
async fn wait_stored(store: &Store, n: i64) {
    let deadline = Instant::now() + WAIT;
    while store.count().await.expect("count") < n {
        assert!(
            Instant::now() < deadline,
            "{n} dead letters not stored within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM, and the exit status once the worker drained.
async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            return exit;
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn killed_after_commit_before_ack(db: Db) {
    let (fake, server) = FakePusher::start().await;
    fake.plan().reject_containing = Some(REJECTED.into());
    let broker = Broker::new("dl-crash").await;
    broker.declare().await;
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let via_proxy = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let mut intent = chat(1, 0);
    intent["message"] = REJECTED.into();
    let intent_id = intent["id"]
        .as_str()
        .expect("chat intents have an id")
        .to_owned();

    // 1. A worker whose acks will never reach the broker.
    let port = common::free_port();
    let mut first = spawn_worker(&server.uri(), &via_proxy, &broker, &db, port);
    wait_ready(port).await;
    proxy.hold_from_clients();
    broker.publish(&[intent]).await;

    // 2. Its dead letter is committed (another connection sees it), its ack
    //    is held in the proxy: kill it there.
    let store = db.store().await;
    wait_stored(&store, 1).await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    assert_eq!(fake.plan().requests, 1, "one attempt before the kill");

    // 3. The connection goes, and the held ack with it: the broker requeues.
    drop(proxy);
    assert_eq!(
        broker.ready_settled().await,
        1,
        "the ack never reached the broker, so the intent is back in the queue"
    );

    // 4. A new worker gets it again, Pusher rejects it again, and the
    //    dead letter is stored (or found) and the delivery acked.
    let port = common::free_port();
    let second = spawn_worker(&server.uri(), common::AMQP_URL, &broker, &db, port);
    wait_dead_letter_counted(port).await;
    assert_eq!(fake.plan().requests, 2, "the redelivery was tried once");
    let exit = terminate(second).await;
    assert!(exit.success(), "exit status {exit:?}");

    // One failure, one row; and nothing left to redeliver.
    let pending = store
        .list(
            &Filter {
                status: Some(Status::Pending),
                ..Filter::default()
            },
            None,
            100,
        )
        .await
        .expect("list");
    let rows: Vec<(Option<&str>, Reason)> = pending
        .items
        .iter()
        .map(|dl| (dl.intent_id.as_deref(), dl.reason))
        .collect();
    assert_eq!(
        rows,
        vec![(Some(intent_id.as_str()), Reason::Rejected)],
        "exactly one pending dead letter for the intent"
    );
    assert_eq!(store.count().await.expect("count"), 1);
    assert_eq!(
        broker.ready_settled().await,
        0,
        "the redelivery was acked: nothing came back after the worker stopped"
    );

    store.close().await;
    broker.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_commit_and_ack_on_sqlite_the_redelivery_finds_its_dead_letter() {
    killed_after_commit_before_ack(Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_commit_and_ack_on_postgres_the_redelivery_finds_its_dead_letter() {
    killed_after_commit_before_ack(Db::postgres().await).await;
}
