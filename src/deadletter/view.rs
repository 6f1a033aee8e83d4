//! How dead letters and their filters look outside the store, written once
//! for the CLI's `--json`, the admin API and the ops console.
//!
//! The JSON views keep their keys in alphabetical order, field by field:
//! that is the order this JSON has always had (it was built as
//! `serde_json::Value`, whose objects sort their keys), and scripts compare
//! the CLI's output as text.

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::{DeadLetter, DeadLetterReason, DeadLetterStatus, FilterSpec, Page};
use crate::clock::rfc3339_ms;

/// The listing view: what identifies a dead letter and why it is one,
/// without its body and headers.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub attempts: u32,
    pub channels: &'a [String],
    pub dead_lettered_at: String,
    pub error: &'a str,
    pub id: i64,
    pub intent_id: Option<&'a str>,
    pub pusher_status: Option<u16>,
    pub reason: DeadLetterReason,
    pub replay_count: i64,
    pub status: DeadLetterStatus,
    #[serde(rename = "type")]
    pub intent_type: Option<&'a str>,
}

impl<'a> From<&'a DeadLetter> for Summary<'a> {
    fn from(dl: &'a DeadLetter) -> Self {
        Summary {
            attempts: dl.attempts,
            channels: &dl.channels,
            dead_lettered_at: rfc3339_ms(dl.dead_lettered_at_ms),
            error: &dl.error,
            id: dl.id,
            intent_id: dl.intent_id.as_deref(),
            pusher_status: dl.pusher_status,
            reason: dl.reason,
            replay_count: dl.replay_count,
            status: dl.status,
            intent_type: dl.intent_type.as_deref(),
        }
    }
}

/// Every stored field. The body is given exactly (`body_base64`) and, when
/// it is JSON, parsed (`body`) so it reads well; the headers are shown as
/// [`crate::amqp::readable_properties`] writes them.
#[derive(Debug, Serialize)]
pub struct Detail<'a> {
    pub attempts: u32,
    pub body: Option<Value>,
    pub body_base64: String,
    pub channels: &'a [String],
    pub dead_lettered_at: String,
    pub dead_lettered_at_ms: i64,
    pub error: &'a str,
    pub first_seen_at: String,
    pub first_seen_at_ms: i64,
    pub headers: Value,
    pub id: i64,
    pub intent_id: Option<&'a str>,
    pub last_replayed_at: Option<String>,
    pub last_replayed_at_ms: Option<i64>,
    pub pusher_body: Option<&'a str>,
    pub pusher_status: Option<u16>,
    pub reason: DeadLetterReason,
    pub replay_count: i64,
    pub routing_key: &'a str,
    pub status: DeadLetterStatus,
    #[serde(rename = "type")]
    pub intent_type: Option<&'a str>,
}

impl<'a> From<&'a DeadLetter> for Detail<'a> {
    fn from(dl: &'a DeadLetter) -> Self {
        Detail {
            attempts: dl.attempts,
            body: serde_json::from_slice::<Value>(&dl.body).ok(),
            body_base64: base64::engine::general_purpose::STANDARD.encode(&dl.body),
            channels: &dl.channels,
            dead_lettered_at: rfc3339_ms(dl.dead_lettered_at_ms),
            dead_lettered_at_ms: dl.dead_lettered_at_ms,
            error: &dl.error,
            first_seen_at: rfc3339_ms(dl.first_seen_at_ms),
            first_seen_at_ms: dl.first_seen_at_ms,
            headers: crate::amqp::readable_properties(&dl.headers),
            id: dl.id,
            intent_id: dl.intent_id.as_deref(),
            last_replayed_at: dl.last_replayed_at_ms.map(rfc3339_ms),
            last_replayed_at_ms: dl.last_replayed_at_ms,
            pusher_body: dl.pusher_body.as_deref(),
            pusher_status: dl.pusher_status,
            reason: dl.reason,
            replay_count: dl.replay_count,
            routing_key: &dl.routing_key,
            status: dl.status,
            intent_type: dl.intent_type.as_deref(),
        }
    }
}

/// A page: `{"items": [...], "next_cursor": ..., "unreadable": [{"error",
/// "id"}]}`.
#[derive(Debug, Serialize)]
pub struct PageView<'a> {
    pub items: Vec<Summary<'a>>,
    pub next_cursor: Option<&'a str>,
    pub unreadable: Vec<UnreadableView<'a>>,
}

/// A row of the page that cannot be shown, and why.
#[derive(Debug, Serialize)]
pub struct UnreadableView<'a> {
    pub error: &'a str,
    pub id: i64,
}

