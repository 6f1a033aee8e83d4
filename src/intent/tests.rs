//! Decoding end to end: every type's mapping, the fields' rules, the
//! templates, and the errors with their reasons.

use super::*;
use crate::pusher::validate::DEFAULT_MAX_EVENT_BYTES;
use serde_json::{json, Value};

const NOW_MS: i64 = 1_700_000_009_999;
const ENQUEUED_MS: i64 = 1_690_000_005_500;
const CREATED_MS: i64 = 1_680_000_001_234;

fn ctx(templates: &ChannelTemplates) -> DecodeContext<'_> {
    DecodeContext {
        message_id: Some("amqp-id"),
        enqueued_at_ms: Some(ENQUEUED_MS),
        now_ms: NOW_MS,
        max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        templates,
    }
}

fn decode_value(body: Value, ctx: &DecodeContext<'_>) -> Result<Intent, IntentError> {
    decode(body.to_string().as_bytes(), ctx)
}

fn decode_default(body: Value) -> Result<Intent, IntentError> {
    decode_value(body, &ctx(&ChannelTemplates::default()))
}

fn data(intent: &Intent) -> Value {
    serde_json::from_str(&intent.trigger.data).expect("data is JSON")
}

#[test]
fn notification_goes_to_the_users_private_channel_with_default_level() {
    let intent = decode_default(json!({
        "type": "notification", "id": "n-1", "user_id": 123,
        "message": "shipped", "created_at": CREATED_MS
    }))
    .unwrap();
    assert_eq!(intent.id, "n-1");
    assert_eq!(intent.kind, "notification");
    assert_eq!(intent.created_at_ms, Some(CREATED_MS));
    assert_eq!(intent.trigger.channels, ["private-user-123"]);
    assert_eq!(intent.trigger.event, "notification");
    // Exact text pins the contract's key order.
    assert_eq!(
        intent.trigger.data,
        r#"{"id":"n-1","message":"shipped","type":"info","timestamp":1680000001}"#
    );
    assert_eq!(intent.trigger.socket_id, None);
    assert_eq!(intent.trigger.info, None);
}

#[test]
fn notification_level_becomes_the_data_type() {
    let intent = decode_default(json!({
        "type": "notification", "user_id": "u1", "message": "m", "level": "success"
    }))
    .unwrap();
    assert_eq!(data(&intent)["type"], "success");
}

#[test]
fn announcement_goes_to_system_with_default_priority() {
    let intent = decode_default(json!({"type": "announcement", "message": "maintenance"})).unwrap();
    assert_eq!(intent.trigger.channels, ["system"]);
    assert_eq!(intent.trigger.event, "announcement");
    assert_eq!(
        data(&intent),
        json!({"id": "amqp-id", "message": "maintenance", "priority": "normal", "timestamp": 1_690_000_005})
    );
    let high = decode_default(json!({"type": "announcement", "message": "m", "priority": "high"}))
        .unwrap();
    assert_eq!(data(&high)["priority"], "high");
}

#[test]
fn chat_message_goes_to_the_room_as_new_message() {
    let intent = decode_default(json!({
        "type": "chat.message", "id": "c-1", "room_id": "lobby", "user_id": 7,
        "user_name": "Ann", "message": "hi"
    }))
    .unwrap();
    assert_eq!(intent.trigger.channels, ["chat-room-lobby"]);
    assert_eq!(intent.trigger.event, "new-message");
    assert_eq!(
        intent.trigger.data,
        r#"{"id":"c-1","user_id":7,"user_name":"Ann","message":"hi","room_id":"lobby","timestamp":1690000005}"#
    );
}

