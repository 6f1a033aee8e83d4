//! Typed access to an intent body's fields, and the fields every type may
//! carry (`id`, `socket_id`, `created_at`): errors name the type and field.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use super::{invalid, DecodeContext, IntentError};
use crate::pusher::validate;

/// Fields every type may carry, resolved against the AMQP properties.
pub(super) struct Common {
    /// The intent id, after falling back to `message_id` or a generated one.
    pub(super) id: String,
    /// Already validated.
    pub(super) socket_id: Option<String>,
    /// The body's `created_at`, kept for latency and expiry decisions.
    pub(super) created_at_ms: Option<i64>,
    /// Unix seconds for the `timestamp` in `data`.
    pub(super) timestamp: i64,
}

/// Numbers generated ids within this process.
static GENERATED_IDS: AtomicU64 = AtomicU64::new(0);

impl Common {
    pub(super) fn read(fields: &Fields<'_>, ctx: &DecodeContext<'_>) -> Result<Self, IntentError> {
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
pub(super) struct Fields<'a> {
    /// The intent type, for error messages.
    pub(super) kind: &'a str,
    /// The body object.
    pub(super) map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The field's value, treating `null` as absent.
    pub(super) fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub(super) fn required(&self, field: &'static str) -> Result<&'a Value, IntentError> {
        self.get(field).ok_or_else(|| IntentError::MissingField {
            kind: self.kind.to_owned(),
            field,
        })
    }

    pub(super) fn wrong_type(&self, field: &'static str, expected: &'static str) -> IntentError {
        IntentError::WrongFieldType {
            kind: self.kind.to_owned(),
            field,
            expected,
        }
    }

    pub(super) fn as_str(
        &self,
        field: &'static str,
        value: &'a Value,
    ) -> Result<&'a str, IntentError> {
        value
            .as_str()
            .ok_or_else(|| self.wrong_type(field, "a string"))
    }

    pub(super) fn required_str(&self, field: &'static str) -> Result<&'a str, IntentError> {
        self.as_str(field, self.required(field)?)
    }

    pub(super) fn optional_str(&self, field: &'static str) -> Result<Option<&'a str>, IntentError> {
        self.get(field).map(|v| self.as_str(field, v)).transpose()
    }

    pub(super) fn as_ident(
        &self,
        field: &'static str,
        value: &'a Value,
    ) -> Result<Ident<'a>, IntentError> {
        let text = match value {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => return Err(self.wrong_type(field, "a non-empty string or an integer")),
        };
        Ok(Ident { value, text })
    }

    pub(super) fn required_ident(&self, field: &'static str) -> Result<Ident<'a>, IntentError> {
        self.as_ident(field, self.required(field)?)
    }

    pub(super) fn optional_ident(
        &self,
        field: &'static str,
    ) -> Result<Option<Ident<'a>>, IntentError> {
        self.get(field).map(|v| self.as_ident(field, v)).transpose()
    }
}

/// An identifier field: the JSON as given for `data`, its text for channels.
pub(super) struct Ident<'a> {
    /// The JSON as given: a string stays a string, an integer an integer.
    pub(super) value: &'a Value,
    /// The text a channel template puts in place of the placeholder.
    pub(super) text: String,
}
