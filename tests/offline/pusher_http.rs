//! The REST client against a fake Pusher (wiremock) that recomputes and
//! checks the signature of every request, for each endpoint; and the mapping
//! of each failure status to the right error kind.

use crate::common;

use std::time::Duration;

use common::{config_for, signed, APP_ID};
use pusher_relay::pusher::{crypto, BatchEvent, Client, ErrorKind, PusherError, Trigger};
use serde_json::{json, Value};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer, extra: &[(&str, &str)]) -> Client {
    Client::new(&config_for(&server.uri(), extra).pusher).expect("client")
}

fn event(channel: &str, n: usize) -> BatchEvent {
    BatchEvent {
        channel: channel.into(),
        event: "e".into(),
        data: format!("{{\"n\":{n}}}"),
        socket_id: None,
        info: None,
    }
}

fn apps(p: &str) -> String {
    format!("/apps/{APP_ID}{p}")
}

#[tokio::test]
async fn trigger_sends_a_signed_events_request_with_the_exact_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(apps("/events")))
        .and(signed())
        .and(body_json(
            json!({"name":"my-event","channels":["a","b"],"data":"{\"x\":1}","socket_id":"1.2"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    let t = Trigger {
        event: "my-event".into(),
        channels: vec!["a".into(), "b".into()],
        data: "{\"x\":1}".into(),
        socket_id: Some("1.2".into()),
        info: None,
    };
    assert_eq!(
        client(&server, &[]).trigger(&t).await.expect("accepted"),
        json!({})
    );
}

#[tokio::test]
async fn trigger_batch_splits_into_requests_of_ten_and_keeps_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(apps("/batch_events")))
        .and(signed())
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(3)
        .mount(&server)
        .await;
    let events: Vec<BatchEvent> = (0..25).map(|n| event("orders", n)).collect();
    let results = client(&server, &[]).trigger_batch(&events).await;
    let ranges: Vec<_> = results.iter().map(|r| r.events.clone()).collect();
    assert_eq!(ranges, [0..10, 10..20, 20..25]);
    assert!(results.iter().all(|r| r.result.is_ok()));

    let bodies: Vec<Value> = server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("json body"))
        .collect();
    let mut sent: Vec<u64> = bodies
        .iter()
        .flat_map(|b| b["batch"].as_array().cloned().unwrap_or_default())
        .map(|item| {
            serde_json::from_str::<Value>(item["data"].as_str().unwrap_or("{}")).expect("data")["n"]
                .as_u64()
                .unwrap_or(999)
        })
        .collect();
    sent.sort();
    assert_eq!(sent, (0..25).collect::<Vec<u64>>());
    assert!(bodies
        .iter()
        .all(|b| b["batch"].as_array().map(|a| a.len() <= 10) == Some(true)));
}

#[tokio::test]
async fn encrypted_channel_data_is_sealed_with_the_channel_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(apps("/batch_events")))
        .and(signed())
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    let master = "zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=";
    let c = client(&server, &[("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", master)]);
    c.post_batch(&[event("private-encrypted-room", 7), event("public", 8)])
        .await
        .expect("accepted");

    let req = &server.received_requests().await.expect("recorded")[0];
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    let key = pusher_relay::config::parse_master_key(master).expect("key");
    let sealed = body["batch"][0]["data"].as_str().expect("data");
    assert_eq!(
        crypto::decrypt("private-encrypted-room", sealed, &key).expect("decrypts"),
        b"{\"n\":7}"
    );
    assert_eq!(body["batch"][1]["data"], "{\"n\":8}");
}

#[tokio::test]
async fn encrypted_channel_without_master_key_is_refused_before_sending() {
    let server = MockServer::start().await;
    let err = client(&server, &[])
        .post_batch(&[event("private-encrypted-room", 1)])
        .await
        .expect_err("refused");
    assert!(matches!(err, PusherError::MissingMasterKey { .. }), "{err}");
    assert!(server
        .received_requests()
        .await
        .expect("recorded")
        .is_empty());
}

