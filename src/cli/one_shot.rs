//! What the one-shot commands (`check`, `trigger`, the channel queries,
//! `auth`, `webhooks verify`, `publish`'s flags) do, kept out of their
//! group files so that those only parse arguments and print.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::amqp;
use crate::config::Config;
use crate::link_probes;
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
    /// Each link's TLS, as the worker's start-time check finds it.
    pub links: Vec<LinkReport>,
    /// Each intent queue against what the worker declares.
    pub queues: Vec<QueueReport>,
}

/// One intent queue in `check`.
#[derive(Debug, Serialize)]
pub struct QueueReport {
    pub queue: String,
    /// `absent ...`, `as declared ...`, `declared by an earlier version
    /// ...`, `refused` or `unknown`.
    pub state: String,
    /// What to do about it, when anything.
    pub fix: Option<String>,
}

impl QueueReport {
    fn of(cfg: &Config, queue: String, state: Result<amqp::QueueState, String>) -> QueueReport {
        let (state, fix) = match state {
            Ok(amqp::QueueState::Absent) => {
                ("absent (the worker declares it at start)".into(), None)
            }
            Ok(amqp::QueueState::AsDeclared) => (
                format!("as declared (delivery limit {})", amqp::DELIVERY_LIMIT),
                None,
            ),
            Ok(amqp::QueueState::WithoutLimit) => (
                "declared by an earlier version without the delivery limit: unless a policy \
                 gives it one (policies do not show here), RabbitMQ 4 drops what it redelivers \
                 20 times"
                    .into(),
                Some(amqp::limit_policy_command(&cfg.amqp)),
            ),
            Ok(amqp::QueueState::Refused(why)) => ("refused".into(), Some(why)),
            Err(e) => ("unknown".into(), Some(e)),
        };
        QueueReport { queue, state, fix }
    }

    /// Whether the worker would refuse to start on this queue.
    fn refused(&self) -> bool {
        self.state == "refused"
    }

    /// One line for people, and the fix on the next.
    pub fn summary(&self) -> String {
        let line = format!("{:<10} {:<28} {}", "queue", self.queue, self.state);
        match &self.fix {
            Some(fix) => format!("{line}\n           fix: {fix}"),
            None => line,
        }
    }
}

/// One peer's TLS state in `check`.
#[derive(Debug, Serialize)]
pub struct LinkReport {
    /// RabbitMQ, PostgreSQL or Pusher.
    pub link: String,
    /// `host:port`.
    pub address: String,
    /// `plain`, or the TLS version (`TLSv1.3`); absent when unknown.
    pub tls: Option<String>,
    /// The peer certificate, when TLS.
    pub peer: Option<crate::tls::Peer>,
    /// When it expires (RFC 3339) and in how many days.
    pub expires: Option<String>,
    pub days_left: Option<i64>,
    /// Why the state is unknown.
    pub error: Option<String>,
    /// Whether that error is a setting to fix: the worker would not start.
    pub refused: bool,
}

impl LinkReport {
    fn of(probed: link_probes::Probed) -> LinkReport {
        let mut report = LinkReport {
            link: probed.link.to_string(),
            address: probed.address,
            tls: None,
            peer: None,
            expires: None,
            days_left: None,
            error: None,
            refused: false,
        };
        match probed.result {
            Ok(crate::tls::State::Plain) => report.tls = Some("plain".into()),
            Ok(crate::tls::State::Tls(peer)) => {
                report.tls = Some(peer.version.clone());
                report.expires = Some(peer.expires());
                report.days_left =
                    Some(peer.days_left(std::time::SystemTime::now()).floor() as i64);
                report.peer = Some(peer);
            }
            Err(e) => {
                report.refused = e.is_configuration();
                report.error = Some(e.to_string());
            }
        }
        report
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let state = match (&self.error, &self.peer) {
            (Some(e), _) => format!("error: {e}"),
            (None, Some(peer)) => format!(
                "{}, peer {} (issued by {}), expires {} ({} days), {}",
                peer.version,
                peer.subject,
                peer.issuer,
                self.expires.as_deref().unwrap_or_default(),
                self.days_left.unwrap_or_default(),
                peer.verified
            ),
            (None, None) => self.tls.clone().unwrap_or_default(),
        };
        format!("{:<10} {:<28} {state}", self.link, self.address)
    }
}

impl CheckReport {
    /// Lines for people: Pusher's answer, then each link's TLS.
    pub fn summary(&self) -> String {
        let head = match (&self.error, self.latency_ms) {
            (None, Some(ms)) => format!(
                "ok: {} accepted a signed request in {ms:.1} ms",
                self.endpoint
            ),
            (Some(e), _) => format!("not ready: {e}"),
            (None, None) => format!("ok: {}", self.endpoint),
        };
        std::iter::once(head)
            .chain(self.links.iter().map(LinkReport::summary))
            .chain(self.queues.iter().map(QueueReport::summary))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Sends `GET /channels`, which needs a valid signature and key but changes
/// nothing, and reports how long Pusher took to accept it; and probes each
/// link's TLS as the worker does at start. Not ok when Pusher refuses or a
/// certificate would stop the worker.
pub async fn check(cfg: &Config) -> CheckReport {
    let targets = link_probes::targets(cfg);
    let (pusher, probed, queues) = tokio::join!(
        check_pusher(cfg),
        link_probes::probe_all(&targets),
        check_queues(cfg)
    );
    let links: Vec<LinkReport> = probed.into_iter().map(LinkReport::of).collect();
    let (endpoint, latency_ms, error) = pusher;
    CheckReport {
        ok: error.is_none()
            && !links.iter().any(|l| l.refused)
            && !queues.iter().any(QueueReport::refused),
        endpoint,
        latency_ms,
        error,
        links,
        queues,
    }
}

/// Each consumed queue against what the worker would declare; a broker
/// that cannot be reached is the links' to report, so it makes every queue
/// `unknown`, not the check failed.
async fn check_queues(cfg: &Config) -> Vec<QueueReport> {
    let names = amqp::consumed_queues(&cfg.amqp);
    let single_active = cfg.amqp.single_active_queues();
    let conn = match amqp::connect_short_lived(&cfg.amqp, "pusher-relay check").await {
        Ok(conn) => conn,
        Err(e) => {
            return names
                .into_iter()
                .map(|q| QueueReport::of(cfg, q, Err(e.to_string())))
                .collect()
        }
    };
    let mut reports = Vec::with_capacity(names.len());
    for name in names {
        let state = amqp::inspect_queue(&conn, &cfg.amqp, &name, single_active)
            .await
            .map_err(|e| e.to_string());
        reports.push(QueueReport::of(cfg, name, state));
    }
    let _ = conn.close(200, "checked").await;
    reports
}

/// Where requests go, the signed request's round trip and why it failed.
async fn check_pusher(cfg: &Config) -> (String, Option<f64>, Option<String>) {
    let endpoint = cfg.pusher.base_url();
    let client = match client(cfg) {
        Ok(c) => c,
        Err(e) => return (endpoint, None, Some(e.to_string())),
    };
    let started = Instant::now();
    let result = client.channels(None, &[]).await;
    let latency = started.elapsed();
    match result {
        Ok(_) => (endpoint, Some(ms(latency)), None),
        Err(e) => (
            endpoint,
            e.status().map(|_| ms(latency)),
            Some(e.to_string()),
        ),
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
