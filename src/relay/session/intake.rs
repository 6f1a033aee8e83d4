//! What a delivery is, decided before the session acts on it: a worker's
//! wake-up, an intent for the lanes or the parked log, a redelivery of one
//! already delivered, or a message that can never be sent. Pure: no I/O
//! and no locks of its own (the caller's `seen` looks in the dedup cache),
//! so every outcome is tested here.

use std::time::Duration;

use super::super::dispatch::Failure;
use super::super::parking::{Parking, Route};
use super::broker::WAKE_HEADER;
use super::unfinished::Unfinished;
use crate::amqp;
use crate::config::{Config, RelayConfig};
use crate::deadletter::DeadLetterReason;
use crate::intent::{self, ChannelTemplates, DecodeContext, Intent};
use crate::pusher::Trigger;

/// What the session does with a delivery.
pub(super) enum Intake {
    /// A worker's wake-up (see [`WAKE_HEADER`]): acked, nothing else.
    Wake,
    /// Into the lanes, behind what they hold.
    Lanes(Unfinished, Trigger),
    /// Into the parked log, at the end of `group`, after the rows of the
    /// groups in `merge` have moved into it.
    Park {
        unit: Unfinished,
        group: String,
        merge: Vec<String>,
    },
    /// For the parked log, which is full: held, unacked, until it has room
    /// (`RELAY_PARKED_MAX_ROWS`), behind any other intent of its channels
    /// held so.
    WaitForRoom(Unfinished, Trigger),
    /// Never sendable; `decoded` when its body was an intent (too old), not
    /// when it could not be read at all.
    DeadLetter {
        unit: Unfinished,
        failure: Failure,
        decoded: bool,
    },
    /// Delivered already: acked without sending.
    Duplicate(Unfinished),
}

/// What a delivery carries, as the classifier reads it.
pub(super) struct Incoming {
    pub(super) body: Vec<u8>,
    /// Whether it was published straight to the queue (the default
    /// exchange), as a worker's wake-up is.
    pub(super) default_exchange: bool,
    /// As lapin read it: copied to a `String` only for a stored row.
    pub(super) routing_key: lapin::types::ShortString,
    pub(super) properties: lapin::BasicProperties,
}

impl From<lapin::message::Delivery> for Incoming {
    fn from(delivery: lapin::message::Delivery) -> Incoming {
        Incoming {
            body: delivery.data,
            default_exchange: delivery.exchange.as_str().is_empty(),
            routing_key: delivery.routing_key,
            properties: delivery.properties,
        }
    }
}

/// The settings decoding reads.
pub(super) struct Rules<'a> {
    max_event_bytes: usize,
    templates: &'a ChannelTemplates,
    max_intent_age: Option<Duration>,
}

impl Rules<'_> {
    pub(super) fn of(cfg: &Config) -> Rules<'_> {
        Rules::with(cfg.pusher.max_event_bytes, &cfg.relay)
    }

    /// The rules of `relay`'s settings and Pusher's event size limit.
    pub(super) fn with(max_event_bytes: usize, relay: &RelayConfig) -> Rules<'_> {
        Rules {
            max_event_bytes,
            templates: &relay.templates,
            max_intent_age: relay.max_intent_age,
        }
    }
}

/// Classifies a delivery taken at `now` (unix ms). `seen` says whether an
/// intent id was delivered already, given its dedup key; `parking` routes
/// an intent of a parked channel to the log (and counts its row there).
pub(super) fn classify(
    incoming: Incoming,
    now: i64,
    rules: &Rules<'_>,
    seen: impl FnOnce(u64) -> bool,
    parking: Option<&mut Parking>,
) -> Intake {
    if is_wake(&incoming) {
        return Intake::Wake;
    }
    let Incoming {
        body,
        routing_key,
        properties,
        ..
    } = incoming;
    let mut unit = Unfinished::received(body, routing_key, Box::new(properties), now);
    let intent = match decode(&unit, rules, now) {
        Ok(intent) => intent,
        Err(failure) => {
            unit.kind = loose_type(unit.body());
            return Intake::DeadLetter {
                unit,
                failure,
                decoded: false,
            };
        }
    };
    unit.identify(intent.id);
    unit.kind = intent.kind;
    unit.channels = intent.trigger.channels.clone();
    unit.enqueued_at_ms = intent.created_at_ms.or(unit.enqueued_at_ms);

    if let (Some(max_age), Some(born)) = (rules.max_intent_age, unit.enqueued_at_ms) {
        let age = Duration::from_millis(now.saturating_sub(born).max(0) as u64);
        if age > max_age {
            let error =
                format!("intent is {age:?} old, older than RELAY_MAX_INTENT_AGE {max_age:?}");
            return Intake::DeadLetter {
                unit,
                failure: failure(DeadLetterReason::Expired, error),
                decoded: true,
            };
        }
    }
    if unit.dedup_key().is_some_and(seen) {
        return Intake::Duplicate(unit);
    }
    match parking.map(|p| p.route(&unit.channels)) {
        Some(Route::Park { group, merge }) => Intake::Park { unit, group, merge },
        Some(Route::Full) => Intake::WaitForRoom(unit, intent.trigger),
        Some(Route::Lanes) | None => Intake::Lanes(unit, intent.trigger),
    }
}

