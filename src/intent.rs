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

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::pusher::validate::{self, ValidationError};

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

/// Channel name templates, `{field}` placeholders filled from the intent.
///
/// A template may use only identifier fields that every intent using it
/// carries (see [`ChannelTemplates::validate`]); literal text must be from
/// Pusher's channel charset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTemplates {
    /// `notification`; placeholders: `{user_id}`.
    pub notification: String,
    /// `announcement`; no placeholders.
    pub announcement: String,
    /// `chat.message`, `chat.joined`, `chat.left`; placeholders: `{room_id}`, `{user_id}`.
    pub chat: String,
    /// `order.status`; placeholders: `{order_id}`.
    pub order: String,
    /// `order.status` with a `customer_id`; placeholders: `{customer_id}`, `{order_id}`.
    pub customer: String,
    /// `dashboard.metrics`; no placeholders.
    pub dashboard: String,
    /// `inventory.stock`; placeholders: `{product_id}`.
    pub inventory: String,
    /// `presence.activity`; placeholders: `{user_id}`.
    pub presence_activity: String,
}

impl Default for ChannelTemplates {
    /// Per-user, per-order and per-customer channels are `private-`, because
    /// anyone can subscribe to a public channel whose name they guess.
    fn default() -> Self {
        Self {
            notification: "private-user-{user_id}".into(),
            order: "private-order-{order_id}".into(),
            customer: "private-customer-{customer_id}".into(),
            ..Self::legacy()
        }
    }
}

impl ChannelTemplates {
    /// The seed app's public channel names, for apps whose clients already
    /// subscribe to `user-{id}`, `order-{id}` and `customer-{id}`.
    pub fn legacy() -> Self {
        Self {
            notification: "user-{user_id}".into(),
            announcement: "system".into(),
            chat: "chat-room-{room_id}".into(),
            order: "order-{order_id}".into(),
            customer: "customer-{customer_id}".into(),
            dashboard: "dashboard".into(),
            inventory: "inventory".into(),
            presence_activity: "presence-activity".into(),
        }
    }

    /// Checks each template uses only its type's placeholders and renders a
    /// valid channel name; call it at start so a bad setting fails there,
    /// not as a dead letter per message.
    pub fn validate(&self) -> Result<(), IntentError> {
        for slot in Slot::ALL {
            let template = self.get(slot);
            let sample: Vec<(&str, &str)> = slot.placeholders().iter().map(|&p| (p, "0")).collect();
            let channel = render(template, slot, &sample)?;
            validate::validate_channel(&channel).map_err(|err| IntentError::Template {
                template: template.to_owned(),
                detail: format!("{} template: {err}", slot.name()),
            })?;
        }
        Ok(())
    }

