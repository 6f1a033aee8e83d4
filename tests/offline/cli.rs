//! The binary as a user meets it: configuration errors, redaction, auth
//! output and webhook verification exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pusher-relay"));
    // Outside the repository, so a developer's .env is not read.
    cmd.args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("exits")
}

const APP: [(&str, &str); 3] = [
    ("PUSHER_APP_ID", "3"),
    ("PUSHER_APP_KEY", "278d425bdf160c739803"),
    ("PUSHER_APP_SECRET", "7ad3773142a6692b25b8"),
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bad_configuration_names_every_variable_and_exits_non_zero() {
    let out = run(
        &["config"],
        &[
            ("PUSHER_APP_ID", "abc"),
            ("PUSHER_USE_TLS", "maybe"),
            ("PUSHER_APP_SECRET", "s3cret"),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for needle in [
        "PUSHER_APP_ID",
        "not numeric",
        "PUSHER_APP_KEY",
        "is not set",
        "PUSHER_USE_TLS",
        "\"maybe\"",
    ] {
        assert!(err.contains(needle), "{needle} missing from {err}");
    }
    assert!(!err.contains("s3cret"));
}

#[test]
fn config_output_never_shows_secrets() {
    let mut env = APP.to_vec();
    env.push(("AMQP_URL", "amqp://relay:hunter2@rabbit:5672/%2f"));
    env.push((
        "RELAY_ADMIN_TOKEN",
        "tok-hunter3-0123456789abcdefghijklmnop",
    ));
    for args in [
        &["config"][..],
        &["config", "--json"],
        &["config", "--client"],
    ] {
        let out = run(args, &env, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        for secret in ["7ad3773142a6692b25b8", "hunter2", "tok-hunter3"] {
            assert!(!all.contains(secret), "{secret} shown by {args:?}");
        }
    }
    let out = run(&["config", "--json"], &env, None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["PUSHER_APP_SECRET"], "***");
    assert_eq!(
        v["(effective Pusher endpoint)"],
        "https://api-mt1.pusher.com:443"
    );
}

#[test]
fn auth_channel_prints_what_pusher_js_expects() {
    let out = run(
        &[
            "auth",
            "channel",
            "private-foobar",
            "--socket-id",
            "1234.1234",
        ],
        &APP,
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"}"#
    );
    let out = run(
        &[
            "auth",
            "channel",
            "presence-room",
            "--socket-id",
            "1.1",
            "--channel-data",
            "{\"name\":\"x\"}",
        ],
        &APP,
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("user_id"),
        "{}",
        text(&out.stderr)
    );
}

/// A webhook signed with the app's secret (the vector from Pusher's docs),
/// and that app's settings.
const WEBHOOK_ENV: [(&str, &str); 3] = [
    ("PUSHER_APP_ID", "1"),
    ("PUSHER_APP_KEY", "123456789"),
    ("PUSHER_APP_SECRET", "tofu"),
];
const WEBHOOK_BODY: &[u8] =
    br#"{"time_ms":1403175510755,"events":[{"channel":"test_channel","name":"channel_vacated"}]}"#;
const WEBHOOK_SIGNATURE: &str = "c17257e92037cd7de407ebc1ed174ceb7b2e518db127f44411b9ffc4f5b28cc5";

#[test]
fn webhook_verify_exits_zero_only_for_a_valid_signature() {
    let (env, body, sig) = (WEBHOOK_ENV, WEBHOOK_BODY, WEBHOOK_SIGNATURE);
    let ok = run(
        &[
            "webhook",
            "verify",
            "--key",
            "123456789",
            "--signature",
            sig,
        ],
        &env,
        Some(body),
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("channel_vacated"));
    let bad = run(
        &[
            "webhook",
            "verify",
            "--key",
            "123456789",
            "--signature",
            "00",
        ],
        &env,
        Some(body),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("does not match"),
        "{}",
        text(&bad.stderr)
    );
    let wrong_key = run(
        &["webhook", "verify", "--key", "000", "--signature", sig],
        &env,
        Some(body),
    );
    assert_eq!(wrong_key.status.code(), Some(1));
}

#[test]
fn check_reports_an_unreachable_pusher_and_exits_non_zero() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut env = APP.to_vec();
    let port = port.to_string();
    env.extend([
        ("PUSHER_HOST", "127.0.0.1"),
        ("PUSHER_PORT", port.as_str()),
        ("PUSHER_SCHEME", "http"),
    ]);
    let out = run(&["check"], &env, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("not ready"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn store_commands_need_no_pusher_credentials() {
    let db = std::env::temp_dir().join(format!("cli-{}-{}.db", std::process::id(), line!()));
    let url = format!("sqlite://{}", db.display());
    let out = run(
        &["dlq", "stats", "--json"],
        &[("DATABASE_URL", url.as_str())],
        None,
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    assert!(stats.is_object(), "{stats}");
    // A set value is still checked.
    let bad = run(
        &["dlq", "stats"],
        &[("DATABASE_URL", url.as_str()), ("PUSHER_APP_ID", "abc")],
        None,
    );
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("PUSHER_APP_ID"));
}

/// `webhook` and `webhooks` were two groups (`webhook verify`, `webhooks
/// tail`) before they became one; both spellings of both commands work.
#[test]
fn webhook_and_webhooks_both_spell_the_one_group() {
    let (env, body, sig) = (WEBHOOK_ENV, WEBHOOK_BODY, WEBHOOK_SIGNATURE);
    for group in ["webhook", "webhooks"] {
        let ok = run(
            &[group, "verify", "--key", "123456789", "--signature", sig],
            &env,
            Some(body),
        );
        assert!(ok.status.success(), "{group}: {}", text(&ok.stderr));
        assert!(text(&ok.stdout).contains("channel_vacated"), "{group}");
        // No broker listens on port 1: the command was understood, needs no
        // Pusher credentials, and fails only to connect.
        let tail = run(
            &[group, "tail"],
            &[("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")],
            None,
        );
        assert_eq!(tail.status.code(), Some(1), "{group}");
        assert!(
            text(&tail.stderr).contains("cannot connect to RabbitMQ"),
            "{group}: {}",
            text(&tail.stderr)
        );
    }
}

/// A RabbitMQ user of this test's own, deleted on drop.
struct BrokerUser(String);

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_user", &self.0])
            .output();
    }
}

/// lapin logs connection.start-ok, SASL response and all, at debug and
/// trace: whatever RUST_LOG asks for, the worker's log never holds the
/// broker password.
#[test]
fn the_broker_password_is_in_no_log_even_at_trace() {
    let pid = std::process::id();
    let user = BrokerUser(format!("cli-trace-{pid}"));
    let password = format!("pw-{pid}-Zq81xv");
    for args in [
        vec!["add_user", &user.0, &password],
        vec!["set_permissions", "-p", "/", &user.0, ".*", ".*", ".*"],
    ] {
        let out = Command::new("rabbitmqctl")
            .args(&args)
            .output()
            .expect("rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            text(&out.stderr)
        );
    }
    let dir = std::env::temp_dir();
    let db = dir.join(format!("cli-trace-{pid}.db"));
    let log = dir.join(format!("cli-trace-{pid}.log"));
    let url = format!("amqp://{}:{password}@127.0.0.1:5672/%2f", user.0);
    let (queue, db_url) = (
        format!("cli-trace-{pid}.intents"),
        format!("sqlite://{}", db.display()),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_pusher-relay"))
        .arg("run")
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(APP)
        .envs([
            ("RUST_LOG", "trace"),
            ("AMQP_URL", url.as_str()),
            ("AMQP_QUEUE", queue.as_str()),
            ("AMQP_EXCHANGE", queue.as_str()),
            ("DATABASE_URL", db_url.as_str()),
            ("HTTP_ADDR", "127.0.0.1:0"),
            // Nothing answers there: the worker waits for Pusher with a
            // bare broker connection, which is all this needs.
            ("PUSHER_HOST", "127.0.0.1"),
            ("PUSHER_PORT", "1"),
            ("PUSHER_SCHEME", "http"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("worker runs");
    // Connected as that user means the SASL exchange is over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut connected = false;
    while !connected && std::time::Instant::now() < deadline {
        let out = Command::new("rabbitmqctl")
            .args(["list_connections", "user", "-q", "--no-table-headers"])
            .output()
            .expect("rabbitmqctl");
        connected = text(&out.stdout).lines().any(|l| l.trim() == user.0);
    }
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    for path in [&log, &db] {
        let _ = std::fs::remove_file(path);
    }
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
            let conn = lapin::Connection::connect(url, Default::default()).await?;
            let channel = conn.create_channel().await?;
            for q in [queue.clone(), format!("{queue}.delivery-limit")] {
                channel.queue_delete(&q, Default::default()).await?;
            }
            channel.exchange_delete(&queue, Default::default()).await?;
            conn.close(200, "test done").await
        })
        .expect("the test's queues and exchange deleted");
    assert!(connected, "the worker connected as {}:\n{logged}", user.0);
    assert!(logged.contains("TRACE"), "trace logging was on:\n{logged}");
    // lapin prints the SASL response as a list of bytes.
    let as_bytes = password
        .bytes()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    for form in [&password, &as_bytes] {
        assert!(
            !logged.contains(form.as_str()),
            "the password is in the log at trace, as {form}"
        );
    }
}
