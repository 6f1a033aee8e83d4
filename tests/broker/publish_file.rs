//! `pusher-relay publish --file`: a JSONL file reaches the queue whole and
//! in its order, with many confirms awaited at once, and a bad line is
//! reported by its number without stopping the rest.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Broker;
use lapin::options::BasicGetOptions;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_published_whole_and_in_order_and_bad_lines_are_named() {
    let broker = Broker::new("publish-file").await;
    broker.declare().await;
    // More than a confirm window, and not a multiple of it, so that both a
    // full window and the last partial one are sent.
    let count = 1_000;
    let mut file = String::new();
    for seq in 0..count {
        if seq == 300 {
            file.push_str("{\"type\":\"notification\",\"message\":\"no user\"}\n\n");
        }
        file.push_str(&format!(
            "{{\"type\":\"chat.message\",\"room_id\":{},\"user_id\":1,\"user_name\":\"Ada\",\"message\":\"{seq}\"}}\n",
            seq % 7
        ));
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_pusher-relay"))
        .args(["publish", "--file", "-", "--json"])
        .current_dir(std::env::temp_dir())
        .env("AMQP_URL", common::amqp_url())
        .env("AMQP_EXCHANGE", &broker.exchange)
        .env("PUSHER_APP_ID", common::APP_ID)
        .env("PUSHER_APP_KEY", common::KEY)
        .env("PUSHER_APP_SECRET", common::SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(file.as_bytes())
        .expect("write the file");
    let out = child.wait_with_output().expect("publish ends");
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit 2: published, with lines rejected; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    assert_eq!(summary["published"], count, "{summary}");
    let rejected = summary["rejected"].as_array().expect("rejected lines");
    assert_eq!(rejected.len(), 1, "{summary}");
    assert_eq!(rejected[0]["line"], 301, "the bad line by its number");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("user_id")),
        "{summary}"
    );

    let mut messages = Vec::new();
    while let Some(m) = broker
        .channel
        .basic_get(&broker.queue, BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        let body: Value = serde_json::from_slice(&m.delivery.data).expect("JSON");
        messages.push(body["message"].as_str().unwrap_or_default().to_owned());
    }
    let expected: Vec<String> = (0..count).map(|seq| seq.to_string()).collect();
    assert_eq!(messages, expected, "every line once, in the file's order");
}
