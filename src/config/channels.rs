//! The channel-template settings (`RELAY_CHANNEL_STYLE`, `RELAY_CHANNEL_*`):
//! the names the typed intents are sent to, their presets, which
//! placeholders each may use, and how a template is filled.
//!
//! Filling lives here, beside the data, so that loading can render every
//! template with sample values and refuse one that gives no valid channel
//! name; intent decoding fills the same templates with a message's
//! identifiers.

use super::pusher_rules::validate_channel;

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
    /// valid channel name; loading calls it so a bad setting fails at
    /// start, not as a dead letter per message.
    pub fn validate(&self) -> Result<(), TemplateError> {
        for slot in Slot::ALL {
            let template = self.get(slot);
            let sample: Vec<(&str, &str)> = slot.placeholders().iter().map(|&p| (p, "0")).collect();
            let channel = render(template, slot, &sample)?;
            validate_channel(&channel).map_err(|err| TemplateError {
                template: template.to_owned(),
                detail: format!("{} template: {err}", slot.name()),
            })?;
        }
        Ok(())
    }

    /// The template for one slot.
    pub(crate) fn get(&self, slot: Slot) -> &str {
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

/// A malformed channel template: a configuration error, which
/// [`ChannelTemplates::validate`] reports at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel template {template:?} is invalid: {detail}")]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// What is wrong with it, prefixed with the template's name.
    pub detail: String,
}

/// Which template a channel comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
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

    /// The template's name, for error messages.
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
pub(crate) fn render(
    template: &str,
    slot: Slot,
    values: &[(&str, &str)],
) -> Result<String, TemplateError> {
    let error = |detail: String| TemplateError {
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
