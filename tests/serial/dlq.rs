//! Dead-letter operations against real RabbitMQ, SQLite and PostgreSQL:
//! filters and keyset pagination, replay (exactly once per row, also with
//! two runs at once), dry runs, the worker delivering a replayed intent, the
//! admin API, and replaying 100,000 rows in bounded memory.
//!
//! Each test owns its exchange, queue, SQLite file or PostgreSQL schema.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, relay_config, rig, Broker, Db, Process};
use lapin::options::BasicGetOptions;
use lapin::types::AMQPValue;
use pusher_relay::app::Worker;
use pusher_relay::deadletter::filter::Cursor;
use pusher_relay::deadletter::replay::{self, ReplayOptions, DEAD_LETTER_HEADER};
use pusher_relay::deadletter::{
    DeadLetterReason, DeadLetterStatus, Filter, FilterSpec, NewDeadLetter, Store,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A dead letter of a chat message in `room`, dead-lettered at `at_ms`.
fn dead_chat(room: usize, seq: usize, reason: DeadLetterReason, at_ms: i64) -> NewDeadLetter {
    let body = json!({
        "type": "chat.message", "id": format!("dl-{room}-{seq}"), "room_id": room,
        "user_id": 1, "user_name": "ada", "message": format!("{seq}"),
    });
    NewDeadLetter {
        body: body.to_string().into_bytes(),
        routing_key: "chat.message".into(),
        headers: json!({"message_id": format!("dl-{room}-{seq}"), "content_type": "application/json"}),
        intent_id: Some(format!("dl-{room}-{seq}")),
        intent_type: Some("chat.message".into()),
        channels: vec![format!("chat-room-{room}")],
        reason,
        error: "Pusher answered 400".into(),
        pusher_status: Some(400),
        pusher_body: Some("bad".into()),
        attempts: 1,
        first_seen_at_ms: at_ms - 10,
        dead_lettered_at_ms: at_ms,
        replay_of: None,
    }
}

fn spec(f: impl FnOnce(&mut FilterSpec)) -> Filter {
    let mut s = FilterSpec::default();
    f(&mut s);
    s.parse(SystemTime::now()).expect("valid filter")
}

/// Declares the worker's topology for `broker` (exchange + queue bound `#`).
async fn topology(broker: &Broker) {
    broker.declare().await;
}

/// Takes every message from the broker's queue: (dead-letter header, body).
async fn drain(broker: &Broker) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let got = broker
            .channel
            .basic_get(&broker.queue, BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get");
        let Some(msg) = got else { break };
        let header = msg
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(DEAD_LETTER_HEADER).cloned());
        let id = match header {
            Some(AMQPValue::LongString(s)) => s.to_string(),
            other => panic!("replayed message without {DEAD_LETTER_HEADER}: {other:?}"),
        };
        out.push((id, msg.delivery.data.clone()));
    }
    out
}

async fn on_both<F, Fut>(test: F)
where
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let sqlite = Db::sqlite();
    test(sqlite).await;
    let pg = Db::postgres().await;
    test(pg).await;
}

// ---------------------------------------------------------------------------

