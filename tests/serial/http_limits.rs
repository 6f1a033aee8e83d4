//! The HTTP listener's bounds (security item 4): a half-sent request is cut
//! after the header timeout, a flood of them beyond the connection limit
//! leaves `/healthz` answering once they are cut, a request too slow is
//! answered 503, shutdown is bounded, and `/readyz` shows no error text.
//! No broker or store: the listener alone, with short [`Limits`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pusher_relay::config::Config;
use pusher_relay::http::{self, AppState, Limits};
use pusher_relay::relay::health::Health;
use pusher_relay::shutdown::{self, ShutdownTrigger};
use pusher_relay::webhooks::WebhookIngress;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The exact half request: its head lacks the final blank line.
const HALF_REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

/// Slack over a timeout for the server to act on it, on a busy 2-core box.
const SLACK: Duration = Duration::from_secs(5);

/// Held by each flood test for its whole run: they measure this process's
/// memory and fill listeners with hundreds of connections, so one running
/// beside another would read the other's memory as its own (CI once failed
/// a pipelining flood that way) and share its CPU with the flood it waits
/// on.
static FLOODS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Server {
    addr: SocketAddr,
    health: Arc<Health>,
    trigger: ShutdownTrigger,
    task: JoinHandle<std::io::Result<()>>,
}

fn config() -> Config {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("PUSHER_APP_ID", "4242"),
        ("PUSHER_APP_KEY", "test-key"),
        ("PUSHER_APP_SECRET", "test-secret"),
        ("PUSHER_HOST", "127.0.0.1"),
        ("PUSHER_PORT", "1"),
        ("PUSHER_SCHEME", "http"),
    ]);
    Config::from_lookup(&move |k| vars.get(k).map(|v| v.to_string())).expect("test config")
}

fn state() -> AppState {
    let cfg = config();
    AppState {
        health: Arc::new(Health::default()),
        prometheus: pusher_relay::metrics::install(),
        webhooks: WebhookIngress::new(cfg.pusher.key.clone(), cfg.pusher.secret.clone(), cfg.amqp),
        admin: None,
        console: None,
    }
}

/// Serves `app` on a loopback port of its own.
async fn serve(
    app: axum::Router,
    limits: Limits,
    shutdown: pusher_relay::shutdown::Shutdown,
) -> (SocketAddr, JoinHandle<std::io::Result<()>>) {
    let listener = http::bind("HTTP_ADDR", "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (
        addr,
        tokio::spawn(http::serve_with(listener, app, shutdown, limits)),
    )
}

/// One listener with every route, as without `HTTP_OPS_ADDR`.
async fn start(limits: Limits) -> Server {
    let state = state();
    let health = state.health.clone();
    let (trigger, shutdown) = shutdown::channel();
    let (addr, task) = serve(http::router(state), limits, shutdown).await;
    Server {
        addr,
        health,
        trigger,
        task,
    }
}

fn limits(header: Duration, max_connections: usize) -> Limits {
    Limits {
        header_read_timeout: header,
        request_timeout: Duration::from_secs(30),
        max_connections,
        shutdown_grace: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// A connection from the loopback address `from` (127.0.0.0/8 is all
/// loopback on Linux), so that a test has peers of its own.
async fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse().expect("ip"), 0))?;
    socket.connect(to).await
}

/// `/healthz` from a peer of its own, answered within a second.
async fn healthz_within_a_second(addr: SocketAddr) {
    let asked = Instant::now();
    let mut stream = connect_from("127.0.0.1", addr).await.expect("connect");
    stream.write_all(HEALTHZ.as_bytes()).await.expect("send");
    let answer =
        String::from_utf8_lossy(&until_closed(stream, Duration::from_secs(1)).await).into_owned();
    let took = asked.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{answer:?} after {took:?}"
    );
    assert!(took <= Duration::from_secs(1), "answered after {took:?}");
}

/// The test process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A connection that sent [`HALF_REQUEST`] and nothing more.
async fn half_open(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(HALF_REQUEST).await.expect("send half");
    stream
}

/// A flood's connection from the loopback address `from` that sent
/// [`HALF_REQUEST`]; `None` when the listener would not take it.
async fn half_open_from(from: &str, addr: SocketAddr) -> Option<TcpStream> {
    let mut stream = connect_from(from, addr).await.ok()?;
    stream.write_all(HALF_REQUEST).await.ok()?;
    Some(stream)
}

/// Writes `bytes` over and over, reading nothing, until the server cuts
/// the connection (or `within` passes: then `Err`).
async fn write_until_cut(
    stream: &mut TcpStream,
    bytes: &[u8],
    within: Duration,
) -> Result<(), tokio::time::error::Elapsed> {
    tokio::time::timeout(within, async {
        while stream.write_all(bytes).await.is_ok() {}
    })
    .await
}

