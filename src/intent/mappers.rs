//! One mapping per intent type: its channels, event name and `data`.

use serde::Serialize;

use super::fields::{Common, Field, Fields};
use super::templates::render_channel;
use super::IntentError;
use crate::config::channels::TemplateKind;
use crate::config::ChannelTemplates;

/// The mapping of a `type`, `None` when the contract has no such type.
pub(super) fn for_type(kind: &str) -> Option<MapFn> {
    Some(match kind {
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
        _ => return None,
    })
}

/// One intent type's mapping onto a trigger.
pub(super) type MapFn = fn(&Fields<'_>, &Common, &ChannelTemplates) -> Result<Mapped, IntentError>;

/// A type's mapping result, before validation.
pub(super) struct Mapped {
    /// Channels before validation.
    pub(super) channels: Vec<String>,
    /// Event name before validation.
    pub(super) event: String,
    /// JSON text of `data`, measured against the size limit afterwards.
    pub(super) data: String,
    /// Pusher's `info`, which only the `event` type carries.
    pub(super) info: Option<String>,
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

// One function per intent type, each a row of the wire contract table (docs/producers.md).

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
    let channel = render_channel(t, TemplateKind::Notification, &[("user_id", &user_id)])?;
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
    let channel = render_channel(t, TemplateKind::Announcement, &[])?;
    Ok(Mapped::new(vec![channel], "announcement", &data))
}

fn chat_message(f: &Fields<'_>, c: &Common, t: &ChannelTemplates) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        id: &'a str,
        user_id: &'a Field<'a>,
        user_name: &'a str,
        message: &'a str,
        room_id: &'a Field<'a>,
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
        TemplateKind::Chat,
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
        user_id: &'a Field<'a>,
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
        TemplateKind::Chat,
        &[("room_id", &room_id), ("user_id", &user_id)],
    )?;
    Ok(Mapped::new(vec![channel], event, &data))
}

fn order_status(f: &Fields<'_>, c: &Common, t: &ChannelTemplates) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        order_id: &'a Field<'a>,
        status: &'a str,
        timestamp: i64,
    }
    let order_id = f.required_ident("order_id")?;
    let data = Data {
        order_id: order_id.value,
        status: f.required_str("status")?,
        timestamp: c.timestamp,
    };
    let mut channels = vec![render_channel(
        t,
        TemplateKind::Order,
        &[("order_id", &order_id)],
    )?];
    if let Some(customer_id) = f.optional_ident("customer_id")? {
        channels.push(render_channel(
            t,
            TemplateKind::Customer,
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
        metrics: &'a Field<'a>,
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
    let channel = render_channel(t, TemplateKind::Dashboard, &[])?;
    Ok(Mapped::new(vec![channel], "metrics-update", &data))
}

fn inventory_stock(
    f: &Fields<'_>,
    c: &Common,
    t: &ChannelTemplates,
) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        product_id: &'a Field<'a>,
        quantity: &'a Field<'a>,
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
    let channel = render_channel(t, TemplateKind::Inventory, &[("product_id", &product_id)])?;
    Ok(Mapped::new(vec![channel], "stock-update", &data))
}

fn presence_activity(
    f: &Fields<'_>,
    c: &Common,
    t: &ChannelTemplates,
) -> Result<Mapped, IntentError> {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a Field<'a>,
        activity: &'a str,
        timestamp: i64,
    }
    let user_id = f.required_ident("user_id")?;
    let data = Data {
        user_id: user_id.value,
        activity: f.required_str("activity")?,
        timestamp: c.timestamp,
    };
    let channel = render_channel(t, TemplateKind::PresenceActivity, &[("user_id", &user_id)])?;
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
    let data = match f.raw("data") {
        None => {
            return Err(IntentError::MissingField {
                kind: f.kind.to_owned(),
                field: "data",
            })
        }
        // A string is already the encoded payload, as Pusher SDKs treat it.
        Some(Field::Str(text)) => text.to_string(),
        Some(Field::Other(value)) => to_json(value),
    };
    Ok(Mapped {
        channels,
        event,
        data,
        info: f.optional_str("info")?.map(str::to_owned),
    })
}
