//! The worker's three links (RabbitMQ, PostgreSQL, Pusher) as TLS
//! endpoints, each built by the link's own module from the settings its
//! real client uses, and what [`crate::tls::probe`] finds at each:
//!
//! - at start ([`verify_at_start`], called by `app` before the relay
//!   consumes): a certificate the client would refuse is a configuration
//!   error that stops the worker, naming the link and the reason, before
//!   anything is taken from the queue; a link that does not answer is left
//!   to its client, which waits for it as for any outage;
//! - `pusher-relay check`: each link's TLS version, peer name and expiry;
//! - the expiry gauge, refreshed by [`watch_expiry`] every hour.

use std::time::{Duration, SystemTime};

use futures_util::future::join_all;

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::tls::{self, Endpoint, Link, ProbeError, State, Verify};

/// How long one probe may take, connect and handshake together.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the expiry gauge is refreshed: certificates change on the
/// scale of days, and the alert fires two weeks ahead.
pub const EXPIRY_REFRESH: Duration = Duration::from_secs(3600);

/// One peer of a link (a RabbitMQ cluster has one per node).
#[derive(Debug, Clone)]
pub struct Target {
    pub link: Link,
    /// `host:port`, no credentials.
    pub address: String,
    /// How its client uses TLS: `Ok(None)` for a plain link, `Err` when the
    /// TLS settings cannot be used (a CA file that cannot be read).
    pub endpoint: Result<Option<Endpoint>, String>,
}

/// Every peer the worker connects to, from the settings. A SQLite store is
/// a file, not a link.
pub fn targets(cfg: &Config) -> Vec<Target> {
    let mut targets: Vec<Target> = cfg.amqp.urls().into_iter().map(amqp_target).collect();
    if let Some(address) = postgres_address(cfg.database_url.expose()) {
        let endpoint =
            crate::deadletter::tls_endpoint(cfg.database_url.expose()).map_err(|e| with_causes(&e));
        targets.push(Target {
            link: Link::Postgres,
            address: resolved(&endpoint).unwrap_or(address),
            endpoint,
        });
    }
    let endpoint = crate::pusher::tls::endpoint(&cfg.pusher).map_err(|e| e.to_string());
    targets.push(Target {
        link: Link::Pusher,
        address: resolved(&endpoint).unwrap_or_else(|| {
            format!(
                "{}:{}",
                cfg.pusher.effective_host(),
                cfg.pusher.effective_port()
            )
        }),
        endpoint,
    });
    targets
}

/// Where the client really connects, when it uses TLS (a `host=` parameter
/// of a PostgreSQL URL wins over the URL's host).
fn resolved(endpoint: &Result<Option<Endpoint>, String>) -> Option<String> {
    endpoint.as_ref().ok()?.as_ref().map(Endpoint::address)
}

/// The error and its causes on one line (a store error keeps the reason in
/// its source).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text = format!("{text}: {c_text}");
        }
        cause = c.source();
    }
    text
}

/// A broker URL's peer, with the TLS its connection uses (`amqp::tls`:
/// the URL's `cacertfile`, `certfile`, `verify`, `server_name_indication`).
fn amqp_target(url: &str) -> Target {
    let endpoint = crate::amqp::tls::endpoint(url).map_err(|e| e.to_string());
    let address = match &endpoint {
        Ok(Some(e)) => e.address(),
        _ => {
            let parsed = url::Url::parse(url).ok();
            let host = parsed
                .as_ref()
                .and_then(|u| u.host_str())
                .unwrap_or("localhost")
                .to_owned();
            let port = parsed.as_ref().and_then(|u| u.port()).unwrap_or(5672);
            format!("{host}:{port}")
        }
    };
    Target {
        link: Link::RabbitMq,
        address,
        endpoint,
    }
}

/// `host:port` of a PostgreSQL URL, `None` for another scheme.
fn postgres_address(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return None;
    }
    let host = parsed.host_str().unwrap_or("localhost");
    Some(format!("{host}:{}", parsed.port().unwrap_or(5432)))
}

/// What a probe of one target found.
#[derive(Debug)]
pub struct Probed {
    pub link: Link,
    pub address: String,
    pub result: Result<State, LinkError>,
}

/// Why a link's TLS state is unknown.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{link} at {address}: the TLS settings cannot be used: {detail}")]
    Settings {
        link: Link,
        address: String,
        detail: String,
    },
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

impl LinkError {
    /// A setting to fix, rather than a peer that is away.
    pub fn is_configuration(&self) -> bool {
        match self {
            LinkError::Settings { .. } => true,
            LinkError::Probe(e) => e.is_configuration(),
        }
    }
}

