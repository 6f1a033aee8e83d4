//! Webhook verification (PUSHER-API.md §6): `X-Pusher-Key` must be a known
//! key and `X-Pusher-Signature` the HMAC-SHA256 of the raw body under that
//! key's secret, compared in constant time. Only then is the body parsed.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::sign::hmac_sha256;

/// Why a webhook was refused. `reason()` is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("X-Pusher-Key header is missing")]
    MissingKey,
    #[error("X-Pusher-Key {key:?} is not this app's key")]
    UnknownKey { key: String },
    #[error("X-Pusher-Signature header is missing")]
    MissingSignature,
    #[error("X-Pusher-Signature does not match the body (expected hex HMAC-SHA256 of the raw body with the app secret)")]
    BadSignature,
    #[error("webhook body is not the JSON Pusher sends ({0}); expected {{\"time_ms\":...,\"events\":[...]}}")]
    BadJson(String),
    #[error("webhook time_ms {time_ms} is more than {window_ms} ms from now")]
    Stale { time_ms: i64, window_ms: i64 },
}

impl WebhookError {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            WebhookError::MissingKey => "missing_key",
            WebhookError::UnknownKey { .. } => "wrong_key",
            WebhookError::MissingSignature => "missing_signature",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::BadJson(_) => "bad_json",
            WebhookError::Stale { .. } => "stale",
        }
    }
}

/// A key/secret pair webhooks may be signed with (the app's own, plus any
/// extra tokens Pusher is configured with).
#[derive(Debug, Clone)]
pub struct WebhookToken<'a> {
    pub key: &'a str,
    pub secret: &'a str,
}

/// A verified webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// When Pusher sent it; every real webhook has it, but signature checks
    /// do not depend on it.
    #[serde(default)]
    pub time_ms: Option<i64>,
    /// Always iterate: with batch webhooks there may be several.
    #[serde(default)]
    pub events: Vec<WebhookEvent>,
}

/// One webhook event, typed by its `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum WebhookEvent {
    ChannelOccupied {
        channel: String,
    },
    ChannelVacated {
        channel: String,
    },
    MemberAdded {
        channel: String,
        user_id: String,
    },
    MemberRemoved {
        channel: String,
        user_id: String,
    },
    ClientEvent {
        channel: String,
        event: String,
        data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        socket_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    CacheMiss {
        channel: String,
    },
    SubscriptionCount {
        channel: String,
        subscription_count: u64,
    },
    /// A name this version does not know; kept so nothing is dropped.
    #[serde(untagged)]
    Other(serde_json::Value),
}

impl WebhookEvent {
    /// The event's name, used as the routing key when republished.
    pub fn name(&self) -> &str {
        match self {
            WebhookEvent::ChannelOccupied { .. } => "channel_occupied",
            WebhookEvent::ChannelVacated { .. } => "channel_vacated",
            WebhookEvent::MemberAdded { .. } => "member_added",
            WebhookEvent::MemberRemoved { .. } => "member_removed",
            WebhookEvent::ClientEvent { .. } => "client_event",
            WebhookEvent::CacheMiss { .. } => "cache_miss",
            WebhookEvent::SubscriptionCount { .. } => "subscription_count",
            WebhookEvent::Other(v) => v.get("name").and_then(|n| n.as_str()).unwrap_or("unknown"),
        }
    }
}

/// Checks key and signature only; true when `signature` is the HMAC of
/// `body` under the secret of the token whose key is `key`.
pub fn signature_matches(
    tokens: &[WebhookToken<'_>],
    key: &str,
    signature: &str,
    body: &[u8],
) -> Result<(), WebhookError> {
    let token = tokens
        .iter()
        .find(|t| t.key == key)
        .ok_or_else(|| WebhookError::UnknownKey {
            key: key.to_string(),
        })?;
    let expected = hmac_sha256(token.secret.as_bytes(), body);
    let given = hex::decode(signature.trim()).map_err(|_| WebhookError::BadSignature)?;
    if given.len() == expected.len() && bool::from(expected.ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// Verifies a webhook and decodes it. `max_age` (with `now_ms`) rejects
/// replays older than that window, as the Python SDK does; `None` skips it.
pub fn verify(
    tokens: &[WebhookToken<'_>],
    key: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_ms_and_window: Option<(i64, i64)>,
) -> Result<Webhook, WebhookError> {
    let key = key.ok_or(WebhookError::MissingKey)?;
    let signature = signature.ok_or(WebhookError::MissingSignature)?;
    signature_matches(tokens, key, signature, body)?;
    let hook: Webhook =
        serde_json::from_slice(body).map_err(|e| WebhookError::BadJson(e.to_string()))?;
    if let Some((now_ms, window_ms)) = now_ms_and_window {
        let time_ms = hook.time_ms.unwrap_or_default();
        if (now_ms - time_ms).abs() > window_ms {
            return Err(WebhookError::Stale { time_ms, window_ms });
        }
    }
    Ok(hook)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &str) -> String {
        hex::encode(hmac_sha256(secret.as_bytes(), body.as_bytes()))
    }

    const TOKENS: [WebhookToken<'static>; 1] = [WebhookToken {
        key: "k",
        secret: "s",
    }];

    #[test]
    fn every_documented_event_decodes_typed() {
        let body = r#"{"time_ms":1,"events":[
            {"name":"channel_occupied","channel":"a"},
            {"name":"channel_vacated","channel":"a"},
            {"name":"member_added","channel":"presence-a","user_id":"1"},
            {"name":"member_removed","channel":"presence-a","user_id":"1"},
            {"name":"client_event","channel":"private-a","event":"client-x","data":"{}","socket_id":"1.2"},
            {"name":"cache_miss","channel":"cache-a"},
            {"name":"subscription_count","channel":"a","subscription_count":3},
            {"name":"future_thing","channel":"a"}]}"#;
        let hook = verify(
            &TOKENS,
            Some("k"),
            Some(&sign("s", body)),
            body.as_bytes(),
            None,
        )
        .expect("valid");
        let names: Vec<&str> = hook.events.iter().map(|e| e.name()).collect();
        assert_eq!(
            names,
            [
                "channel_occupied",
                "channel_vacated",
                "member_added",
                "member_removed",
                "client_event",
                "cache_miss",
                "subscription_count",
                "future_thing"
            ]
        );
    }

    #[test]
    fn missing_headers_and_bad_json_have_their_own_reasons() {
        let body = "not json";
        assert_eq!(
            verify(&TOKENS, None, Some("x"), b"", None)
                .unwrap_err()
                .reason(),
            "missing_key"
        );
        assert_eq!(
            verify(&TOKENS, Some("k"), None, b"", None)
                .unwrap_err()
                .reason(),
            "missing_signature"
        );
        assert_eq!(
            verify(
                &TOKENS,
                Some("k"),
                Some(&sign("s", body)),
                body.as_bytes(),
                None
            )
            .unwrap_err()
            .reason(),
            "bad_json"
        );
        assert_eq!(
            verify(&TOKENS, Some("k"), Some("zz"), b"{}", None)
                .unwrap_err()
                .reason(),
            "bad_signature"
        );
    }
}