impl<'a> From<&'a Page> for PageView<'a> {
    fn from(page: &'a Page) -> Self {
        PageView {
            items: page.items.iter().map(Summary::from).collect(),
            next_cursor: page.next_cursor.as_deref(),
            unreadable: page
                .unreadable
                .iter()
                .map(|u| UnreadableView {
                    error: &u.error,
                    id: u.id,
                })
                .collect(),
        }
    }
}

/// One of [`FilterSpec`]'s fields as the API's query, the console's forms and
/// the OpenAPI document name it; the CLI's flags come from the struct itself.
pub struct FilterField {
    /// The query parameter and form field (the CLI flag without `--`).
    pub name: &'static str,
    /// What the OpenAPI document says of it, when anything.
    pub description: Option<&'static str>,
    /// Its only values, when they are few enough to list.
    pub values: Option<&'static [&'static str]>,
    get: fn(&FilterSpec) -> &Option<String>,
    get_mut: fn(&mut FilterSpec) -> &mut Option<String>,
}

macro_rules! filter_field {
    ($field:ident, $name:literal, $description:expr, $values:expr) => {
        FilterField {
            name: $name,
            description: $description,
            values: $values,
            get: |spec| &spec.$field,
            get_mut: |spec| &mut spec.$field,
        }
    };
}

/// Every filter field, in the order forms, links and descriptions list them.
pub const FILTER_FIELDS: [FilterField; 6] = [
    filter_field!(
        reason,
        "reason",
        Some("Comma-separated: invalid, too_large, rejected, exhausted, expired, delivery_limit."),
        None
    ),
    filter_field!(intent_type, "type", Some("Intent type, exact."), None),
    filter_field!(
        channel,
        "channel",
        Some("A channel the intent addressed, exact."),
        None
    ),
    filter_field!(
        since,
        "since",
        Some("Dead-lettered at or after: RFC 3339, a date, or an age like 2h."),
        None
    ),
    filter_field!(
        until,
        "until",
        Some("Dead-lettered before: RFC 3339, a date, or an age like 7d."),
        None
    ),
    filter_field!(status, "status", None, Some(&["pending", "replayed"])),
];

impl FilterSpec {
    /// The fields that are set, as `(name, value)` in [`FILTER_FIELDS`]'s
    /// order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        FILTER_FIELDS
            .iter()
            .filter_map(move |f| (f.get)(self).as_deref().map(|v| (f.name, v)))
    }

    /// The spec that `value` gives field by field (by [`FilterField::name`]).
    pub fn from_fields<'v>(value: impl Fn(&str) -> Option<&'v str>) -> FilterSpec {
        let mut spec = FilterSpec::default();
        for f in &FILTER_FIELDS {
            *(f.get_mut)(&mut spec) = value(f.name).map(String::from);
        }
        spec.without_blanks()
    }

    /// A form's empty fields as absent: a blank filter box means "any", and
    /// links and confirmations then leave it out.
    pub fn without_blanks(mut self) -> FilterSpec {
        for f in &FILTER_FIELDS {
            let value = (f.get_mut)(&mut self);
            if value.as_deref().is_some_and(str::is_empty) {
                *value = None;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_field_as_serde_does() {
        let all: Vec<(String, Value)> = FILTER_FIELDS
            .iter()
            .map(|f| (f.name.to_owned(), Value::String(f.name.to_owned())))
            .collect();
        let spec: FilterSpec =
            serde_json::from_value(Value::Object(all.into_iter().collect())).expect("known names");
        let pairs: Vec<_> = spec.pairs().collect();
        assert_eq!(pairs.len(), FILTER_FIELDS.len());
        assert!(pairs.iter().all(|(name, value)| name == value), "{pairs:?}");
    }

    #[test]
    fn blank_fields_are_absent() {
        let spec = FilterSpec {
            reason: Some(String::new()),
            channel: Some("room".into()),
            ..FilterSpec::default()
        }
        .without_blanks();
        assert_eq!(spec.pairs().collect::<Vec<_>>(), [("channel", "room")]);
    }

    #[test]
    fn a_form_gives_a_spec_by_the_table_s_names() {
        let form = [
            ("type", "chat.message"),
            ("reason", ""),
            ("status", "pending"),
        ];
        let spec =
            FilterSpec::from_fields(|name| form.iter().find(|(n, _)| *n == name).map(|(_, v)| *v));
        assert_eq!(spec.intent_type.as_deref(), Some("chat.message"));
        assert_eq!(spec.reason, None, "a blank box means any reason");
        assert_eq!(
            spec.pairs().collect::<Vec<_>>(),
            [("type", "chat.message"), ("status", "pending")]
        );
    }
}
