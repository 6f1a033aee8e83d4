//! TLS on the worker's links, against endpoints the tests make: a CA of
//! their own (tests/common/tls.rs), a private PostgreSQL with `ssl = on`
//! and TLS-only access (tests/common/pg_server.rs), and the fake Pusher
//! behind a TLS terminator. The worker runs as the binary, so its exit
//! status and its metrics are its own.
//!
//! What is checked: intents flow and dead letters are stored with every
//! link verified (`amqps` with `cacertfile` and a client certificate,
//! `sslmode=verify-full` with `sslrootcert`, `PUSHER_CA_FILE`); a wrong CA, a wrong host name and an expired
//! certificate on any link stop the worker at start, naming the link
//! and the reason, with the intent still in the queue; a client
//! certificate gets into a PostgreSQL that demands one; and RabbitMQ over
//! `amqps` (a TLS terminator in front of the machine's broker that demands
//! a client certificate) carries the worker's intents and `publish`'s.

use crate::common;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::pg_server::PgServer;
use common::pusher::pusher_vars;
use common::tls::{Ca, Issued, TlsTerminator, Validity, VALID_DAYS};
use common::{chat, config_for, unique, Broker, FakePusher, Process};
use pusher_relay::deadletter::Store;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// The fixture itself: a client trusting the test's CA reaches the fake
/// Pusher through the terminator; one trusting another CA does not.
#[tokio::test]
async fn the_test_ca_is_what_a_client_verifies() {
    let (_fake, server) = FakePusher::start().await;
    let ca = Ca::new("tls-links test CA");
    let cert = ca.server(&["127.0.0.1"]);
    let front = TlsTerminator::with_cert(*server.address(), &cert, &ca).await;
    let url = format!("https://127.0.0.1:{}/apps/x/channels", front.port);
    let client = |ca: &Ca| {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    };
    let answer = client(&ca)
        .get(&url)
        .send()
        .await
        .expect("TLS to the test CA's certificate");
    // Unsigned, so the fake answers 404: what matters is that it answered.
    assert_eq!(answer.status(), 404);
    let other = Ca::new("another CA");
    let refused = client(&other).get(&url).send().await;
    assert!(
        refused.is_err(),
        "a client trusting another CA must refuse: {refused:?}"
    );
}

/// The Pusher client trusts PUSHER_CA_FILE besides the system store, and
/// with PUSHER_VERIFY_SSL=false trusts any certificate.
#[tokio::test]
async fn the_pusher_client_trusts_its_ca_file() {
    let (_fake, server) = FakePusher::start().await;
    let ca = Ca::new("pusher CA");
    let front = TlsTerminator::with_cert(*server.address(), &ca.server(&["127.0.0.1"]), &ca).await;
    let uri = format!("https://127.0.0.1:{}", front.port);
    let ca_file = ca.cert_file.display().to_string();
    let client = |extra: &[(&str, &str)]| {
        pusher_relay::pusher::Client::new(&config_for(&uri, extra).pusher).expect("a client")
    };
    client(&[("PUSHER_CA_FILE", &ca_file)])
        .channels(None, &[])
        .await
        .expect("a signed request over TLS to the CA's server");
    let refused = client(&[]).channels(None, &[]).await.unwrap_err();
    assert!(
        refused.to_string().contains("UnknownIssuer"),
        "without the CA the system store refuses: {refused}"
    );
    client(&[("PUSHER_VERIFY_SSL", "false")])
        .channels(None, &[])
        .await
        .expect("PUSHER_VERIFY_SSL=false accepts the certificate");
}

/// A fake Pusher behind TLS with `cert`, and the server it answers on.
async fn https_pusher(cert: &Issued, ca: &Ca) -> (FakePusher, wiremock::MockServer, TlsTerminator) {
    let (fake, server) = FakePusher::start().await;
    let front = TlsTerminator::with_cert(*server.address(), cert, ca).await;
    (fake, server, front)
}

