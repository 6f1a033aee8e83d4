//! Property tests for the three parsers that read hostile input.
//!
//! A security review asked for evidence that input from outside the process
//! can never panic the relay (a panic in a consumer task drops its channel
//! and redelivers the message forever) or be misread (accepted when it should
//! have been refused, or accepted as something it is not). Each parser below
//! takes bytes or text from someone we do not trust:
//!
//! 1. [`pusher_relay::intent::decode`]: every AMQP message body. Arbitrary
//!    bytes and arbitrary JSON (random trees, and objects with a known `type`
//!    and random values in the fields the types read) never panic; an `Ok`
//!    always has 1 to 100 channels, each obeying Pusher's channel rule
//!    (re-stated here from `src/config/pusher_rules.rs`, not by calling it), an
//!    event name of 1 to 200 characters, a `digits.digits` socket id when
//!    there is one, and `data` within `max_event_bytes`; an `Err` has a
//!    non-empty message. A body nested 10,000 levels deep is an `Err`, not a
//!    stack overflow.
//! 2. [`pusher_relay::pusher::webhook::verify`]: every POST to the webhook
//!    endpoint. Arbitrary keys, signatures and bodies never panic and are
//!    never accepted unless the signature really is the HMAC-SHA256 of the
//!    body (computed here with the `hmac` crate, not the crate's own helper);
//!    a correctly signed body with random valid events round-trips exactly;
//!    changing any one byte of a signed body gets it refused.
//! 3. [`pusher_relay::deadletter::FilterSpec::parse`] and
//!    [`pusher_relay::deadletter::Cursor::decode`]: operator text from the CLI
//!    and the admin API's query string. Arbitrary text in any field never
//!    panics; an error names the field it came from (its `field` and its
//!    message, as `FilterError` documents), quotes a part of the value, and
//!    has no raw line break (the value is printed escaped, so a hostile value
//!    cannot forge a log line); cursors round-trip for every positive id.
//! 4. The connection errors of [`pusher_relay::amqp::connect`],
//!    [`pusher_relay::amqp::connect_confirmed`] and
//!    [`pusher_relay::deadletter::Store::connect`]: an operator's URL with a
//!    password, typed raw or percent-encoded. The error shows no piece of it.
//!
//! Every property runs 256 cases so the file takes seconds; failures are
//! kept by proptest under `proptest-regressions/` and replayed first.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use pusher_relay::config::AmqpConfig;
use pusher_relay::deadletter::{Cursor, FilterError, FilterSpec, Store};
use pusher_relay::intent::{
    decode, ChannelTemplates, DecodeContext, Intent, IntentError, KNOWN_TYPES,
};
use pusher_relay::pusher::validate::DEFAULT_MAX_EVENT_BYTES;
use pusher_relay::pusher::webhook::{verify, Webhook, WebhookError, WebhookEvent, WebhookToken};

const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// 1. Intent decoder
// ---------------------------------------------------------------------------

const NOW_MS: i64 = 1_700_000_009_999;

fn ctx(templates: &ChannelTemplates, max_event_bytes: usize) -> DecodeContext<'_> {
    DecodeContext {
        message_id: Some("amqp-id"),
        enqueued_at_ms: Some(1_690_000_005_500),
        now_ms: NOW_MS,
        max_event_bytes,
        templates,
    }
}

/// Pusher's channel rule, written out again so the test does not trust the
/// code it checks: 1 to 164 characters from `[-a-zA-Z0-9_=@,.;]`, or
/// `#server-to-user-` followed by a non-empty id from that charset.
fn is_valid_channel(name: &str) -> bool {
    let charset = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-=@,.;".contains(c))
    };
    let len = name.chars().count();
    if len == 0 || len > 164 {
        return false;
    }
    match name.strip_prefix("#server-to-user-") {
        Some(user) if !user.is_empty() => charset(user),
        _ => charset(name),
    }
}

fn is_socket_id(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    matches!(s.split_once('.'), Some((a, b)) if digits(a) && digits(b))
}

