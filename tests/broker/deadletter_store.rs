//! Dead-letter store against real SQLite files and a real PostgreSQL.
//!
//! Every test body runs on both backends (see `both!`). Each run gets its own
//! SQLite file or PostgreSQL schema, removed on drop even when the test
//! panics, so tests run in parallel and leave nothing behind.
//!
//! PostgreSQL URL: `DEADLETTER_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pusher_relay::deadletter::{
    DeadLetterReason, DeadLetterStatus, Filter, NewDeadLetter, Store, StoreError,
};
use serde_json::json;
use sqlx::Executor;

fn pg_url() -> String {
    std::env::var("DEADLETTER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn unique(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// One isolated database: a SQLite file or a PostgreSQL schema.
enum Target {
    Sqlite { path: PathBuf },
    Postgres { schema: String },
}

impl Target {
    fn sqlite() -> Target {
        let path = std::env::temp_dir().join(format!("{}.db", unique("dl_test")));
        Target::Sqlite { path }
    }

    fn postgres() -> Target {
        Target::Postgres {
            schema: unique("dl_test"),
        }
    }

    fn sqlite_url(path: &std::path::Path) -> String {
        // temp_dir() is absolute, so this is sqlite:///tmp/...
        format!("sqlite://{}", path.display())
    }

    /// A new Store on this target (a second call gives an independent pool).
    async fn open(&self) -> Store {
        match self {
            Target::Sqlite { path } => Store::connect(&Self::sqlite_url(path))
                .await
                .expect("open sqlite store"),
            Target::Postgres { schema } => Store::connect_postgres_schema(&pg_url(), schema)
                .await
                .expect("open postgres store"),
        }
    }

    /// Runs SQL outside the Store, to set up what the API cannot (corrupt
    /// rows, failing triggers).
    async fn raw(&self, sql: &str) {
        match self {
            Target::Sqlite { path } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let pool = sqlx::SqlitePool::connect_with(opts)
                    .await
                    .expect("raw sqlite");
                pool.execute(sql).await.expect("raw sqlite sql");
                pool.close().await;
            }
            Target::Postgres { schema } => {
                let opts = sqlx::postgres::PgConnectOptions::from_str(&pg_url())
                    .expect("pg url")
                    .options([("search_path", schema.as_str())]);
                let pool = sqlx::PgPool::connect_with(opts).await.expect("raw pg");
                pool.execute(sql).await.expect("raw pg sql");
                pool.close().await;
            }
        }
    }

    /// The schema as migration 0001 left it, as a worker from before 0002
    /// wrote it: only the first migration file, applied by sqlx's migrator
    /// so that opening the Store afterwards applies the rest.
    async fn migrate_to_first(&self) {
        let backend = match self {
            Target::Sqlite { .. } => "sqlite",
            Target::Postgres { .. } => "postgres",
        };
        let dir = std::env::temp_dir().join(unique("dl_migrations"));
        std::fs::create_dir(&dir).expect("migrations dir");
        let first = "0001_dead_letters.sql";
        std::fs::copy(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend)
                .join(first),
            dir.join(first),
        )
        .expect("copy the first migration");
        let migrator = sqlx::migrate::Migrator::new(dir.as_path())
            .await
            .expect("read the first migration");
        match self {
            Target::Sqlite { path } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true);
                let pool = sqlx::SqlitePool::connect_with(opts)
                    .await
                    .expect("raw sqlite");
                migrator.run(&pool).await.expect("migration 0001");
                pool.close().await;
            }
            Target::Postgres { schema } => {
                self.raw(&format!("CREATE SCHEMA \"{schema}\"")).await;
                let opts = sqlx::postgres::PgConnectOptions::from_str(&pg_url())
                    .expect("pg url")
                    .options([("search_path", schema.as_str())]);
                let pool = sqlx::PgPool::connect_with(opts).await.expect("raw pg");
                migrator.run(&pool).await.expect("migration 0001");
                pool.close().await;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A trigger that makes inserting routing key 'poison' fail.
    async fn add_poison_trigger(&self) {
        match self {
            Target::Sqlite { .. } => {
                self.raw(
                    "CREATE TRIGGER poison BEFORE INSERT ON dead_letters \
                     WHEN NEW.routing_key = 'poison' \
                     BEGIN SELECT RAISE(ABORT, 'poison'); END;",
                )
                .await
            }
            Target::Postgres { .. } => {
                self.raw(
                    "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF NEW.routing_key = 'poison' THEN RAISE EXCEPTION 'poison'; END IF; \
                     RETURN NEW; END $$; \
                     CREATE TRIGGER poison BEFORE INSERT ON dead_letters \
                     FOR EACH ROW EXECUTE FUNCTION poison();",
                )
                .await
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        match self {
            Target::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Target::Postgres { schema } => {
                // Drop runs inside the test's runtime (maybe while unwinding),
                // so clean up on a thread with a runtime of its own.
                let schema = schema.clone();
                let done = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("cleanup runtime");
                    rt.block_on(async {
                        let pool = sqlx::PgPool::connect(&pg_url()).await.expect("cleanup");
                        pool.execute(
                            format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str(),
                        )
                        .await
                        .expect("drop schema");
                        pool.close().await;
                    });
                })
                .join();
                if done.is_err() && !std::thread::panicking() {
                    panic!("dropping the test schema failed");
                }
            }
        }
    }
}

/// Runs `$body(&Target)` once on SQLite and once on PostgreSQL.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let target = super::Target::sqlite();
                super::$name(&target).await;
            }

            #[tokio::test]
            async fn postgres() {
                let target = super::Target::postgres();
                super::$name(&target).await;
            }
        }
    };
}

