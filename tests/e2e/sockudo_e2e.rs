//! Real end-to-end runs through sockudo, a Pusher-protocol server: events
//! triggered with this crate's client arrive on a WebSocket subscribed to a
//! public, a private and an end-to-end encrypted channel, each authorised
//! with this crate's own auth; sockudo's answers to Pusher's limits map to
//! the right errors.

use crate::common;

use std::time::Duration;

use common::Sockudo;
use futures_util::{SinkExt, StreamExt};
use pusher_relay::pusher::{crypto, BatchEvent, Client, ErrorKind, PusherError, Trigger};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const MASTER_KEY: &str = "zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=";

async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("socket open")
            .expect("valid frame");
        if let Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).expect("JSON frame");
            if v["event"] != "pusher:ping" {
                return v;
            }
        }
    }
}

async fn connect(port: u16) -> (Ws, String) {
    let url = format!(
        "ws://127.0.0.1:{port}/app/app-key?protocol=7&client=pusher-relay-test&version=1.0"
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    let hello = next_event(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
    let data: Value =
        serde_json::from_str(hello["data"].as_str().expect("data string")).expect("data JSON");
    (
        ws,
        data["socket_id"].as_str().expect("socket_id").to_string(),
    )
}

async fn subscribe(ws: &mut Ws, client: &Client, socket_id: &str, channel: &str) -> Option<String> {
    let mut data = json!({ "channel": channel });
    let mut shared_secret = None;
    if channel.starts_with("private-") {
        let auth = client
            .authorize_channel(channel, socket_id, None)
            .expect("authorised");
        data["auth"] = auth.auth.into();
        shared_secret = auth.shared_secret;
    }
    ws.send(Message::Text(
        json!({"event": "pusher:subscribe", "data": data}).to_string(),
    ))
    .await
    .expect("sent");
    let answer = next_event(ws).await;
    assert_eq!(
        answer["event"], "pusher_internal:subscription_succeeded",
        "subscribing to {channel}: {answer}"
    );
    shared_secret
}

#[tokio::test]
async fn events_arrive_on_public_private_and_encrypted_channels() {
    let server = Sockudo::start(None);
    let cfg = server.config(&[("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", MASTER_KEY)]);
    let client = Client::new(&cfg.pusher).expect("client");
    let (mut ws, socket_id) = connect(server.port).await;

    let public = common::unique("news");
    let private = common::unique("private-user");
    let encrypted = common::unique("private-encrypted-room");
    subscribe(&mut ws, &client, &socket_id, &public).await;
    subscribe(&mut ws, &client, &socket_id, &private).await;
    let secret = subscribe(&mut ws, &client, &socket_id, &encrypted)
        .await
        .expect("encrypted channels get a shared secret");

    let t = Trigger {
        event: "headline".into(),
        channels: vec![public.clone(), private.clone()],
        data: "{\"title\":\"hello\"}".into(),
        socket_id: None,
        info: None,
    };
    client.trigger(&t).await.expect("trigger accepted");
    let batch = vec![
        BatchEvent {
            channel: private.clone(),
            event: "n".into(),
            data: "{\"n\":1}".into(),
            socket_id: None,
            info: None,
        },
        BatchEvent {
            channel: encrypted.clone(),
            event: "secret".into(),
            data: "{\"pin\":1234}".into(),
            socket_id: None,
            info: None,
        },
    ];
    client.post_batch(&batch).await.expect("batch accepted");

    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_event(&mut ws).await);
    }
    let find = |channel: &str, event: &str| {
        got.iter()
            .find(|v| v["channel"] == channel && v["event"] == event)
            .unwrap_or_else(|| panic!("no {event} on {channel} in {got:?}"))
            .clone()
    };
    assert_eq!(find(&public, "headline")["data"], "{\"title\":\"hello\"}");
    assert_eq!(find(&private, "headline")["data"], "{\"title\":\"hello\"}");
    assert_eq!(find(&private, "n")["data"], "{\"n\":1}");

    let sealed = find(&encrypted, "secret");
    let sealed_data = sealed["data"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| sealed["data"].to_string());
    assert!(
        !sealed_data.contains("1234"),
        "the server never sees the plaintext: {sealed_data}"
    );
    // The browser decrypts with the shared secret from auth; do the same.
    let key = pusher_relay::config::parse_master_key(&secret)
        .expect("shared secret is 32 bytes of base64");
    let sealed_json: crypto::EncryptedData =
        serde_json::from_str(&sealed_data).expect("nonce and ciphertext");
    let plain = decrypt_with_channel_key(&key, &sealed_json);
    assert_eq!(plain, "{\"pin\":1234}");
}