#[test]
fn chat_joined_and_left_go_to_the_room() {
    for (kind, event) in [("chat.joined", "user-joined"), ("chat.left", "user-left")] {
        let intent = decode_default(json!({
            "type": kind, "room_id": 5, "user_id": "u7", "user_name": "Ann"
        }))
        .unwrap();
        assert_eq!(intent.kind, kind);
        assert_eq!(intent.trigger.channels, ["chat-room-5"]);
        assert_eq!(intent.trigger.event, event);
        assert_eq!(
            data(&intent),
            json!({"user_id": "u7", "user_name": "Ann", "timestamp": 1_690_000_005})
        );
    }
}

#[test]
fn order_status_goes_to_order_and_customer_channels() {
    let intent = decode_default(json!({
        "type": "order.status", "order_id": 99, "status": "shipped", "customer_id": "c-5"
    }))
    .unwrap();
    assert_eq!(
        intent.trigger.channels,
        ["private-order-99", "private-customer-c-5"]
    );
    assert_eq!(intent.trigger.event, "order-status-changed");
    assert_eq!(
        intent.trigger.data,
        r#"{"order_id":99,"status":"shipped","timestamp":1690000005}"#
    );
}

#[test]
fn order_status_without_customer_goes_to_the_order_channel_only() {
    for body in [
        json!({"type": "order.status", "order_id": "A1", "status": "paid"}),
        json!({"type": "order.status", "order_id": "A1", "status": "paid", "customer_id": null}),
    ] {
        let intent = decode_default(body).unwrap();
        assert_eq!(intent.trigger.channels, ["private-order-A1"]);
        assert_eq!(data(&intent)["order_id"], "A1");
    }
}

#[test]
fn dashboard_metrics_sends_the_metrics_object() {
    let intent = decode_default(json!({
        "type": "dashboard.metrics", "metrics": {"users": 10, "load": 0.5}
    }))
    .unwrap();
    assert_eq!(intent.trigger.channels, ["dashboard"]);
    assert_eq!(intent.trigger.event, "metrics-update");
    assert_eq!(
        data(&intent),
        json!({"metrics": {"users": 10, "load": 0.5}, "timestamp": 1_690_000_005})
    );
}

#[test]
fn inventory_stock_sends_product_and_quantity() {
    let intent = decode_default(json!({
        "type": "inventory.stock", "product_id": "sku-1", "quantity": 3
    }))
    .unwrap();
    assert_eq!(intent.trigger.channels, ["inventory"]);
    assert_eq!(intent.trigger.event, "stock-update");
    assert_eq!(
        intent.trigger.data,
        r#"{"product_id":"sku-1","quantity":3,"timestamp":1690000005}"#
    );
}

#[test]
fn presence_activity_goes_to_presence_activity() {
    let intent = decode_default(json!({
        "type": "presence.activity", "user_id": 1, "activity": "typing"
    }))
    .unwrap();
    assert_eq!(intent.trigger.channels, ["presence-activity"]);
    assert_eq!(intent.trigger.event, "user-activity");
    assert_eq!(
        data(&intent),
        json!({"user_id": 1, "activity": "typing", "timestamp": 1_690_000_005})
    );
}

