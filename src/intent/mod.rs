//! Wire contract version 1: an AMQP message body in, one Pusher trigger out.
//!
//! Every intent type is a thin mapping onto the generic `event` type: it names
//! the channels (from configurable templates), the event name and the `data`
//! JSON. Decoding validates everything Pusher would refuse, so an intent that
//! passes here fails at Pusher only for reasons outside the message (quota,
//! credentials, outage), and one that fails is dead-lettered with the field.
//!
//! Rules shared by every type:
//! - a field whose value is JSON `null` counts as absent (except the `event`
//!   type's `data`, which is sent as given, `null` included);
//! - identifiers (`user_id`, `room_id`, `order_id`, `customer_id`,
//!   `product_id`) are non-empty strings or integers; channel names render
//!   integers in decimal, `data` keeps each identifier as the JSON it was;
//! - unknown fields are ignored, so producers may add fields before we read them.
//!
//! The `data` objects built here list their keys in the contract's order
//! (serialized from structs); values taken from the body as JSON (`metrics`,
//! the `event` type's non-string `data`) are re-serialized compactly, with
//! object keys in alphabetical order because `serde_json`'s map is sorted.
//!
//! The parts: [`fields`] reads and checks the body's fields, [`templates`]
//! fills the channel templates, [`mappers`] holds one mapping per type, and
//! this module decodes, validates what Pusher would refuse, and names the
//! errors.

use crate::pusher::validate::{self, ValidationError};

mod fields;
mod mappers;
mod templates;
#[cfg(test)]
mod tests;

/// Channel name templates: a setting, so the type lives in config.
pub use crate::config::ChannelTemplates;

use fields::{Common, Field, Fields};

/// What a decoded intent asks Pusher to do: the client's own request type,
/// so a decoded intent is sent without conversion.
pub use crate::pusher::Trigger;

/// One decoded, validated intent.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// Intent id: the body's `id`, else the AMQP `message_id`, else generated.
    /// Used to suppress redeliveries and to name dead letters.
    pub id: String,
    /// The `type` field, e.g. `chat.message`.
    pub kind: String,
    /// The body's `created_at` (unix ms), when the producer gave one.
    pub created_at_ms: Option<i64>,
    /// What to send.
    pub trigger: Trigger,
}

impl Intent {
    /// What shards route on (the `ordering-key` header): its last channel.
    /// One channel's intents then share a shard and keep their order across
    /// workers. An `order.status` with a customer is keyed by the
    /// customer's channel, which also keeps its order's channel in order (an
    /// order has one customer); for other intents to several channels, the
    /// order across workers holds on the last one.
    pub fn ordering_key(&self) -> &str {
        self.trigger
            .channels
            .last()
            .map_or(&self.id, String::as_str)
    }
}

/// What decoding needs besides the body: AMQP properties, clock, settings.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    /// AMQP `message_id`, the intent id when the body has no `id`.
    pub message_id: Option<&'a str>,
    /// AMQP `timestamp` in unix ms, the event time when the body has no `created_at`.
    pub enqueued_at_ms: Option<i64>,
    /// Current unix ms; passed in so tests control the clock.
    pub now_ms: i64,
    /// Largest `data` accepted, in bytes (`PUSHER_MAX_EVENT_BYTES`).
    pub max_event_bytes: usize,
    /// Channel name templates.
    pub templates: &'a ChannelTemplates,
}

