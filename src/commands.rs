//! What the one-shot CLI commands do, kept out of [`crate::cli`] so that it only
//! parses arguments and prints.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::pusher::webhook::{self, Webhook, WebhookError, WebhookToken};
use crate::pusher::{Client, PusherError, Trigger};

/// A Pusher client for the configured app.
pub fn client(cfg: &Config) -> Result<Client, PusherError> {
    Client::new(&cfg.pusher)
}

/// The result of `pusher-relay check` (the seed's `isReady`/`getLastError`).
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    /// Where requests go.
    pub endpoint: String,
    /// Round trip of the signed request, when Pusher answered.
    pub latency_ms: Option<f64>,
    /// Why the check failed.
    pub error: Option<String>,
}

impl CheckReport {
    /// One line for people.
    pub fn summary(&self) -> String {
        match (&self.error, self.latency_ms) {
            (None, Some(ms)) => format!(
                "ok: {} accepted a signed request in {ms:.1} ms",
                self.endpoint
            ),
            (Some(e), _) => format!("not ready: {e}"),
            (None, None) => format!("ok: {}", self.endpoint),
        }
    }
}

/// Sends `GET /channels`, which needs a valid signature and key but changes
/// nothing, and reports how long Pusher took to accept it.
pub async fn check(cfg: &Config) -> CheckReport {
    let endpoint = cfg.pusher.base_url();
    let client = match client(cfg) {
        Ok(c) => c,
        Err(e) => {
            return CheckReport {
                ok: false,
                endpoint,
                latency_ms: None,
                error: Some(e.to_string()),
            }
        }
    };
    let started = Instant::now();
    let result = client.channels(None, &[]).await;
    let latency = started.elapsed();
    match result {
        Ok(_) => CheckReport {
            ok: true,
            endpoint,
            latency_ms: Some(ms(latency)),
            error: None,
        },
        Err(e) => CheckReport {
            ok: false,
            endpoint,
            latency_ms: e.status().map(|_| ms(latency)),
            error: Some(e.to_string()),
        },
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `pusher-relay trigger`: one event, sent now.
pub async fn trigger(
    cfg: &Config,
    channels: Vec<String>,
    event: String,
    data: String,
    socket_id: Option<String>,
    info: Option<String>,
) -> Result<serde_json::Value, PusherError> {
    let t = Trigger {
        event,
        channels,
        data,
        socket_id,
        info,
    };
    client(cfg)?.trigger(&t).await
}

/// `pusher-relay webhook verify`.
pub fn verify_webhook(
    cfg: &Config,
    key: &str,
    signature: &str,
    body: &[u8],
) -> Result<Webhook, WebhookError> {
    let tokens = [WebhookToken {
        key: &cfg.pusher.key,
        secret: cfg.pusher.secret.expose(),
    }];
    webhook::verify(&tokens, Some(key), Some(signature), body, None)
}

/// Builds an intent body from `--type` and `--set key=value` flags; a value
/// that parses as JSON is taken as JSON (so `user_id=42` is a number).
pub fn intent_from_flags(kind: &str, fields: &[String]) -> Result<String, String> {
    let mut intent = serde_json::Map::new();
    intent.insert("type".into(), kind.into());
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("--set {field:?} is not key=value"))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        intent.insert(key.to_string(), value);
    }
    Ok(serde_json::Value::Object(intent).to_string())
}

/// `pusher-relay auth channel`: the JSON an auth endpoint returns. Stricter
/// than the SDKs on presence data (it must carry a valid `user_id`), because
/// a person typing it wants to hear about a typo, not debug a failed
/// subscription.
pub fn auth_channel(
    cfg: &Config,
    channel: &str,
    socket_id: &str,
    channel_data: Option<&str>,
) -> Result<String, crate::pusher::auth::AuthError> {
    if crate::pusher::validate::is_presence_channel(channel) {
        if let Some(data) = channel_data {
            crate::pusher::auth::check_presence_data(data)?;
        }
    }
    let master_key = cfg.pusher.encryption_master_key;
    Ok(crate::pusher::auth::authorize_channel(
        &cfg.pusher.key,
        cfg.pusher.secret.expose(),
        master_key.as_ref().map(|k| k.as_slice()),
        channel,
        socket_id,
        channel_data,
    )?
    .to_json())
}