#[test]
fn event_passes_channels_event_data_and_info_through() {
    let intent = decode_default(json!({
        "type": "event", "channels": ["a", "b"], "event": "my-event",
        "data": {"x": 1}, "info": "subscription_count"
    }))
    .unwrap();
    assert_eq!(intent.trigger.channels, ["a", "b"]);
    assert_eq!(intent.trigger.event, "my-event");
    assert_eq!(intent.trigger.data, r#"{"x":1}"#);
    assert_eq!(intent.trigger.info.as_deref(), Some("subscription_count"));
}

#[test]
fn event_string_data_is_sent_as_is_and_other_json_compactly() {
    let cases = [
        (
            json!("{\"already\": \"encoded\"}"),
            "{\"already\": \"encoded\"}",
        ),
        (json!("plain text"), "plain text"),
        (json!([1, 2]), "[1,2]"),
        (json!(42), "42"),
        (json!(null), "null"),
    ];
    for (given, sent) in cases {
        let intent = decode_default(json!({
            "type": "event", "channels": ["a"], "event": "e", "data": given
        }))
        .unwrap();
        assert_eq!(intent.trigger.data, sent);
    }
}

#[test]
fn event_with_101_channels_is_rejected() {
    let channels: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let err = decode_default(json!({
        "type": "event", "channels": channels, "event": "e", "data": {}
    }))
    .unwrap_err();
    assert_eq!(
        err,
        IntentError::Invalid {
            field: "channels",
            source: ValidationError::TooManyChannels { count: 101 }
        }
    );
    assert_eq!(err.reason(), DecodeReason::Invalid);
    assert_eq!(
        err.to_string(),
        "intent field \"channels\" is invalid: 101 channels in one trigger (limit 100)"
    );
}

#[test]
fn event_with_no_channels_is_rejected() {
    let err = decode_default(json!({"type": "event", "channels": [], "event": "e", "data": {}}))
        .unwrap_err();
    assert_eq!(
        err,
        IntentError::Invalid {
            field: "channels",
            source: ValidationError::NoChannels
        }
    );
}

#[test]
fn encrypted_channel_with_another_channel_is_rejected() {
    let err = decode_default(json!({
        "type": "event", "channels": ["private-encrypted-x", "y"], "event": "e", "data": {}
    }))
    .unwrap_err();
    assert_eq!(
        err,
        IntentError::Invalid {
            field: "channels",
            source: ValidationError::EncryptedMultiChannel { count: 2 }
        }
    );
    assert_eq!(err.field(), Some("channels"));
}

#[test]
fn legacy_templates_restore_the_seed_apps_public_names() {
    let legacy = ChannelTemplates::legacy();
    let ctx = ctx(&legacy);
    let note = decode_value(
        json!({"type": "notification", "user_id": 123, "message": "m"}),
        &ctx,
    )
    .unwrap();
    assert_eq!(note.trigger.channels, ["user-123"]);
    let order = decode_value(
        json!({"type": "order.status", "order_id": 9, "status": "s", "customer_id": 4}),
        &ctx,
    )
    .unwrap();
    assert_eq!(order.trigger.channels, ["order-9", "customer-4"]);
    assert_eq!(legacy.validate(), Ok(()));
}

#[test]
fn default_templates_are_valid_and_private_where_guessable() {
    let templates = ChannelTemplates::default();
    assert_eq!(templates.validate(), Ok(()));
    assert_eq!(templates.notification, "private-user-{user_id}");
    assert_eq!(templates.order, "private-order-{order_id}");
    assert_eq!(templates.customer, "private-customer-{customer_id}");
    assert_eq!(templates.chat, "chat-room-{room_id}");
}

#[test]
fn custom_template_may_use_every_identifier_its_intents_carry() {
    let templates = ChannelTemplates {
        chat: "room-{room_id}-u-{user_id}".into(),
        customer: "cust-{customer_id}-{order_id}".into(),
        inventory: "stock-{product_id}".into(),
        ..ChannelTemplates::default()
    };
    assert_eq!(templates.validate(), Ok(()));
    let ctx = ctx(&templates);
    let chat = decode_value(
        json!({"type": "chat.left", "room_id": 1, "user_id": 2, "user_name": "n"}),
        &ctx,
    )
    .unwrap();
    assert_eq!(chat.trigger.channels, ["room-1-u-2"]);
    let stock = decode_value(
        json!({"type": "inventory.stock", "product_id": 8, "quantity": 1.5}),
        &ctx,
    )
    .unwrap();
    assert_eq!(stock.trigger.channels, ["stock-8"]);
    assert_eq!(data(&stock)["quantity"], 1.5);
}

#[test]
fn template_validation_names_the_template_and_the_problem() {
    let cases = [
        (
            ChannelTemplates { dashboard: "dash-{user_id}".into(), ..Default::default() },
            "channel template \"dash-{user_id}\" is invalid: dashboard template: unknown placeholder {user_id} (allowed: none)",
        ),
        (
            ChannelTemplates { order: "order-{customer_id}".into(), ..Default::default() },
            "channel template \"order-{customer_id}\" is invalid: order template: unknown placeholder {customer_id} (allowed: {order_id})",
        ),
        (
            ChannelTemplates { chat: "room-{room_id".into(), ..Default::default() },
            "channel template \"room-{room_id\" is invalid: chat template: '{' without a matching '}'",
        ),
        (
            ChannelTemplates { chat: "room-}".into(), ..Default::default() },
            "channel template \"room-}\" is invalid: chat template: '}' without a matching '{'",
        ),
        (
            ChannelTemplates { announcement: "sys tem".into(), ..Default::default() },
            "channel template \"sys tem\" is invalid: announcement template: channel \"sys tem\" has character ' ' (allowed: A-Z a-z 0-9 _ - = @ , . ;)",
        ),
        (
            ChannelTemplates { announcement: String::new(), ..Default::default() },
            "channel template \"\" is invalid: announcement template: channel name is empty",
        ),
    ];
    for (templates, message) in cases {
        let err = IntentError::from(templates.validate().unwrap_err());
        assert_eq!(err.to_string(), message);
        assert_eq!(err.reason(), DecodeReason::Invalid);
        assert_eq!(err.field(), None);
    }
}

#[test]
fn unvalidated_bad_template_fails_decoding_as_a_template_error() {
    let templates = ChannelTemplates {
        notification: "user-{id}".into(),
        ..Default::default()
    };
    let err = decode_value(
        json!({"type": "notification", "user_id": 1, "message": "m"}),
        &ctx(&templates),
    )
    .unwrap_err();
    assert!(matches!(err, IntentError::Template { ref template, .. } if template == "user-{id}"));
}

#[test]
fn integer_and_string_ids_render_the_same_channel_and_keep_their_json_type() {
    let int = decode_default(json!({"type": "presence.activity", "user_id": 42, "activity": "a"}))
        .unwrap();
    let text =
        decode_default(json!({"type": "presence.activity", "user_id": "42", "activity": "a"}))
            .unwrap();
    let int_note =
        decode_default(json!({"type": "notification", "user_id": 42, "message": "m"})).unwrap();
    let text_note =
        decode_default(json!({"type": "notification", "user_id": "42", "message": "m"})).unwrap();
    assert_eq!(int_note.trigger.channels, text_note.trigger.channels);
    assert_eq!(data(&int)["user_id"], json!(42));
    assert_eq!(data(&text)["user_id"], json!("42"));
    let negative =
        decode_default(json!({"type": "notification", "user_id": -1, "message": "m"})).unwrap();
    assert_eq!(negative.trigger.channels, ["private-user--1"]);
}

#[test]
fn identifier_that_is_not_a_string_or_integer_is_rejected() {
    for bad in [
        json!(1.5),
        json!(""),
        json!(true),
        json!({"id": 1}),
        json!([1]),
    ] {
        let err = decode_default(json!({"type": "notification", "user_id": bad, "message": "m"}))
            .unwrap_err();
        assert_eq!(
            err,
            IntentError::WrongFieldType {
                kind: "notification".into(),
                field: "user_id",
                expected: "a non-empty string or an integer"
            }
        );
    }
}

#[test]
fn identifier_outside_the_channel_charset_is_rejected_via_the_channel() {
    let err = decode_default(json!({
        "type": "chat.message", "room_id": "a b", "user_id": 1, "user_name": "n", "message": "m"
    }))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "intent field \"channels\" is invalid: channel \"chat-room-a b\" has character ' ' (allowed: A-Z a-z 0-9 _ - = @ , . ;)"
    );
}