async fn filters_and_pagination(db: Db) {
    let store = db.store().await;
    let t0 = now_ms() - 3 * 3_600_000;
    let mut rows = Vec::new();
    for i in 0..30 {
        let reason = if i % 3 == 0 {
            DeadLetterReason::Exhausted
        } else {
            DeadLetterReason::Rejected
        };
        // One an hour apart in three groups: 0-9 three hours ago, ...
        rows.push(dead_chat(
            i % 5,
            i,
            reason,
            t0 + (i as i64 / 10) * 3_600_000,
        ));
    }
    let mut other = dead_chat(99, 99, DeadLetterReason::Invalid, t0);
    other.intent_type = Some("notification".into());
    other.channels = vec!["private-user-7".into(), "chat-room-1".into()];
    rows.push(other);
    store.insert_many(&rows).await.expect("insert");

    let count = |f: Filter| {
        let store = store.clone();
        async move { store.count_matching(&f).await.expect("count") }
    };
    assert_eq!(count(Filter::default()).await, 31);
    assert_eq!(
        count(spec(|s| s.reason = Some("exhausted".into()))).await,
        10
    );
    assert_eq!(
        count(spec(|s| s.reason = Some("exhausted,invalid".into()))).await,
        11
    );
    assert_eq!(
        count(spec(|s| s.intent_type = Some("notification".into()))).await,
        1
    );
    // room 1: i = 1, 6, ..., 26 (6 rows) plus the notification's second channel.
    assert_eq!(
        count(spec(|s| s.channel = Some("chat-room-1".into()))).await,
        7
    );
    assert_eq!(count(spec(|s| s.since = Some("150m".into()))).await, 20);
    assert_eq!(count(spec(|s| s.until = Some("150m".into()))).await, 11);
    let since = pusher_relay::clock::rfc3339_ms(t0 + 3_600_000);
    assert_eq!(count(spec(|s| s.since = Some(since))).await, 20);
    assert_eq!(count(spec(|s| s.status = Some("pending".into()))).await, 31);
    assert_eq!(count(spec(|s| s.status = Some("replayed".into()))).await, 0);

    // Pages of 4 over the rejected rows, newest first, with rows inserted
    // between pages: every original row exactly once, none of the new ones.
    let rejected = spec(|s| s.reason = Some("rejected".into()));
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store.list(&rejected, cursor, 4).await.expect("page");
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|dl| dl.id));
        // A new intent each time: the same one again would be the same
        // failure, stored once.
        store
            .insert(&dead_chat(
                1,
                1000 + seen.len(),
                DeadLetterReason::Rejected,
                now_ms(),
            ))
            .await
            .expect("insert during paging");
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::decode(&c).expect("our cursor")),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20, "every rejected row once: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 20);

    let stats = store.stats(&Filter::default()).await.expect("stats");
    let reason = |r: &str| stats.by_reason.iter().find(|c| c.key == r).expect(r).total;
    // 20 rejected, plus one inserted after each of the 5 pages.
    assert_eq!(reason("rejected"), 20 + 5);
    assert_eq!(reason("exhausted"), 10);
    assert_eq!(reason("too_large"), 0);
    assert_eq!(stats.total, 36);
    assert_eq!(stats.pending, 36);
    assert!(stats.oldest_pending.is_some());
    assert_eq!(
        stats
            .by_type
            .iter()
            .find(|c| c.key == "notification")
            .map(|c| c.total),
        Some(1)
    );
    let pending = store.pending_by_reason().await.expect("pending by reason");
    assert_eq!(pending.len(), DeadLetterReason::ALL.len());

    // Purge by filter, in batches, and delete by id.
    let purged = store
        .purge(&spec(|s| s.reason = Some("exhausted".into())), |_| {})
        .await
        .expect("purge");
    assert_eq!(purged, 10);
    let first = store.list(&Filter::default(), None, 1).await.expect("list");
    let id = first.items[0].id;
    assert_eq!(store.delete(&[id, 9_999_999]).await.expect("delete"), 1);
    assert_eq!(store.count().await.expect("count"), 25);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_stats_purge_and_keyset_pagination_stable_under_inserts_on_both_backends() {
    on_both(filters_and_pagination).await;
}

// ---------------------------------------------------------------------------

