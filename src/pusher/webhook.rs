//! Webhook verification (docs/architecture.md, "Webhooks"): `X-Pusher-Key` must be a known
//! key and `X-Pusher-Signature` the HMAC-SHA256 of the raw body under that
//! key's secret, compared in constant time. Only then is the body parsed,
//! and (when the caller gives a window) its `time_ms` checked against the
//! clock, so that a captured webhook cannot be replayed long after.

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
    #[error("webhook time_ms {time_ms} is more than {window_ms} ms away from this server's clock; refused as a possible replay (if every webhook fails this, check the server's time)")]
    Stale { time_ms: i64, window_ms: i64 },
    #[error("webhook body has no time_ms, so it cannot be told from a replay; expected {{\"time_ms\":...,\"events\":[...]}}")]
    MissingTime,
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
            WebhookError::MissingTime => "missing_time",
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

/// How much of an unknown `X-Pusher-Key` an error repeats: it is whatever
/// the sender chose, and ends up in logs and answers.
const SHOWN_KEY_CHARS: usize = 40;

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
            key: shown_key(key),
        })?;
    let expected = hmac_sha256(token.secret.as_bytes(), body);
    let given = hex::decode(signature.trim()).map_err(|_| WebhookError::BadSignature)?;
    if given.len() == expected.len() && bool::from(expected.ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// At most [`SHOWN_KEY_CHARS`] characters of `key`, with `...` when cut.
fn shown_key(key: &str) -> String {
    match key.char_indices().nth(SHOWN_KEY_CHARS) {
        Some((end, _)) => format!("{}...", &key[..end]),
        None => key.to_string(),
    }
}

/// Verifies a webhook and decodes it. `now_ms_and_window` (now, window in
/// ms) refuses a webhook whose `time_ms` is more than the window away from
/// now, either way, or that has no `time_ms`, as the Python SDK does;
/// `None` skips the check. Any `time_ms` that parses, `i64::MIN` and
/// `i64::MAX` included, is compared without overflow; one that is not an
/// `i64` at all is [`WebhookError::BadJson`].
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
        let time_ms = hook.time_ms.ok_or(WebhookError::MissingTime)?;
        // A negative window admits nothing.
        let allowed = u64::try_from(window_ms).unwrap_or(0);
        if now_ms.abs_diff(time_ms) > allowed {
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

    /// 2023-11-14, as in the report: correctly signed, long past.
    const OLD: &str =
        r#"{"time_ms":1700000000123,"events":[{"channel":"a","name":"channel_vacated"}]}"#;
    const NOW_MS: i64 = 1_760_000_000_000;
    const WINDOW_MS: i64 = 600_000;

    fn checked(body: &str, now_ms: i64) -> Result<Webhook, WebhookError> {
        verify(
            &TOKENS,
            Some("k"),
            Some(&sign("s", body)),
            body.as_bytes(),
            Some((now_ms, WINDOW_MS)),
        )
    }

    #[test]
    fn a_signed_webhook_from_2023_is_refused_as_stale() {
        let err = checked(OLD, NOW_MS).unwrap_err();
        assert_eq!(err.reason(), "stale");
        assert_eq!(
            err,
            WebhookError::Stale {
                time_ms: 1_700_000_000_123,
                window_ms: WINDOW_MS
            }
        );
        assert!(err.to_string().contains("possible replay"), "{err}");
        // Without a window (`webhook verify` on a saved body) it still verifies.
        assert!(verify(
            &TOKENS,
            Some("k"),
            Some(&sign("s", OLD)),
            OLD.as_bytes(),
            None
        )
        .is_ok());
    }

    #[test]
    fn webhook_time_ms_inside_the_window_either_way_is_accepted_and_its_edge_is_inclusive() {
        let at = |t: i64| format!(r#"{{"time_ms":{t},"events":[]}}"#);
        assert!(checked(&at(NOW_MS), NOW_MS).is_ok());
        assert!(checked(&at(NOW_MS - WINDOW_MS), NOW_MS).is_ok());
        assert!(checked(&at(NOW_MS + WINDOW_MS), NOW_MS).is_ok());
        assert_eq!(
            checked(&at(NOW_MS - WINDOW_MS - 1), NOW_MS)
                .unwrap_err()
                .reason(),
            "stale"
        );
        assert_eq!(
            checked(&at(NOW_MS + WINDOW_MS + 1), NOW_MS)
                .unwrap_err()
                .reason(),
            "stale"
        );
    }

    #[test]
    fn extreme_webhook_time_ms_is_refused_without_overflow() {
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
            let body = format!(r#"{{"time_ms":{t},"events":[]}}"#);
            for now in [NOW_MS, 0, i64::MIN, i64::MAX] {
                let got = checked(&body, now);
                let near = now.abs_diff(t) <= WINDOW_MS as u64;
                assert_eq!(got.is_ok(), near, "time_ms {t} at {now}: {got:?}");
            }
        }
        // u64::MAX and beyond are not an i64: refused as malformed, not stale.
        for t in [
            "18446744073709551615",
            "99999999999999999999999",
            "1e300",
            "-9223372036854775809",
        ] {
            let body = format!(r#"{{"time_ms":{t},"events":[]}}"#);
            assert_eq!(
                checked(&body, NOW_MS).unwrap_err().reason(),
                "bad_json",
                "{t}"
            );
        }
    }

    #[test]
    fn a_signed_webhook_without_time_ms_is_refused_when_a_window_is_asked_for() {
        let body = r#"{"events":[]}"#;
        assert_eq!(
            checked(body, NOW_MS).unwrap_err(),
            WebhookError::MissingTime
        );
        assert!(verify(
            &TOKENS,
            Some("k"),
            Some(&sign("s", body)),
            body.as_bytes(),
            None
        )
        .is_ok());
    }

    #[test]
    fn an_unknown_webhook_key_is_repeated_only_in_part() {
        let long = "x".repeat(10_000);
        let err = verify(&TOKENS, Some(&long), Some("00"), b"{}", None).unwrap_err();
        assert_eq!(err.reason(), "wrong_key");
        assert!(err.to_string().len() < 200, "{err}");
        let short = verify(&TOKENS, Some("other"), Some("00"), b"{}", None).unwrap_err();
        assert!(short.to_string().contains("\"other\""), "{short}");
    }
}
