//! The Pusher Channels REST client: signed requests over one pooled HTTP
//! client, validation before anything is sent, typed answers and errors.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::error::{excerpt, parse_retry_after, PusherError};
use super::sign::{self, RESERVED_PARAMS};
use super::validate::{self, ValidationError, MAX_BATCH_EVENTS};
use super::{auth, crypto};
use crate::config::PusherConfig;

/// One event to 1..=100 channels (`POST /events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Event name.
    pub event: String,
    /// Channels to send it to.
    pub channels: Vec<String>,
    /// The text Pusher delivers as the event's data (usually JSON).
    pub data: String,
    /// Connection to exclude (the sender's own).
    pub socket_id: Option<String>,
    /// Channel attributes to return (`user_count`, `subscription_count`).
    pub info: Option<String>,
}

/// One event to one channel: an item of `POST /batch_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEvent {
    pub channel: String,
    pub event: String,
    pub data: String,
    pub socket_id: Option<String>,
    pub info: Option<String>,
}

/// `GET /channels/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    pub occupied: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<u64>,
}

/// Attributes of one channel in a `GET /channels` listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<u64>,
}

/// `GET /channels`: only occupied channels are listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelList {
    pub channels: BTreeMap<String, ChannelAttributes>,
}

/// The outcome of one `batch_events` request inside [`Client::trigger_batch`].
#[derive(Debug)]
pub struct BatchChunkResult {
    /// Which of the caller's events this request carried.
    pub events: Range<usize>,
    /// Per-event `info` answers (empty objects when none was asked), or why
    /// the whole request failed.
    pub result: Result<Vec<serde_json::Value>, PusherError>,
}

/// Wire form of a batch item; `data` already encrypted where needed.
#[derive(Serialize)]
struct WireBatchItem<'a> {
    name: &'a str,
    channel: &'a str,
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a str>,
}

#[derive(Serialize)]
struct WireBatch<'a> {
    batch: Vec<WireBatchItem<'a>>,
}

#[derive(Serialize)]
struct WireTrigger<'a> {
    name: &'a str,
    channels: &'a [String],
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a str>,
}

/// Bounded concurrency of [`Client::trigger_batch`]: enough to hide latency
/// without looking like a flood to Pusher's rate limits.
pub const BATCH_CONCURRENCY: usize = 4;