    /// The template for one slot.
    fn get(&self, slot: Slot) -> &str {
        match slot {
            Slot::Notification => &self.notification,
            Slot::Announcement => &self.announcement,
            Slot::Chat => &self.chat,
            Slot::Order => &self.order,
            Slot::Customer => &self.customer,
            Slot::Dashboard => &self.dashboard,
            Slot::Inventory => &self.inventory,
            Slot::PresenceActivity => &self.presence_activity,
        }
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

/// Why an intent can never be sent; `reason()` gives the dead-letter reason label.
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
    /// [`ChannelTemplates::validate`] reports at start.
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

impl IntentError {
    /// The dead-letter reason: `too_large` when `data` is over the limit,
    /// `invalid` for everything else.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid {
                source: ValidationError::DataTooLarge { .. },
                ..
            } => "too_large",
            _ => "invalid",
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

/// Every `type` the contract defines, in the order of DESIGN.md's table.
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
    let value: Value = serde_json::from_slice(body).map_err(|err| IntentError::NotJson {
        detail: err.to_string(),
    })?;
    let Value::Object(map) = value else {
        return Err(IntentError::NotObject);
    };
    let kind = match map.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        _ => return Err(IntentError::MissingType),
    };
    // Choosing the mapping first makes an unknown type the reported error,
    // rather than whatever else is wrong with a body we do not understand.
    let map_type: MapFn = match kind {
        "notification" => notification,
        "announcement" => announcement,
        "chat.message" => chat_message,
        "chat.joined" => |f, c, t| chat_presence(f, c, t, "user-joined"),
        "chat.left" => |f, c, t| chat_presence(f, c, t, "user-left"),
        "order.status" => order_status,
        "dashboard.metrics" => dashboard_metrics,
        "inventory.stock" => inventory_stock,
        "presence.activity" => presence_activity,
        "event" => generic_event,
        _ => {
            return Err(IntentError::UnknownType {
                kind: kind.to_owned(),
            })
        }
    };
    let fields = Fields { kind, map: &map };
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
fn invalid(field: &'static str) -> impl Fn(ValidationError) -> IntentError {
    move |source| IntentError::Invalid { field, source }
}

/// One intent type's mapping onto a trigger.
type MapFn = fn(&Fields<'_>, &Common, &ChannelTemplates) -> Result<Mapped, IntentError>;

/// A type's mapping result, before validation.
struct Mapped {
    /// Channels before validation.
    channels: Vec<String>,
    /// Event name before validation.
    event: String,
    /// JSON text of `data`, measured against the size limit afterwards.
    data: String,
    /// Pusher's `info`, which only the `event` type carries.
    info: Option<String>,
}

impl Mapped {
    /// A mapping with a fixed event name and a `data` object built here.
    fn new(channels: Vec<String>, event: &str, data: &impl Serialize) -> Self {
        Self {
            channels,
            event: event.to_owned(),
            data: to_json(data),
            info: None,
        }
    }
}

/// Serializes a `data` struct to compact JSON text.
fn to_json(data: &impl Serialize) -> String {
    // The data structs hold only strings, integers and serde_json values,
    // whose serialization to a String cannot fail (no non-string map keys,
    // no I/O); a failure would be a bug in this file, not in the input.
    serde_json::to_string(data).expect("data structs always serialize to JSON")
}

/// Fields every type may carry, resolved against the AMQP properties.
struct Common {
    /// The intent id, after falling back to `message_id` or a generated one.
    id: String,
    /// Already validated.
    socket_id: Option<String>,
    /// The body's `created_at`, kept for latency and expiry decisions.
    created_at_ms: Option<i64>,
    /// Unix seconds for the `timestamp` in `data`.
    timestamp: i64,
}

/// Numbers generated ids within this process.
static GENERATED_IDS: AtomicU64 = AtomicU64::new(0);

impl Common {
    fn read(fields: &Fields<'_>, ctx: &DecodeContext<'_>) -> Result<Self, IntentError> {
        let id = match fields.optional_str("id")? {
            Some("") => return Err(fields.wrong_type("id", "a non-empty string")),
            Some(id) => id.to_owned(),
            None => match ctx.message_id.filter(|id| !id.is_empty()) {
                Some(id) => id.to_owned(),
                None => generate_id(ctx.now_ms),
            },
        };
        let socket_id = fields.optional_str("socket_id")?;
        if let Some(socket_id) = socket_id {
            validate::validate_socket_id(socket_id).map_err(invalid("socket_id"))?;
        }
        let created_at_ms = match fields.get("created_at") {
            None => None,
            Some(value) => Some(
                value
                    .as_i64()
                    .ok_or_else(|| fields.wrong_type("created_at", "an integer (unix ms)"))?,
            ),
        };
        let event_ms = created_at_ms.or(ctx.enqueued_at_ms).unwrap_or(ctx.now_ms);
        Ok(Self {
            id,
            socket_id: socket_id.map(str::to_owned),
            created_at_ms,
            timestamp: event_ms.div_euclid(1000),
        })
    }
}

/// An id for an intent that came with none. The process id keeps two
/// workers that start at the same millisecond from generating the same ids.
fn generate_id(now_ms: i64) -> String {
    let n = GENERATED_IDS.fetch_add(1, Ordering::Relaxed);
    format!("gen-{now_ms}-{}-{n}", std::process::id())
}

/// Typed access to the body's fields, with errors naming the type and field.
struct Fields<'a> {
    /// The intent type, for error messages.
    kind: &'a str,
    /// The body object.
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The field's value, treating `null` as absent.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn required(&self, field: &'static str) -> Result<&'a Value, IntentError> {
        self.get(field).ok_or_else(|| IntentError::MissingField {
            kind: self.kind.to_owned(),
            field,
        })
    }

    fn wrong_type(&self, field: &'static str, expected: &'static str) -> IntentError {
        IntentError::WrongFieldType {
            kind: self.kind.to_owned(),
            field,
            expected,
        }
    }

    fn as_str(&self, field: &'static str, value: &'a Value) -> Result<&'a str, IntentError> {
        value
            .as_str()
            .ok_or_else(|| self.wrong_type(field, "a string"))
    }

    fn required_str(&self, field: &'static str) -> Result<&'a str, IntentError> {
        self.as_str(field, self.required(field)?)
    }

    fn optional_str(&self, field: &'static str) -> Result<Option<&'a str>, IntentError> {
        self.get(field).map(|v| self.as_str(field, v)).transpose()
    }

    fn as_ident(&self, field: &'static str, value: &'a Value) -> Result<Ident<'a>, IntentError> {
        let text = match value {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => return Err(self.wrong_type(field, "a non-empty string or an integer")),
        };
        Ok(Ident { value, text })
    }

    fn required_ident(&self, field: &'static str) -> Result<Ident<'a>, IntentError> {
        self.as_ident(field, self.required(field)?)
    }

    fn optional_ident(&self, field: &'static str) -> Result<Option<Ident<'a>>, IntentError> {
        self.get(field).map(|v| self.as_ident(field, v)).transpose()
    }
}

/// An identifier field: the JSON as given for `data`, its text for channels.
struct Ident<'a> {
    /// The JSON as given: a string stays a string, an integer an integer.
    value: &'a Value,
    /// The text a channel template puts in place of the placeholder.
    text: String,
}

/// Which template a channel comes from.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Notification,
    Announcement,
    Chat,
    Order,
    Customer,
    Dashboard,
    Inventory,
    PresenceActivity,
}