/// What must hold of any decode result, whatever the input.
fn check_decoded(
    result: &Result<Intent, IntentError>,
    max_event_bytes: usize,
) -> Result<(), TestCaseError> {
    match result {
        Ok(intent) => {
            let channels = &intent.trigger.channels;
            prop_assert!(!channels.is_empty(), "Ok with no channel: {intent:?}");
            prop_assert!(channels.len() <= 100, "Ok with {} channels", channels.len());
            for channel in channels {
                prop_assert!(is_valid_channel(channel), "Ok with bad channel {channel:?}");
            }
            prop_assert!(
                intent.trigger.data.len() <= max_event_bytes,
                "data of {} bytes passed a limit of {max_event_bytes}",
                intent.trigger.data.len()
            );
            let event_len = intent.trigger.event.chars().count();
            prop_assert!(
                (1..=200).contains(&event_len),
                "event name of {event_len} chars"
            );
            if let Some(socket_id) = &intent.trigger.socket_id {
                prop_assert!(is_socket_id(socket_id), "Ok with socket id {socket_id:?}");
            }
            prop_assert!(
                KNOWN_TYPES.contains(&intent.kind.as_str()),
                "kind {:?}",
                intent.kind
            );
            prop_assert!(!intent.id.is_empty(), "Ok with an empty id");
        }
        Err(err) => {
            prop_assert!(!err.to_string().is_empty(), "empty message for {err:?}");
        }
    }
    Ok(())
}

/// Any JSON value, at most 4 levels of containers deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Strings that look like identifiers or channel names, with the edge cases
/// of the channel rule: the charset's borders, the reserved `#server-to-user-`
/// prefix, names around the 164-character limit.
fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[-a-zA-Z0-9_=@,.;]{1,20}",
        1 => "(private-|presence-|private-encrypted-|#server-to-user-)[-a-zA-Z0-9_=@,.;]{0,10}",
        1 => (160usize..170).prop_map(|n| "c".repeat(n)),
        1 => ".{0,12}",
        1 => Just(String::new()),
        1 => "[a-z]{1,5}[ \n\"{}#:/\u{0}\u{e9}\u{1F600}][a-z]{0,5}",
    ]
}

/// A value for a field a known type reads: mostly well-typed, sometimes not.
fn arb_field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => arb_name().prop_map(Value::String),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => prop::collection::vec(arb_name().prop_map(Value::String), 0..4).prop_map(Value::Array),
        1 => (1usize..120).prop_map(|n| Value::Array(
            (0..n).map(|i| Value::String(format!("c{i}"))).collect())),
        1 => "[0-9]{1,4}\\.[0-9]{1,4}".prop_map(Value::String),
        1 => (0usize..12_000).prop_map(|n| Value::String("x".repeat(n))),
        2 => arb_json(),
    ]
}

/// Every field any intent type reads.
const FIELDS: [&str; 20] = [
    "id",
    "socket_id",
    "created_at",
    "user_id",
    "message",
    "level",
    "priority",
    "room_id",
    "user_name",
    "order_id",
    "status",
    "customer_id",
    "metrics",
    "product_id",
    "quantity",
    "activity",
    "channels",
    "event",
    "data",
    "info",
];

/// An identifier as producers send them: an integer or a channel-safe string.
fn arb_ident() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        "[-a-zA-Z0-9_=@,.;]{1,12}".prop_map(Value::String),
    ]
}

