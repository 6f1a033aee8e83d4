//! Typed access to an intent body's fields, and the fields every type may
//! carry (`id`, `socket_id`, `created_at`): errors name the type and field.
//!
//! The body is read into a list of its top-level fields rather than a
//! `serde_json::Value`: names and strings borrow from the body, so the
//! common intent allocates only for what it sends. Every value is still
//! parsed in full, nested ones into a `Value`, so what the body must be to
//! decode is exactly what it was with a `Value`.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use serde_json::{Map, Number, Value};

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

/// The process id, read once: `getpid` is a system call, and a producer
/// that sends no ids has one generated per intent.
static PROCESS_ID: LazyLock<u32> = LazyLock::new(std::process::id);

/// An id for an intent that came with none. The process id keeps two
/// workers that start at the same millisecond from generating the same ids.
fn generate_id(now_ms: i64) -> String {
    let n = GENERATED_IDS.fetch_add(1, Ordering::Relaxed);
    // Sized for the longest id, so the text is written without regrowing.
    let mut id = String::with_capacity(64);
    let _ = write!(id, "gen-{now_ms}-{}-{n}", *PROCESS_ID);
    id
}

/// One top-level value of the body: a string borrowed where it has no
/// escapes, anything else as serde_json reads it.
#[derive(Debug)]
pub(super) enum Field<'a> {
    Str(Cow<'a, str>),
    Other(Value),
}

impl Field<'_> {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            Field::Other(_) => None,
        }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self, Field::Other(Value::Null))
    }

    pub(super) fn as_i64(&self) -> Option<i64> {
        match self {
            Field::Other(v) => v.as_i64(),
            Field::Str(_) => None,
        }
    }

    pub(super) fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Field::Other(v) => v.as_array(),
            Field::Str(_) => None,
        }
    }

    pub(super) fn is_object(&self) -> bool {
        matches!(self, Field::Other(Value::Object(_)))
    }

    pub(super) fn is_number(&self) -> bool {
        matches!(self, Field::Other(Value::Number(_)))
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Str(s) => serializer.serialize_str(s),
            Field::Other(v) => v.serialize(serializer),
        }
    }
}

impl From<Value> for Field<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::String(s) => Field::Str(Cow::Owned(s)),
            other => Field::Other(other),
        }
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// Reads a value as `Value`'s own visitor does (the same numbers, the same
/// nesting through it), keeping a string borrowed when it can.
struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Field<'de>, E> {
        Ok(Field::Other(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Field<'de>, E> {
        Ok(Field::Other(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Field<'de>, E> {
        Ok(Field::Other(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Field<'de>, E> {
        Ok(Field::Other(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_unit<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Other(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Other(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Field<'de>, D::Error> {
        Field::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Field::Other)
    }
}

/// A body's top-level fields in the order given; a name given twice is
/// found at its last value, as in a `Value`'s map.
pub(super) type Entries<'a> = Vec<(Cow<'a, str>, Field<'a>)>;

/// The first key with which serde_json's `Value` reads an object as
/// something else (its `raw_value` feature, which a dependency enables).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// What the fast read of a body found.
enum Top<'a> {
    Object(Entries<'a>),
    /// Not an object; what it is does not matter.
    Other,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut entries = Entries::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if entries.is_empty() && key.0 == RAW_VALUE_TOKEN {
                return Err(de::Error::custom("read as a Value"));
            }
            entries.push((key.0, map.next_value()?));
        }
        Ok(Top::Object(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top<'de>, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(|_| Top::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }

    fn visit_unit<E>(self) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
}

/// An object's key, borrowed where it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

/// The body's top-level fields, or why it has none. A body the fast read
/// does not take (not an object, not JSON, or the `raw_value` quirk above)
/// is read again as a `Value`, so its error, or its reading, is the one a
/// `Value` gives.
pub(super) fn read(body: &[u8]) -> Result<Entries<'_>, IntentError> {
    if let Ok(Top::Object(entries)) = serde_json::from_slice::<Top<'_>>(body) {
        return Ok(entries);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(into_entries(map)),
        Ok(_) => Err(IntentError::NotObject),
        Err(err) => Err(IntentError::NotJson {
            detail: err.to_string(),
        }),
    }
}

/// The value of the field `name` as given, `null` included: its last.
pub(super) fn find<'e, 'a>(
    entries: &'e [(Cow<'a, str>, Field<'a>)],
    name: &str,
) -> Option<&'e Field<'a>> {
    entries
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

fn into_entries(map: Map<String, Value>) -> Entries<'static> {
    map.into_iter()
        .map(|(k, v)| (Cow::Owned(k), Field::from(v)))
        .collect()
}

/// Typed access to the body's fields, with errors naming the type and field.
pub(super) struct Fields<'a> {
    /// The intent type, for error messages.
    pub(super) kind: &'a str,
    /// The body's top-level fields.
    pub(super) entries: &'a [(Cow<'a, str>, Field<'a>)],
}

impl<'a> Fields<'a> {
    /// The field's value as given, `null` included.
    pub(super) fn raw(&self, field: &str) -> Option<&'a Field<'a>> {
        find(self.entries, field)
    }

    /// The field's value, treating `null` as absent.
    pub(super) fn get(&self, field: &str) -> Option<&'a Field<'a>> {
        self.raw(field).filter(|v| !v.is_null())
    }

    pub(super) fn required(&self, field: &'static str) -> Result<&'a Field<'a>, IntentError> {
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
        value: &'a Field<'a>,
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
        value: &'a Field<'a>,
    ) -> Result<Ident<'a>, IntentError> {
        let text = match value {
            Field::Str(s) if !s.is_empty() => Cow::Borrowed(&**s),
            Field::Other(Value::Number(n)) if n.is_i64() || n.is_u64() => Cow::Owned(n.to_string()),
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
    pub(super) value: &'a Field<'a>,
    /// The text a channel template puts in place of the placeholder.
    pub(super) text: Cow<'a, str>,
}