impl Slot {
    const ALL: [Slot; 8] = [
        Slot::Notification,
        Slot::Announcement,
        Slot::Chat,
        Slot::Order,
        Slot::Customer,
        Slot::Dashboard,
        Slot::Inventory,
        Slot::PresenceActivity,
    ];

    /// The setting's name, for error messages.
    fn name(self) -> &'static str {
        match self {
            Slot::Notification => "notification",
            Slot::Announcement => "announcement",
            Slot::Chat => "chat",
            Slot::Order => "order",
            Slot::Customer => "customer",
            Slot::Dashboard => "dashboard",
            Slot::Inventory => "inventory",
            Slot::PresenceActivity => "presence_activity",
        }
    }

    /// Identifier fields present in every intent that uses this template;
    /// free text (messages, names) is excluded because it rarely fits the
    /// channel charset.
    fn placeholders(self) -> &'static [&'static str] {
        match self {
            Slot::Notification | Slot::PresenceActivity => &["user_id"],
            Slot::Chat => &["room_id", "user_id"],
            Slot::Order => &["order_id"],
            Slot::Customer => &["customer_id", "order_id"],
            Slot::Inventory => &["product_id"],
            Slot::Announcement | Slot::Dashboard => &[],
        }
    }
}

/// Fills `{name}` placeholders from `values`; no escapes, since `{` and `}`
/// are outside the channel charset anyway.
fn render(template: &str, slot: Slot, values: &[(&str, &str)]) -> Result<String, IntentError> {
    let error = |detail: String| IntentError::Template {
        template: template.to_owned(),
        detail: format!("{} template: {detail}", slot.name()),
    };
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with('}') {
            return Err(error("'}' without a matching '{'".into()));
        }
        let Some(close) = tail.find('}') else {
            return Err(error("'{' without a matching '}'".into()));
        };
        let name = &tail[1..close];
        let Some((_, value)) = values.iter().find(|(n, _)| *n == name) else {
            let known: Vec<String> = slot
                .placeholders()
                .iter()
                .map(|p| format!("{{{p}}}"))
                .collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            return Err(error(format!(
                "unknown placeholder {{{name}}} (allowed: {known})"
            )));
        };
        out.push_str(value);
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders one slot's channel from the given identifiers.
fn render_channel(
    templates: &ChannelTemplates,
    slot: Slot,
    idents: &[(&str, &Ident<'_>)],
) -> Result<String, IntentError> {
    let values: Vec<(&str, &str)> = idents.iter().map(|(n, i)| (*n, i.text.as_str())).collect();
    render(templates.get(slot), slot, &values)
}

// One function per intent type, each a row of DESIGN.md's table.

fn notification(f: &Fields<'_>, c: &Common, t: &ChannelTemplates) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        id: &'a str,
        message: &'a str,
        #[serde(rename = "type")]
        level: &'a str,
        timestamp: i64,
    }
    let user_id = f.required_ident("user_id")?;
    let data = Data {
        id: &c.id,
        message: f.required_str("message")?,
        level: f.optional_str("level")?.unwrap_or("info"),
        timestamp: c.timestamp,
    };
    let channel = render_channel(t, Slot::Notification, &[("user_id", &user_id)])?;
    Ok(Mapped::new(vec![channel], "notification", &data))
}

fn announcement(f: &Fields<'_>, c: &Common, t: &ChannelTemplates) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        id: &'a str,
        message: &'a str,
        priority: &'a str,
        timestamp: i64,
    }
    let data = Data {
        id: &c.id,
        message: f.required_str("message")?,
        priority: f.optional_str("priority")?.unwrap_or("normal"),
        timestamp: c.timestamp,
    };
    let channel = render_channel(t, Slot::Announcement, &[])?;
    Ok(Mapped::new(vec![channel], "announcement", &data))
}

fn chat_message(f: &Fields<'_>, c: &Common, t: &ChannelTemplates) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        id: &'a str,
        user_id: &'a Value,
        user_name: &'a str,
        message: &'a str,
        room_id: &'a Value,
        timestamp: i64,
    }
    let room_id = f.required_ident("room_id")?;
    let user_id = f.required_ident("user_id")?;
    let data = Data {
        id: &c.id,
        user_id: user_id.value,
        user_name: f.required_str("user_name")?,
        message: f.required_str("message")?,
        room_id: room_id.value,
        timestamp: c.timestamp,
    };
    let channel = render_channel(
        t,
        Slot::Chat,
        &[("room_id", &room_id), ("user_id", &user_id)],
    )?;
    Ok(Mapped::new(vec![channel], "new-message", &data))
}