/// Why an intent can never be sent; `reason()` gives the dead-letter reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntentError {
    /// The body is not valid UTF-8 JSON.
    #[error("intent body is not JSON: {detail}")]
    NotJson {
        /// The parser's message, with line and column.
        detail: String,
    },

    /// The body is JSON but not an object.
    #[error("intent body is not a JSON object")]
    NotObject,

    /// The body has no `type`, or it is not a string.
    #[error("intent has no string field \"type\"")]
    MissingType,

    /// The `type` is not one of the contract's types.
    #[error("unknown intent type {kind:?} (known: {})", KNOWN_TYPES.join(", "))]
    UnknownType {
        /// The `type` given.
        kind: String,
    },

    /// A required field is absent or `null`.
    #[error("{kind} intent is missing field \"{field}\"")]
    MissingField {
        /// The intent type.
        kind: String,
        /// The missing field.
        field: &'static str,
    },

    /// A field has the wrong JSON type.
    #[error("{kind} intent field \"{field}\" must be {expected}")]
    WrongFieldType {
        /// The intent type.
        kind: String,
        /// The offending field.
        field: &'static str,
        /// What it must be, e.g. "a string".
        expected: &'static str,
    },

    /// A channel template is malformed; a configuration error, which
    /// [`ChannelTemplates::validate`] reports at start, so decoding meets
    /// it only with templates that were not loaded from the settings.
    #[error("channel template {template:?} is invalid: {detail}")]
    Template {
        /// The template text.
        template: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A value breaks one of Pusher's rules.
    #[error("intent field \"{field}\" is invalid: {source}")]
    Invalid {
        /// The field it came from: `channels`, `event`, `data` or `socket_id`.
        field: &'static str,
        /// The rule it broke.
        source: ValidationError,
    },
}

/// Why an undecodable intent is dead-lettered: the reasons of the
/// dead-letter store that decoding can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeReason {
    /// `data` is over `PUSHER_MAX_EVENT_BYTES` (`too_large`).
    TooLarge,
    /// Anything else (`invalid`).
    Invalid,
}

impl IntentError {
    /// The dead-letter reason: [`DecodeReason::TooLarge`] when `data` is
    /// over the limit, [`DecodeReason::Invalid`] for everything else.
    pub fn reason(&self) -> DecodeReason {
        match self {
            Self::Invalid {
                source: ValidationError::DataTooLarge { .. },
                ..
            } => DecodeReason::TooLarge,
            _ => DecodeReason::Invalid,
        }
    }

    /// The body field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::MissingType | Self::UnknownType { .. } => Some("type"),
            Self::MissingField { field, .. }
            | Self::WrongFieldType { field, .. }
            | Self::Invalid { field, .. } => Some(field),
            Self::NotJson { .. } | Self::NotObject | Self::Template { .. } => None,
        }
    }
}

/// Every `type` the contract defines, in the order of the wire contract table (docs/producers.md).
pub const KNOWN_TYPES: [&str; 10] = [
    "notification",
    "announcement",
    "chat.message",
    "chat.joined",
    "chat.left",
    "order.status",
    "dashboard.metrics",
    "inventory.stock",
    "presence.activity",
    "event",
];

/// Decodes and validates one intent body.
pub fn decode(body: &[u8], ctx: &DecodeContext<'_>) -> Result<Intent, IntentError> {
    let entries = fields::read(body)?;
    let kind = match fields::find(&entries, "type") {
        Some(Field::Str(kind)) => &**kind,
        _ => return Err(IntentError::MissingType),
    };
    // Choosing the mapping first makes an unknown type the reported error,
    // rather than whatever else is wrong with a body we do not understand.
    let Some(map_type) = mappers::for_type(kind) else {
        return Err(IntentError::UnknownType {
            kind: kind.to_owned(),
        });
    };
    let fields = Fields {
        kind,
        entries: &entries,
    };
    let common = Common::read(&fields, ctx)?;
    let mapped = map_type(&fields, &common, ctx.templates)?;

    validate::validate_channels(&mapped.channels).map_err(invalid("channels"))?;
    validate::validate_event_name(&mapped.event).map_err(invalid("event"))?;
    validate::validate_data_size(None, &mapped.data, ctx.max_event_bytes)
        .map_err(invalid("data"))?;

    Ok(Intent {
        id: common.id,
        kind: kind.to_owned(),
        created_at_ms: common.created_at_ms,
        trigger: Trigger {
            event: mapped.event,
            channels: mapped.channels,
            data: mapped.data,
            socket_id: common.socket_id,
            info: mapped.info,
        },
    })
}

/// Wraps a validation error with the field it came from.
pub(super) fn invalid(field: &'static str) -> impl Fn(ValidationError) -> IntentError {
    move |source| IntentError::Invalid { field, source }
}
