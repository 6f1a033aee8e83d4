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
        for kind in TemplateKind::ALL {
            let template = self.get(kind);
            let sample: Vec<(&str, &str)> = kind.placeholders().iter().map(|&p| (p, "0")).collect();
            let channel = render(template, kind, &sample)?;
            validate_channel(&channel).map_err(|err| TemplateError {
                template: template.to_owned(),
                detail: format!("{} template: {err}", kind.name()),
            })?;
        }
        Ok(())
    }

    /// The template of one kind of channel.
    pub(crate) fn get(&self, kind: TemplateKind) -> &str {
        match kind {
            TemplateKind::Notification => &self.notification,
            TemplateKind::Announcement => &self.announcement,
            TemplateKind::Chat => &self.chat,
            TemplateKind::Order => &self.order,
            TemplateKind::Customer => &self.customer,
            TemplateKind::Dashboard => &self.dashboard,
            TemplateKind::Inventory => &self.inventory,
            TemplateKind::PresenceActivity => &self.presence_activity,
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
pub(crate) enum TemplateKind {
    Notification,
    Announcement,
    Chat,
    Order,
    Customer,
    Dashboard,
    Inventory,
    PresenceActivity,
}

impl TemplateKind {
    const ALL: [TemplateKind; 8] = [
        TemplateKind::Notification,
        TemplateKind::Announcement,
        TemplateKind::Chat,
        TemplateKind::Order,
        TemplateKind::Customer,
        TemplateKind::Dashboard,
        TemplateKind::Inventory,
        TemplateKind::PresenceActivity,
    ];

    /// The template's name, for error messages.
    fn name(self) -> &'static str {
        match self {
            TemplateKind::Notification => "notification",
            TemplateKind::Announcement => "announcement",
            TemplateKind::Chat => "chat",
            TemplateKind::Order => "order",
            TemplateKind::Customer => "customer",
            TemplateKind::Dashboard => "dashboard",
            TemplateKind::Inventory => "inventory",
            TemplateKind::PresenceActivity => "presence_activity",
        }
    }

    /// Identifier fields present in every intent that uses this template;
    /// free text (messages, names) is excluded because it rarely fits the
    /// channel charset.
    fn placeholders(self) -> &'static [&'static str] {
        match self {
            TemplateKind::Notification | TemplateKind::PresenceActivity => &["user_id"],
            TemplateKind::Chat => &["room_id", "user_id"],
            TemplateKind::Order => &["order_id"],
            TemplateKind::Customer => &["customer_id", "order_id"],
            TemplateKind::Inventory => &["product_id"],
            TemplateKind::Announcement | TemplateKind::Dashboard => &[],
        }
    }
}

/// Fills `{name}` placeholders from `values`; no escapes, since `{` and `}`
/// are outside the channel charset anyway.
pub(crate) fn render(
    template: &str,
    kind: TemplateKind,
    values: &[(&str, &str)],
) -> Result<String, TemplateError> {
    let error = |detail: String| TemplateError {
        template: template.to_owned(),
        detail: format!("{} template: {detail}", kind.name()),
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
            let known: Vec<String> = kind
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