#[test]
fn socket_id_is_validated_and_passed_through() {
    let intent = decode_default(json!({
        "type": "announcement", "message": "m", "socket_id": "123.456"
    }))
    .unwrap();
    assert_eq!(intent.trigger.socket_id.as_deref(), Some("123.456"));

    let err = decode_default(json!({"type": "announcement", "message": "m", "socket_id": "1.1:"}))
        .unwrap_err();
    assert_eq!(
        err,
        IntentError::Invalid {
            field: "socket_id",
            source: ValidationError::SocketId {
                socket_id: "1.1:".into()
            }
        }
    );
    assert_eq!(err.reason(), DecodeReason::Invalid);
    assert_eq!(err.field(), Some("socket_id"));
    assert_eq!(
        err.to_string(),
        "intent field \"socket_id\" is invalid: socket id \"1.1:\" is not of the form digits.digits (e.g. \"123.456\")"
    );
}

#[test]
fn data_of_exactly_the_limit_is_accepted_and_one_byte_more_is_too_large() {
    let templates = ChannelTemplates::default();
    let payload = "x".repeat(100);
    let mut ctx = ctx(&templates);
    ctx.max_event_bytes = 100;
    let body = json!({"type": "event", "channels": ["a"], "event": "e", "data": payload});
    assert_eq!(
        decode_value(body.clone(), &ctx).unwrap().trigger.data.len(),
        100
    );

    ctx.max_event_bytes = 99;
    let err = decode_value(body, &ctx).unwrap_err();
    assert_eq!(
        err,
        IntentError::Invalid {
            field: "data",
            source: ValidationError::DataTooLarge {
                channel: None,
                bytes: 100,
                limit: 99
            }
        }
    );
    assert_eq!(err.reason(), DecodeReason::TooLarge);
    assert_eq!(err.field(), Some("data"));
    assert_eq!(
        err.to_string(),
        "intent field \"data\" is invalid: data is 100 bytes (limit 99)"
    );
}

