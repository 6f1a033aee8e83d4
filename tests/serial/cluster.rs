//! The failover cluster of `scripts/cluster` works: a quorum queue declared
//! on one node has a member on each of the three, and what was published
//! and confirmed before its leader's node stopped is consumed in full from
//! another node.
use crate::common::cluster;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster::Cluster;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

const MESSAGES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queue_survives_its_leader_node_stopping() {
    let t0 = Instant::now();
    let cluster = Cluster::ensure();
    let _serial = cluster.serial().await;
    eprintln!(
        "cluster ready after {:?}: {:?}",
        t0.elapsed(),
        cluster.urls()
    );
    let queue = format!(
        "cluster-smoke-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );

    // A quorum queue declared on node 1 has a member on every node.
    let conn = Connection::connect(&cluster.url_of(1), ConnectionProperties::default())
        .await
        .expect("node 1 answers AMQP");
    let channel = conn.create_channel().await.expect("channel");
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            &queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .expect("quorum queue declared");
    let q = queue.clone();
    let members = blocking(move || Cluster::ensure().members(&q)).await;
    assert_eq!(members, vec![1, 2, 3], "members of the quorum queue");

    // 100 persistent messages, each confirmed.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let mut confirms = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        confirms.push(
            channel
                .basic_publish(
                    "",
                    &queue,
                    BasicPublishOptions::default(),
                    i.to_string().as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish"),
        );
    }
    for c in confirms {
        assert!(
            c.await.expect("confirm").is_ack(),
            "broker refused a publish"
        );
    }
    let _ = conn.close(200, "published").await;

    // Stop the leader's node, whole.
    let q = queue.clone();
    let leader = blocking(move || Cluster::ensure().quorum_leader(&q))
        .await
        .expect("the queue has a leader");
    let t = Instant::now();
    blocking(move || Cluster::ensure().stop_node(leader)).await;
    eprintln!("stopped node {leader}, the leader, in {:?}", t.elapsed());

    // Every message, from another node, once a new leader is elected.
    let other = (1..=3).find(|&n| n != leader).expect("another node");
    let t = Instant::now();
    let conn = Connection::connect(&cluster.url_of(other), ConnectionProperties::default())
        .await
        .expect("another node answers AMQP");
    let mut consumer = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumer.is_none() {
        let attempt = async {
            let ch = conn.create_channel().await?;
            ch.basic_qos(MESSAGES as u16, BasicQosOptions::default())
                .await?;
            let c = ch
                .basic_consume(
                    &queue,
                    "cluster-smoke",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((ch, c))
        };
        match attempt.await {
            Ok(c) => consumer = Some(c),
            Err(e) if Instant::now() < deadline => {
                eprintln!("consume on node {other} failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("cannot consume on node {other} within 60 s: {e}"),
        }
    }
    let (channel, mut deliveries) = consumer.expect("consumer");
    let mut seen = BTreeSet::new();
    let mut received = 0;
    while seen.len() < MESSAGES {
        let delivery = tokio::time::timeout(Duration::from_secs(60), deliveries.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {MESSAGES} messages came", seen.len()))
            .expect("consumer open")
            .expect("delivery");
        received += 1;
        let body: usize = std::str::from_utf8(&delivery.data)
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("a number");
        seen.insert(body);
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    assert_eq!(seen, (0..MESSAGES).collect::<BTreeSet<_>>());
    eprintln!(
        "consumed {MESSAGES} messages ({received} deliveries) from node {other} in {:?}",
        t.elapsed()
    );
    // The queue's record names the new leader (it is updated just after the
    // election, so give it a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = queue.clone();
        let now = blocking(move || Cluster::ensure().quorum_leader(&q)).await;
        if let Some(n) = now.filter(|&n| n != leader) {
            eprintln!("leader now node {n}");
            break;
        }
        assert!(Instant::now() < deadline, "leader still {now:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The node comes back, and the queue goes.
    let t = Instant::now();
    blocking(move || Cluster::ensure().start_node(leader)).await;
    eprintln!("started node {leader} again in {:?}", t.elapsed());
    let q = queue.clone();
    let members = blocking(move || Cluster::ensure().members(&q)).await;
    assert_eq!(members, vec![1, 2, 3], "members after the restart");
    channel
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await
        .expect("queue deleted");
    let _ = conn.close(200, "done").await;
    eprintln!("whole test {:?}", t0.elapsed());
}

/// Runs a blocking cluster call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("cluster call")
}
