//! Intents the tests publish, and the check that they arrived exactly once
//! and in order.

use std::collections::HashMap;

use super::Received;

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
