//! What the store holds: the dead-letter records (one about to be stored, one
//! read back) and the two small vocabularies they use, [`DeadLetterReason`]
//! and [`DeadLetterStatus`], whose names are what the database stores and
//! operators type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an intent became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The intent failed decoding or validation; retrying cannot help.
    Invalid,
    /// An event's encoded data exceeds Pusher's size limit.
    TooLarge,
    /// Pusher answered with a permanent 4xx for this intent's event(s).
    Rejected,
    /// The retry budget was spent while Pusher was otherwise healthy.
    Exhausted,
    /// The intent was older than `RELAY_MAX_INTENT_AGE` when it came up.
    Expired,
    /// RabbitMQ handed it out `x-delivery-limit` times without an ack (a
    /// worker crashing or losing its connection while it held it, each
    /// time) and dead-lettered it to the worker's limit queue.
    DeliveryLimit,
}

impl DeadLetterReason {
    /// Every reason, in a fixed order (used for stats so absent reasons show as 0).
    pub const ALL: &'static [DeadLetterReason] = &[
        DeadLetterReason::Invalid,
        DeadLetterReason::TooLarge,
        DeadLetterReason::Rejected,
        DeadLetterReason::Exhausted,
        DeadLetterReason::Expired,
        DeadLetterReason::DeliveryLimit,
    ];

    /// The stable name stored in the database and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Invalid => "invalid",
            DeadLetterReason::TooLarge => "too_large",
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Exhausted => "exhausted",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::DeliveryLimit => "delivery_limit",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of [`DeadLetterReason::ALL`]'s names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dead-letter reason {value:?}: expected one of invalid, too_large, rejected, exhausted, expired, delivery_limit")]
pub struct ParseReasonError {
    /// The rejected input, so a CLI filter error can echo it back.
    pub value: String,
}

impl FromStr for DeadLetterReason {
    type Err = ParseReasonError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeadLetterReason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseReasonError {
                value: s.to_owned(),
            })
    }
}

/// A dead letter about to be stored: everything needed to understand and
/// replay the intent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    /// The original AMQP body, byte for byte (replay republishes it as is).
    pub body: Vec<u8>,
    /// The original routing key (the intent type on the wire).
    pub routing_key: String,
    /// JSON object of the AMQP headers and properties.
    pub headers: serde_json::Value,
    /// The intent id, when one could be determined.
    pub intent_id: Option<String>,
    /// The intent type, when the body could be decoded far enough.
    pub intent_type: Option<String>,
    /// The Pusher channels the intent addressed, for filtering by channel.
    pub channels: Vec<String>,
    /// Why it was dead-lettered.
    pub reason: DeadLetterReason,
    /// Human-readable error text (which rule and field, or Pusher's error).
    pub error: String,
    /// Pusher's HTTP status, when Pusher answered.
    pub pusher_status: Option<u16>,
    /// An excerpt of Pusher's response body, when Pusher answered.
    pub pusher_body: Option<String>,
    /// Delivery attempts made before giving up.
    pub attempts: u32,
    /// When the worker first saw the intent (unix ms).
    pub first_seen_at_ms: i64,
    /// When it was dead-lettered (unix ms).
    pub dead_lettered_at_ms: i64,
    /// The dead letter whose replay this delivery was (the
    /// [`DEAD_LETTER_HEADER`](super::replay::DEAD_LETTER_HEADER) it carried),
    /// `None` for a first failure. Part of what makes two failures one: a
    /// replay that fails is a new failure even while the row it came from is
    /// still pending (replay marks that row only after the broker confirmed).
    pub replay_of: Option<i64>,
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Store-assigned id; never reused, even after a purge.
    pub id: i64,
    /// The original AMQP body, byte for byte.
    pub body: Vec<u8>,
    /// The original routing key.
    pub routing_key: String,
    /// JSON object of the AMQP headers and properties.
    pub headers: serde_json::Value,
    /// The intent id, when known.
    pub intent_id: Option<String>,
    /// The intent type, when known.
    pub intent_type: Option<String>,
    /// The Pusher channels the intent addressed.
    pub channels: Vec<String>,
    /// Why it was dead-lettered.
    pub reason: DeadLetterReason,
    /// Human-readable error text.
    pub error: String,
    /// Pusher's HTTP status, when Pusher answered.
    pub pusher_status: Option<u16>,
    /// An excerpt of Pusher's response body.
    pub pusher_body: Option<String>,
    /// Delivery attempts made before giving up.
    pub attempts: u32,
    /// When the worker first saw the intent (unix ms).
    pub first_seen_at_ms: i64,
    /// When it was dead-lettered (unix ms).
    pub dead_lettered_at_ms: i64,
    /// How many times it has been replayed.
    pub replay_count: i64,
    /// When it was last replayed (unix ms).
    pub last_replayed_at_ms: Option<i64>,
    /// Whether it still waits for a replay.
    pub status: DeadLetterStatus,
}

/// Where a dead letter is in its life. Stored as text; no CHECK constraint,
/// so a later status needs no table rebuild on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStatus {
    /// Stored and not replayed yet.
    Pending,
    /// Republished to the intent exchange at least once.
    Replayed,
}

impl DeadLetterStatus {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Pending => "pending",
            DeadLetterStatus::Replayed => "replayed",
        }
    }
}

impl fmt::Display for DeadLetterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeadLetterStatus {
    type Err = String;

    /// The error is the expectation, for filter messages to embed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(DeadLetterStatus::Pending),
            "replayed" => Ok(DeadLetterStatus::Replayed),
            other => Err(format!(
                "unknown status {other:?}: expected pending or replayed"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_round_trip() {
        for &r in DeadLetterReason::ALL {
            assert_eq!(r.as_str().parse::<DeadLetterReason>(), Ok(r));
        }
        let err = "bogus"
            .parse::<DeadLetterReason>()
            .expect_err("bogus is no reason");
        assert!(err.to_string().contains("too_large"), "{err}");
    }
}