/// Whether a delivery is a worker's wake-up. A producer's message with the
/// header but a body, or published through an exchange, is an ordinary
/// intent (delivered or dead-lettered like any other): the header alone
/// must not let anyone have a message acked and dropped. An empty body can
/// never be an intent, so taking one sent by someone else for a wake-up
/// drops nothing that could have been delivered.
fn is_wake(incoming: &Incoming) -> bool {
    incoming.body.is_empty()
        && incoming.default_exchange
        && incoming
            .properties
            .headers()
            .as_ref()
            .is_some_and(|h| h.inner().contains_key(WAKE_HEADER))
}

/// The intent a delivery carries, or why it can never be sent.
fn decode(unit: &Unfinished, rules: &Rules<'_>, now: i64) -> Result<Intent, Failure> {
    // A message the guard rewrote is not what the producer sent: it is
    // never decoded, let alone delivered.
    if let Some(problems) = unit.properties().and_then(unreadable) {
        let reason = if amqp::guard::too_large(&problems) {
            DeadLetterReason::TooLarge
        } else {
            DeadLetterReason::Invalid
        };
        let error = format!("the AMQP message was rewritten to be read: {problems}");
        return Err(failure(reason, error));
    }
    let message_id = unit
        .properties()
        .and_then(|p| p.message_id().as_ref())
        .map(|m| m.as_str());
    decode_body(unit.body(), message_id, unit.enqueued_at_ms, rules, now)
}

/// The intent a body carries, or why it can never be sent.
pub(super) fn decode_body(
    body: &[u8],
    message_id: Option<&str>,
    enqueued_at_ms: Option<i64>,
    rules: &Rules<'_>,
    now: i64,
) -> Result<Intent, Failure> {
    let ctx = DecodeContext {
        message_id,
        enqueued_at_ms,
        now_ms: now,
        max_event_bytes: rules.max_event_bytes,
        templates: rules.templates,
    };
    intent::decode(body, &ctx).map_err(|e| {
        let reason = match e.reason() {
            intent::DecodeReason::TooLarge => DeadLetterReason::TooLarge,
            intent::DecodeReason::Invalid => DeadLetterReason::Invalid,
        };
        failure(reason, e.to_string())
    })
}

fn failure(reason: DeadLetterReason, error: String) -> Failure {
    Failure {
        reason,
        error,
        status: None,
        body: None,
        attempts: 0,
    }
}

/// What the AMQP guard ([`amqp::guard`]) had to rewrite in this message, if
/// anything: such a message is never delivered, since what it says is not
/// what the producer sent.
fn unreadable(props: &lapin::BasicProperties) -> Option<String> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(amqp::guard::UNREADABLE_HEADER)? {
        lapin::types::AMQPValue::LongString(s) => {
            Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        other => Some(format!("{other:?}")),
    }
}

