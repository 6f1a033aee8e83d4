//! `pusher-relay listen`: a WebSocket client of the configured Pusher that
//! subscribes to channels and prints what arrives, so an operator (or a
//! newcomer) can watch events land without a browser. Private, presence and
//! encrypted channels are authorised with this crate's own auth; encrypted
//! data is decrypted with the master key.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::config::{PusherConfig, Scheme};
use crate::pusher::{auth, crypto, validate};

/// Why listening stopped.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot open the WebSocket {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the WebSocket closed: {0}")]
    Closed(String),
    #[error("cannot subscribe to {channel:?}: {detail}")]
    Subscribe { channel: String, detail: String },
}

/// The WebSocket URL pusher-js would use for this configuration.
pub fn websocket_url(cfg: &PusherConfig) -> String {
    let tls = cfg.effective_scheme() == Scheme::Https;
    let host = match &cfg.host {
        Some(host) => format!("{host}:{}", cfg.effective_port()),
        None => format!(
            "ws-{}.pusher.com:{}",
            cfg.cluster,
            if tls { 443 } else { 80 }
        ),
    };
    let scheme = if tls { "wss" } else { "ws" };
    format!(
        "{scheme}://{host}/app/{}?protocol=7&client=pusher-relay&version={}",
        cfg.key,
        env!("CARGO_PKG_VERSION")
    )
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Subscribes to `channels` and calls `on_event` with one JSON object per
/// event (`channel`, `event`, `data`) until the connection closes.
pub async fn listen(
    cfg: &PusherConfig,
    channels: &[String],
    mut on_event: impl FnMut(Value),
) -> Result<(), ListenError> {
    let url = websocket_url(cfg);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| ListenError::Connect {
            url: url.clone(),
            detail: e.to_string(),
        })?;
    let mut socket_id = None;
    while let Some(frame) = ws.next().await {
        let frame = frame.map_err(|e| ListenError::Closed(e.to_string()))?;
        let Message::Text(body) = frame else {
            continue;
        };
        let Ok(msg) = serde_json::from_str::<Value>(&body) else {
            continue;
        };
        let event = msg["event"].as_str().unwrap_or_default();
        let data = text(&msg["data"]);
        match event {
            "pusher:connection_established" => {
                let info: Value = serde_json::from_str(&data).unwrap_or_default();
                let id = info["socket_id"].as_str().unwrap_or_default().to_string();
                for channel in channels {
                    let sub = subscription(cfg, channel, &id)?;
                    ws.send(Message::Text(
                        json!({"event": "pusher:subscribe", "data": sub}).to_string(),
                    ))
                    .await
                    .map_err(|e| ListenError::Closed(e.to_string()))?;
                }
                socket_id = Some(id);
            }
            "pusher:ping" => {
                let pong = json!({"event": "pusher:pong", "data": {}}).to_string();
                ws.send(Message::Text(pong))
                    .await
                    .map_err(|e| ListenError::Closed(e.to_string()))?;
            }
            "pusher_internal:subscription_succeeded" => {
                tracing::info!(
                    channel = msg["channel"].as_str().unwrap_or_default(),
                    socket_id = socket_id.as_deref().unwrap_or_default(),
                    "subscribed"
                );
            }
            "pusher:error" | "pusher:subscription_error" => {
                return Err(ListenError::Subscribe {
                    channel: text(&msg["channel"]),
                    detail: data,
                });
            }
            _ if !event.starts_with("pusher") => {
                let channel = msg["channel"].as_str().unwrap_or_default().to_string();
                let data = match (
                    validate::is_encrypted_channel(&channel),
                    cfg.encryption_master_key,
                ) {
                    (true, Some(key)) => crypto::decrypt(&channel, &data, &key)
                        .map(|plain| String::from_utf8_lossy(&plain).into_owned())
                        .unwrap_or_else(|e| format!("<cannot decrypt: {e}>")),
                    _ => data,
                };
                on_event(json!({"channel": channel, "event": event, "data": data}));
            }
            _ => {}
        }
    }
    Err(ListenError::Closed(
        "the server ended the connection".into(),
    ))
}

fn subscription(cfg: &PusherConfig, channel: &str, socket_id: &str) -> Result<Value, ListenError> {
    let needs_auth = validate::is_private_channel(channel)
        || validate::is_encrypted_channel(channel)
        || validate::is_presence_channel(channel);
    if !needs_auth {
        return Ok(json!({ "channel": channel }));
    }
    let channel_data = validate::is_presence_channel(channel)
        .then(|| auth::presence_channel_data("pusher-relay-listen", None));
    let answer = auth::authorize_channel(
        &cfg.key,
        cfg.secret.expose(),
        cfg.encryption_master_key.as_ref().map(|k| k.as_slice()),
        channel,
        socket_id,
        channel_data.as_deref(),
    )
    .map_err(|e| ListenError::Subscribe {
        channel: channel.to_string(),
        detail: e.to_string(),
    })?;
    let mut sub = json!({ "channel": channel, "auth": answer.auth });
    if let Some(data) = answer.channel_data {
        sub["channel_data"] = data.into();
    }
    Ok(sub)
}