async fn concurrent_replays(db: Db) {
    let broker = Broker::new("dlq-replay").await;
    topology(&broker).await;
    let amqp = broker.amqp_config();
    let store = db.store().await;
    let t = now_ms();
    let rows: Vec<NewDeadLetter> = (0..1200)
        .map(|i| {
            let reason = if i % 2 == 0 {
                DeadLetterReason::Rejected
            } else {
                DeadLetterReason::Exhausted
            };
            dead_chat(i % 7, i, reason, t)
        })
        .collect();
    let ids = store.insert_many(&rows).await.expect("insert");
    let want: HashSet<String> = ids.iter().step_by(2).map(|id| id.to_string()).collect();
    let rejected = spec(|s| s.reason = Some("rejected".into()));

    // Dry run: counts, changes nothing, publishes nothing.
    let plan = replay::plan(&store, &rejected, false).await.expect("plan");
    assert_eq!((plan.matched, plan.eligible), (600, 600));
    assert!(plan.dry_run);
    assert_eq!(
        store
            .count_matching(&spec(|s| s.status = Some("replayed".into())))
            .await
            .expect("count"),
        0
    );
    assert!(
        drain(&broker).await.is_empty(),
        "a dry run publishes nothing"
    );

    // Two runs at once on the same rows, each on its own store pool.
    let other = db.store().await;
    let opts = ReplayOptions {
        batch_size: 50,
        ..ReplayOptions::default()
    };
    let (a, b) = tokio::join!(
        replay::replay(&store, &amqp, &rejected, &opts, |_, _| {}),
        replay::replay(&other, &amqp, &rejected, &opts, |_, _| {}),
    );
    let (a, b) = (a.expect("run a"), b.expect("run b"));
    assert_eq!(a.replayed + b.replayed, 600, "a: {a:?}, b: {b:?}");
    assert_eq!(a.failed + b.failed, 0);

    let got = drain(&broker).await;
    assert_eq!(got.len(), 600, "each matching row republished once");
    let got_ids: HashSet<String> = got.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(got_ids, want, "exactly the matching rows");
    // The original body, byte for byte.
    let by_id: HashMap<i64, &NewDeadLetter> = ids.iter().copied().zip(rows.iter()).collect();
    for (id, body) in &got {
        let id: i64 = id.parse().expect("numeric header");
        assert_eq!(body, &by_id[&id].body);
    }
    let dl = store.get(ids[0]).await.expect("get").expect("row");
    assert_eq!(dl.status, DeadLetterStatus::Replayed);
    assert_eq!(dl.replay_count, 1);
    assert!(dl.last_replayed_at_ms.is_some());
    let untouched = store.get(ids[1]).await.expect("get").expect("row");
    assert_eq!(
        (untouched.status, untouched.replay_count),
        (DeadLetterStatus::Pending, 0)
    );

    // Again: nothing left without --force; everything again with it.
    let again = replay::replay(&store, &amqp, &rejected, &opts, |_, _| {})
        .await
        .expect("again");
    assert_eq!((again.replayed, again.skipped_replayed), (0, 600));
    let forced = ReplayOptions {
        force: true,
        ..opts.clone()
    };
    let (a, b) = tokio::join!(
        replay::replay(&store, &amqp, &rejected, &forced, |_, _| {}),
        replay::replay(&other, &amqp, &rejected, &forced, |_, _| {}),
    );
    assert_eq!(
        a.expect("forced a").replayed + b.expect("forced b").replayed,
        600
    );
    assert_eq!(
        drain(&broker).await.len(),
        600,
        "forced runs at once: once each"
    );
    let dl = store.get(ids[0]).await.expect("get").expect("row");
    assert_eq!(dl.replay_count, 2);

    // By id.
    let by_ids = Filter {
        ids: vec![ids[1], ids[3]],
        ..Filter::default()
    };
    let r = replay::replay(&store, &amqp, &by_ids, &opts, |_, _| {})
        .await
        .expect("by ids");
    assert_eq!(r.replayed, 2);
    assert_eq!(drain(&broker).await.len(), 2);

    other.close().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_republishes_exactly_the_matching_rows_once_even_with_two_concurrent_runs() {
    on_both(concurrent_replays).await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_intent_is_delivered_by_the_worker_and_the_admin_api_serves_dead_letters() {
    let (fake, server, broker, db) = rig("dlq-worker", Db::postgres().await).await;
    let token = "s3cret-admin-token-0123456789abcdefghij";
    // A worker process of its own: the pending gauge and the replay counter
    // it exports are then this test's alone, not also those of the other
    // tests' workers and replays in this process.
    let worker = Process::start(&server.uri(), &broker, &db, &[("RELAY_ADMIN_TOKEN", token)]).await;
    let store = db.store().await;
    let id = store
        .insert(&dead_chat(42, 1, DeadLetterReason::Exhausted, now_ms()))
        .await
        .expect("insert");
    store
        .insert(&dead_chat(43, 2, DeadLetterReason::Rejected, now_ms()))
        .await
        .expect("insert");

    let base = format!("http://{}", worker.http_addr);
    let http = reqwest::Client::new();
    let get = |path: &str, auth: Option<&str>| {
        let mut req = http.get(format!("{base}{path}"));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    // Auth: none or wrong is 401, with a JSON error.
    assert_eq!(
        get("/api/dead-letters", None).await.expect("http").status(),
        401
    );
    let wrong = get("/api/dead-letters", Some("nope")).await.expect("http");
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("token")));

    // Listing, filters and their errors.
    let list: Value = get("/api/dead-letters?reason=exhausted", Some(token))
        .await
        .expect("http")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["id"], json!(id));
    let paged: Value = get("/api/dead-letters?limit=1", Some(token))
        .await
        .expect("http")
        .json()
        .await
        .expect("json");
    let cursor = paged["next_cursor"].as_str().expect("a second page");
    let next: Value = get(
        &format!("/api/dead-letters?limit=1&cursor={cursor}"),
        Some(token),
    )
    .await
    .expect("http")
    .json()
    .await
    .expect("json");
    assert_eq!(next["items"][0]["id"], json!(id));
    assert_eq!(next["next_cursor"], Value::Null);
    for (query, needle) in [
        ("reason=lost", "reason"),
        ("since=yesterday", "since"),
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("cursor=zzz", "cursor"),
        ("reasn=rejected", "reasn"),
    ] {
        let resp = get(&format!("/api/dead-letters?{query}"), Some(token))
            .await
            .expect("http");
        assert_eq!(resp.status(), 400, "{query}");
        let body: Value = resp.json().await.expect("json error");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    let shown: Value = get(&format!("/api/dead-letters/{id}"), Some(token))
        .await
        .expect("http")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["body"]["room_id"], json!(42));
    assert_eq!(shown["pusher_status"], json!(400));
    assert_eq!(
        get("/api/dead-letters/abc", Some(token))
            .await
            .expect("http")
            .status(),
        400
    );
    assert_eq!(
        get("/api/dead-letters/987654", Some(token))
            .await
            .expect("http")
            .status(),
        404
    );
    let stats: Value = get("/api/dead-letters/stats", Some(token))
        .await
        .expect("http")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["total"], json!(2));

    // Replay over the API: the worker then delivers it to Pusher.
    let replay = |body: Value| {
        http.post(format!("{base}/api/dead-letters/replay"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    assert_eq!(replay(json!({})).await.expect("http").status(), 400);
    let dry: Value = replay(json!({"ids": [id], "dry_run": true}))
        .await
        .expect("http")
        .json()
        .await
        .expect("json");
    assert_eq!(dry["eligible"], json!(1));
    assert_eq!(
        store.get(id).await.expect("get").expect("row").status,
        DeadLetterStatus::Pending,
        "a dry run changes nothing"
    );
    let done: Value = replay(json!({"ids": [id]}))
        .await
        .expect("http")
        .json()
        .await
        .expect("json");
    assert_eq!(done["replayed"], json!(1), "{done}");
    eventually(WAIT, "the replayed intent at Pusher", || {
        fake.received().iter().any(|e| e.channel == "chat-room-42")
    })
    .await;
    assert_eq!(fake.received().len(), 1);
    assert_eq!(
        store.get(id).await.expect("get").expect("row").status,
        DeadLetterStatus::Replayed
    );
    assert_eq!(
        store.count().await.expect("count"),
        2,
        "delivered, not dead-lettered again"
    );

    // Delete.
    let del = http
        .delete(format!("{base}/api/dead-letters/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("http");
    assert_eq!(del.status(), 204);
    let del = http
        .delete(format!("{base}/api/dead-letters/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("http");
    assert_eq!(del.status(), 404);

    // The pending gauge is sampled by the worker every few seconds.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if text.contains("pusher_relay_dead_letters_pending{reason=\"rejected\"} 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pending gauge in {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The OpenAPI document names exactly the routed paths and methods, and
    // each of them answers (not 404/405) on the real listener.
    let doc: Value = get("/api/openapi.json", None)
        .await
        .expect("http")
        .json()
        .await
        .expect("json");
    let mut documented = HashSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: HashSet<(String, String)> = pusher_relay::admin::route_list()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed, "OpenAPI paths vs router");
    let other_id = id + 1;
    // DELETE last: it removes the row the other routes are called with, and
    // a 404 for a deleted row would look like a missing route.
    let mut calls: Vec<&(String, String)> = routed.iter().collect();
    calls.sort_by_key(|(method, path)| (method == "DELETE", path.clone(), method.clone()));
    for (method, path) in calls {
        let url = format!("{base}{}", path.replace("{id}", &other_id.to_string()));
        let mut req = http
            .request(method.parse().expect("method"), url)
            .bearer_auth(token);
        if method == "POST" {
            req = req.json(&json!({"ids": [other_id], "dry_run": true}));
        }
        let status = req.send().await.expect("http").status().as_u16();
        assert!(
            !matches!(status, 404 | 405),
            "{method} {path} is documented but answered {status}"
        );
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("pusher_relay_replays_total"),
        "replay counter exported"
    );

    worker.stop().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_and_console_are_absent_without_a_token() {
    let (_fake, server, broker, db) = rig("dlq-noadmin", Db::sqlite()).await;
    let worker = Worker::start(relay_config(&server.uri(), &broker, &db, &[]))
        .await
        .expect("worker starts");
    for path in [
        "/api/dead-letters",
        "/ui",
        "/ui/login",
        "/ui/assets/console.js",
    ] {
        let resp = reqwest::get(format!("http://{}{path}", worker.http_addr))
            .await
            .expect("http");
        assert_eq!(resp.status(), 404, "{path}");
    }
    common::stop(worker).await;
}

// ---------------------------------------------------------------------------

/// Peak and current resident memory of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_100_000_dead_letters_streams_in_bounded_memory() {
    const N: usize = 100_000;
    let broker = Broker::new("dlq-100k").await;
    // A classic, non-replicated queue: this measures the replay, not the
    // broker's quorum log.
    broker
        .channel
        .exchange_declare(
            &broker.exchange,
            lapin::ExchangeKind::Topic,
            Default::default(),
            Default::default(),
        )
        .await
        .expect("exchange");
    broker
        .channel
        .queue_declare(&broker.queue, Default::default(), Default::default())
        .await
        .expect("queue");
    broker
        .channel
        .queue_bind(
            &broker.queue,
            &broker.exchange,
            "#",
            Default::default(),
            Default::default(),
        )
        .await
        .expect("bind");
    let db = Db::sqlite();
    let store: Store = db.store().await;
    let t = now_ms();
    let started = std::time::Instant::now();
    for chunk in 0..N / 5000 {
        let rows: Vec<NewDeadLetter> = (0..5000)
            .map(|i| dead_chat(i % 100, chunk * 5000 + i, DeadLetterReason::Exhausted, t))
            .collect();
        store.insert_many(&rows).await.expect("insert chunk");
    }
    let inserted_in = started.elapsed();

    let (hwm_before, rss_before) = memory_kib();
    let started = std::time::Instant::now();
    let report = replay::replay(
        &store,
        &broker.amqp_config(),
        &Filter::default(),
        &ReplayOptions::default(),
        |_, _| {},
    )
    .await
    .expect("replay");
    let replayed_in = started.elapsed();
    let (hwm_after, rss_after) = memory_kib();

    assert_eq!(report.replayed, N as u64, "{report:?}");
    assert_eq!(report.failed, 0);
    let q = broker
        .channel
        .queue_declare(
            &broker.queue,
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("queue");
    assert_eq!(q.message_count() as usize, N);
    assert_eq!(
        store
            .count_matching(&spec(|s| s.status = Some("pending".into())))
            .await
            .expect("count"),
        0
    );
    let growth_mib = hwm_after.saturating_sub(hwm_before) as f64 / 1024.0;
    println!(
        "100k replay: inserted in {inserted_in:?}; replayed in {replayed_in:?}; \
         peak RSS {:.1} MiB -> {:.1} MiB (growth {growth_mib:.1} MiB); RSS {:.1} -> {:.1} MiB",
        hwm_before as f64 / 1024.0,
        hwm_after as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
    );
    assert!(growth_mib < 200.0, "peak RSS grew {growth_mib:.1} MiB");

    store.close().await;
}

/// One corrupt row must not break the listings: a body that is not JSON
/// with a header nested 62 levels is stored with its headers bounded, and a
/// row whose columns were edited into nonsense is flagged on the page (and
/// answers 422 on its own) while the other rows are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_dead_letter_is_flagged_and_the_listings_still_answer() {
    let (_fake, server, broker, db) = rig("dlq-corrupt", Db::sqlite()).await;
    let token = "corrupt-rows-admin-token-0123456789abcdef";
    let worker = common::start_worker(relay_config(
        &server.uri(),
        &broker,
        &db,
        &[("RELAY_ADMIN_TOKEN", token)],
    ))
    .await;
    let store = db.store().await;
    // Typed AMQP headers, as the relay stores them, nested 62 levels.
    let mut nested = json!({});
    for _ in 0..62 {
        nested = json!({"FieldTable": {"a": nested}});
    }
    let mut deep = dead_chat(7, 1, DeadLetterReason::Invalid, now_ms());
    deep.body = b"\xff\xfe not JSON".to_vec();
    deep.headers = json!({"headers": nested});
    let deep_id = store.insert(&deep).await.expect("insert deep");
    let good_id = store
        .insert(&dead_chat(7, 2, DeadLetterReason::Rejected, now_ms()))
        .await
        .expect("insert");
    let broken_id = store
        .insert(&dead_chat(7, 3, DeadLetterReason::Rejected, now_ms()))
        .await
        .expect("insert");
    let db_path = db.url().trim_start_matches("sqlite://").to_string();
    let raw = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(&db_path),
    )
    .await
    .expect("raw sqlite");
    let mut headers = String::new();
    for _ in 0..200 {
        headers.push_str("{\"a\":");
    }
    headers.push_str("{}");
    headers.push_str(&"}".repeat(200));
    sqlx::query("UPDATE dead_letters SET headers = ?, reason = 'bogus' WHERE id = ?")
        .bind(&headers)
        .bind(broken_id)
        .execute(&raw)
        .await
        .expect("corrupt the row");
    raw.close().await;

    let base = format!("http://{}", worker.http_addr);
    let http = reqwest::Client::new();
    let get = |path: String| http.get(format!("{base}{path}")).bearer_auth(token).send();
    let list = get("/api/dead-letters".into()).await.expect("http");
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.expect("json");
    let ids: Vec<i64> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![good_id, deep_id]);
    assert_eq!(list["unreadable"][0]["id"], json!(broken_id));
    assert!(
        list["unreadable"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("bogus")),
        "{list}"
    );

    let deep_one = get(format!("/api/dead-letters/{deep_id}"))
        .await
        .expect("http");
    assert_eq!(deep_one.status(), 200);
    let deep_one: Value = deep_one.json().await.expect("json");
    assert!(
        deep_one["headers"]["unreadable"]
            .as_str()
            .is_some_and(|n| n.contains("nested deeper than 64")),
        "{deep_one}"
    );
    assert_eq!(deep_one["body"], Value::Null, "not JSON, so only base64");

    let broken = get(format!("/api/dead-letters/{broken_id}"))
        .await
        .expect("http");
    assert_eq!(broken.status(), 422);
    let broken: Value = broken.json().await.expect("json");
    assert!(
        broken["error"]
            .as_str()
            .is_some_and(|e| e.contains("corrupt")),
        "{broken}"
    );

    common::stop(worker).await;
    store.close().await;
}

/// The admin token's throttle counts wrong tokens per peer: a guesser is
/// answered 429 after 20 in 10 s, while another peer, any peer with the
/// right token, and requests without a token (a scraper, a health check)
/// go on as before. Peers are loopback addresses of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_throttle_is_per_peer_and_never_locks_out_the_right_token() {
    let (_fake, server, broker, db) = rig("throttle", Db::sqlite()).await;
    let token = "s3cret-admin-token-0123456789abcdefghij";
    let worker = Process::start(&server.uri(), &broker, &db, &[("RELAY_ADMIN_TOKEN", token)]).await;
    let url = format!("http://{}/api/dead-letters", worker.http_addr);
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().expect("ip"))
            .build()
            .expect("client")
    };
    let status = |client: &reqwest::Client, auth: Option<&str>| {
        let mut req = client.get(&url);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.expect("http").status().as_u16() }
    };
    let (guesser, operator, scraper) = (from("127.0.0.2"), from("127.0.0.3"), from("127.0.0.4"));

    for _ in 0..50 {
        assert_eq!(status(&scraper, None).await, 401);
    }
    assert_eq!(
        status(&scraper, Some("typo")).await,
        401,
        "requests without a token are not counted"
    );
    let mut answers = Vec::new();
    for _ in 0..25 {
        answers.push(status(&guesser, Some("guess")).await);
    }
    assert_eq!(answers[..20], [401; 20], "{answers:?}");
    assert_eq!(answers[20..], [429; 5], "{answers:?}");
    assert_eq!(
        status(&operator, Some("typo")).await,
        401,
        "a window per peer"
    );
    assert_eq!(status(&operator, Some(token)).await, 200);
    assert_eq!(
        status(&guesser, Some(token)).await,
        200,
        "the right token passes even from the throttled peer"
    );
}
