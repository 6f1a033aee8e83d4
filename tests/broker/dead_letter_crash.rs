//! The worker killed between a dead letter's commit and its ack, for real:
//! the binary reaches RabbitMQ through a proxy of the test's that holds
//! everything the worker sends from the moment the intent is published, so
//! the dead letter is committed and the ack never arrives. SIGKILL then, the
//! broker requeues, a new worker fails the intent again, and the store must
//! find the row it has instead of adding a second one.

use crate::common;

use std::time::{Duration, Instant};

use common::{chat, rig, Db, Process, Proxy};
use pusher_relay::deadletter::{DeadLetterReason, DeadLetterStatus, Filter, Store};

const WAIT: Duration = Duration::from_secs(60);

/// The text the fake Pusher answers 400 to: a permanent rejection, so the
/// intent is dead-lettered on its first attempt.
const REJECTED: &str = "rejected-by-the-test";

/// Waits until the worker's `/metrics` counts one stored rejected dead
/// letter: the writer's insert returned, so the ack is due.
async fn wait_dead_letter_counted(worker: &Process) {
    let wanted = "pusher_relay_dead_letters_total{reason=\"rejected\"} 1";
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some((_, text)) = worker.get("/metrics").await {
            if text.contains(wanted) {
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

async fn killed_after_commit_before_ack(db: Db) {
    let (fake, server, broker, db) = rig("dl-crash", db).await;
    fake.plan().reject_containing = Some(REJECTED.into());
    broker.declare().await;
    let proxy = Proxy::start(&common::amqp_addr()).await;
    let via_proxy = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let mut intent = chat(1, 0);
    intent["message"] = REJECTED.into();
    let intent_id = intent["id"]
        .as_str()
        .expect("chat intents have an id")
        .to_owned();

    // 1. A worker whose acks will never reach the broker.
    let mut first = Process::spawn_for(
        &server.uri(),
        &broker,
        &db,
        &[("AMQP_URL", via_proxy.as_str())],
    );
    first.wait_ready().await;
    proxy.hold_from_clients();
    broker.publish(&[intent]).await;

    // 2. Its dead letter is committed (another connection sees it), its ack
    //    is held in the proxy: kill it there.
    let store = db.store().await;
    wait_stored(&store, 1).await;
    first.kill();
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
    let second = Process::spawn_for(&server.uri(), &broker, &db, &[]);
    wait_dead_letter_counted(&second).await;
    assert_eq!(fake.plan().requests, 2, "the redelivery was tried once");
    let exit = second.terminate().await;
    assert!(exit.success(), "exit status {exit:?}");

    // One failure, one row; and nothing left to redeliver.
    let pending = store
        .list(
            &Filter {
                status: Some(DeadLetterStatus::Pending),
                ..Filter::default()
            },
            None,
            100,
        )
        .await
        .expect("list");
    let rows: Vec<(Option<&str>, DeadLetterReason)> = pending
        .items
        .iter()
        .map(|dl| (dl.intent_id.as_deref(), dl.reason))
        .collect();
    assert_eq!(
        rows,
        vec![(Some(intent_id.as_str()), DeadLetterReason::Rejected)],
        "exactly one pending dead letter for the intent"
    );
    assert_eq!(store.count().await.expect("count"), 1);
    assert_eq!(
        broker.ready_settled().await,
        0,
        "the redelivery was acked: nothing came back after the worker stopped"
    );

    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_commit_and_ack_on_sqlite_the_redelivery_finds_its_dead_letter() {
    killed_after_commit_before_ack(Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_commit_and_ack_on_postgres_the_redelivery_finds_its_dead_letter() {
    killed_after_commit_before_ack(Db::postgres().await).await;
}