/// `{"type": <known type>, ...}`: first a body carrying a well-typed value
/// for every field any type reads (each type ignores the others'), so that
/// decoding often succeeds and the `Ok` checks bite; then up to 4 fields
/// overwritten with random values (of any JSON type, hostile strings, huge
/// or invalid channel lists) or removed, plus a few unknown fields.
fn arb_typed_intent() -> impl Strategy<Value = Value> {
    let idents = prop::collection::vec(arb_ident(), 5);
    let texts = prop::collection::vec(".{0,30}", 4);
    let channels = prop::collection::vec("[-a-zA-Z0-9_=@,.;]{1,20}", 1..4);
    let optional = (
        proptest::option::of(arb_ident()),
        proptest::option::of("[0-9]{1,6}\\.[0-9]{1,6}"),
        proptest::option::of("[a-z0-9-]{1,12}"),
        proptest::option::of(any::<i64>()),
    );
    let mutations = prop::collection::vec(
        (
            prop::sample::select(FIELDS.to_vec()),
            proptest::option::of(arb_field_value()),
        ),
        0..5,
    );
    (
        prop::sample::select(KNOWN_TYPES.to_vec()),
        (
            idents,
            texts,
            channels,
            "[a-z-]{1,20}",
            arb_json(),
            any::<i32>(),
        ),
        optional,
        mutations,
        prop::collection::btree_map("[a-z_]{1,8}", arb_json(), 0..3),
    )
        .prop_map(
            |(
                kind,
                (idents, texts, channels, event, data, quantity),
                optional,
                mutations,
                extra,
            )| {
                let mut map: Map<String, Value> = extra.into_iter().collect();
                let (customer_id, socket_id, id, created_at) = optional;
                let base = json!({
                    "user_id": idents[0], "room_id": idents[1], "order_id": idents[2],
                    "product_id": idents[3], "message": texts[0], "user_name": texts[1],
                    "status": texts[2], "activity": texts[3], "metrics": {"cpu": quantity},
                    "quantity": quantity, "channels": channels, "event": event, "data": data,
                    "customer_id": customer_id, "socket_id": socket_id, "id": id,
                    "created_at": created_at,
                });
                map.extend(base.as_object().unwrap().clone());
                for (field, value) in mutations {
                    match value {
                        Some(value) => map.insert(field.to_owned(), value),
                        None => map.remove(field),
                    };
                }
                map.insert("type".into(), Value::String(kind.to_owned()));
                Value::Object(map)
            },
        )
}

/// A size limit: usually the default, sometimes small enough to bite.
fn arb_limit() -> impl Strategy<Value = usize> {
    prop_oneof![Just(DEFAULT_MAX_EVENT_BYTES), 0usize..400]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn intent_decode_of_arbitrary_bytes_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let templates = ChannelTemplates::default();
        let result = decode(&body, &ctx(&templates, DEFAULT_MAX_EVENT_BYTES));
        check_decoded(&result, DEFAULT_MAX_EVENT_BYTES)?;
    }

    #[test]
    fn intent_decode_of_arbitrary_json_never_panics_or_misreads(
        body in arb_json(),
        limit in arb_limit(),
    ) {
        let templates = ChannelTemplates::default();
        let result = decode(body.to_string().as_bytes(), &ctx(&templates, limit));
        check_decoded(&result, limit)?;
    }

    #[test]
    fn intent_decode_of_known_types_with_random_fields_never_misreads(
        body in arb_typed_intent(),
        limit in arb_limit(),
        legacy in any::<bool>(),
    ) {
        let templates = if legacy { ChannelTemplates::legacy() } else { ChannelTemplates::default() };
        let result = decode(body.to_string().as_bytes(), &ctx(&templates, limit));
        check_decoded(&result, limit)?;
    }
}

/// Guards against the typed property passing vacuously: its strategy must
/// reach the `Ok` path (where the channel and size checks bite) often.
#[test]
fn typed_intent_strategy_reaches_both_ok_and_err() {
    let templates = ChannelTemplates::default();
    let strategy = (arb_typed_intent(), arb_limit());
    let mut runner = TestRunner::deterministic();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..CASES {
        let (body, limit) = strategy.new_tree(&mut runner).unwrap().current();
        match decode(body.to_string().as_bytes(), &ctx(&templates, limit)) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    assert!(
        ok >= CASES / 4 && err >= CASES / 8,
        "ok {ok}, err {err} of {CASES}"
    );
}

#[test]
fn intent_nested_ten_thousand_levels_deep_is_an_error_not_a_stack_overflow() {
    let templates = ChannelTemplates::default();
    let ctx = ctx(&templates, DEFAULT_MAX_EVENT_BYTES);
    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!(
        r#"{{"type":"dashboard.metrics","metrics":{}1{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    let event = format!(
        r#"{{"type":"event","channels":["a"],"event":"e","data":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    for body in [arrays, objects, event] {
        let err = decode(body.as_bytes(), &ctx).expect_err("a 10,000-deep body is refused");
        assert!(!err.to_string().is_empty());
    }
}

// ---------------------------------------------------------------------------
// 2. Webhook verification
// ---------------------------------------------------------------------------

const TOKENS: [WebhookToken<'static>; 2] = [
    WebhookToken {
        key: "app-key",
        secret: "app-secret",
    },
    WebhookToken {
        key: "extra-key",
        secret: "",
    },
];

/// HMAC-SHA256 computed here, independently of `pusher::sign`.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[-a-zA-Z0-9_=@,.;]{0,16}", 1 => ".{0,16}"]
}