/// The `type` of a body that failed to decode, when it has one, so operators
/// can filter dead letters by type.
pub(crate) fn loose_type(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use lapin::types::{AMQPValue, FieldTable};
    use lapin::BasicProperties;

    use super::*;
    use crate::pusher::validate::DEFAULT_MAX_EVENT_BYTES;
    use crate::relay::dedup;

    const NOW: i64 = 1_700_000_000_000;

    fn rules(templates: &ChannelTemplates, max_age: Option<Duration>) -> Rules<'_> {
        Rules {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            templates,
            max_intent_age: max_age,
        }
    }

    fn incoming(body: &str, properties: BasicProperties) -> Incoming {
        Incoming {
            body: body.as_bytes().to_vec(),
            default_exchange: true,
            routing_key: "intents".into(),
            properties,
        }
    }

    fn notification(id: &str, user: u32) -> String {
        format!(r#"{{"type":"notification","id":"{id}","user_id":{user},"message":"m"}}"#)
    }

    fn wake_headers() -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(WAKE_HEADER.into(), AMQPValue::Boolean(true));
        BasicProperties::default().with_headers(headers)
    }

    fn classify_plain(incoming: Incoming, max_age: Option<Duration>) -> Intake {
        let templates = ChannelTemplates::default();
        classify(incoming, NOW, &rules(&templates, max_age), |_| false, None)
    }

    #[test]
    fn an_intent_goes_to_its_lanes_with_its_id_and_type() {
        let body = notification("n-1", 7);
        let Intake::Lanes(unit, trigger) =
            classify_plain(incoming(&body, BasicProperties::default()), None)
        else {
            panic!("an ordinary intent goes to the lanes");
        };
        assert_eq!(unit.intent_id, "n-1");
        assert_eq!(unit.kind, "notification");
        assert_eq!(unit.channels, ["private-user-7"]);
        assert_eq!(trigger.channels, unit.channels);
    }

    #[test]
    fn an_empty_body_with_the_wake_header_on_the_default_exchange_is_a_wake_up() {
        assert!(matches!(
            classify_plain(incoming("", wake_headers()), None),
            Intake::Wake
        ));
    }

    #[test]
    fn the_wake_header_on_a_body_or_through_an_exchange_wakes_nothing() {
        let body = notification("n-1", 7);
        assert!(matches!(
            classify_plain(incoming(&body, wake_headers()), None),
            Intake::Lanes(..)
        ));
        let mut routed = incoming("", wake_headers());
        routed.default_exchange = false;
        assert!(matches!(
            classify_plain(routed, None),
            Intake::DeadLetter { decoded: false, .. }
        ));
    }

    #[test]
    fn a_body_that_is_no_intent_is_dead_lettered_with_its_loose_type() {
        let Intake::DeadLetter {
            unit,
            failure,
            decoded,
        } = classify_plain(
            incoming(r#"{"type":"chat.message"}"#, BasicProperties::default()),
            None,
        )
        else {
            panic!("an invalid intent is dead-lettered");
        };
        assert!(!decoded);
        assert_eq!(failure.reason, DeadLetterReason::Invalid);
        assert_eq!(unit.kind, "chat.message");
    }

    #[test]
    fn a_message_the_guard_rewrote_is_dead_lettered_without_being_decoded() {
        let mut headers = FieldTable::default();
        headers.insert(
            amqp::guard::UNREADABLE_HEADER.into(),
            AMQPValue::LongString("a header was cut".into()),
        );
        let body = notification("n-1", 7);
        let Intake::DeadLetter { failure, .. } = classify_plain(
            incoming(&body, BasicProperties::default().with_headers(headers)),
            None,
        ) else {
            panic!("a rewritten message is never sent");
        };
        assert!(
            failure.error.contains("a header was cut"),
            "{}",
            failure.error
        );
    }

    #[test]
    fn an_intent_older_than_the_max_age_is_dead_lettered_as_expired() {
        let body = notification("n-1", 7);
        let props = BasicProperties::default().with_timestamp((NOW / 1000 - 120) as u64);
        let Intake::DeadLetter {
            failure, decoded, ..
        } = classify_plain(incoming(&body, props), Some(Duration::from_secs(60)))
        else {
            panic!("too old to send");
        };
        assert!(decoded, "its type is counted as consumed");
        assert_eq!(failure.reason, DeadLetterReason::Expired);
    }

    #[test]
    fn an_intent_delivered_already_is_a_duplicate() {
        let templates = ChannelTemplates::default();
        let body = notification("n-1", 7);
        let intake = classify(
            incoming(&body, BasicProperties::default()),
            NOW,
            &rules(&templates, None),
            |k| k == dedup::key("n-1"),
            None,
        );
        assert!(matches!(intake, Intake::Duplicate(unit) if unit.intent_id == "n-1"));
    }

    #[test]
    fn an_intent_of_a_parked_channel_goes_to_the_parked_log() {
        let templates = ChannelTemplates::default();
        let mut parking = Parking::new(10, 1_000_000);
        parking.park("private-user-7", 0);
        let body = notification("n-1", 7);
        let intake = classify(
            incoming(&body, BasicProperties::default()),
            NOW,
            &rules(&templates, None),
            |_| false,
            Some(&mut parking),
        );
        assert!(matches!(
            intake,
            Intake::Park { ref group, ref merge, .. } if group == "private-user-7" && merge.is_empty()
        ));
        let other = notification("n-2", 8);
        assert!(matches!(
            classify(
                incoming(&other, BasicProperties::default()),
                NOW,
                &rules(&templates, None),
                |_| false,
                Some(&mut parking),
            ),
            Intake::Lanes(..)
        ));
    }
}