/// `chat.joined` and `chat.left`, which differ only in the event name.
fn chat_presence(
    f: &Fields<'_>,
    c: &Common,
    t: &ChannelTemplates,
    event: &str,
) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a Value,
        user_name: &'a str,
        timestamp: i64,
    }
    let room_id = f.required_ident("room_id")?;
    let user_id = f.required_ident("user_id")?;
    let data = Data {
        user_id: user_id.value,
        user_name: f.required_str("user_name")?,
        timestamp: c.timestamp,
    };
    let channel = render_channel(
        t,
        Slot::Chat,
        &[("room_id", &room_id), ("user_id", &user_id)],
    )?;
    Ok(Mapped::new(vec![channel], event, &data))
}

fn order_status(f: &Fields<'_>, c: &Common, t: &ChannelTemplates) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        order_id: &'a Value,
        status: &'a str,
        timestamp: i64,
    }
    let order_id = f.required_ident("order_id")?;
    let data = Data {
        order_id: order_id.value,
        status: f.required_str("status")?,
        timestamp: c.timestamp,
    };
    let mut channels = vec![render_channel(t, Slot::Order, &[("order_id", &order_id)])?];
    if let Some(customer_id) = f.optional_ident("customer_id")? {
        channels.push(render_channel(
            t,
            Slot::Customer,
            &[("customer_id", &customer_id), ("order_id", &order_id)],
        )?);
    }
    Ok(Mapped::new(channels, "order-status-changed", &data))
}

fn dashboard_metrics(
    f: &Fields<'_>,
    c: &Common,
    t: &ChannelTemplates,
) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        metrics: &'a Value,
        timestamp: i64,
    }
    let metrics = f.required("metrics")?;
    if !metrics.is_object() {
        return Err(f.wrong_type("metrics", "an object"));
    }
    let data = Data {
        metrics,
        timestamp: c.timestamp,
    };
    let channel = render_channel(t, Slot::Dashboard, &[])?;
    Ok(Mapped::new(vec![channel], "metrics-update", &data))
}

fn inventory_stock(
    f: &Fields<'_>,
    c: &Common,
    t: &ChannelTemplates,
) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        product_id: &'a Value,
        quantity: &'a Value,
        timestamp: i64,
    }
    let product_id = f.required_ident("product_id")?;
    let quantity = f.required("quantity")?;
    if !quantity.is_number() {
        return Err(f.wrong_type("quantity", "a number"));
    }
    let data = Data {
        product_id: product_id.value,
        quantity,
        timestamp: c.timestamp,
    };
    let channel = render_channel(t, Slot::Inventory, &[("product_id", &product_id)])?;
    Ok(Mapped::new(vec![channel], "stock-update", &data))
}