/// Reads until the server closes; what it sent, or panics past `within`.
async fn until_closed(mut stream: TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut got)).await {
        Ok(Ok(_)) => {}
        // A reset is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("reading: {e}"),
        Err(_) => panic!(
            "still open after {within:?}; got {:?}",
            String::from_utf8_lossy(&got)
        ),
    }
    got
}

/// One request on a connection of its own; the whole response.
async fn request(addr: SocketAddr, raw: &str, within: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("send");
    String::from_utf8_lossy(&until_closed(stream, within).await).into_owned()
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_cut_at_the_header_timeout() {
    let header = Duration::from_secs(1);
    let server = start(limits(header, 16)).await;
    let stream = half_open(server.addr).await;
    let sent = Instant::now();
    let got = until_closed(stream, header + SLACK).await;
    let took = sent.elapsed();
    assert!(got.is_empty(), "no answer to half a request: {got:?}");
    assert!(
        took >= header - Duration::from_millis(100),
        "closed after {took:?}, before the header timeout"
    );
    // The listener still serves whole requests.
    let answer = request(server.addr, HEALTHZ, SLACK).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.trigger.fire();
    server.task.await.expect("joined").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_once_half_open_connections_beyond_the_limit_are_cut() {
    let header = Duration::from_secs(1);
    let limit = 4;
    let server = start(limits(header, limit)).await;
    let mut flood = Vec::new();
    for _ in 0..limit * 2 + 2 {
        flood.push(half_open(server.addr).await);
    }
    // Three rounds of the limit: each waits for the one before to be cut.
    let rounds = 3;
    let flood: Vec<_> = flood
        .into_iter()
        .map(|s| tokio::spawn(until_closed(s, header * rounds + SLACK)))
        .collect();
    let asked = Instant::now();
    let answer = request(server.addr, HEALTHZ, header * rounds + SLACK).await;
    let took = asked.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");
    // Served only after slots were freed: the limit held.
    assert!(
        took >= header / 2,
        "/healthz answered after {took:?}: the limit of {limit} did not hold"
    );
    for conn in flood {
        let got = conn.await.expect("joined");
        assert!(got.is_empty(), "{got:?}");
    }
    server.trigger.fire();
    server.task.await.expect("joined").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_slower_than_the_request_timeout_is_answered_503() {
    let request_timeout = Duration::from_secs(1);
    let server = start(Limits {
        request_timeout,
        ..limits(Duration::from_secs(10), 16)
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // The head whole, the body half: the handler waits on the body.
    stream
        .write_all(b"POST /webhooks/pusher HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"")
        .await
        .expect("send");
    let sent = Instant::now();
    let mut got = vec![0; 1024];
    let n = tokio::time::timeout(request_timeout + SLACK, stream.read(&mut got))
        .await
        .expect("answered before the slack")
        .expect("read");
    let answer = String::from_utf8_lossy(&got[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(sent.elapsed() >= request_timeout - Duration::from_millis(100));
    server.trigger.fire();
    server.task.await.expect("joined").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish_and_is_bounded() {
    let grace = Duration::from_secs(1);
    let server = start(Limits {
        shutdown_grace: grace,
        // Far longer than the grace: only the grace can end this one.
        ..limits(Duration::from_secs(60), 16)
    })
    .await;
    let stuck = half_open(server.addr).await;
    let mut in_flight = TcpStream::connect(server.addr).await.expect("connect");
    in_flight
        .write_all(b"POST /webhooks/pusher HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{")
        .await
        .expect("send");
    // The same request on /healthz would answer at once; wait until the
    // server holds both connections.
    let answer = request(server.addr, HEALTHZ, SLACK).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let fired = Instant::now();
    server.trigger.fire();
    // The request in flight is still answered (unsigned: refused, but
    // answered, not cut).
    in_flight.write_all(b"}").await.expect("send the rest");
    let answer =
        String::from_utf8_lossy(&until_closed(in_flight, grace + SLACK).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    // The half-sent one is dropped when the grace ends, and serve returns.
    let got = until_closed(stuck, grace + SLACK).await;
    assert!(got.is_empty(), "{got:?}");
    tokio::time::timeout(grace + SLACK, server.task)
        .await
        .expect("serve returns within the grace")
        .expect("joined")
        .expect("served");
    assert!(fired.elapsed() < grace + SLACK);
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_shows_states_but_no_error_text() {
    let server = start(Limits::default()).await;
    server.health.set_queues(1);
    server.health.set_store(Some(
        "error communicating with database: postgres://relay@db.internal:5432 refused".into(),
    ));
    server
        .health
        .set_circuit(Some("open: Pusher unreachable or failing every request (https://api.pusher.com/apps/4242/events?auth_key=test-key)".into()));
    let answer = request(
        server.addr,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        SLACK,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({
            "ready": false,
            "broker": false,
            "consumer": false,
            "store": false,
            "circuit": "open: Pusher unreachable or failing every request",
            "shutting_down": false,
        })
    );
    // The signed-in side keeps the reasons.
    assert!(server.health.readiness().store_error.is_some());
    server.trigger.fire();
    server.task.await.expect("joined").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_half_requests_from_one_peer_leave_healthz_answering() {
    let _alone = FLOODS.lock().await;
    // A header timeout far past the test: only the per-peer cap can keep
    // a slot for the probe.
    let server = start(Limits {
        header_read_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let before = rss();
    let addr = server.addr;
    let flood: Vec<_> = (0..1000)
        .map(|_| {
            tokio::spawn(async move {
                let s = half_open_from("127.0.0.2", addr).await?;
                tokio::time::sleep(Duration::from_secs(20)).await;
                Some(s)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    healthz_within_a_second(server.addr).await;
    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "the flood took {} MiB", grown >> 20);
    for f in flood {
        f.abort();
    }
    server.trigger.fire();
    server.task.await.expect("joined").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_pipeline_requests_and_never_read_leave_healthz_answering() {
    let _alone = FLOODS.lock().await;
    let server = start(Limits {
        shutdown_grace: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let before = rss();
    // More of them than the whole listener's limit, each asking for
    // /readyz a thousand times over and reading nothing back.
    let pipelined = "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let mut writers = Vec::new();
    for _ in 0..600 {
        let Ok(mut s) = connect_from("127.0.0.3", server.addr).await else {
            continue;
        };
        let pipelined = pipelined.clone();
        writers.push(tokio::spawn(async move {
            let _ = write_until_cut(&mut s, pipelined.as_bytes(), Duration::from_secs(30)).await;
            s
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    healthz_within_a_second(server.addr).await;
    let grown = rss().saturating_sub(before);
    assert!(grown < 128 << 20, "the pipelining took {} MiB", grown >> 20);
    for w in writers {
        w.abort();
    }
    server.trigger.fire();
    server.task.await.expect("joined").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_ops_listener_a_flood_from_many_peers_leaves_the_probes_answering() {
    let _alone = FLOODS.lock().await;
    // As the worker serves with HTTP_OPS_ADDR: the probes on a listener of
    // their own, the rest on the public one.
    let state = state();
    let (trigger, shutdown) = shutdown::channel();
    let limits = Limits {
        header_read_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(1),
        ..Limits::default()
    };
    let (public, public_task) = serve(http::public_router(state.clone()), limits, shutdown).await;
    let (ops, ops_task) = serve(http::ops_router(state), limits, trigger.subscribe()).await;
    // 12 peers, each at its cap of 64 idle half requests: 768 connections,
    // past the public listener's 512.
    let before = rss();
    let mut flood = Vec::new();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peers = 12;
    for peer in 0..peers {
        for _ in 0..http::MAX_CONNECTIONS_PER_PEER {
            let from = format!("127.0.1.{}", peer + 1);
            let sent = sent.clone();
            flood.push(tokio::spawn(async move {
                let s = half_open_from(&from, public).await?;
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60)).await;
                Some(s)
            }));
        }
    }
    // The listener holds 512 and its backlog 128 more (the rest of the
    // flood waits to connect at all): full once well past 512 are in.
    let full = http::MAX_CONNECTIONS + 64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.load(std::sync::atomic::Ordering::SeqCst) < full {
        assert!(
            Instant::now() < deadline,
            "only {} flood connections made",
            sent.load(std::sync::atomic::Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The public port is full: a request there gets no answer (it waits to
    // connect, or in the backlog).
    let asked = tokio::time::timeout(Duration::from_secs(1), async {
        let mut s = connect_from("127.0.0.1", public).await.ok()?;
        s.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut got = [0u8; 64];
        s.read(&mut got).await.ok()
    })
    .await;
    assert!(
        asked.is_err(),
        "the public listener answered: the flood did not fill it"
    );
    // The probes do not wait.
    healthz_within_a_second(ops).await;
    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "the flood took {} MiB", grown >> 20);
    for f in flood {
        f.abort();
    }
    trigger.fire();
    public_task.await.expect("joined").expect("served");
    ops_task.await.expect("joined").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_is_cut_at_the_write_stall_timeout() {
    let _alone = FLOODS.lock().await;
    let stall = Duration::from_secs(1);
    let server = start(Limits {
        write_stall_timeout: stall,
        shutdown_grace: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    let pipelined = "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    // The answers fill both sockets' buffers; then the server's write
    // stalls, and the connection is dropped a second later, which ends
    // these writes too.
    let started = Instant::now();
    let cut = write_until_cut(&mut s, pipelined.as_bytes(), Duration::from_secs(30)).await;
    assert!(
        cut.is_ok(),
        "the server still held the connection after 30 s"
    );
    println!("cut after {:?}", started.elapsed());
    healthz_within_a_second(server.addr).await;
    server.trigger.fire();
    server.task.await.expect("joined").expect("served");
}