/// A Pusher Channels REST client. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    app_id: String,
    key: String,
    secret: crate::config::Secret,
    master_key: Option<[u8; 32]>,
    max_event_bytes: usize,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client from the configuration.
    pub fn new(cfg: &PusherConfig) -> Result<Client, PusherError> {
        let tls = super::tls::client_config(cfg).map_err(|e| PusherError::Transport {
            url: cfg.base_url(),
            detail: format!("cannot set up TLS: {e}"),
        })?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .use_preconfigured_tls(tls)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("pusher-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PusherError::Transport {
                url: cfg.base_url(),
                detail: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Client {
            http,
            base_url: cfg.base_url(),
            app_id: cfg.app_id.clone(),
            key: cfg.key.clone(),
            secret: cfg.secret.clone(),
            master_key: cfg.encryption_master_key,
            max_event_bytes: cfg.max_event_bytes,
            timeout: cfg.timeout,
        })
    }

    /// Sends one event to 1..=100 channels. An encrypted channel must be
    /// the only channel; its data is encrypted before sending.
    pub async fn trigger(&self, t: &Trigger) -> Result<serde_json::Value, PusherError> {
        validate::validate_channels(&t.channels)?;
        validate::validate_event_name(&t.event)?;
        if let Some(socket_id) = &t.socket_id {
            validate::validate_socket_id(socket_id)?;
        }
        let single = t.channels.first().map(String::as_str);
        let data = self.seal(single.unwrap_or_default(), &t.data)?;
        validate::validate_data_size(
            single.filter(|_| t.channels.len() == 1),
            &data,
            self.max_event_bytes,
        )?;
        let body = serde_json::to_vec(&WireTrigger {
            name: &t.event,
            channels: &t.channels,
            data: &data,
            socket_id: t.socket_id.as_deref(),
            info: t.info.as_deref(),
        })
        .expect("strings always serialise");
        self.request("POST", "/events", &[], Some(body)).await
    }

    /// Sends 1..=10 single-channel events in one `batch_events` request and
    /// returns Pusher's per-event answers (empty objects unless `info` was
    /// asked). The relay's unit of work.
    pub async fn post_batch(
        &self,
        events: &[BatchEvent],
    ) -> Result<Vec<serde_json::Value>, PusherError> {
        if events.is_empty() || events.len() > MAX_BATCH_EVENTS {
            return Err(ValidationError::BatchSize {
                count: events.len(),
            }
            .into());
        }
        let body = self.batch_body(events)?;
        let answer = self
            .request("POST", "/batch_events", &[], Some(body))
            .await?;
        Ok(match answer.get("batch").and_then(|b| b.as_array()) {
            Some(items) => items.clone(),
            None => vec![serde_json::json!({}); events.len()],
        })
    }

    /// Validates, encrypts where needed and serialises a batch body once, so
    /// the signed MD5 covers exactly the bytes sent.
    pub fn batch_body(&self, events: &[BatchEvent]) -> Result<Vec<u8>, PusherError> {
        let mut sealed = Vec::with_capacity(events.len());
        for e in events {
            validate::validate_channel(&e.channel)?;
            validate::validate_event_name(&e.event)?;
            if let Some(socket_id) = &e.socket_id {
                validate::validate_socket_id(socket_id)?;
            }
            let data = self.seal(&e.channel, &e.data)?;
            validate::validate_data_size(Some(&e.channel), &data, self.max_event_bytes)?;
            sealed.push(data);
        }
        let batch: Vec<WireBatchItem<'_>> = events
            .iter()
            .zip(&sealed)
            .map(|(e, data)| WireBatchItem {
                name: &e.event,
                channel: &e.channel,
                data,
                socket_id: e.socket_id.as_deref(),
                info: e.info.as_deref(),
            })
            .collect();
        Ok(serde_json::to_vec(&WireBatch { batch }).expect("strings always serialise"))
    }

    /// Sends any number of single-channel events, 10 per request, at most
    /// [`BATCH_CONCURRENCY`] requests at once; results in request order.
    pub async fn trigger_batch(&self, events: &[BatchEvent]) -> Vec<BatchChunkResult> {
        let chunks: Vec<Range<usize>> = (0..events.len())
            .step_by(MAX_BATCH_EVENTS)
            .map(|start| start..(start + MAX_BATCH_EVENTS).min(events.len()))
            .collect();
        stream::iter(chunks)
            .map(|range| async move {
                let result = self.post_batch(&events[range.clone()]).await;
                BatchChunkResult {
                    events: range,
                    result,
                }
            })
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await
    }

    /// `GET /channels/{channel}` with optional attributes
    /// (`user_count`, `subscription_count`, `cache`).
    pub async fn channel_info(
        &self,
        channel: &str,
        info: &[String],
    ) -> Result<ChannelInfo, PusherError> {
        validate::validate_channel(channel)?;
        let params = info_param(info);
        let path = format!("/channels/{channel}");
        self.request_typed("GET", &path, &params).await
    }

    /// `GET /channels`, optionally filtered by prefix; `info` may only be
    /// `user_count`, and only with a `presence-` prefix (Pusher answers 400).
    pub async fn channels(
        &self,
        prefix: Option<&str>,
        info: &[String],
    ) -> Result<ChannelList, PusherError> {
        let mut params = info_param(info);
        if let Some(prefix) = prefix {
            params.push(("filter_by_prefix".into(), prefix.into()));
        }
        self.request_typed("GET", "/channels", &params).await
    }

    /// `GET /channels/{presence-channel}/users`: the ids of its members.
    pub async fn users(&self, channel: &str) -> Result<Vec<String>, PusherError> {
        validate::validate_channel(channel)?;
        #[derive(Deserialize)]
        struct User {
            id: serde_json::Value,
        }
        #[derive(Deserialize)]
        struct Users {
            users: Vec<User>,
        }
        let path = format!("/channels/{channel}/users");
        let users: Users = self.request_typed("GET", &path, &[]).await?;
        Ok(users
            .users
            .into_iter()
            .map(|u| match u.id {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect())
    }

    /// Closes every connection of a signed-in user.
    pub async fn terminate_user_connections(&self, user_id: &str) -> Result<(), PusherError> {
        validate::validate_user_id(user_id)?;
        let path = format!("/users/{user_id}/terminate_connections");
        self.request("POST", &path, &[], Some(b"{}".to_vec()))
            .await
            .map(|_| ())
    }

    /// Sends an event to a signed-in user (channel `#server-to-user-{id}`).
    pub async fn send_to_user(
        &self,
        user_id: &str,
        event: &str,
        data: &str,
    ) -> Result<(), PusherError> {
        validate::validate_user_id(user_id)?;
        let t = Trigger {
            event: event.into(),
            channels: vec![format!("#server-to-user-{user_id}")],
            data: data.into(),
            socket_id: None,
            info: None,
        };
        self.trigger(&t).await.map(|_| ())
    }

    /// Channel authorisation with this app's credentials.
    pub fn authorize_channel(
        &self,
        channel: &str,
        socket_id: &str,
        channel_data: Option<&str>,
    ) -> Result<auth::AuthResponse, auth::AuthError> {
        auth::authorize_channel(
            &self.key,
            self.secret.expose(),
            self.master_key.as_ref().map(|k| k.as_slice()),
            channel,
            socket_id,
            channel_data,
        )
    }

    /// User authentication with this app's credentials.
    pub fn authenticate_user(
        &self,
        socket_id: &str,
        user_data: &str,
    ) -> Result<auth::AuthResponse, auth::AuthError> {
        auth::authenticate_user(&self.key, self.secret.expose(), socket_id, user_data)
    }

    /// Encrypts `data` for encrypted channels; other channels pass through
    /// without a copy.
    fn seal<'a>(
        &self,
        channel: &str,
        data: &'a str,
    ) -> Result<std::borrow::Cow<'a, str>, PusherError> {
        if !validate::is_encrypted_channel(channel) {
            return Ok(std::borrow::Cow::Borrowed(data));
        }
        let key = self
            .master_key
            .ok_or_else(|| PusherError::MissingMasterKey {
                channel: channel.to_string(),
            })?;
        Ok(std::borrow::Cow::Owned(crypto::encrypt(
            channel,
            data.as_bytes(),
            &key,
        )))
    }

    async fn request_typed<T: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        params: &[(String, String)],
    ) -> Result<T, PusherError> {
        let value = self.request(method, path, params, None).await?;
        serde_json::from_value(value).map_err(|e| PusherError::Decode {
            path: path.to_string(),
            detail: e.to_string(),
        })
    }

    /// Signs and sends one request to `/apps/{id}{path}`. The timestamp is
    /// taken here, so a retried request is always freshly signed.
    pub async fn request(
        &self,
        method: &'static str,
        path: &str,
        params: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<serde_json::Value, PusherError> {
        if let Some((k, _)) = params
            .iter()
            .find(|(k, _)| RESERVED_PARAMS.contains(&k.to_ascii_lowercase().as_str()))
        {
            return Err(ValidationError::ReservedParam { name: k.clone() }.into());
        }
        let full_path = format!("/apps/{}{}", self.app_id, path);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let signed = sign::sign(
            &self.key,
            self.secret.expose(),
            method,
            &full_path,
            params,
            body.as_deref(),
            timestamp,
        );
        let url = format!("{}{}", self.base_url, full_path);
        let mut req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        }
        .query(&signed.params)
        .header(
            "X-Pusher-Library",
            concat!("pusher-relay ", env!("CARGO_PKG_VERSION")),
        );
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body);
        }
        let started = Instant::now();
        let response = req
            .send()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        tracing::debug!(method, path = %full_path, status, elapsed_ms = started.elapsed().as_millis() as u64, "pusher request");
        if !(200..300).contains(&status) {
            return Err(PusherError::Status {
                method,
                path: full_path,
                status,
                body: excerpt(&text),
                retry_after,
            });
        }
        if text.trim().is_empty() {
            return Ok(serde_json::json!({}));
        }
        serde_json::from_str(&text).map_err(|e| PusherError::Decode {
            path: full_path,
            detail: format!("{e}; body starts {:?}", excerpt(&text)),
        })
    }

    fn transport_error(&self, url: &str, e: reqwest::Error) -> PusherError {
        let url = url.to_string();
        if e.is_timeout() {
            PusherError::Timeout {
                url,
                timeout: self.timeout,
            }
        } else if e.is_connect() {
            PusherError::Connect {
                url,
                detail: error_chain(&e),
            }
        } else {
            PusherError::Transport {
                url,
                detail: error_chain(&e),
            }
        }
    }
}

fn info_param(info: &[String]) -> Vec<(String, String)> {
    if info.is_empty() {
        Vec::new()
    } else {
        vec![("info".to_string(), info.join(","))]
    }
}

/// reqwest's top-level message is vague ("error sending request"); the
/// causes say what happened (connection refused, DNS failure, ...). The
/// URL is cut off because it carries the signed query.
fn error_chain(e: &reqwest::Error) -> String {
    let top = e.to_string();
    let mut parts = vec![match top.find(" for url (") {
        Some(i) => top[..i].to_string(),
        None => top,
    }];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}