#[test]
fn typed_intent_data_is_measured_after_encoding() {
    let templates = ChannelTemplates::default();
    let mut ctx = ctx(&templates);
    ctx.max_event_bytes = 50;
    let err = decode_value(
        json!({"type": "announcement", "message": "x".repeat(40)}),
        &ctx,
    )
    .unwrap_err();
    assert_eq!(err.reason(), DecodeReason::TooLarge);
}

#[test]
fn bad_event_name_is_rejected() {
    let empty = decode_default(json!({"type": "event", "channels": ["a"], "event": "", "data": 1}))
        .unwrap_err();
    assert_eq!(
        empty,
        IntentError::Invalid {
            field: "event",
            source: ValidationError::EventNameEmpty
        }
    );
    let long = decode_default(json!({
        "type": "event", "channels": ["a"], "event": "e".repeat(201), "data": 1
    }))
    .unwrap_err();
    assert_eq!(
        long,
        IntentError::Invalid {
            field: "event",
            source: ValidationError::EventNameTooLong { len: 201 }
        }
    );
}

#[test]
fn id_comes_from_body_then_message_id_then_is_generated() {
    let templates = ChannelTemplates::default();
    let mut ctx = ctx(&templates);
    let body = json!({"type": "announcement", "message": "m"});
    let with_id = json!({"type": "announcement", "message": "m", "id": "body-id"});

    assert_eq!(decode_value(with_id, &ctx).unwrap().id, "body-id");
    assert_eq!(decode_value(body.clone(), &ctx).unwrap().id, "amqp-id");

    ctx.message_id = None;
    let first = decode_value(body.clone(), &ctx).unwrap();
    let second = decode_value(body.clone(), &ctx).unwrap();
    assert!(
        first.id.starts_with(&format!("gen-{NOW_MS}-")),
        "{}",
        first.id
    );
    assert_ne!(first.id, second.id);
    assert_eq!(data(&first)["id"], first.id.as_str());

    ctx.message_id = Some("");
    assert!(decode_value(body, &ctx).unwrap().id.starts_with("gen-"));
}