#[tokio::test]
async fn channel_queries_are_signed_and_decoded() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(apps("/channels")))
        .and(query_param("filter_by_prefix", "presence-"))
        .and(query_param("info", "user_count"))
        .and(signed())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"channels":{"presence-a":{"user_count":3}}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(apps("/channels/presence-a")))
        .and(query_param("info", "user_count,subscription_count"))
        .and(signed())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"occupied":true,"user_count":3,"subscription_count":4})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(apps("/channels/presence-a/users")))
        .and(signed())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"users":[{"id":"1"},{"id":2}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, &[]);
    let list = c
        .channels(Some("presence-"), &["user_count".into()])
        .await
        .expect("channels");
    assert_eq!(list.channels["presence-a"].user_count, Some(3));
    let info = c
        .channel_info(
            "presence-a",
            &["user_count".into(), "subscription_count".into()],
        )
        .await
        .expect("info");
    assert_eq!(
        (info.occupied, info.user_count, info.subscription_count),
        (true, Some(3), Some(4))
    );
    assert_eq!(c.users("presence-a").await.expect("users"), ["1", "2"]);
}

#[tokio::test]
async fn user_endpoints_are_signed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(apps("/users/42/terminate_connections")))
        .and(signed())
        .and(body_json(json!({})))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(apps("/events")))
        .and(signed())
        .and(body_json(
            json!({"name":"hello","channels":["#server-to-user-42"],"data":"\"hi\""}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, &[]);
    c.terminate_user_connections("42")
        .await
        .expect("terminated");
    c.send_to_user("42", "hello", "\"hi\"").await.expect("sent");
}

#[tokio::test]
async fn wrong_secret_is_caught_by_the_fake() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(signed())
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let err = client(&server, &[("PUSHER_APP_SECRET", "not-the-secret")])
        .post_batch(&[event("a", 1)])
        .await
        .expect_err("a badly signed request is not accepted");
    assert_eq!(err.status(), Some(404));
}

async fn failing_with(status: u16, body: &str, retry_after: Option<&str>) -> PusherError {
    let server = MockServer::start().await;
    let mut response = ResponseTemplate::new(status).set_body_string(body);
    if let Some(v) = retry_after {
        response = response.insert_header("Retry-After", v);
    }
    Mock::given(method("POST"))
        .and(signed())
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    client(&server, &[])
        .post_batch(&[event("a", 1)])
        .await
        .expect_err("fails")
}

#[tokio::test]
async fn statuses_map_to_error_kinds_with_status_and_body_excerpt() {
    for (status, kind) in [
        (400, ErrorKind::Rejected),
        (401, ErrorKind::Unauthorized),
        (403, ErrorKind::Forbidden),
        (413, ErrorKind::Rejected),
        (500, ErrorKind::Transient),
        (503, ErrorKind::Transient),
    ] {
        let err = failing_with(status, "Batch too large", None).await;
        assert_eq!(err.kind(), kind, "status {status}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.body_excerpt(), Some("Batch too large"));
        assert_eq!(err.is_retryable(), kind == ErrorKind::Transient);
    }
}

#[tokio::test]
async fn too_many_requests_keeps_retry_after() {
    let err = failing_with(429, "slow down", Some("7")).await;
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_slow_pusher_times_out_as_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(signed())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let err = client(&server, &[("PUSHER_TIMEOUT_MS", "200")])
        .post_batch(&[event("a", 1)])
        .await
        .expect_err("times out");
    assert!(matches!(err, PusherError::Timeout { .. }), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn nothing_listening_is_a_transient_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let uri = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let c = Client::new(&config_for(&uri, &[]).pusher).expect("client");
    let err = c.post_batch(&[event("a", 1)]).await.expect_err("refused");
    assert!(matches!(err, PusherError::Connect { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(
        !err.to_string().contains("auth_signature"),
        "errors do not carry the signed URL: {err}"
    );
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_request() {
    let server = MockServer::start().await;
    let c = client(&server, &[]);
    let eleven: Vec<BatchEvent> = (0..11).map(|n| event("a", n)).collect();
    assert!(matches!(
        c.post_batch(&eleven).await,
        Err(PusherError::Invalid(_))
    ));
    assert!(matches!(
        c.post_batch(&[event("bad channel", 1)]).await,
        Err(PusherError::Invalid(_))
    ));
    let big = BatchEvent {
        data: "x".repeat(10_241),
        ..event("a", 1)
    };
    assert!(matches!(
        c.post_batch(&[big]).await,
        Err(PusherError::Invalid(_))
    ));
    assert!(server
        .received_requests()
        .await
        .expect("recorded")
        .is_empty());
}
