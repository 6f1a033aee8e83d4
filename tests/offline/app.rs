//! The composition root's shutdown contract: when `Worker::wait` returns,
//! every task the root started has ended, the HTTP listener included, so
//! nothing is still serving or writing when the process exits.
//!
//! Needs no broker: the relay is pointed at a port where nothing listens
//! and keeps reconnecting until shutdown, which is all the root needs.

use std::collections::HashMap;
use std::time::Duration;

use pusher_relay::app::Worker;
use pusher_relay::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A port nothing listens on: bound, then released.
fn dead_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

fn config(db: &std::path::Path) -> Config {
    let amqp = format!("amqp://guest:guest@127.0.0.1:{}/%2f", dead_port());
    let db = format!("sqlite://{}", db.display());
    let vars: HashMap<String, String> = [
        ("PUSHER_APP_ID", "1"),
        ("PUSHER_APP_KEY", "key"),
        ("PUSHER_APP_SECRET", "secret"),
        ("PUSHER_HOST", "127.0.0.1"),
        ("PUSHER_PORT", "9"),
        ("PUSHER_SCHEME", "http"),
        ("AMQP_URL", amqp.as_str()),
        ("DATABASE_URL", db.as_str()),
        ("HTTP_ADDR", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Config::from_lookup(&move |k| vars.get(k).cloned()).expect("test config is valid")
}

#[tokio::test]
async fn wait_returns_only_after_the_listener_has_closed_its_connections_in_flight() {
    let db = std::env::temp_dir().join(format!("app-test-{}.db", std::process::id()));
    let worker = Worker::start(config(&db)).await.expect("the worker starts");
    // A request in flight when shutdown starts, its body still coming: the
    // listener gives it a grace period, so a root that did not await the
    // listener would return from `wait` while this connection is open.
    // `100 Continue` comes back once the handler reads the body, which
    // says the request is in flight rather than still in the accept queue.
    let mut slow = TcpStream::connect(worker.http_addr)
        .await
        .expect("the listener accepts");
    slow.write_all(
        b"POST /webhooks/pusher HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .expect("the headers are written");
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
        .await
        .expect("an answer to Expect: 100-continue")
        .expect("the connection is readable");
    let interim = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        interim.starts_with("HTTP/1.1 100"),
        "expected 100 Continue, got {interim:?}"
    );
    slow.write_all(b"{")
        .await
        .expect("a first byte of the body");
    let addr = worker.http_addr;
    worker.shutdown();
    worker.wait().await.expect("the worker stops cleanly");

    // The connection is closed by now: reading finds its end at once (the
    // deadline only turns a hang into a failure with a message).
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = slow.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the request in flight is still open after wait() returned"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener still accepts after wait() returned"
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}