/// pusher-js decrypts with the shared secret itself (already the channel
/// key), not with the master key.
fn decrypt_with_channel_key(key: &[u8; 32], data: &crypto::EncryptedData) -> String {
    use base64::Engine;
    use crypto_secretbox::aead::{Aead, KeyInit};
    let b64 = base64::engine::general_purpose::STANDARD;
    let nonce = b64.decode(&data.nonce).expect("nonce");
    let sealed = b64.decode(&data.ciphertext).expect("ciphertext");
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(key));
    let plain = cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            sealed.as_slice(),
        )
        .expect("decrypts with the shared secret");
    String::from_utf8(plain).expect("utf-8")
}

#[tokio::test]
async fn sockudo_enforces_pushers_limits_and_signatures() {
    let server = Sockudo::start(None);
    let client = Client::new(&server.config(&[]).pusher).expect("client");

    // 11 events in one request: bypass the client's own check with a raw request.
    let events: Vec<BatchEvent> = (0..11)
        .map(|n| BatchEvent {
            channel: "c".into(),
            event: "e".into(),
            data: format!("{n}"),
            socket_id: None,
            info: None,
        })
        .collect();
    let body = client.batch_body(&events).expect("body");
    let err = client
        .request("POST", "/batch_events", &[], Some(body))
        .await
        .expect_err("11 events are refused");
    assert_eq!(
        (err.status(), err.kind()),
        (Some(400), ErrorKind::Rejected),
        "{err}"
    );

    // Over 10 KB: lift our own limit so the server's is what answers.
    let lenient =
        Client::new(&server.config(&[("PUSHER_MAX_EVENT_BYTES", "20000")]).pusher).expect("client");
    let big = BatchEvent {
        channel: "c".into(),
        event: "e".into(),
        data: "x".repeat(11 * 1024),
        socket_id: None,
        info: None,
    };
    let err = lenient.post_batch(&[big]).await.expect_err("too large");
    assert_eq!(
        (err.status(), err.kind()),
        (Some(413), ErrorKind::Rejected),
        "{err}"
    );

    let wrong =
        Client::new(&server.config(&[("PUSHER_APP_SECRET", "wrong")]).pusher).expect("client");
    let err = wrong.channels(None, &[]).await.expect_err("bad signature");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
}

#[tokio::test]
async fn sockudo_rate_limit_answers_429_with_retry_after() {
    let server = Sockudo::start(Some(2));
    let client = Client::new(&server.config(&[]).pusher).expect("client");
    let mut limited: Option<PusherError> = None;
    for n in 0..20 {
        let e = BatchEvent {
            channel: "c".into(),
            event: "e".into(),
            data: format!("{n}"),
            socket_id: None,
            info: None,
        };
        if let Err(err) = client.post_batch(&[e]).await {
            limited = Some(err);
            break;
        }
    }
    let err = limited.expect("the limiter answers within 20 requests");
    assert_eq!(err.status(), Some(429), "{err}");
    assert!(err.is_retryable());
    assert!(
        err.retry_after().is_some(),
        "429 carries Retry-After: {err:?}"
    );
}