/// One of the event kinds Pusher documents (not `Other`, whose shape is
/// whatever arrived).
fn arb_webhook_event() -> impl Strategy<Value = WebhookEvent> {
    prop_oneof![
        arb_text().prop_map(|channel| WebhookEvent::ChannelOccupied { channel }),
        arb_text().prop_map(|channel| WebhookEvent::ChannelVacated { channel }),
        (arb_text(), arb_text())
            .prop_map(|(channel, user_id)| WebhookEvent::MemberAdded { channel, user_id }),
        (arb_text(), arb_text())
            .prop_map(|(channel, user_id)| WebhookEvent::MemberRemoved { channel, user_id }),
        (
            arb_text(),
            arb_text(),
            ".{0,40}",
            proptest::option::of(arb_text()),
            proptest::option::of(arb_text())
        )
            .prop_map(|(channel, event, data, socket_id, user_id)| {
                WebhookEvent::ClientEvent {
                    channel,
                    event,
                    data,
                    socket_id,
                    user_id,
                }
            }),
        arb_text().prop_map(|channel| WebhookEvent::CacheMiss { channel }),
        (arb_text(), any::<u64>()).prop_map(|(channel, subscription_count)| {
            WebhookEvent::SubscriptionCount {
                channel,
                subscription_count,
            }
        }),
    ]
}

fn arb_webhook() -> impl Strategy<Value = Webhook> {
    (
        proptest::option::of(any::<i64>()),
        prop::collection::vec(arb_webhook_event(), 0..6),
    )
        .prop_map(|(time_ms, events)| Webhook { time_ms, events })
}

