//! Shared test fixtures: a Pusher fake that checks every request's signature
//! (recomputed here independently of the library's signer), configuration
//! pointing at it, and unique names so tests run in parallel.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use pusher_relay::config::Config;
use wiremock::{Match, Request};

pub mod cluster;
pub mod distant;

pub const APP_ID: &str = "4242";
pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret";

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Configuration for a Pusher at `uri` (e.g. wiremock's), with overrides.
pub fn config_for(uri: &str, extra: &[(&str, &str)]) -> Config {
    let url = url::Url::parse(uri).expect("server uri");
    let mut vars: HashMap<String, String> = HashMap::from([
        ("PUSHER_APP_ID".into(), APP_ID.into()),
        ("PUSHER_APP_KEY".into(), KEY.into()),
        ("PUSHER_APP_SECRET".into(), SECRET.into()),
        (
            "PUSHER_HOST".into(),
            url.host_str().unwrap_or("127.0.0.1").into(),
        ),
        (
            "PUSHER_PORT".into(),
            url.port_or_known_default().unwrap_or(80).to_string(),
        ),
        ("PUSHER_SCHEME".into(), url.scheme().into()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(&move |k| vars.get(k).cloned()).expect("test config is valid")
}

/// Why a request's signature is wrong, or `None` when Pusher would accept it.
pub fn signature_problem(req: &Request, key: &str, secret: &str) -> Option<String> {
    let query: Vec<(String, String)> = req
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    distant::signature_problem(
        req.method.as_str(),
        req.url.path(),
        &query,
        &req.body,
        key,
        secret,
    )
}

/// A wiremock matcher that only matches correctly signed requests; mocks
/// built on it answer nothing (wiremock's 404) to a bad signature, which
/// fails the test.
pub struct SignedBy {
    pub key: &'static str,
    pub secret: &'static str,
}

impl Match for SignedBy {
    fn matches(&self, req: &Request) -> bool {
        match signature_problem(req, self.key, self.secret) {
            None => true,
            Some(problem) => {
                eprintln!("rejected {} {}: {problem}", req.method, req.url.path());
                false
            }
        }
    }
}

/// The matcher for this app's credentials.
pub fn signed() -> SignedBy {
    SignedBy {
        key: KEY,
        secret: SECRET,
    }
}

/// A sockudo (Pusher-protocol server) of this test's own, on a free port,
/// started through `scripts/sockudo` and stopped when dropped.
pub struct Sockudo {
    pub port: u16,
}

impl Sockudo {
    /// Starts one; `rate_limit` turns on its HTTP limiter (requests/s).
    pub fn start(rate_limit: Option<u32>) -> Sockudo {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sockudo");
        let mut cmd = std::process::Command::new(script);
        cmd.arg("start").env("SOCKUDO_PORT", port.to_string());
        if let Some(n) = rate_limit {
            cmd.env("SOCKUDO_RATE_LIMIT", n.to_string());
        }
        let status = cmd.status().expect("scripts/sockudo runs");
        assert!(status.success(), "scripts/sockudo start failed on port {port}; is sockudo installed (scripts/sockudo install)?");
        Sockudo { port }
    }

    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Configuration for the app sockudo serves (id 123456, app-key, app-secret).
    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut vars = vec![
            ("PUSHER_APP_ID", "123456"),
            ("PUSHER_APP_KEY", "app-key"),
            ("PUSHER_APP_SECRET", "app-secret"),
        ];
        vars.extend_from_slice(extra);
        config_for(&self.uri(), &vars)
    }
}

impl Drop for Sockudo {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sockudo");
        let _ = std::process::Command::new(script)
            .arg("stop")
            .env("SOCKUDO_PORT", self.port.to_string())
            .status();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------------------
// RabbitMQ: a uniquely named exchange and queue per test.

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The topology names one test owns, and a channel to publish with.
pub struct Broker {
    pub exchange: String,
    pub queue: String,
    pub webhooks: String,
    pub channel: lapin::Channel,
    _conn: lapin::Connection,
}

impl Broker {
    pub async fn new(prefix: &str) -> Broker {
        let id = unique(prefix);
        let (conn, channel) = Self::connect().await;
        Broker {
            exchange: format!("{id}.intents"),
            queue: format!("{id}.intents"),
            webhooks: format!("{id}.webhooks"),
            channel,
            _conn: conn,
        }
    }

    /// The same names on a new connection, e.g. after a broker restart.
    pub async fn reconnect(self) -> Broker {
        let (conn, channel) = Self::connect().await;
        Broker {
            channel,
            _conn: conn,
            ..self
        }
    }

    async fn connect() -> (lapin::Connection, lapin::Channel) {
        let conn = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ at 127.0.0.1:5672");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        (conn, channel)
    }

    /// The worker's own declarations, so a test can publish before it starts.
    pub async fn declare(&self) {
        let cfg = self.amqp_config();
        pusher_relay::amqp::declare_topology(&self.channel, &cfg)
            .await
            .expect("topology");
    }

    pub fn amqp_config(&self) -> pusher_relay::config::AmqpConfig {
        pusher_relay::config::AmqpConfig::new(AMQP_URL, &self.exchange, &self.queue, &self.webhooks)
    }

    /// Publishes intents as an app would (wire contract v1), confirmed.
    pub async fn publish(&self, intents: &[serde_json::Value]) {
        let mut confirms = Vec::with_capacity(intents.len());
        for intent in intents {
            confirms.push(
                self.publish_raw(
                    intent["type"].as_str().unwrap_or("event"),
                    intent.to_string().as_bytes(),
                )
                .await,
            );
        }
        for c in confirms {
            assert!(
                c.await.expect("confirm").is_ack(),
                "broker refused a publish"
            );
        }
    }

    pub async fn publish_raw(
        &self,
        routing_key: &str,
        body: &[u8],
    ) -> lapin::publisher_confirm::PublisherConfirm {
        let props = lapin::BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_timestamp(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default(),
            );
        self.channel
            .basic_publish(&self.exchange, routing_key, Default::default(), body, props)
            .await
            .expect("publish")
    }

    /// Messages waiting in the queue (ready, not unacked).
    pub async fn ready(&self) -> u32 {
        let q = self
            .channel
            .queue_declare(
                &self.queue,
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("queue exists");
        q.message_count()
    }

    /// Ready messages once the broker has had time to requeue what a
    /// closed consumer left unacked, so that "nothing came back" is a real
    /// observation and not a race: the count unchanged for a second. A
    /// quorum queue applies a closed channel's last acks and returns through
    /// its log, and on a loaded machine a count read 500 ms after the close
    /// still held acked messages (a graceful-shutdown test failed 3 times
    /// in 8 that way, with the worker's acks all sent before the close).
    pub async fn ready_settled(&self) -> u32 {
        let step = std::time::Duration::from_millis(250);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let mut last = self.ready().await;
        let mut unchanged = 0;
        while unchanged < 4 && std::time::Instant::now() < deadline {
            tokio::time::sleep(step).await;
            let now = self.ready().await;
            unchanged = if now == last { unchanged + 1 } else { 0 };
            last = now;
        }
        last
    }

    pub async fn cleanup(&self) {
        let _ = self
            .channel
            .queue_delete(&self.queue, Default::default())
            .await;
        let _ = self
            .channel
            .exchange_delete(&self.exchange, Default::default())
            .await;
        let _ = self
            .channel
            .exchange_delete(&self.webhooks, Default::default())
            .await;
    }
}

// ---------------------------------------------------------------------------
// A fake Pusher that checks signatures, records every event it accepts, and
// fails on command.

/// One event Pusher accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub channel: String,
    pub event: String,
    pub data: String,
}

/// How the fake answers.
#[derive(Debug, Default)]
pub struct Plan {
    /// Answer 503 to everything (probes included).
    pub down: bool,
    /// Answer 503 to this many of the next event requests.
    pub fail_next: usize,
    /// Answer 503 to one event request in this many (by request number).
    pub fail_one_in: Option<usize>,
    /// Answer 400 to any batch holding an event whose data contains this.
    pub reject_containing: Option<String>,
    /// Answer this status (e.g. 401) to everything.
    pub status_override: Option<u16>,
    /// Requests to the event endpoints seen so far.
    pub requests: usize,
    /// Events per accepted request.
    pub batch_sizes: Vec<usize>,
}

#[derive(Clone, Default)]
pub struct FakePusher {
    pub events: Arc<Mutex<Vec<Received>>>,
    pub plan: Arc<Mutex<Plan>>,
}

impl wiremock::Respond for FakePusher {
    fn respond(&self, req: &Request) -> wiremock::ResponseTemplate {
        use wiremock::ResponseTemplate;
        let mut plan = self.plan.lock().expect("plan");
        if let Some(status) = plan.status_override {
            return ResponseTemplate::new(status).set_body_string("refused by test");
        }
        if plan.down {
            return ResponseTemplate::new(503).set_body_string("down for the test");
        }
        if req.method.as_str() == "GET" {
            return ResponseTemplate::new(200).set_body_json(serde_json::json!({"channels": {}}));
        }
        plan.requests += 1;
        let n = plan.requests;
        if plan.fail_next > 0 {
            plan.fail_next -= 1;
            return ResponseTemplate::new(503).set_body_string("injected 503");
        }
        if plan.fail_one_in.is_some_and(|k| n % k == 0) {
            return ResponseTemplate::new(503).set_body_string("injected 503");
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON body");
        let mut got = Vec::new();
        if let Some(batch) = body["batch"].as_array() {
            for item in batch {
                got.push(Received {
                    channel: item["channel"].as_str().unwrap_or_default().into(),
                    event: item["name"].as_str().unwrap_or_default().into(),
                    data: item["data"].as_str().unwrap_or_default().into(),
                });
            }
        } else {
            for channel in body["channels"].as_array().into_iter().flatten() {
                got.push(Received {
                    channel: channel.as_str().unwrap_or_default().into(),
                    event: body["name"].as_str().unwrap_or_default().into(),
                    data: body["data"].as_str().unwrap_or_default().into(),
                });
            }
        }
        if let Some(marker) = &plan.reject_containing {
            if got.iter().any(|e| e.data.contains(marker.as_str())) {
                return ResponseTemplate::new(400)
                    .set_body_string(format!("event rejected by test ({marker})"));
            }
        }
        plan.batch_sizes.push(got.len());
        self.events.lock().expect("events").extend(got);
        ResponseTemplate::new(200).set_body_string("{}")
    }
}

impl FakePusher {
    /// Starts a wiremock server answering signed requests through this fake;
    /// badly signed ones get wiremock's 404 (a permanent rejection the
    /// tests would see as dead letters).
    pub async fn start() -> (FakePusher, wiremock::MockServer) {
        let fake = FakePusher::default();
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(signed())
            .respond_with(fake.clone())
            .mount(&server)
            .await;
        (fake, server)
    }

    pub fn received(&self) -> Vec<Received> {
        self.events.lock().expect("events").clone()
    }

    pub fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().expect("plan")
    }
}

/// Waits until `check` holds, polling; panics with `what` after `timeout`.
pub async fn eventually<F: FnMut() -> bool>(
    timeout: std::time::Duration,
    what: &str,
    mut check: F,
) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A `chat.message` intent with a sequence number in its message.
pub fn chat(room: usize, seq: usize) -> serde_json::Value {
    serde_json::json!({
        "type": "chat.message",
        "id": format!("m-{room}-{seq}"),
        "room_id": room,
        "user_id": 1,
        "user_name": "ada",
        "message": format!("{seq}"),
    })
}

/// Checks that every room's messages arrived exactly once and in order.
pub fn assert_in_order_once(received: &[Received], rooms: usize, per_room: usize) {
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for e in received {
        let data: serde_json::Value = serde_json::from_str(&e.data).expect("data JSON");
        let seq: usize = data["message"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("seq");
        seen.entry(e.channel.clone()).or_default().push(seq);
    }
    assert_eq!(seen.len(), rooms, "rooms seen");
    for (channel, seqs) in seen {
        assert_eq!(
            seqs,
            (0..per_room).collect::<Vec<_>>(),
            "order or completeness on {channel}"
        );
    }
}

// ---------------------------------------------------------------------------
// Dead-letter stores: a temp SQLite file or an own PostgreSQL schema.

pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Db {
    pub fn sqlite() -> Db {
        Db::Sqlite(std::env::temp_dir().join(format!("{}.db", unique("relay-test"))))
    }

    pub async fn postgres() -> Db {
        let schema = unique("relay_test").replace('-', "_");
        let pool = sqlx::PgPool::connect(PG_URL)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432");
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&pool)
            .await
            .expect("schema");
        pool.close().await;
        Db::Postgres(schema)
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("sqlite://{}", path.display()),
            Db::Postgres(schema) => format!("{PG_URL}?options=-c%20search_path%3D{schema}"),
        }
    }

    pub async fn store(&self) -> pusher_relay::deadletter::Store {
        match self {
            Db::Sqlite(_) => pusher_relay::deadletter::Store::connect(&self.url())
                .await
                .expect("store"),
            Db::Postgres(schema) => {
                pusher_relay::deadletter::Store::connect_postgres_schema(PG_URL, schema)
                    .await
                    .expect("store")
            }
        }
    }

    pub async fn cleanup(&self) {
        match self {
            Db::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Db::Postgres(schema) => {
                if let Ok(pool) = sqlx::PgPool::connect(PG_URL).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            }
        }
    }
}

/// Worker configuration for a test: its own queue names, store, fake Pusher
/// and an ephemeral HTTP port.
pub fn relay_config(pusher_uri: &str, broker: &Broker, db: &Db, extra: &[(&str, &str)]) -> Config {
    let db_url = db.url();
    let mut vars = vec![
        ("AMQP_EXCHANGE", broker.exchange.as_str()),
        ("AMQP_QUEUE", broker.queue.as_str()),
        ("AMQP_WEBHOOK_EXCHANGE", broker.webhooks.as_str()),
        ("DATABASE_URL", db_url.as_str()),
        ("HTTP_ADDR", "127.0.0.1:0"),
        ("RELAY_LINGER_MS", "5"),
    ];
    vars.extend_from_slice(extra);
    config_for(pusher_uri, &vars)
}

// ---------------------------------------------------------------------------
// A TCP proxy that can be cut, to make a real service unavailable to the
// worker without touching it for other tests, or that can hold what the
// worker says, so the service never hears it.

pub struct Proxy {
    pub port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    /// While true, bytes from clients are read but not passed on.
    hold: tokio::sync::watch::Sender<bool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: &'static str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let hold = tokio::sync::watch::Sender::new(false);
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (open2, hold2, links2) = (open.clone(), hold.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !open2.load(Ordering::SeqCst) {
                    continue;
                }
                let held = hold2.subscribe();
                let link = tokio::spawn(async move {
                    if let Ok(outbound) = tokio::net::TcpStream::connect(target).await {
                        relay(inbound, outbound, held).await;
                    }
                });
                links2.lock().expect("links").push(link);
            }
        });
        Proxy {
            port,
            open,
            hold,
            links,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// From now on nothing clients send reaches the target, while the
    /// target still reaches them: a worker behind it gets deliveries, but
    /// the broker never sees its acks. What is held is dropped with the
    /// connection (`cut`, or dropping the proxy).
    pub fn hold_from_clients(&self) {
        self.hold.send_replace(true);
    }
}

/// Copies both ways until both sides are done, like
/// `tokio::io::copy_bidirectional`, except that client bytes wait while
/// `held` is true. The wait is after the read, so bytes a read already in
/// progress returns once held are held too.
async fn relay(
    inbound: tokio::net::TcpStream,
    outbound: tokio::net::TcpStream,
    mut held: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_target, mut to_target) = outbound.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if held.wait_for(|h| !*h).await.is_err() {
                break;
            }
            if to_target.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_target.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut from_target, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Closes the worker's broker connection from the broker's side, as a
/// broker restart or a network cut does. The worker names its connection
/// `pusher-relay {queue}`.
pub fn close_broker_connection(queue: &str) -> bool {
    close_connections_mentioning(&format!("\"pusher-relay {queue}\"")) > 0
}

/// Closes, from the broker's side, every connection whose client properties
/// contain `needle` (a connection name, an app id in it); returns how many.
pub fn close_connections_mentioning(needle: &str) -> usize {
    // The table format prints pids in the form close_connection takes
    // (`<rabbit@host.1.2.0>`); the JSON formatter does not.
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "-q",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut closed = 0;
    for line in text.lines().filter(|l| l.contains(needle)) {
        let pid = line.split('\t').next().unwrap_or_default();
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: simulated broker restart"])
            .status()
            .expect("rabbitmqctl");
        closed += usize::from(status.success());
    }
    closed
}

// ---------------------------------------------------------------------------
// The worker under test.

/// What the worker's `/metrics` answers now.
pub async fn metrics_text(worker: &pusher_relay::app::Worker) -> String {
    reqwest::get(format!("http://{}/metrics", worker.http_addr))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics is text")
}

/// Starts the worker and waits until it consumes (its topology declared).
pub async fn start_worker(cfg: Config) -> pusher_relay::app::Worker {
    let worker = pusher_relay::app::Worker::start(cfg)
        .await
        .expect("the worker starts");
    eventually(
        std::time::Duration::from_secs(60),
        "the worker to consume",
        || worker.health.readiness().consumer,
    )
    .await;
    worker
}

/// Graceful shutdown, as SIGTERM does, and waits until the worker stopped.
pub async fn stop(worker: pusher_relay::app::Worker) {
    worker.shutdown();
    worker.wait().await.expect("the worker stops cleanly");
}