#[test]
fn timestamp_comes_from_created_at_then_enqueue_time_then_now() {
    let templates = ChannelTemplates::default();
    let mut ctx = ctx(&templates);
    let created = json!({"type": "announcement", "message": "m", "created_at": CREATED_MS});
    let plain = json!({"type": "announcement", "message": "m"});

    assert_eq!(
        data(&decode_value(created, &ctx).unwrap())["timestamp"],
        1_680_000_001
    );
    let enqueued = decode_value(plain.clone(), &ctx).unwrap();
    assert_eq!(data(&enqueued)["timestamp"], 1_690_000_005);
    assert_eq!(enqueued.created_at_ms, None);

    ctx.enqueued_at_ms = None;
    assert_eq!(
        data(&decode_value(plain, &ctx).unwrap())["timestamp"],
        1_700_000_009
    );
}

#[test]
fn created_at_must_be_integer_milliseconds() {
    let err = decode_default(json!({"type": "announcement", "message": "m", "created_at": "2024"}))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "announcement intent field \"created_at\" must be an integer (unix ms)"
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let intent = decode_default(json!({
        "type": "announcement", "message": "m", "extra": {"nested": true}, "info": "ignored"
    }))
    .unwrap();
    assert_eq!(intent.trigger.info, None);
    assert!(data(&intent).get("extra").is_none());
}

#[test]
fn body_that_is_not_json_is_rejected() {
    let templates = ChannelTemplates::default();
    let err = decode(b"{not json", &ctx(&templates)).unwrap_err();
    assert!(matches!(err, IntentError::NotJson { .. }));
    assert!(
        err.to_string().starts_with("intent body is not JSON: "),
        "{err}"
    );
    assert_eq!(err.reason(), DecodeReason::Invalid);
    assert_eq!(err.field(), None);

    let not_utf8 = decode(b"\"\xff\"", &ctx(&templates)).unwrap_err();
    assert!(matches!(not_utf8, IntentError::NotJson { .. }));
}

#[test]
fn body_that_is_not_an_object_is_rejected() {
    let err = decode_default(json!(["type", "announcement"])).unwrap_err();
    assert_eq!(err, IntentError::NotObject);
    assert_eq!(err.to_string(), "intent body is not a JSON object");
    assert_eq!(err.reason(), DecodeReason::Invalid);
}

/// Decodes a body given as text, for what `json!` cannot write.
fn decode_text(body: &str) -> Result<Intent, IntentError> {
    decode(body.as_bytes(), &ctx(&ChannelTemplates::default()))
}

#[test]
fn a_field_given_twice_is_read_at_its_last_value_as_a_value_map_keeps_it() {
    let intent = decode_text(
        r#"{"type":"announcement","message":"first","message":"second","priority":null}"#,
    )
    .unwrap();
    assert_eq!(data(&intent)["message"], "second");
    assert_eq!(data(&intent)["priority"], "normal");
}