/// A body for a webhook: JSON-looking or not.
fn arb_webhook_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024),
        arb_webhook().prop_map(|h| serde_json::to_vec(&h).unwrap()),
        arb_json().prop_map(|v| v.to_string().into_bytes()),
        arb_json().prop_map(|v| json!({"time_ms": 1, "events": [v]})
            .to_string()
            .into_bytes()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn webhook_with_arbitrary_key_signature_and_body_never_panics_or_passes_unsigned(
        key in proptest::option::of(prop_oneof![
            Just("app-key".to_owned()), Just("extra-key".to_owned()), ".{0,60}"
        ]),
        signature in proptest::option::of(prop_oneof![
            "[0-9a-fA-F]{0,70}", " ?[0-9a-f]{64} ?", ".{0,70}"
        ]),
        body in arb_webhook_body(),
        window in proptest::option::of((any::<i64>(), any::<i64>())),
        signer in proptest::option::of(0..TOKENS.len()),
    ) {
        // Sometimes the body is signed properly, under either token's secret
        // (so often under the wrong key's), so the Ok branch is reached.
        let signature = match signer {
            Some(i) => Some(sign(TOKENS[i].secret, &body)),
            None => signature,
        };
        let result = verify(&TOKENS, key.as_deref(), signature.as_deref(), &body, window);
        match &result {
            Ok(_) => {
                let key = key.as_deref().unwrap();
                let secret = TOKENS.iter().find(|t| t.key == key).unwrap().secret;
                let given = signature.as_deref().unwrap().trim().to_ascii_lowercase();
                prop_assert_eq!(given, sign(secret, &body), "accepted a wrong signature");
            }
            Err(err) => {
                prop_assert!(!err.to_string().is_empty());
                prop_assert!(!err.reason().is_empty());
                if let Some(key) = &key {
                    if !TOKENS.iter().any(|t| t.key == key) && signature.is_some() {
                        prop_assert!(matches!(err, WebhookError::UnknownKey { .. }), "{err:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn webhook_signed_correctly_round_trips(
        hook in arb_webhook(),
        token in 0..TOKENS.len(),
        upper in any::<bool>(),
    ) {
        let token = &TOKENS[token];
        let body = serde_json::to_vec(&hook).unwrap();
        let mut signature = sign(token.secret, &body);
        if upper {
            signature = signature.to_ascii_uppercase();
        }
        let got = verify(&TOKENS, Some(token.key), Some(&signature), &body, None);
        prop_assert_eq!(got.as_ref(), Ok(&hook));
        if let Some(t) = hook.time_ms {
            // Exactly on time, with no tolerance at all, is still on time.
            let got = verify(&TOKENS, Some(token.key), Some(&signature), &body, Some((t, 0)));
            prop_assert_eq!(got, Ok(hook));
        }
    }

    #[test]
    fn webhook_with_any_one_byte_changed_is_refused(
        hook in arb_webhook(),
        token in 0..TOKENS.len(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let token = &TOKENS[token];
        let mut body = serde_json::to_vec(&hook).unwrap();
        let signature = sign(token.secret, &body);
        let i = at.index(body.len());
        body[i] ^= flip;
        let got = verify(&TOKENS, Some(token.key), Some(&signature), &body, None);
        prop_assert_eq!(got, Err(WebhookError::BadSignature));
    }
}

// ---------------------------------------------------------------------------
// 3. Dead-letter filters and cursors
// ---------------------------------------------------------------------------

/// 2024-05-01T12:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_714_564_800)
}

/// Operator text: anything, plus near-misses of every accepted form.
fn arb_filter_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => ".{0,40}",
        1 => "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        2 => "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|z|[+-][0-9]{2}:[0-9]{2}|[+-][0-9]{4})?",
        1 => "[0-9]{4}-.{5,20}",
        1 => "[0-9]{1,25} ?(ns|us|ms|s|m|h|d|w|M|y|years|x)( [0-9]{1,5}m)?",
        1 => "[ ,]*(invalid|too_large|rejected|exhausted|expired|lost)([ ,]+(invalid|too_large|rejected|exhausted|expired|Lost))*[ ,]*",
        1 => " *(pending|replayed|Pending|done) *",
        1 => "[a-z]{0,5}[\n\r\"\\\\][a-z]{0,5}",
    ]
}

const FILTER_FIELDS: [&str; 6] = ["reason", "type", "channel", "since", "until", "status"];

fn spec_with(field: &str, value: Option<String>) -> FilterSpec {
    let mut spec = FilterSpec::default();
    match field {
        "reason" => spec.reason = value,
        "type" => spec.intent_type = value,
        "channel" => spec.channel = value,
        "since" => spec.since = value,
        "until" => spec.until = value,
        "status" => spec.status = value,
        _ => unreachable!("{field}"),
    }
    spec
}

/// What every filter error must say: its field, part of the value, no line break.
fn check_filter_error(err: &FilterError, field: &str, value: &str) -> Result<(), TestCaseError> {
    let text = err.to_string();
    prop_assert_eq!(
        err.field,
        field,
        "error from field {:?} names {:?}",
        field,
        err.field
    );
    prop_assert!(text.contains(field), "{text:?} does not name {field:?}");
    prop_assert!(
        value.contains(err.value.as_str()),
        "value {:?} not from {value:?}",
        err.value
    );
    prop_assert!(!text.contains(['\n', '\r']), "raw line break in {text:?}");
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn filter_field_with_arbitrary_text_never_panics_and_errors_name_it(
        field in prop::sample::select(FILTER_FIELDS.to_vec()),
        value in arb_filter_text(),
    ) {
        match spec_with(field, Some(value.clone())).parse(now()) {
            Ok(filter) => {
                match field {
                    "type" => prop_assert_eq!(filter.intent_type.unwrap_or_default(), value.trim()),
                    "channel" => prop_assert_eq!(filter.channel.unwrap_or_default(), value.trim()),
                    "reason" => prop_assert_eq!(filter.reasons.is_empty(), value.trim().is_empty()),
                    "since" => prop_assert_eq!(filter.since_ms.is_some(), !value.trim().is_empty()),
                    "until" => prop_assert_eq!(filter.until_ms.is_some(), !value.trim().is_empty()),
                    "status" => prop_assert_eq!(filter.status.is_some(), !value.trim().is_empty()),
                    _ => unreachable!(),
                }
            }
            Err(err) => {
                // `type` and `channel` are matched exactly and cannot be wrong.
                prop_assert!(!["type", "channel"].contains(&field), "{err:?}");
                check_filter_error(&err, field, &value)?;
            }
        }
    }

    #[test]
    fn filter_with_every_field_arbitrary_blames_a_field_that_is_wrong_alone(
        values in prop::collection::vec(proptest::option::of(arb_filter_text()), 6),
    ) {
        let spec = FilterSpec {
            reason: values[0].clone(),
            intent_type: values[1].clone(),
            channel: values[2].clone(),
            since: values[3].clone(),
            until: values[4].clone(),
            status: values[5].clone(),
        };
        let alone: Vec<bool> = FILTER_FIELDS
            .iter()
            .zip(&values)
            .map(|(f, v)| spec_with(f, v.clone()).parse(now()).is_err())
            .collect();
        match spec.parse(now()) {
            Ok(_) => prop_assert!(!alone.contains(&true), "combined Ok, alone {alone:?}"),
            Err(err) => {
                let i = FILTER_FIELDS.iter().position(|f| *f == err.field);
                prop_assert!(i.is_some(), "unknown field {:?}", err.field);
                let i = i.unwrap();
                prop_assert!(alone[i], "blamed {} which parses alone", err.field);
                check_filter_error(&err, FILTER_FIELDS[i], values[i].as_deref().unwrap())?;
            }
        }
    }

    #[test]
    fn cursor_decode_of_arbitrary_text_never_panics(
        text in prop_oneof![
            ".{0,40}",
            "[A-Za-z0-9_=+/-]{0,40}",
            any::<i64>().prop_map(|n| Cursor { before_id: n }.encode()),
        ],
    ) {
        match Cursor::decode(&text) {
            // Whatever decodes re-encodes to a cursor meaning the same page.
            Ok(cursor) => prop_assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor)),
            Err(err) => check_filter_error(&err, "cursor", &text)?,
        }
    }

    #[test]
    fn cursor_round_trips_every_positive_id(before_id in 1..=i64::MAX) {
        let cursor = Cursor { before_id };
        prop_assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
    }
}