/// Probes one target.
pub async fn probe(target: &Target) -> Probed {
    let result = match &target.endpoint {
        Err(detail) => Err(LinkError::Settings {
            link: target.link,
            address: target.address.clone(),
            detail: detail.clone(),
        }),
        Ok(None) => Ok(State::Plain),
        Ok(Some(endpoint)) => tls::probe(endpoint, PROBE_TIMEOUT)
            .await
            .map_err(LinkError::from),
    };
    Probed {
        link: target.link,
        address: target.address.clone(),
        result,
    }
}

/// Probes every target at once.
pub async fn probe_all(targets: &[Target]) -> Vec<Probed> {
    join_all(targets.iter().map(probe)).await
}

/// The start-time check: probes every link, logs what it found, sets the
/// expiry gauge, and fails on the first certificate a client would refuse.
pub async fn verify_at_start(cfg: &Config, targets: &[Target]) -> Result<(), LinkError> {
    if !cfg.pusher.verify_ssl && cfg.pusher.effective_scheme() == crate::config::Scheme::Https {
        tracing::warn!(
            pusher = %cfg.pusher.base_url(),
            "PUSHER_VERIFY_SSL=false: Pusher's certificate is not verified, so anyone on the path can read the app secret's signatures and the events; set PUSHER_CA_FILE for a private CA instead"
        );
    }
    if let Some(mode) = crate::deadletter::unverified_mode(cfg.database_url.expose()) {
        tracing::warn!(
            sslmode = mode,
            "the dead-letter store's link is not verified: with sslmode={mode} anyone on the path can pose as PostgreSQL{}; set sslmode=verify-full (and sslrootcert for a private CA)",
            if mode == "prefer" || mode == "allow" {
                " or make the link plain text without a word"
            } else {
                ""
            }
        );
    }
    let probed = probe_all(targets).await;
    record_expiry(&probed);
    let mut refused = None;
    for p in probed {
        match p.result {
            Ok(State::Plain) => {
                tracing::info!(link = %p.link, address = %p.address, "plain (no TLS)")
            }
            Ok(State::Tls(peer)) => {
                if peer.verified != Verify::Full.as_str() {
                    tracing::warn!(link = %p.link, address = %p.address, verified = peer.verified, "TLS certificate not fully verified");
                }
                tracing::info!(
                    link = %p.link, address = %p.address, version = %peer.version,
                    peer = %peer.subject, expires = %peer.expires(),
                    days_left = peer.days_left(SystemTime::now()) as i64,
                    "TLS verified at start"
                );
            }
            Err(e) if e.is_configuration() => {
                if refused.is_none() {
                    refused = Some(e);
                } else {
                    tracing::error!(error = %e, "TLS refused");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS not checked at start; the link is connected when it answers")
            }
        }
    }
    refused.map_or(Ok(()), Err)
}

/// Sets the expiry gauge of each link from what was found: the soonest
/// expiry among its peers. A link that did not answer keeps its last value.
pub fn record_expiry(probed: &[Probed]) {
    let now = SystemTime::now();
    for link in Link::ALL {
        let soonest = probed
            .iter()
            .filter(|p| p.link == link)
            .filter_map(|p| match &p.result {
                Ok(State::Tls(peer)) => Some(peer.days_left(now)),
                _ => None,
            })
            .reduce(f64::min);
        if let Some(days) = soonest {
            crate::metrics::tls_certificate_expiry_days(link.label(), days);
        }
    }
}

/// Re-probes every [`EXPIRY_REFRESH`] until shutdown, so the gauge follows
/// a certificate renewed (or not) while the worker runs. A failure now is
/// an outage, logged, not a reason to stop.
pub async fn watch_expiry(targets: Vec<Target>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(EXPIRY_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the start-time check has just probed.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => return,
        }
        let probed = tokio::select! {
            probed = probe_all(&targets) => probed,
            _ = shutdown.recv() => return,
        };
        for p in &probed {
            if let Err(e) = &p.result {
                tracing::warn!(error = %e, "TLS probe failed");
            }
        }
        record_expiry(&probed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_are_peers() {
        let plain = amqp_target("amqp://u:p@rabbit:5672/%2f");
        assert_eq!(plain.address, "rabbit:5672");
        assert!(matches!(plain.endpoint, Ok(None)));
        let tls = amqp_target("amqps://u:p@b-1.mq.eu-west-1.amazonaws.com/%2f");
        assert_eq!(tls.address, "b-1.mq.eu-west-1.amazonaws.com:5671");
        assert!(matches!(tls.endpoint, Ok(Some(_))));
    }

    #[test]
    fn only_postgres_stores_are_links() {
        assert_eq!(
            postgres_address("postgres://u:p@db/x").as_deref(),
            Some("db:5432")
        );
        assert_eq!(postgres_address("sqlite://relay.db"), None);
    }
}