#[test]
fn escaped_names_and_strings_read_as_their_text() {
    let intent =
        decode_text(r#"{"\u0074ype":"notification","user_id":"u\u0031","message":"a\"b\nc"}"#)
            .unwrap();
    assert_eq!(intent.trigger.channels, ["private-user-u1"]);
    assert_eq!(data(&intent)["message"], "a\"b\nc");
}

#[test]
fn a_body_serde_json_cannot_read_as_a_value_fails_as_it_always_did() {
    // A number out of f64's range in a field no type reads: the body is
    // still not JSON to a `Value`, so not to the decoder either.
    let body = r#"{"type":"announcement","message":"m","extra":[1e400]}"#;
    let detail = serde_json::from_str::<Value>(body).unwrap_err().to_string();
    assert_eq!(
        decode_text(body).unwrap_err(),
        IntentError::NotJson { detail }
    );

    // serde_json's `raw_value` feature (a dependency enables it) reads an
    // object whose first key is its token as the value in that string.
    let token = r#"{"$serde_json::private::RawValue":"[1]"}"#;
    let expected = match serde_json::from_str::<Value>(token) {
        Ok(Value::Object(_)) => IntentError::MissingType,
        _ => IntentError::NotObject,
    };
    assert_eq!(decode_text(token).unwrap_err(), expected);
}

#[test]
fn body_without_a_string_type_is_rejected() {
    for body in [json!({"message": "m"}), json!({"type": 1})] {
        let err = decode_default(body).unwrap_err();
        assert_eq!(err, IntentError::MissingType);
        assert_eq!(err.to_string(), "intent has no string field \"type\"");
        assert_eq!(err.field(), Some("type"));
    }
}

#[test]
fn unknown_type_is_reported_before_other_problems() {
    let err = decode_default(json!({"type": "chat.typing", "socket_id": "bad"})).unwrap_err();
    assert_eq!(
        err,
        IntentError::UnknownType {
            kind: "chat.typing".into()
        }
    );
    assert_eq!(err.reason(), DecodeReason::Invalid);
    assert_eq!(err.field(), Some("type"));
    assert_eq!(
        err.to_string(),
        "unknown intent type \"chat.typing\" (known: notification, announcement, chat.message, \
         chat.joined, chat.left, order.status, dashboard.metrics, inventory.stock, \
         presence.activity, event)"
    );
}

#[test]
fn missing_field_names_the_type_and_field() {
    let err = decode_default(json!({
        "type": "chat.message", "user_id": 1, "user_name": "n", "message": "m"
    }))
    .unwrap_err();
    assert_eq!(
        err,
        IntentError::MissingField {
            kind: "chat.message".into(),
            field: "room_id"
        }
    );
    assert_eq!(
        err.to_string(),
        "chat.message intent is missing field \"room_id\""
    );
    assert_eq!(err.reason(), DecodeReason::Invalid);
    assert_eq!(err.field(), Some("room_id"));
}

#[test]
fn null_counts_as_missing() {
    let err = decode_default(json!({"type": "announcement", "message": null})).unwrap_err();
    assert_eq!(
        err,
        IntentError::MissingField {
            kind: "announcement".into(),
            field: "message"
        }
    );
    let event =
        decode_default(json!({"type": "event", "channels": ["a"], "event": "e"})).unwrap_err();
    assert_eq!(
        event,
        IntentError::MissingField {
            kind: "event".into(),
            field: "data"
        }
    );
}

#[test]
fn wrong_field_types_name_what_was_expected() {
    let cases = [
        (
            json!({"type": "announcement", "message": 5}),
            "announcement intent field \"message\" must be a string",
        ),
        (
            json!({"type": "announcement", "message": "m", "id": 5}),
            "announcement intent field \"id\" must be a string",
        ),
        (
            json!({"type": "announcement", "message": "m", "id": ""}),
            "announcement intent field \"id\" must be a non-empty string",
        ),
        (
            json!({"type": "dashboard.metrics", "metrics": [1]}),
            "dashboard.metrics intent field \"metrics\" must be an object",
        ),
        (
            json!({"type": "inventory.stock", "product_id": 1, "quantity": "3"}),
            "inventory.stock intent field \"quantity\" must be a number",
        ),
        (
            json!({"type": "event", "channels": "a", "event": "e", "data": 1}),
            "event intent field \"channels\" must be an array of strings",
        ),
        (
            json!({"type": "event", "channels": ["a", 1], "event": "e", "data": 1}),
            "event intent field \"channels\" must be an array of strings",
        ),
        (
            json!({"type": "event", "channels": ["a"], "event": "e", "data": 1, "info": 1}),
            "event intent field \"info\" must be a string",
        ),
    ];
    for (body, message) in cases {
        let err = decode_default(body).unwrap_err();
        assert!(matches!(err, IntentError::WrongFieldType { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
        assert_eq!(err.reason(), DecodeReason::Invalid);
    }
}