// ---------------------------------------------------------------------------
// 4. Connection errors show no password
// ---------------------------------------------------------------------------

/// Every 6-character piece of `secret` (or all of it, if shorter) found
/// in `shown`.
fn pieces_shown(shown: &str, secret: &str) -> Vec<String> {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(chars.len().min(6))
        .map(|w| w.iter().collect::<String>())
        .filter(|piece| shown.contains(piece.as_str()))
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Connecting with a printable password, raw or encoded, to a port
    /// nothing listens on: the AMQP error (both connection paths) and
    /// the store's error show no piece of it. The user is `localhost`,
    /// so that a URL a raw password makes lapin or sqlx misread (host =
    /// the user) fails without a DNS lookup.
    #[test]
    fn connect_errors_show_no_password(
        password in "[ -~]{8,24}",
        encoded in proptest::bool::ANY,
    ) {
        let pw = if encoded {
            url::form_urlencoded::byte_serialize(password.as_bytes()).collect()
        } else {
            password.clone()
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let amqp = AmqpConfig::new(
            &format!("amqp://localhost:{pw}@127.0.0.1:1/%2f"),
            "x",
            "q",
            "w",
        );
        let db = format!("postgres://localhost:{pw}@127.0.0.1:1/db");
        let shown = rt.block_on(async {
            let limit = Duration::from_secs(5);
            let guarded = tokio::time::timeout(limit, pusher_relay::amqp::connect(&amqp, "t")).await;
            let plain = tokio::time::timeout(limit, pusher_relay::amqp::connect_confirmed(&amqp, "t")).await;
            let store = tokio::time::timeout(limit, Store::connect(&db)).await;
            format!(
                "{} | {} | {}",
                guarded.map_or("timeout".into(), |r| r.err().map(|e| e.to_string()).unwrap_or_default()),
                plain.map_or("timeout".into(), |r| r.err().map(|e| e.to_string()).unwrap_or_default()),
                store.map_or("timeout".into(), |r| r.err().map(|e| e.to_string()).unwrap_or_default()),
            )
        });
        for secret in [&password, &pw] {
            let leaked = pieces_shown(&shown, secret);
            prop_assert!(leaked.is_empty(), "{:?} of {:?} in {}", leaked, secret, shown);
        }
    }
}