fn full_record() -> NewDeadLetter {
    NewDeadLetter {
        // Not UTF-8, includes NUL: the body must come back byte for byte.
        body: vec![0xff, 0xfe, 0x00, 0x80, b'{', b'"', 0xc3, 0x28, 0x7f],
        routing_key: "chat.message".to_owned(),
        headers: json!({
            "message_id": "intent-1",
            "content_type": "application/json",
            "delivery_mode": 2,
            "timestamp": 1_700_000_000,
            "headers": { "x-retry": [1, 2, 3], "x-flag": true, "x-null": null, "x-ü": "ünïcødé" }
        }),
        intent_id: Some("intent-1".to_owned()),
        intent_type: Some("chat.message".to_owned()),
        channels: vec!["chat-room-42".to_owned(), "private-user-7".to_owned()],
        reason: DeadLetterReason::Rejected,
        error: "pusher rejected event: channel name invalid".to_owned(),
        pusher_status: Some(413),
        pusher_body: Some("{\"error\":\"payload too large\"}".to_owned()),
        attempts: u32::MAX,
        first_seen_at_ms: 1_700_000_000_123,
        dead_lettered_at_ms: i64::MAX,
        replay_of: None,
    }
}

fn minimal_record(reason: DeadLetterReason, routing_key: &str) -> NewDeadLetter {
    NewDeadLetter {
        body: b"{}".to_vec(),
        routing_key: routing_key.to_owned(),
        headers: json!({}),
        intent_id: None,
        intent_type: None,
        channels: Vec::new(),
        reason,
        error: "bad".to_owned(),
        pusher_status: None,
        pusher_body: None,
        attempts: 0,
        first_seen_at_ms: 0,
        dead_lettered_at_ms: 1,
        replay_of: None,
    }
}

fn assert_same(stored: &pusher_relay::deadletter::DeadLetter, new: &NewDeadLetter) {
    assert_eq!(stored.body, new.body);
    assert_eq!(stored.routing_key, new.routing_key);
    assert_eq!(stored.headers, new.headers);
    assert_eq!(stored.intent_id, new.intent_id);
    assert_eq!(stored.intent_type, new.intent_type);
    assert_eq!(stored.channels, new.channels);
    assert_eq!(stored.reason, new.reason);
    assert_eq!(stored.error, new.error);
    assert_eq!(stored.pusher_status, new.pusher_status);
    assert_eq!(stored.pusher_body, new.pusher_body);
    assert_eq!(stored.attempts, new.attempts);
    assert_eq!(stored.first_seen_at_ms, new.first_seen_at_ms);
    assert_eq!(stored.dead_lettered_at_ms, new.dead_lettered_at_ms);
    assert_eq!(stored.replay_count, 0);
    assert_eq!(stored.last_replayed_at_ms, None);
}

async fn round_trip(t: &Target) {
    let store = t.open().await;
    let full = full_record();
    let id = store.insert(&full).await.expect("insert full");
    let got = store.get(id).await.expect("get").expect("row exists");
    assert_eq!(got.id, id);
    assert_same(&got, &full);

    let min = minimal_record(DeadLetterReason::Invalid, "");
    let id2 = store.insert(&min).await.expect("insert minimal");
    assert!(id2 > id, "ids increase: {id} then {id2}");
    let got2 = store.get(id2).await.expect("get").expect("row exists");
    assert_same(&got2, &min);

    assert!(store.get(id2 + 1000).await.expect("get missing").is_none());
    assert_eq!(store.count().await.expect("count"), 2);
    store.close().await;
}
both!(round_trip);

