//! The ordering keys producers put in the `ordering-key` header agree with
//! the worker's. `tests/data/ordering-keys.json` lists intents as the PHP
//! client (clients/php) publishes them, each with the key the producers
//! compute; the PHP, Node and Python clients' own tests check the same file
//! from the other side. A key
//! that disagrees would send one channel's intents to different shards and
//! lose their order across workers.

use pusher_relay::intent::{self, ChannelTemplates, DecodeContext};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ordering-keys.json");

#[test]
fn every_fixture_intent_decodes_to_the_ordering_key_the_producers_send() {
    let text = std::fs::read_to_string(FIXTURE).expect("tests/data/ordering-keys.json is readable");
    let entries: Vec<Value> = serde_json::from_str(&text).expect("the fixture is a JSON array");
    let templates = ChannelTemplates::default();
    let ctx = DecodeContext {
        message_id: None,
        enqueued_at_ms: None,
        now_ms: 1_700_000_000_000,
        max_event_bytes: 10_240,
        templates: &templates,
    };

    let mut failures = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let body = serde_json::to_vec(&entry["intent"]).expect("an intent serializes");
        let want = entry["key"].as_str().expect("each entry has a string key");
        match intent::decode(&body, &ctx) {
            Ok(decoded) if decoded.ordering_key() == want => {}
            Ok(decoded) => failures.push(format!(
                "entry {i} ({}): worker key {:?}, fixture key {want:?}",
                entry["intent"]["type"],
                decoded.ordering_key()
            )),
            Err(err) => failures.push(format!("entry {i}: does not decode: {err}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Coverage: every type, order.status with and without a customer, int
    // and string identifiers, event with one channel and with three.
    for kind in intent::KNOWN_TYPES {
        assert!(
            entries.iter().any(|e| e["intent"]["type"] == kind),
            "no {kind} intent in the fixture"
        );
    }
    let has = |pred: fn(&Value) -> bool| entries.iter().any(|e| pred(&e["intent"]));
    assert!(has(|i| is_order(i) && i.get("customer_id").is_none()));
    assert!(has(|i| is_order(i) && i["customer_id"].is_i64()));
    assert!(has(|i| is_order(i) && i["customer_id"].is_string()));
    assert!(has(|i| i["user_id"].is_i64()) && has(|i| i["user_id"].is_string()));
    assert!(has(|i| channel_count(i) == 1) && has(|i| channel_count(i) == 3));
}

fn is_order(intent: &Value) -> bool {
    intent["type"] == "order.status"
}

/// How many channels an `event` intent lists (0 for typed intents).
fn channel_count(intent: &Value) -> usize {
    intent["channels"].as_array().map_or(0, Vec::len)
}