/// A worker's environment: Pusher at `pusher_uri`, the broker's names,
/// `database_url`, then `extra`.
fn worker_vars(
    pusher_uri: &str,
    broker: &Broker,
    database_url: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut vars = pusher_vars(pusher_uri);
    vars.extend(
        [
            ("AMQP_EXCHANGE", broker.exchange.as_str()),
            ("AMQP_QUEUE", broker.queue.as_str()),
            ("AMQP_WEBHOOK_EXCHANGE", broker.webhooks.as_str()),
            ("DATABASE_URL", database_url),
            ("RELAY_LINGER_MS", "5"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    vars
}

/// Runs the binary with `args` in exactly `vars`; tokio's process, so the
/// terminators on this runtime keep serving meanwhile.
async fn run_cli(args: &[&str], vars: &[(String, String)]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pusher-relay"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .unwrap_or_else(|e| panic!("pusher-relay {args:?} runs: {e}"))
}

/// `sslmode=verify-full` against `ca`.
fn verify_full(ca: &Ca) -> String {
    format!("sslmode=verify-full&sslrootcert={}", ca.cert_file.display())
}

#[tokio::test]
async fn intents_flow_and_dead_letters_are_stored_with_every_link_verified() {
    let ca = Ca::new("links CA");
    let pg = PgServer::start(&ca.server(&["127.0.0.1"]), &ca, None).await;
    let (fake, _server, front) = https_pusher(&ca.server(&["127.0.0.1"]), &ca).await;
    let clients = Ca::new("links clients CA");
    let amqps = amqps_broker(&ca.server(&["127.0.0.1"]), &ca, &clients).await;
    let amqp_url = amqps_url("127.0.0.1", amqps.port, &ca, &clients.client("relay"));
    let broker = Broker::new("tls-flow").await;
    let database_url = pg.url("postgres", "127.0.0.1", &verify_full(&ca));
    let ca_file = ca.cert_file.display().to_string();
    let uri = format!("https://127.0.0.1:{}", front.port);
    let vars = worker_vars(
        &uri,
        &broker,
        &database_url,
        &[("PUSHER_CA_FILE", &ca_file), ("AMQP_URL", &amqp_url)],
    );
    let worker = Process::spawn(&vars, None);
    worker.wait_ready().await;

    broker
        .publish(&[
            chat(1, 1),
            json!({"type": "chat.message", "room_id": 1, "user_id": 7}),
        ])
        .await;
    broker.wait_acked(WAIT).await;
    let received = fake.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].channel, "chat-room-1");
    let store = Store::connect(&database_url)
        .await
        .expect("the store over verified TLS");
    assert_eq!(
        store.count().await.expect("count"),
        1,
        "the invalid intent's dead letter"
    );

    let metrics = worker.metrics_text().await;
    for link in ["rabbitmq", "postgresql", "pusher"] {
        let series = format!("pusher_relay_tls_certificate_expiry_days{{link=\"{link}\"}}");
        let days = common::metric(&metrics, &series)
            .unwrap_or_else(|| panic!("{series} in /metrics:\n{metrics}"));
        assert!(
            (VALID_DAYS as f64 - 1.0..=VALID_DAYS as f64).contains(&days),
            "{series} = {days}"
        );
    }
    worker.stop().await;

    // `check` says the same, link by link.
    let check = run_cli(&["check", "--json"], &vars).await;
    let report: serde_json::Value =
        serde_json::from_slice(&check.stdout).expect("check --json prints JSON");
    assert!(check.status.success(), "{report}");
    let links = report["links"].as_array().expect("links");
    let of = |name: &str| {
        links
            .iter()
            .find(|l| l["link"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"))
    };
    for name in ["RabbitMQ", "PostgreSQL", "Pusher"] {
        let link = of(name);
        assert_eq!(link["tls"], "TLSv1.3", "{link}");
        assert_eq!(link["peer"]["subject"], "127.0.0.1", "{link}");
        assert_eq!(link["peer"]["issuer"], "links CA", "{link}");
        assert_eq!(link["peer"]["verified"], "verified", "{link}");
        assert_eq!(link["days_left"], VALID_DAYS - 1, "{link}");
    }
}

/// Runs a worker that must refuse to start: it exits non-zero within
/// `WAIT`, its error names `link` and `reason`, and the intent published
/// before it started is still in the queue.
async fn assert_refused(
    pusher_uri: &str,
    database_url: &str,
    extra: &[(&str, &str)],
    link: &str,
    reason: &str,
) {
    let broker = Broker::new("tls-refused").await;
    broker.declare().await;
    broker.publish(&[chat(1, 1)]).await;
    let log = std::env::temp_dir().join(format!("{}.log", unique("tls-refused")));
    let vars = worker_vars(pusher_uri, &broker, database_url, extra);
    let mut worker = Process::spawn(&vars, Some(log.clone()));
    let exit = wait_exit(&mut worker).await;
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(
        !exit.success(),
        "the worker must not start ({link}, {reason}): {exit:?}\n{stderr}"
    );
    let expected = format!("error: {link} at ");
    assert!(
        stderr.contains(&expected)
            && stderr.contains(&format!("TLS certificate refused: {reason};")),
        "{link} and {reason:?} named in the error:\n{stderr}"
    );
    assert_eq!(broker.ready().await, 1, "nothing consumed:\n{stderr}");
}

async fn wait_exit(worker: &mut Process) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(exit) = worker.child.try_wait().expect("wait") {
            return exit;
        }
        assert!(
            Instant::now() < deadline,
            "the worker still runs after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_postgres_certificate_that_cannot_be_verified_stops_the_worker_at_start() {
    let ca = Ca::new("pg CA");
    let other = Ca::new("another CA");
    let good = PgServer::start(&ca.server(&["127.0.0.1"]), &ca, None).await;
    let expired = PgServer::start(
        &ca.server_with(&["127.0.0.1"], Validity::Expired),
        &ca,
        None,
    )
    .await;
    let (_fake, server) = FakePusher::start().await;
    let pusher = server.uri();
    let cases = [
        (
            good.url("postgres", "127.0.0.1", &verify_full(&other)),
            "unknown issuer",
        ),
        (
            // The certificate names 127.0.0.1 only.
            good.url("postgres", "localhost", &verify_full(&ca)),
            "name mismatch",
        ),
        (
            expired.url("postgres", "127.0.0.1", &verify_full(&ca)),
            "expired",
        ),
    ];
    for (url, reason) in cases {
        assert_refused(&pusher, &url, &[], "PostgreSQL", reason).await;
    }
    // sqlx 0.8 checks the name under verify-ca as well
    // (launchbadge/sqlx#3793), and the start-time check says so.
    let verify_ca = format!("sslmode=verify-ca&sslrootcert={}", ca.cert_file.display());
    assert_refused(
        &pusher,
        &good.url("postgres", "localhost", &verify_ca),
        &[],
        "PostgreSQL",
        "name mismatch",
    )
    .await;
    // require encrypts without verifying, as libpq does.
    Store::connect(&expired.url("postgres", "127.0.0.1", "sslmode=require"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "require with an expired certificate: {e}: {:?}",
                std::error::Error::source(&e)
            )
        });
}

#[tokio::test]
async fn a_pusher_certificate_that_cannot_be_verified_stops_the_worker_at_start() {
    let ca = Ca::new("pusher CA");
    let other = Ca::new("another CA");
    let (_fake, _server, good) = https_pusher(&ca.server(&["127.0.0.1"]), &ca).await;
    let (_fake2, _server2, expired) =
        https_pusher(&ca.server_with(&["127.0.0.1"], Validity::Expired), &ca).await;
    let db = common::Db::sqlite();
    let ca_file = ca.cert_file.display().to_string();
    let other_file = other.cert_file.display().to_string();
    let cases = [
        (
            format!("https://127.0.0.1:{}", good.port),
            other_file.as_str(),
            "unknown issuer",
        ),
        (
            format!("https://localhost:{}", good.port),
            ca_file.as_str(),
            "name mismatch",
        ),
        (
            format!("https://127.0.0.1:{}", expired.port),
            ca_file.as_str(),
            "expired",
        ),
    ];
    for (uri, ca_file, reason) in &cases {
        assert_refused(
            uri,
            &db.url(),
            &[("PUSHER_CA_FILE", ca_file)],
            "Pusher",
            reason,
        )
        .await;
    }

    // PUSHER_VERIFY_SSL=false still starts on the expired certificate, and
    // says at start that nothing is verified.
    let broker = Broker::new("tls-unverified").await;
    let log = std::env::temp_dir().join(format!("{}.log", unique("tls-unverified")));
    let uri = format!("https://127.0.0.1:{}", expired.port);
    let vars = worker_vars(&uri, &broker, &db.url(), &[("PUSHER_VERIFY_SSL", "false")]);
    let worker = Process::spawn(&vars, Some(log.clone()));
    worker.wait_ready().await;
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    worker.stop().await;
    let _ = std::fs::remove_file(&log);
    assert!(
        stderr.contains("WARN") && stderr.contains("PUSHER_VERIFY_SSL=false"),
        "a warning at start:\n{stderr}"
    );
}

/// PostgreSQL's `cert` authentication: the client certificate's common
/// name is the role, and without one the server lets no one in.
#[tokio::test]
async fn a_client_certificate_gets_into_a_postgres_that_demands_one() {
    let ca = Ca::new("pg CA");
    let clients = Ca::new("client CA");
    let pg = PgServer::start(&ca.server(&["127.0.0.1"]), &ca, Some(&clients)).await;
    let client = clients.client("postgres");
    let with_cert = format!(
        "{}&sslcert={}&sslkey={}",
        verify_full(&ca),
        client.cert_file.display(),
        client.key_file.display()
    );
    let store = Store::connect(&pg.url("postgres", "127.0.0.1", &with_cert))
        .await
        .unwrap_or_else(|e| panic!("the client certificate is accepted: {e:#}\n{}", pg.log()));
    assert_eq!(store.count().await.expect("count"), 0);
    let refused = Store::connect(&pg.url("postgres", "127.0.0.1", &verify_full(&ca))).await;
    assert!(refused.is_err(), "no certificate, no entry");

    // A certificate of a CA the server does not trust: under TLS 1.3 the
    // server says so after the handshake, and the start-time check still
    // hears it.
    let strangers = Ca::new("stranger CA");
    let stranger = strangers.client("postgres");
    let (_fake, server) = FakePusher::start().await;
    assert_refused(
        &server.uri(),
        &pg.url(
            "postgres",
            "127.0.0.1",
            &format!(
                "{}&sslcert={}&sslkey={}",
                verify_full(&ca),
                stranger.cert_file.display(),
                stranger.key_file.display()
            ),
        ),
        &[],
        "PostgreSQL",
        "the server refused the handshake (UnknownCA)",
    )
    .await;
}

/// The machine's broker behind a TLS terminator presenting `cert` of `ca`
/// and demanding a client certificate of `clients`.
async fn amqps_broker(cert: &Issued, ca: &Ca, clients: &Ca) -> TlsTerminator {
    let broker: std::net::SocketAddr = "127.0.0.1:5672".parse().expect("address");
    TlsTerminator::start(broker, common::tls::server_config(cert, ca, Some(clients))).await
}

/// An `amqps://` URL to `host:port` trusting `ca`, presenting `client`.
fn amqps_url(host: &str, port: u16, ca: &Ca, client: &Issued) -> String {
    format!(
        "amqps://guest:guest@{host}:{port}/%2f?cacertfile={}&certfile={}&keyfile={}",
        ca.cert_file.display(),
        client.cert_file.display(),
        client.key_file.display()
    )
}

#[tokio::test]
async fn intents_flow_over_amqps_with_a_client_certificate() {
    let ca = Ca::new("broker CA");
    let clients = Ca::new("broker clients CA");
    let client = clients.client("relay");
    let front = amqps_broker(&ca.server(&["127.0.0.1"]), &ca, &clients).await;
    let (fake, server) = FakePusher::start().await;
    let broker = Broker::new("tls-amqps").await;
    let db = common::Db::sqlite();
    let amqp_url = amqps_url("127.0.0.1", front.port, &ca, &client);
    let vars = worker_vars(
        &server.uri(),
        &broker,
        &db.url(),
        &[("AMQP_URL", &amqp_url)],
    );
    let worker = Process::spawn(&vars, None);
    worker.wait_ready().await;
    broker.publish(&[chat(1, 1)]).await;
    broker.wait_acked(WAIT).await;

    // `publish` (the Rust Publisher) over the same URL.
    let published = run_cli(
        &[
            "publish",
            r#"{"type":"chat.message","room_id":2,"user_id":7,"user_name":"ada","message":"over TLS"}"#,
        ],
        &vars,
    )
    .await;
    assert!(
        published.status.success(),
        "publish over amqps: {}",
        String::from_utf8_lossy(&published.stderr)
    );
    let deadline = Instant::now() + WAIT;
    while fake.received().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let channels: Vec<String> = fake.received().iter().map(|r| r.channel.clone()).collect();
    assert_eq!(channels, ["chat-room-1", "chat-room-2"]);

    let metrics = worker.metrics_text().await;
    let series = "pusher_relay_tls_certificate_expiry_days{link=\"rabbitmq\"}";
    assert!(
        common::metric(&metrics, series).is_some(),
        "{series} in /metrics:\n{metrics}"
    );
    worker.stop().await;

    let check = run_cli(&["check", "--json"], &vars).await;
    let report: serde_json::Value =
        serde_json::from_slice(&check.stdout).expect("check --json prints JSON");
    let rabbit = report["links"]
        .as_array()
        .and_then(|links| links.iter().find(|l| l["link"] == "RabbitMQ"))
        .unwrap_or_else(|| panic!("RabbitMQ in {report}"));
    assert_eq!(rabbit["tls"], "TLSv1.3", "{rabbit}");
    assert_eq!(rabbit["peer"]["issuer"], "broker CA", "{rabbit}");
    assert_eq!(rabbit["peer"]["verified"], "verified", "{rabbit}");

    // Without the client certificate the terminator lets no one in: the
    // start-time check hears the refusal, and the worker consumes nothing.
    let no_cert = format!(
        "amqps://guest:guest@127.0.0.1:{}/%2f?cacertfile={}",
        front.port,
        ca.cert_file.display()
    );
    assert_refused(
        &server.uri(),
        &db.url(),
        &[("AMQP_URL", &no_cert)],
        "RabbitMQ",
        "the server refused the handshake (CertificateRequired)",
    )
    .await;
}

#[tokio::test]
async fn a_broker_certificate_that_cannot_be_verified_stops_the_worker_at_start() {
    let ca = Ca::new("broker CA");
    let clients = Ca::new("broker clients CA");
    let client = clients.client("relay");
    let other = Ca::new("another CA");
    let good = amqps_broker(&ca.server(&["127.0.0.1"]), &ca, &clients).await;
    let expired = amqps_broker(
        &ca.server_with(&["127.0.0.1"], Validity::Expired),
        &ca,
        &clients,
    )
    .await;
    let (_fake, server) = FakePusher::start().await;
    let db = common::Db::sqlite();
    let cases = [
        (
            amqps_url("127.0.0.1", good.port, &other, &client),
            "unknown issuer",
        ),
        (
            amqps_url("localhost", good.port, &ca, &client),
            "name mismatch",
        ),
        (
            amqps_url("127.0.0.1", expired.port, &ca, &client),
            "expired",
        ),
    ];
    for (url, reason) in &cases {
        assert_refused(
            &server.uri(),
            &db.url(),
            &[("AMQP_URL", url)],
            "RabbitMQ",
            reason,
        )
        .await;
    }
}

/// sqlx's default `sslmode=prefer` makes a plain-text link without a word
/// when the server (or a man in the middle) declines TLS: the worker says at
/// start that the store's link is not verified, naming the mode.
#[tokio::test]
async fn a_store_link_that_is_not_verified_is_warned_about_at_start() {
    let (_fake, server) = FakePusher::start().await;
    let broker = Broker::new("store-unverified").await;
    for (url, mode) in [
        ("postgres://relay:pw@db.invalid:5432/relay", "prefer"),
        (
            "postgres://relay:pw@db.invalid:5432/relay?sslmode=require",
            "require",
        ),
    ] {
        let log = std::env::temp_dir().join(format!("{}.log", unique("store-unverified")));
        let vars = worker_vars(&server.uri(), &broker, url, &[]);
        let mut worker = Process::spawn(&vars, Some(log.clone()));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stderr = String::new();
        while Instant::now() < deadline {
            stderr = std::fs::read_to_string(&log).unwrap_or_default();
            if stderr.contains("not verified") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        worker.kill();
        let _ = std::fs::remove_file(&log);
        assert!(
            stderr.contains("WARN")
                && stderr.contains("the dead-letter store's link is not verified")
                && stderr.contains(&format!("sslmode={mode}")),
            "a warning naming sslmode={mode}:\n{stderr}"
        );
        assert!(!stderr.contains("pw@"), "no password in the log:\n{stderr}");
    }
}