fn presence_activity(
    f: &Fields<'_>,
    c: &Common,
    t: &ChannelTemplates,
) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a Value,
        activity: &'a str,
        timestamp: i64,
    }
    let user_id = f.required_ident("user_id")?;
    let data = Data {
        user_id: user_id.value,
        activity: f.required_str("activity")?,
        timestamp: c.timestamp,
    };
    let channel = render_channel(t, Slot::PresenceActivity, &[("user_id", &user_id)])?;
    Ok(Mapped::new(vec![channel], "user-activity", &data))
}

/// The generic type: channels, event and data exactly as the app gave them.
fn generic_event(f: &Fields<'_>, _: &Common, _: &ChannelTemplates) -> Result<Mapped, IntentError> {
    let channels = f
        .required("channels")?
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| f.wrong_type("channels", "an array of strings"))?;
    let event = f.required_str("event")?.to_owned();
    // `data` is read without `get` so that an explicit null is sent as "null".
    let data = match f.map.get("data") {
        None => {
            return Err(IntentError::MissingField {
                kind: f.kind.to_owned(),
                field: "data",
            })
        }
        // A string is already the encoded payload, as Pusher SDKs treat it.
        Some(Value::String(text)) => text.clone(),
        Some(value) => value.to_string(),
    };
    Ok(Mapped {
        channels,
        event,
        data,
        info: f.optional_str("info")?.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pusher::validate::DEFAULT_MAX_EVENT_BYTES;
    use serde_json::json;

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
        let intent =
            decode_default(json!({"type": "announcement", "message": "maintenance"})).unwrap();
        assert_eq!(intent.trigger.channels, ["system"]);
        assert_eq!(intent.trigger.event, "announcement");
        assert_eq!(
            data(&intent),
            json!({"id": "amqp-id", "message": "maintenance", "priority": "normal", "timestamp": 1_690_000_005})
        );
        let high =
            decode_default(json!({"type": "announcement", "message": "m", "priority": "high"}))
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
        assert_eq!(err.reason(), "invalid");
        assert_eq!(
            err.to_string(),
            "intent field \"channels\" is invalid: 101 channels in one trigger (limit 100)"
        );
    }

    #[test]
    fn event_with_no_channels_is_rejected() {
        let err =
            decode_default(json!({"type": "event", "channels": [], "event": "e", "data": {}}))
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
            let err = templates.validate().unwrap_err();
            assert_eq!(err.to_string(), message);
            assert_eq!(err.reason(), "invalid");
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
        assert!(
            matches!(err, IntentError::Template { ref template, .. } if template == "user-{id}")
        );
    }

    #[test]
    fn integer_and_string_ids_render_the_same_channel_and_keep_their_json_type() {
        let int =
            decode_default(json!({"type": "presence.activity", "user_id": 42, "activity": "a"}))
                .unwrap();
        let text =
            decode_default(json!({"type": "presence.activity", "user_id": "42", "activity": "a"}))
                .unwrap();
        let int_note =
            decode_default(json!({"type": "notification", "user_id": 42, "message": "m"})).unwrap();
        let text_note =
            decode_default(json!({"type": "notification", "user_id": "42", "message": "m"}))
                .unwrap();
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
            let err =
                decode_default(json!({"type": "notification", "user_id": bad, "message": "m"}))
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

        let err =
            decode_default(json!({"type": "announcement", "message": "m", "socket_id": "1.1:"}))
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
        assert_eq!(err.reason(), "invalid");
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
        assert_eq!(err.reason(), "too_large");
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
        assert_eq!(err.reason(), "too_large");
    }

    #[test]
    fn bad_event_name_is_rejected() {
        let empty =
            decode_default(json!({"type": "event", "channels": ["a"], "event": "", "data": 1}))
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
        let err =
            decode_default(json!({"type": "announcement", "message": "m", "created_at": "2024"}))
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
        assert_eq!(err.reason(), "invalid");
        assert_eq!(err.field(), None);

        let not_utf8 = decode(b"\"\xff\"", &ctx(&templates)).unwrap_err();
        assert!(matches!(not_utf8, IntentError::NotJson { .. }));
    }

    #[test]
    fn body_that_is_not_an_object_is_rejected() {
        let err = decode_default(json!(["type", "announcement"])).unwrap_err();
        assert_eq!(err, IntentError::NotObject);
        assert_eq!(err.to_string(), "intent body is not a JSON object");
        assert_eq!(err.reason(), "invalid");
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
        assert_eq!(err.reason(), "invalid");
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
        assert_eq!(err.reason(), "invalid");
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
            assert_eq!(err.reason(), "invalid");
        }
    }
}
