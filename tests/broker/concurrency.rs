//! Adaptive request concurrency against a distant fake Pusher (real
//! RabbitMQ, real SQLite store, the worker in this process): the limit
//! settles under what the server admits, nothing is lost, duplicated,
//! reordered or dead-lettered on the way, and a 401 still opens the
//! circuit. Behaviour only: timings are the benchmark's business.

use crate::common;

use std::time::{Duration, Instant};

use common::distant::Distant;
use common::{eventually, relay_config, Broker, Db, KEY, SECRET};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// `per_channel` intents on each of `channels` channels, interleaved, with
/// the data the fake checks order by.
fn intents(channels: usize, per_channel: usize, first_seq: usize) -> Vec<Value> {
    (first_seq..first_seq + per_channel)
        .flat_map(|seq| {
            (0..channels).map(move |c| {
                json!({"type": "event", "channels": [format!("acc-{c}")], "event": "tick",
                       "data": {"seq": seq, "t": common::distant::now_ms()}})
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_settles_under_the_servers_cap_and_a_401_still_opens_the_circuit() {
    let cap = 6;
    let pusher = Distant::start(
        KEY,
        SECRET,
        Duration::from_millis(50),
        Duration::from_millis(5),
    )
    .await;
    pusher.set_cap(Some(cap));
    let broker = Broker::new("acc").await;
    let db = Db::sqlite();
    let worker = common::start_worker(relay_config(
        &pusher.uri(),
        &broker,
        &db,
        &[("RELAY_MAX_IN_FLIGHT", "64")],
    ))
    .await;

    // 40 channels with a backlog each: far more work than the cap admits.
    let (channels, per_channel) = (40, 60);
    broker.publish(&intents(channels, per_channel, 0)).await;
    let total = channels * per_channel;
    // The limit sampled through the drain, since one sample at its end may
    // catch a probe above the cap before Pusher's 429 corrects it.
    let drain = Instant::now();
    let drain_from = pusher.elapsed();
    let mut limits = Vec::new();
    while pusher.seen().accepted() < total {
        assert!(
            drain.elapsed() < WAIT,
            "the backlog drained within {WAIT:?}"
        );
        limits.push(worker.concurrency_limit());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained_in = drain.elapsed();
    {
        let seen = pusher.seen();
        assert_eq!(seen.bad_signatures, 0);
        assert_eq!(seen.violations, 0, "per-channel order");
        assert_eq!(seen.duplicates, 0);
        assert_eq!(seen.accepted(), total);
        assert!(
            seen.answered(429) > 0,
            "slow start went past the cap and was told so"
        );
        assert_eq!(
            seen.max_channel_in_flight, 1,
            "one request per channel at a time"
        );
    }
    // Judged over the drain's second half, once slow start is over, and
    // from Pusher's side: it is Pusher that says what it admits. The worker
    // counts a request in flight from taking its slot (batching, signing,
    // scheduling) to reading the answer, longer than the fake holds it, so
    // on a busy machine with a debug build its limit settles above the
    // fake's cap while the fake sees no more than the cap at once (CI: a
    // median of 8 for a cap of 6, with 3 of 87 requests answered 429).
    // What must hold: the limit neither collapsed nor ran away from the cap
    // (held at 64 by RELAY_CONCURRENCY=fixed, this fails with a median of
    // 64), and Pusher is rarely refusing (probing one above and backing off
    // draws about one 429 per interval of ~7 requests; 3-5 of 85-91 here).
    let settled = limits.split_off(limits.len() / 2);
    let mut sorted = settled.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let (late, late_429) = pusher
        .seen()
        .requests
        .iter()
        .filter(|r| r.at >= drain_from + drained_in / 2)
        .fold((0, 0), |(all, throttled), r| {
            (all + 1, throttled + usize::from(r.status == 429))
        });
    eprintln!(
        "second half of the drain ({drained_in:?}): limit median {median}, range {:?}..={:?}; \
         {late_429} of {late} requests answered 429",
        sorted.first(),
        sorted.last()
    );
    assert!(
        late_429 * 4 <= late,
        "{late_429} of {late} requests in the drain's second half were answered 429: the limit does not hold under what Pusher admits"
    );
    assert!(
        (cap / 2..=cap * 2).contains(&median),
        "the limit settled at {median}, far from the cap of {cap}"
    );

    // A 401 opens the circuit: nothing is sent, nothing dead-lettered.
    pusher.set_status(Some(401));
    broker.publish(&intents(channels, 5, per_channel)).await;
    eventually(WAIT, "the circuit to open on 401", || {
        worker.health.readiness().circuit.contains("credentials")
    })
    .await;
    assert_eq!(pusher.seen().accepted(), total);
    pusher.set_status(None);
    pusher.wait_for(total + channels * 5, WAIT).await;
    eventually(WAIT, "the circuit to close", || {
        worker.health.readiness().circuit == "closed"
    })
    .await;
    {
        let seen = pusher.seen();
        assert_eq!(seen.violations, 0, "order holds across the pause");
        assert_eq!(seen.duplicates, 0);
    }

    common::stop(worker).await;
    assert_eq!(broker.ready_settled().await, 0, "everything was acked");
    assert_eq!(
        db.store().await.count().await.expect("count"),
        0,
        "neither a 429 nor a 401 is a dead letter"
    );
}