async fn insert_many_is_one_transaction(t: &Target) {
    let store = t.open().await;
    assert!(store
        .insert_many(&[])
        .await
        .expect("empty batch")
        .is_empty());

    let batch: Vec<NewDeadLetter> = ["a", "b", "c"]
        .iter()
        .map(|k| minimal_record(DeadLetterReason::Exhausted, k))
        .collect();
    let ids = store.insert_many(&batch).await.expect("insert_many");
    assert_eq!(ids.len(), 3);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids in input order: {ids:?}"
    );
    for (id, dl) in ids.iter().zip(&batch) {
        let got = store.get(*id).await.expect("get").expect("row exists");
        assert_same(&got, dl);
    }

    // A failure part-way through must leave none of the batch behind.
    t.add_poison_trigger().await;
    let poisoned = vec![
        minimal_record(DeadLetterReason::Invalid, "ok-1"),
        minimal_record(DeadLetterReason::Invalid, "poison"),
        minimal_record(DeadLetterReason::Invalid, "ok-2"),
    ];
    let err = store
        .insert_many(&poisoned)
        .await
        .expect_err("poisoned batch fails");
    assert!(
        matches!(
            err,
            StoreError::Query {
                op: "insert_many",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        !err.is_unavailable(),
        "a rejected row is not an outage: {err:?}"
    );
    assert_eq!(store.count().await.expect("count"), 3);
    store.close().await;
}
both!(insert_many_is_one_transaction);

async fn pending_by_reason(t: &Target) {
    let store = t.open().await;
    let empty = store.pending_by_reason().await.expect("empty stats");
    assert_eq!(
        empty,
        DeadLetterReason::ALL
            .iter()
            .map(|&r| (r, 0))
            .collect::<Vec<_>>()
    );

    let mut batch = Vec::new();
    for (reason, n) in [
        (DeadLetterReason::Invalid, 3),
        (DeadLetterReason::TooLarge, 1),
        (DeadLetterReason::Expired, 2),
    ] {
        for _ in 0..n {
            batch.push(minimal_record(reason, "k"));
        }
    }
    store.insert_many(&batch).await.expect("insert");
    let stats = store.pending_by_reason().await.expect("stats");
    assert_eq!(
        stats,
        vec![
            (DeadLetterReason::Invalid, 3),
            (DeadLetterReason::TooLarge, 1),
            (DeadLetterReason::Rejected, 0),
            (DeadLetterReason::Exhausted, 0),
            (DeadLetterReason::Expired, 2),
            (DeadLetterReason::DeliveryLimit, 0),
        ]
    );
    assert_eq!(store.count().await.expect("count"), 6);
    store.close().await;
}
both!(pending_by_reason);

async fn migrations_are_idempotent(t: &Target) {
    let first = t.open().await;
    let id = first.insert(&full_record()).await.expect("insert");
    first.close().await;
    // Reconnecting re-runs the migrator on an up-to-date schema.
    let second = t.open().await;
    let third = t.open().await;
    assert_eq!(second.count().await.expect("count"), 1);
    assert!(third.get(id).await.expect("get").is_some());
    second.close().await;
    third.close().await;
}
both!(migrations_are_idempotent);

async fn committed_row_visible_to_another_store(t: &Target) {
    let writer = t.open().await;
    let reader = t.open().await;
    // Warm the reader's pool first so it is not just seeing a fresh snapshot.
    assert_eq!(reader.count().await.expect("count"), 0);
    let id = writer.insert(&full_record()).await.expect("insert");
    let got = reader.get(id).await.expect("get").expect("visible");
    assert_same(&got, &full_record());
    writer.close().await;
    reader.close().await;
}
both!(committed_row_visible_to_another_store);

async fn ping_and_close(t: &Target) {
    let store = t.open().await;
    store.ping().await.expect("ping");
    let clone = store.clone();
    store.close().await;
    let err = clone.ping().await.expect_err("closed pool");
    assert!(err.is_unavailable(), "closed pool is unavailable: {err:?}");
}
both!(ping_and_close);

async fn the_delivered_log_keeps_the_newest_keys(t: &Target) {
    let store = t.open().await;
    // Negative keys too: a hash's top bit is set half the time.
    store.log_delivered(&[1, -2, 3], 1_000).await.expect("log");
    store.log_delivered(&[3, 4], 2_000).await.expect("again");
    store.log_delivered(&[5], 3_000).await.expect("newest");
    store.log_delivered(&[], 4_000).await.expect("nothing");
    let all = store.recent_delivered(10).await.expect("read");
    assert_eq!(all.len(), 5, "3 is kept once: {all:?}");
    assert_eq!(&all[3..], &[4, 5], "oldest first, newest last");
    assert_eq!(store.recent_delivered(2).await.expect("read"), vec![4, 5]);
    // Rows sharing the cut's time stay: 4 (at 2,000) is kept with 5.
    assert_eq!(store.trim_delivered(1).await.expect("trim"), 3);
    assert_eq!(store.recent_delivered(10).await.expect("read"), vec![4, 5]);
    store.close().await;
}
both!(the_delivered_log_keeps_the_newest_keys);

async fn corrupt_row_is_reported(t: &Target) {
    let store = t.open().await;
    let id = store.insert(&full_record()).await.expect("insert");
    t.raw(&format!(
        "UPDATE dead_letters SET reason = 'bogus' WHERE id = {id}"
    ))
    .await;
    match store.get(id).await {
        Err(StoreError::Corrupt { id: bad, detail }) => {
            assert_eq!(bad, id);
            assert!(detail.contains("bogus"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Stats skip the unknown reason instead of failing.
    let stats = store.pending_by_reason().await.expect("stats");
    assert!(stats.iter().all(|(_, n)| *n == 0), "{stats:?}");
    store.close().await;
}
both!(corrupt_row_is_reported);

async fn nul_in_metadata_is_storable(t: &Target) {
    let store = t.open().await;
    let mut dl = full_record();
    dl.error = "bad\0field".to_owned();
    dl.channels = vec!["a\0b".to_owned()];
    dl.headers = json!({"x\0": "y\0z"});
    dl.intent_id = Some("id\0".to_owned());
    let id = store
        .insert(&dl)
        .await
        .expect("NUL must not block dead-lettering");
    let got = store.get(id).await.expect("get").expect("row");
    assert_eq!(got.body, dl.body, "body is always exact");
    // PostgreSQL stores the intent id without NUL; a redelivery must still
    // find the row by it.
    assert_eq!(store.insert(&dl).await.expect("redelivery"), id);
    match store.backend() {
        "sqlite" => assert_same(&got, &dl),
        "postgres" => {
            assert_eq!(got.error, "bad\u{FFFD}field");
            assert_eq!(got.channels, vec!["a\u{FFFD}b".to_owned()]);
            assert_eq!(got.headers, json!({"x\u{FFFD}": "y\u{FFFD}z"}));
            assert_eq!(got.intent_id.as_deref(), Some("id\u{FFFD}"));
        }
        other => panic!("unknown backend {other}"),
    }
    store.close().await;
}
both!(nul_in_metadata_is_storable);

/// Pending dead letters of one failure, by intent id and reason.
async fn pending_ids(store: &Store, intent_id: &str, reason: DeadLetterReason) -> Vec<i64> {
    let page = store
        .list(&Filter::default(), None, 1000)
        .await
        .expect("list");
    let mut ids: Vec<i64> = page
        .items
        .iter()
        .filter(|dl| {
            dl.intent_id.as_deref() == Some(intent_id)
                && dl.reason == reason
                && dl.status == DeadLetterStatus::Pending
        })
        .map(|dl| dl.id)
        .collect();
    ids.sort_unstable();
    ids
}

async fn the_same_pending_failure_is_stored_once(t: &Target) {
    let store = t.open().await;
    let failure = full_record();
    let id = store.insert(&failure).await.expect("first failure");
    // The redelivery after a lost ack: same intent, same reason, later time.
    let mut again = failure.clone();
    again.dead_lettered_at_ms = 1_800_000_000_000;
    again.attempts = 1;
    assert_eq!(store.insert(&again).await.expect("redelivery"), id);
    let kept = store.get(id).await.expect("get").expect("row");
    assert_same(&kept, &failure);

    // In a batch, against the stored row and against an earlier row of the
    // same batch; another reason for the same intent is another failure.
    let mut expired = failure.clone();
    expired.reason = DeadLetterReason::Expired;
    let mut other = failure.clone();
    other.intent_id = Some("intent-2".to_owned());
    let ids = store
        .insert_many(&[again.clone(), other.clone(), other, expired])
        .await
        .expect("insert_many");
    assert_eq!(ids[0], id, "the stored failure's id: {ids:?}");
    assert_eq!(
        ids[1], ids[2],
        "one row for the batch's own repeat: {ids:?}"
    );
    assert!(id < ids[1] && ids[1] < ids[3], "new rows: {ids:?}");
    assert_eq!(store.count().await.expect("count"), 3);
    assert_eq!(
        pending_ids(&store, "intent-1", DeadLetterReason::Rejected).await,
        vec![id]
    );
    store.close().await;
}
both!(the_same_pending_failure_is_stored_once);

async fn failures_without_an_intent_id_are_all_kept(t: &Target) {
    let store = t.open().await;
    let anonymous = minimal_record(DeadLetterReason::Invalid, "not-json");
    let first = store.insert(&anonymous).await.expect("insert");
    let second = store.insert(&anonymous).await.expect("insert again");
    assert_ne!(first, second, "nothing to match them by");
    assert_eq!(store.count().await.expect("count"), 2);
    store.close().await;
}
both!(failures_without_an_intent_id_are_all_kept);

async fn a_replayed_dead_letter_does_not_absorb_a_new_failure(t: &Target) {
    let store = t.open().await;
    let failure = full_record();
    let id = store.insert(&failure).await.expect("insert");
    t.raw(&format!(
        "UPDATE dead_letters SET status = 'replayed', replay_count = 1 WHERE id = {id}"
    ))
    .await;
    // Failed again after its replay (replay_of left out on purpose: only the
    // status may decide here).
    let again = store.insert(&failure).await.expect("insert after replay");
    assert!(again > id, "a new row: {id} then {again}");
    assert_eq!(
        pending_ids(&store, "intent-1", DeadLetterReason::Rejected).await,
        vec![again]
    );
    assert_eq!(store.count().await.expect("count"), 2);
    store.close().await;
}
both!(a_replayed_dead_letter_does_not_absorb_a_new_failure);

async fn a_failing_replay_is_a_new_row_while_its_source_is_still_pending(t: &Target) {
    let store = t.open().await;
    let failure = full_record();
    let source = store.insert(&failure).await.expect("insert");
    // Replay marks its rows only after the broker confirmed them; the worker
    // may fail the republished intent before that.
    let mut replayed = failure.clone();
    replayed.replay_of = Some(source);
    let from_replay = store.insert(&replayed).await.expect("replay failed");
    assert_ne!(from_replay, source, "the replay's failure is its own row");
    // ...and its own redelivery finds it.
    assert_eq!(
        store.insert(&replayed).await.expect("redelivery"),
        from_replay
    );
    assert_eq!(
        pending_ids(&store, "intent-1", DeadLetterReason::Rejected).await,
        vec![source, from_replay]
    );
    store.close().await;
}
both!(a_failing_replay_is_a_new_row_while_its_source_is_still_pending);

async fn two_writers_storing_one_failure_at_once_store_one_row(t: &Target) {
    let a = t.open().await;
    let b = t.open().await;
    let failure = full_record();
    for round in 0..20 {
        let mut f = failure.clone();
        f.intent_id = Some(format!("race-{round}"));
        let batch = [f];
        let (x, y) = tokio::join!(a.insert_many(&batch), b.insert_many(&batch));
        let (x, y) = (x.expect("writer a"), y.expect("writer b"));
        assert_eq!(x, y, "round {round}: both writers get the one row");
    }
    assert_eq!(a.count().await.expect("count"), 20);
    a.close().await;
    b.close().await;
}
both!(two_writers_storing_one_failure_at_once_store_one_row);

async fn migration_keeps_the_first_of_duplicate_pending_failures(t: &Target) {
    t.migrate_to_first().await;
    let body = match t {
        Target::Sqlite { .. } => "X'7b7d'",
        Target::Postgres { .. } => "'\\x7b7d'::bytea",
    };
    // Ids 1..=8 in a fresh table on both backends.
    let rows = [
        ("'a'", "rejected", "pending"),  // 1: first failure, kept
        ("'a'", "rejected", "pending"),  // 2: stored again after a lost ack
        ("'a'", "expired", "pending"),   // 3: another reason, kept
        ("'a'", "rejected", "replayed"), // 4: replayed, not a duplicate
        ("'b'", "rejected", "pending"),  // 5: kept
        ("'b'", "rejected", "pending"),  // 6: duplicate
        ("NULL", "invalid", "pending"),  // 7: no intent id, kept
        ("NULL", "invalid", "pending"),  // 8: no intent id, kept
    ];
    for (intent_id, reason, status) in rows {
        t.raw(&format!(
            "INSERT INTO dead_letters (body, routing_key, intent_id, reason, error, \
             first_seen_at_ms, dead_lettered_at_ms, status) \
             VALUES ({body}, 'chat.message', {intent_id}, '{reason}', 'e', 1, 2, '{status}')"
        ))
        .await;
    }

    let store = t.open().await;
    let mut left = Vec::new();
    for id in 1..=8 {
        if store.get(id).await.expect("get").is_some() {
            left.push(id);
        }
    }
    assert_eq!(left, vec![1, 3, 4, 5, 7, 8]);
    let mut again = minimal_record(DeadLetterReason::Rejected, "chat.message");
    again.intent_id = Some("a".to_owned());
    assert_eq!(store.insert(&again).await.expect("insert"), 1);
    store.close().await;
}
both!(migration_keeps_the_first_of_duplicate_pending_failures);

#[tokio::test]
async fn backends_are_named() {
    let t = Target::sqlite();
    assert_eq!(t.open().await.backend(), "sqlite");
    let t = Target::postgres();
    assert_eq!(t.open().await.backend(), "postgres");
}

#[tokio::test]
async fn sqlite_url_forms_and_wal() {
    // sqlite:relative-or-absolute and sqlite://path both create the file.
    let a = Target::sqlite();
    let Target::Sqlite { path } = &a else {
        unreachable!()
    };
    let store = Store::connect(&format!("sqlite:{}", path.display()))
        .await
        .expect("sqlite: form");
    assert!(path.exists(), "file created");
    store.close().await;

    let store = Store::connect(&Target::sqlite_url(path))
        .await
        .expect("sqlite:// form");
    let id = store.insert(&full_record()).await.expect("insert");
    store.close().await;

    // journal_mode is stored in the file, so an outside connection sees WAL.
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let pool = sqlx::SqlitePool::connect_with(opts).await.expect("raw");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 1);
    pool.close().await;

    // In-memory stores work (one connection kept alive).
    let mem = Store::connect("sqlite::memory:").await.expect("memory");
    mem.insert(&full_record()).await.expect("insert");
    assert_eq!(mem.count().await.expect("count"), 1);
    mem.close().await;
}

#[tokio::test]
async fn unsupported_url_names_the_scheme() {
    let err = Store::connect("mysql://root:hunter2@127.0.0.1/db")
        .await
        .expect_err("mysql is not supported");
    assert!(
        matches!(&err, StoreError::UnsupportedUrl { scheme } if scheme == "mysql"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("mysql"), "{msg}");
    assert!(msg.contains("sqlite") && msg.contains("postgres"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(!err.is_unavailable());

    let err = Store::connect("/var/lib/relay/dl.db")
        .await
        .expect_err("no scheme");
    assert!(
        matches!(&err, StoreError::UnsupportedUrl { scheme } if scheme.is_empty()),
        "{err:?}"
    );

    let err = Store::connect_postgres_schema("sqlite:x.db", "s")
        .await
        .expect_err("schema needs postgres");
    assert!(
        matches!(&err, StoreError::UnsupportedUrl { scheme } if scheme == "sqlite"),
        "{err:?}"
    );
}

fn full_chain(err: &StoreError) -> String {
    let mut out = format!("{err} / {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        out.push_str(&format!(" / {s} / {s:?}"));
        source = s.source();
    }
    out
}

#[tokio::test]
async fn connect_error_redacts_password() {
    let url = "postgres://postgres:hunter2@127.0.0.1:1/test";
    for result in [
        Store::connect(url).await,
        Store::connect_postgres_schema(url, "dl_test_never_created").await,
    ] {
        let err = result.expect_err("nothing listens on port 1");
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres:***@127.0.0.1:1"), "{shown}");
        let chain = full_chain(&err);
        assert!(!chain.contains("hunter2"), "{chain}");
        assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
        assert!(
            err.is_unavailable(),
            "refused connection is an outage: {err:?}"
        );
    }
}

#[tokio::test]
async fn bad_schema_name_is_rejected() {
    let err = Store::connect_postgres_schema(&pg_url(), "x\"; DROP SCHEMA public; --")
        .await
        .expect_err("not an identifier");
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    assert!(!err.is_unavailable());
}
