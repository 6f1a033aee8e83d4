//! Settings, read once from the environment (and `.env`), validated at start
//! and passed down. Beyond the settings, only the process's surroundings are
//! read elsewhere: `HOSTNAME` (the parked log of a competing consumer, in
//! the relay), and `RUST_LOG` and `NO_COLOR` (logging, in the CLI).
//!
//! The `PUSHER_*` names and defaults are the seed PHP app's, so an app's
//! existing `.env` works unchanged. A bad value fails start-up with the
//! variable's name, what is wrong and what is expected; every bad variable is
//! reported at once, not one per restart.
//!
//! Every variable is one row of [`SETTINGS`] (in `settings.rs`): its
//! default, its parser, whether it is secret and how it is shown. Loading,
//! `pusher-relay config`, redaction and the `NAME_FILE` variants of secrets
//! all walk that list. This is the bottom layer: it imports nothing from the
//! rest of the crate, so the channel templates it checks ([`channels`]) and
//! Pusher's channel-name rules they are checked against ([`pusher_rules`])
//! live here too.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;

pub mod channels;
pub mod pusher_rules;
mod settings;
mod urls;

pub use channels::{ChannelTemplates, TemplateError};
pub use settings::{reference_table, Secrecy, Setting, SETTINGS};
use urls::split_urls;
pub use urls::{redact_url, userinfo_is_ambiguous, AMBIGUOUS_USERINFO};

/// Per-channel order allows one request per channel in flight, so the
/// useful concurrency is about the number of channels with work waiting
/// (more when small channels share a batch); this covers a few hundred
/// busy channels at any distance, and the adaptive limit finds the part of
/// it Pusher accepts.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Unacked deliveries held. Keeping Pusher busy takes 10 events per request
/// in flight plus the next batch of every lane waiting behind it, and a hot
/// channel's backlog must not fill the window and starve the others: see
/// docs/tuning.md, "Distance" and "Memory", for the figures behind it.
pub const DEFAULT_PREFETCH: u16 = 10_000;

/// The most shard queues: each is a quorum queue (a Raft group on every
/// node) and a consumer per worker, so hundreds would cost the cluster more
/// than the order they buy.
pub const MAX_SHARDS: u16 = 64;

/// The shortest `RELAY_ADMIN_TOKEN` accepted: it opens every dead letter's
/// contents, replay and purge, so it must be unguessable.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// `deploy/kubernetes/secret.example.yaml`'s value, refused although it is
/// long enough: an operator who copied the example has not chosen a token.
const ADMIN_TOKEN_PLACEHOLDER: &str = "change-me-to-a-long-random-token";

/// The default `RELAY_MAX_BODY_BYTES`: an intent carries one event of at
/// most `PUSHER_MAX_EVENT_BYTES` (10 KiB at Pusher) plus its envelope, so
/// 64 KiB leaves room for servers with a raised event limit while a full
/// prefetch window of 10,000 stays under 640 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024;
/// Header table bytes kept by default: intents need a few headers (the
/// ordering key, a trace id); 16 KiB is far beyond them.
pub const DEFAULT_MAX_HEADER_BYTES: u32 = 16 * 1024;
/// The default `RELAY_MAX_HELD_BYTES`: ten thousand intents of a typical
/// size (under 1 KiB) fit in it, so it holds back only large messages, and
/// the worker's memory, under about 60 MB + 4 x this (the formula in
/// docs/tuning.md), stays inside the Deployment's 160 MiB.
pub const DEFAULT_MAX_HELD_BYTES: u64 = 16 * 1024 * 1024;

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for signing; never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// HTTP or HTTPS towards Pusher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Everything the Pusher HTTP client and the auth helpers need.
#[derive(Debug, Clone)]
pub struct PusherConfig {
    /// Numeric app id; part of every request path.
    pub app_id: String,
    /// App key: `auth_key` on requests, prefix of auth strings.
    pub key: String,
    /// App secret: HMAC key for requests, auth strings and webhooks.
    pub secret: Secret,
    /// Cluster name, used for the default host and for pusher-js.
    pub cluster: String,
    /// `PUSHER_USE_TLS`: picks the scheme when `PUSHER_SCHEME` is unset.
    pub use_tls: bool,
    /// Explicit host; wins over the cluster's host.
    pub host: Option<String>,
    /// Explicit port; else the scheme's default.
    pub port: Option<u16>,
    /// Explicit scheme; wins over `use_tls`.
    pub scheme: Option<Scheme>,
    /// Whether TLS certificates are verified (off only for local servers).
    pub verify_ssl: bool,
    /// `PUSHER_CA_FILE`: a PEM file of CAs trusted besides the system's
    /// (a self-hosted server behind an internal CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// Passed to pusher-js so browsers do not send stats.
    pub disable_stats: bool,
    /// 32-byte key for `private-encrypted-` channels.
    pub encryption_master_key: Option<[u8; 32]>,
    /// Largest `data` Pusher accepts per event (10 KB on shared clusters).
    pub max_event_bytes: usize,
    /// Whole-request timeout: a hung Pusher must not hold a batch forever.
    pub timeout: Duration,
    /// TCP/TLS connect timeout, shorter so an unreachable host fails fast.
    pub connect_timeout: Duration,
    /// Auth endpoint for private/presence channels, handed to pusher-js.
    pub auth_endpoint: Option<String>,
    /// User authentication endpoint (`pusher:signin`), handed to pusher-js.
    pub user_auth_endpoint: Option<String>,
}

impl PusherConfig {
    /// The scheme actually used: `PUSHER_SCHEME`, else `PUSHER_USE_TLS`.
    pub fn effective_scheme(&self) -> Scheme {
        self.scheme.unwrap_or(if self.use_tls {
            Scheme::Https
        } else {
            Scheme::Http
        })
    }

    /// The host actually used: `PUSHER_HOST`, else `api-{cluster}.pusher.com`.
    pub fn effective_host(&self) -> String {
        match &self.host {
            Some(host) => host.clone(),
            None => format!("api-{}.pusher.com", self.cluster),
        }
    }

    /// The port actually used: `PUSHER_PORT`, else the scheme's default.
    pub fn effective_port(&self) -> u16 {
        self.port
            .unwrap_or_else(|| self.effective_scheme().default_port())
    }

    /// Base URL of the REST API, without the `/apps/{id}` path.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}:{}",
            self.effective_scheme().as_str(),
            self.effective_host(),
            self.effective_port()
        )
    }

    /// The JSON a pusher-js client is constructed with (the seed's
    /// `getClientConfig`): no secret, only what a browser may know.
    pub fn client_config(&self) -> serde_json::Value {
        let tls = self.effective_scheme() == Scheme::Https;
        let mut cfg = serde_json::json!({
            "key": self.key,
            "cluster": self.cluster,
            "forceTLS": tls,
            "enabledTransports": if tls { vec!["ws", "wss"] } else { vec!["ws"] },
            "disableStats": self.disable_stats,
        });
        if let Some(obj) = cfg.as_object_mut() {
            if let Some(host) = &self.host {
                // A self-hosted Pusher-protocol server serves WebSockets on the
                // same host and port as its REST API.
                obj.insert("wsHost".into(), host.clone().into());
                let port = self.effective_port();
                obj.insert("wsPort".into(), port.into());
                obj.insert("wssPort".into(), port.into());
            }
            if let Some(endpoint) = &self.auth_endpoint {
                obj.insert(
                    "channelAuthorization".into(),
                    serde_json::json!({"endpoint": endpoint, "transport": "ajax"}),
                );
                obj.insert("authEndpoint".into(), endpoint.clone().into());
            }
            if let Some(endpoint) = &self.user_auth_endpoint {
                obj.insert(
                    "userAuthentication".into(),
                    serde_json::json!({"endpoint": endpoint, "transport": "ajax"}),
                );
            }
        }
        cfg
    }
}

/// RabbitMQ names and connection.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// Broker URL, or several nodes' URLs separated by commas (tried in a
    /// random order, see [`AmqpConfig::urls`]); passwords are redacted
    /// wherever it is shown.
    pub url: Secret,
    /// Topic exchange applications publish intents to.
    pub exchange: String,
    /// Quorum queue the worker consumes (with shards, the prefix of theirs).
    pub queue: String,
    /// Exchange webhook events are published to.
    pub webhook_exchange: String,
    /// `RELAY_SINGLE_ACTIVE`: the queue is declared single-active-consumer,
    /// so of several workers one consumes and the others stand by.
    pub single_active: bool,
    /// `RELAY_SHARDS`: 0 for one queue; else the number of order-keeping
    /// shard queues behind a consistent-hash exchange.
    pub shards: u16,
    /// `RELAY_MAX_BODY_BYTES`: a consumed message with a larger body is cut
    /// to an excerpt before it is buffered and dead-lettered as too large,
    /// so a producer cannot make the prefetch window hold gigabytes.
    pub max_body_bytes: u64,
    /// `RELAY_MAX_HEADER_BYTES`: a consumed message with a larger header
    /// table (or more entries than one per 16 bytes of this) has it dropped
    /// and is dead-lettered as too large: lapin holds a header value in 32
    /// bytes or more, whatever its size on the wire.
    pub max_header_bytes: u32,
    /// `RELAY_MAX_HELD_BYTES`: the worker takes no further delivery while
    /// those it holds unsettled come to this many bytes on the wire.
    pub max_held_bytes: u64,
}

impl AmqpConfig {
    /// One node's settings, unsharded: what tests and tools that talk to a
    /// single queue need.
    pub fn new(url: &str, exchange: &str, queue: &str, webhook_exchange: &str) -> AmqpConfig {
        AmqpConfig {
            url: Secret::new(url),
            exchange: exchange.into(),
            queue: queue.into(),
            webhook_exchange: webhook_exchange.into(),
            single_active: false,
            shards: 0,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
        }
    }

    /// Whether the consumed queues are single-active-consumer: with
    /// `RELAY_SINGLE_ACTIVE`, and always for shards.
    pub fn single_active_queues(&self) -> bool {
        self.single_active || self.shards > 0
    }

    /// The broker URLs in `AMQP_URL`, in the order given.
    pub fn urls(&self) -> Vec<&str> {
        split_urls(self.url.expose())
    }

    /// `AMQP_URL` as it may be shown: every password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        self.urls()
            .into_iter()
            .map(redact_url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `RELAY_CONCURRENCY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyMode {
    /// Found by the controller, between 1 and `RELAY_MAX_IN_FLIGHT`.
    Adaptive,
    /// Always `RELAY_MAX_IN_FLIGHT`.
    Fixed,
}

impl ConcurrencyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConcurrencyMode::Adaptive => "adaptive",
            ConcurrencyMode::Fixed => "fixed",
        }
    }
}

/// The relay's limits and timings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Unacked deliveries the broker hands us at once: bounds memory and is
    /// the backpressure that keeps an outage's backlog in RabbitMQ.
    pub prefetch: u16,
    /// How long a partly filled batch waits for more events.
    pub linger: Duration,
    /// The most Pusher requests in flight at once: the ceiling of the
    /// adaptive limit, or the limit itself when `concurrency` is fixed.
    pub max_in_flight: usize,
    /// Whether the in-flight limit adapts to Pusher's round trips and
    /// pushback or stays at `max_in_flight`.
    pub concurrency: ConcurrencyMode,
    /// Attempts per request before an event is dead-lettered `exhausted`.
    pub max_attempts: usize,
    /// Total time spent retrying one request before it is `exhausted`.
    pub max_retry_duration: Duration,
    /// Intents older than this are dead-lettered `expired`; off when unset.
    pub max_intent_age: Option<Duration>,
    /// Whether hot channels are parked out of the prefetch window
    /// (`relay::parking`).
    pub parking: bool,
    /// Intents of one channel a session holds before it parks the channel;
    /// a session uses at most half its share of the window.
    pub park_threshold: usize,
    /// Rows one parked log holds at most; past it a parked channel's
    /// intents stay unacked in RabbitMQ until rows are delivered.
    pub parked_max_rows: u64,
    /// With competing consumers: how long a parked log outlives its
    /// worker's last lease renewal before a live worker adopts it.
    pub parked_lease: Duration,
    /// How long shutdown waits for in-flight work before leaving it unacked.
    pub shutdown_timeout: Duration,
    /// Recently delivered intent ids remembered to drop redeliveries.
    pub dedup_capacity: usize,
    /// Channel names the typed intents are sent to.
    pub templates: ChannelTemplates,
}

/// The worker's HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address `/metrics`, `/healthz`, `/readyz` and webhooks are served on.
    pub addr: SocketAddr,
    /// `HTTP_OPS_ADDR`: when set, `/metrics`, `/healthz` and `/readyz` are
    /// served there alone, and `addr` serves the rest, so that no flood of
    /// the public port can starve the probes.
    pub ops_addr: Option<SocketAddr>,
    /// Bearer token for the admin API and sign-in token of the ops console;
    /// both are off when unset.
    pub admin_token: Option<Secret>,
}

/// All settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub pusher: PusherConfig,
    pub amqp: AmqpConfig,
    /// Dead-letter store URL (`sqlite://file` or `postgres://...`).
    pub database_url: Secret,
    pub relay: RelayConfig,
    pub http: HttpConfig,
    /// `RELAY_LOG_FORMAT=json`: one JSON object per log line.
    pub log_json: bool,
}

/// One variable with a bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidVar {
    /// The variable's name.
    pub var: &'static str,
    /// What is wrong and what is expected; never the value of a secret.
    pub problem: String,
}

/// Every bad variable found while loading the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub invalid: Vec<InvalidVar>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for bad in &self.invalid {
            write!(f, "\n  {}: {}", bad.var, bad.problem)?;
        }
        Ok(())
    }
}

/// Parses `500ms`, `30s`, `5m`, `2h`, `1h30m`; a bare number means seconds.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(raw).ok()
}

/// Parses a base64 master key that must decode to exactly 32 bytes, as every
/// Pusher SDK requires. The error says what was wrong without echoing the key.
pub fn parse_master_key(raw: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|_| "is not valid base64; expected 32 random bytes in standard base64 (44 characters, e.g. from `openssl rand -base64 32`)".to_string())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "decodes to {} bytes; expected exactly 32 bytes of standard base64",
            bytes.len()
        )
    })
}

/// Where a setting's value came from, as `pusher-relay config` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The process environment.
    Environment,
    /// The `.env` file of the working directory.
    DotEnv,
    /// The file a `NAME_FILE` variable names (a path is not a secret).
    File {
        var: String,
        path: String,
    },
    Default,
    Unset,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Environment => f.write_str("environment"),
            Origin::DotEnv => f.write_str(".env"),
            Origin::File { var, path } => write!(f, "{var}={path}"),
            Origin::Default => f.write_str("default"),
            Origin::Unset => f.write_str("unset"),
        }
    }
}

impl Config {
    /// Loads `.env` when present, then reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env is normal in production; a malformed one is not
        // fatal either: the variables it failed to set are reported below.
        let _ = dotenvy::dotenv();
        Config::from_lookup(&|var| std::env::var(var).ok())
    }

    /// [`Config::from_env`] for commands that only touch the broker or the
    /// dead-letter store (`publish`, `dlq`, `webhooks tail`): an operator's
    /// shell need not hold the Pusher secret. Set values are still checked.
    pub fn from_env_without_credentials() -> Result<Config, ConfigError> {
        let _ = dotenvy::dotenv();
        Config::load(&|var| std::env::var(var).ok(), false)
    }

    /// Reads settings through `lookup`, so tests need not touch the process
    /// environment.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::load(lookup, true)
    }

    fn load(
        lookup: &dyn Fn(&str) -> Option<String>,
        credentials: bool,
    ) -> Result<Config, ConfigError> {
        let mut config = settings::blank();
        let mut invalid = Vec::new();
        for setting in SETTINGS {
            for problem in setting.load(lookup, credentials, &mut config) {
                invalid.push(InvalidVar {
                    var: setting.name,
                    problem,
                });
            }
            if let Some((var, problem)) = setting.check_after(&config) {
                invalid.push(InvalidVar { var, problem });
            }
        }
        if invalid.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { invalid })
        }
    }

    /// Where each setting's value comes from, read from the process
    /// environment and `.env` as [`Config::from_env`] reads them.
    pub fn origins() -> BTreeMap<&'static str, Origin> {
        let dotenv: HashMap<String, String> = dotenvy::dotenv_iter()
            .map(|vars| vars.filter_map(Result::ok).collect())
            .unwrap_or_default();
        Config::origins_from(&|var| std::env::var(var).ok(), &dotenv)
    }

    fn origins_from(
        lookup: &dyn Fn(&str) -> Option<String>,
        dotenv: &HashMap<String, String>,
    ) -> BTreeMap<&'static str, Origin> {
        SETTINGS
            .iter()
            .map(|setting| (setting.name, setting.origin(lookup, dotenv)))
            .collect()
    }

    /// The effective settings by variable name, secrets as `***` and URL
    /// passwords redacted: what `pusher-relay config` prints.
    pub fn redacted(&self) -> BTreeMap<&'static str, String> {
        let mut shown: BTreeMap<&'static str, String> = SETTINGS
            .iter()
            .map(|setting| (setting.name, setting.shown(self)))
            .collect();
        shown.insert("(effective Pusher endpoint)", self.pusher.base_url());
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("PUSHER_APP_ID", "123456"),
        ("PUSHER_APP_KEY", "app-key"),
        ("PUSHER_APP_SECRET", "app-secret"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        BASE.iter().chain(extra).copied().collect()
    }

    fn problems(vars: &[(&str, &str)]) -> Vec<InvalidVar> {
        load(vars).expect_err("config should be rejected").invalid
    }

    #[test]
    fn origins_name_the_environment_dotenv_a_file_or_the_default() {
        let vars: HashMap<String, String> = [
            ("PUSHER_APP_ID", "123456"),
            ("PUSHER_APP_KEY", "from-dotenv"),
            ("PUSHER_APP_SECRET_FILE", "/run/secrets/pusher"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let dotenv: HashMap<String, String> = [
            ("PUSHER_APP_KEY".to_string(), "from-dotenv".to_string()),
            ("PUSHER_APP_ID".to_string(), "overridden".to_string()),
        ]
        .into();
        let origins = Config::origins_from(&|k| vars.get(k).cloned(), &dotenv);
        assert_eq!(origins["PUSHER_APP_ID"], Origin::Environment);
        assert_eq!(origins["PUSHER_APP_KEY"], Origin::DotEnv);
        assert_eq!(
            origins["PUSHER_APP_SECRET"].to_string(),
            "PUSHER_APP_SECRET_FILE=/run/secrets/pusher"
        );
        assert_eq!(origins["AMQP_QUEUE"], Origin::Default);
        assert_eq!(origins["PUSHER_HOST"], Origin::Unset);
    }

    #[test]
    fn seed_defaults_give_the_cluster_host_over_https() {
        let cfg = load(&BASE).expect("valid");
        assert_eq!(cfg.pusher.cluster, "mt1");
        assert_eq!(cfg.pusher.base_url(), "https://api-mt1.pusher.com:443");
        assert!(cfg.pusher.verify_ssl);
        assert!(!cfg.pusher.disable_stats);
        assert_eq!(cfg.pusher.max_event_bytes, 10_240);
    }

    #[test]
    fn empty_values_from_the_seed_env_mean_unset() {
        let cfg = load(&with(&[
            ("PUSHER_HOST", ""),
            ("PUSHER_PORT", ""),
            ("PUSHER_APP_CLUSTER", "eu"),
        ]))
        .expect("valid");
        assert_eq!(cfg.pusher.base_url(), "https://api-eu.pusher.com:443");
    }

    #[test]
    fn host_wins_and_scheme_wins_over_use_tls() {
        let cfg = load(&with(&[
            ("PUSHER_HOST", "127.0.0.1"),
            ("PUSHER_PORT", "6001"),
            ("PUSHER_SCHEME", "http"),
            ("PUSHER_USE_TLS", "true"),
        ]))
        .expect("valid");
        assert_eq!(cfg.pusher.base_url(), "http://127.0.0.1:6001");
    }

    #[test]
    fn amqp_url_takes_several_nodes_and_redacts_each_password() {
        let cfg = load(&with(&[(
            "AMQP_URL",
            "amqp://u:p1@a:5672/%2f, amqp://u:p2@b:5672/%2f,",
        )]))
        .expect("valid");
        assert_eq!(
            cfg.amqp.urls(),
            ["amqp://u:p1@a:5672/%2f", "amqp://u:p2@b:5672/%2f"]
        );
        assert_eq!(
            cfg.redacted()["AMQP_URL"],
            "amqp://u:***@a:5672/%2f,amqp://u:***@b:5672/%2f"
        );
        let found = problems(&with(&[("AMQP_URL", "amqp://a/%2f,http://u:secret@b/")]));
        assert_eq!(found.len(), 1);
        assert!(found[0].problem.contains("entry 2"), "{}", found[0].problem);
        assert!(!found[0].problem.contains("secret"), "{}", found[0].problem);
        let found = problems(&with(&[("RELAY_SHARDS", "65")]));
        assert_eq!(found[0].var, "RELAY_SHARDS");
    }

    #[test]
    fn use_tls_false_picks_http_and_port_80() {
        let cfg = load(&with(&[("PUSHER_USE_TLS", "false")])).expect("valid");
        assert_eq!(cfg.pusher.base_url(), "http://api-mt1.pusher.com:80");
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_expected() {
        let found = problems(&[
            ("PUSHER_APP_ID", "abc"),
            ("PUSHER_APP_KEY", "k"),
            ("PUSHER_APP_SECRET", "s"),
            ("PUSHER_USE_TLS", "maybe"),
            ("PUSHER_PORT", "70000"),
            (
                "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
                "dGhpcyBpcyAzMSBieXRlcyAxMjM0NTY3ODkwMTIzNA==",
            ),
            ("RELAY_SHUTDOWN_TIMEOUT", "soon"),
        ]);
        let vars: Vec<&str> = found.iter().map(|p| p.var).collect();
        assert_eq!(
            vars,
            [
                "PUSHER_APP_ID",
                "PUSHER_USE_TLS",
                "PUSHER_PORT",
                "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
                "RELAY_SHUTDOWN_TIMEOUT"
            ]
        );
        assert!(found[0].problem.contains("not numeric"));
        assert!(
            found[1].problem.contains("\"maybe\"") && found[1].problem.contains("true or false")
        );
        assert!(found[2].problem.contains("1 to 65535"));
        assert!(found[3].problem.contains("31 bytes"));
        assert!(found[4].problem.contains("30s"));
    }

    #[test]
    fn missing_credentials_are_reported_together() {
        let vars: Vec<&str> = problems(&[]).iter().map(|p| p.var).collect();
        assert_eq!(
            vars,
            ["PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET"]
        );
    }

    #[test]
    fn secrets_never_appear_in_errors_or_redacted_output() {
        let err = load(&[
            ("PUSHER_APP_ID", "1"),
            ("PUSHER_APP_KEY", "k"),
            ("PUSHER_APP_SECRET", "topsecret"),
            ("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", "topsecretkey"),
        ])
        .expect_err("bad key");
        assert!(!err.to_string().contains("topsecret"));

        let cfg = load(&with(&[
            ("AMQP_URL", "amqp://user:hunter2@rabbit:5672/%2f"),
            ("DATABASE_URL", "postgres://relay:hunter3@db/relay"),
            (
                "RELAY_ADMIN_TOKEN",
                "tok-hunter4-0123456789abcdefghijklmnop",
            ),
        ]))
        .expect("valid");
        let shown = format!("{:?} {:?}", cfg.redacted(), cfg);
        for secret in ["app-secret", "hunter2", "hunter3", "tok-hunter4"] {
            assert!(!shown.contains(secret), "{secret} leaked");
        }
        assert_eq!(
            cfg.redacted()["AMQP_URL"],
            "amqp://user:***@rabbit:5672/%2f"
        );
    }

    #[test]
    fn a_short_or_placeholder_admin_token_is_refused_by_name() {
        for (token, needle) in [
            ("short-token", "is 11 characters long; expected at least 32"),
            ("change-me-to-a-long-random-token", "placeholder"),
        ] {
            let err = load(&with(&[("RELAY_ADMIN_TOKEN", token)])).expect_err(token);
            let text = err.to_string();
            assert!(
                text.contains("RELAY_ADMIN_TOKEN") && text.contains(needle),
                "{text}"
            );
            assert!(!text.contains(token), "the error repeats the token: {text}");
        }
        load(&with(&[(
            "RELAY_ADMIN_TOKEN",
            "0123456789abcdef0123456789abcdef",
        )]))
        .expect("32 characters");
    }

    #[test]
    fn client_config_for_a_local_server_has_ws_host_and_no_secret() {
        let cfg = load(&with(&[
            ("PUSHER_HOST", "127.0.0.1"),
            ("PUSHER_PORT", "6001"),
            ("PUSHER_SCHEME", "http"),
            ("PUSHER_AUTH_ENDPOINT", "/api/pusher/auth"),
        ]))
        .expect("valid");
        let client = cfg.pusher.client_config();
        assert_eq!(client["wsHost"], "127.0.0.1");
        assert_eq!(client["wsPort"], 6001);
        assert_eq!(client["forceTLS"], false);
        assert_eq!(client["enabledTransports"], serde_json::json!(["ws"]));
        assert_eq!(
            client["channelAuthorization"]["endpoint"],
            "/api/pusher/auth"
        );
        assert!(!client.to_string().contains("app-secret"));
    }

    #[test]
    fn channel_templates_can_be_overridden_and_are_checked() {
        let cfg = load(&with(&[
            ("RELAY_CHANNEL_STYLE", "legacy"),
            ("RELAY_CHANNEL_CHAT", "room-{room_id}"),
        ]))
        .expect("valid");
        assert_eq!(cfg.relay.templates.chat, "room-{room_id}");
        assert_eq!(cfg.relay.templates.notification, "user-{user_id}");
        let bad = problems(&with(&[("RELAY_CHANNEL_ORDER", "order-{user_id}")]));
        assert_eq!(bad[0].var, "RELAY_CHANNEL_*");
        assert!(bad[0].problem.contains("order"), "{}", bad[0].problem);
    }

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("later"), None);
    }

    #[test]
    fn passwords_with_slashes_queries_at_signs_and_commas_are_redacted() {
        assert_eq!(
            redact_url("amqp://relay:s3cr3t/Pa+ss@rabbit:5672/%2f"),
            "amqp://relay:***@rabbit:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://dl:pg/Secr3t@db:5432/dl?sslmode=require&password=pg/Secr3t"),
            "postgres://dl:***@db:5432/dl?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("amqps://u:p?a#b@[::1]:5671/v?pass=x#frag"),
            "amqps://u:***@[::1]:5671/v?pass=***"
        );
        let cfg = load(&with(&[
            (
                "AMQP_URL",
                "amqp://relay:s3cr3t/Pa+ss@rabbit:5672/%2f,amqp://u:a,b@h2:5672/%2f",
            ),
            (
                "DATABASE_URL",
                "postgres://dl:pg/Secr3t@db/dl?password=pg/Secr3t",
            ),
        ]))
        .expect("valid");
        assert_eq!(
            cfg.amqp.urls().len(),
            2,
            "a comma in a password does not split"
        );
        let shown = format!("{:?}", cfg.redacted());
        for secret in ["s3cr3t", "Pa+ss", "a,b", "Secr3t"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any printable password, typed raw or percent-encoded in the
        /// userinfo, and encoded in a password= parameter (raw, `&` would
        /// end it for every parser), never survives.
        #[test]
        fn no_printable_password_survives_redaction(
            password in "[ -~]{1,24}",
            scheme in proptest::sample::select(vec!["amqp", "amqps", "postgres"]),
            encoded in proptest::bool::ANY,
        ) {
            let pw: String = if encoded {
                url::form_urlencoded::byte_serialize(password.as_bytes()).collect()
            } else {
                password.clone()
            };
            let in_query: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect();
            let url = format!("{scheme}://user:{pw}@host.example:5672/db?sslmode=require&password={in_query}");
            // What redaction leaves: a password within it cannot be told apart.
            let template = format!("{scheme}://user:***@host.example:5672/db?sslmode=require&password=***");
            proptest::prop_assume!(!template.contains(pw.as_str()));
            let shown = redact_url(&url);
            proptest::prop_assert!(!shown.contains(pw.as_str()), "{} shows {:?}", shown, pw);
            proptest::prop_assume!(!template.contains(in_query.as_str()));
            proptest::prop_assert!(!shown.contains(in_query.as_str()), "{} shows {:?}", shown, in_query);
            if scheme != "postgres" {
                let cfg = load(&with(&[("AMQP_URL", Box::leak(url.clone().into_boxed_str()))]));
                if let Ok(cfg) = cfg {
                    let listed = cfg.redacted()["AMQP_URL"].clone();
                    proptest::prop_assert!(!listed.contains(pw.as_str()), "{} shows {:?}", listed, pw);
                }
            }
        }
    }

    #[test]
    fn redact_url_hides_what_an_uncertain_userinfo_may_hold() {
        // An @ in the query with no password in the userinfo.
        let shown = redact_url("postgres://u@h/db?password=s3kr1t@h2");
        assert!(!shown.contains("s3kr1t"), "{shown}");
        // A host of another shape than name:port still ends the userinfo.
        assert_eq!(
            redact_url("amqp://u:a@b/QQsecretQQ@h\u{f6}st/v"),
            "amqp://u:***@h\u{f6}st/v"
        );
        assert_eq!(
            redact_url("amqp://u:a@b/QQsecretQQ@host:56720x/v"),
            "amqp://u:***@host:56720x/v"
        );
        // A forgotten scheme.
        assert_eq!(redact_url("rabbit:QQsecretQQ@host"), "***@host");
        let found = problems(&with(&[("AMQP_URL", "rabbit:QQsecretQQ@host/%2f")]));
        assert!(
            !found[0].problem.contains("QQsecretQQ"),
            "{}",
            found[0].problem
        );
        let cfg = load(&with(&[(
            "AMQP_URL",
            "amqp://u:p@a/%2f, rabbit:QQsecretQQ@host/%2f",
        )]))
        .expect("one URL: no comma before a scheme://");
        assert!(!cfg.redacted()["AMQP_URL"].contains("QQsecretQQ"));
        // Before connecting, a raw / ? or # in a password is refused, not
        // misread (the rest of the password taken for a host or vhost).
        for url in [
            "amqp://relay:s3cr3t/Pa+ss@rabbit:5672/%2f",
            "postgres://dl:pg/Secr3t@db/dl?password=x",
            "amqps://u:p?a#b@[::1]:5671/v",
        ] {
            assert!(userinfo_is_ambiguous(url), "{url}");
        }
        for url in [
            "amqp://relay:p%2Fw@rabbit:5672/%2f",
            "amqp://relay:p@ss@rabbit:5672/%2f",
            "postgres://u:p@h/db?x=@",
            "sqlite:///tmp/a.db",
            "amqp://rabbit/%2f",
        ] {
            assert!(!userinfo_is_ambiguous(url), "{url}");
        }
    }

    /// Every 6-character piece of `secret` (or all of it, if shorter) found
    /// in `shown`.
    fn pieces_shown(shown: &str, secret: &str) -> Vec<String> {
        let chars: Vec<char> = secret.chars().collect();
        chars
            .windows(chars.len().min(6))
            .map(|w| w.iter().collect::<String>())
            .filter(|piece| shown.contains(piece.as_str()))
            .collect()
    }

    fn encode(password: &str) -> String {
        url::form_urlencoded::byte_serialize(password.as_bytes()).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// A printable password, typed raw or percent-encoded, in the
        /// userinfo of an AMQP or PostgreSQL URL with hosts and paths of
        /// several shapes: `redact_url` shows exactly the URL with `***` for
        /// it, and no piece of it is in `Config::redacted()`, the config's
        /// `Debug` or its errors.
        #[test]
        fn redact_url_shows_everything_but_the_password(
            password in "[ -~]{8,24}",
            encoded in proptest::bool::ANY,
            scheme in proptest::sample::select(vec!["amqp", "amqps", "postgres"]),
            user in proptest::sample::select(vec!["relay", "guest", "dl.user"]),
            host in proptest::sample::select(vec![
                "rabbit", "rabbit:5672", "10.0.0.7:5671", "[::1]:5671",
                "db.example.com", "h\u{f6}st", "host:56720x",
            ]),
            path in proptest::sample::select(vec![
                "", "/", "/%2f", "/db?sslmode=require", "/v?heartbeat=5#frag",
            ]),
        ) {
            let pw = if encoded { encode(&password) } else { password.clone() };
            let url = format!("{scheme}://{user}:{pw}@{host}{path}");
            proptest::prop_assert_eq!(
                redact_url(&url),
                format!("{scheme}://{user}:***@{host}{path}")
            );
            let (amqp, db) = if scheme == "postgres" {
                (format!("amqp://{user}:{pw}@{host}{path},{url}"), url.clone())
            } else {
                (format!("{url},amqp://u:p@h/%2f"), format!("postgres://{user}:{pw}@{host}/db"))
            };
            let vars: Vec<(String, String)> = BASE
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("AMQP_URL".into(), amqp), ("DATABASE_URL".into(), db)])
                .collect();
            let map: HashMap<String, String> = vars.into_iter().collect();
            let shown = match Config::from_lookup(&move |k| map.get(k).cloned()) {
                Ok(cfg) => format!("{:?} {:?}", cfg.redacted(), cfg),
                Err(e) => format!("{e} {e:?}"),
            };
            for secret in [&password, &pw] {
                let leaked = pieces_shown(&shown, secret);
                proptest::prop_assert!(leaked.is_empty(), "{:?} of {:?} in {}", leaked, secret, shown);
            }
        }

        /// A password given as a `password=` parameter (encoded, or raw
        /// without `&`, which ends it for every parser), with or without a
        /// user in the userinfo.
        #[test]
        fn query_passwords_are_hidden(
            password in "[ -%'-~]{8,24}",
            encoded in proptest::bool::ANY,
            key in proptest::sample::select(vec!["password", "pass", "sslpassword", "PASSWORD"]),
            userinfo in proptest::sample::select(vec!["", "dl@", "dl:pw@"]),
        ) {
            let pw = if encoded { encode(&password) } else { password.clone() };
            let url = format!("postgres://{userinfo}db:5432/dl?sslmode=require&{key}={pw}&application_name=relay");
            let shown = redact_url(&url);
            for secret in [&password, &pw] {
                let leaked = pieces_shown(&shown, secret);
                proptest::prop_assert!(leaked.is_empty(), "{:?} of {:?} in {}", leaked, secret, shown);
            }
        }
    }

    /// A file in the temporary directory, removed on drop.
    struct SecretFile(std::path::PathBuf);

    impl SecretFile {
        fn new(content: &str) -> SecretFile {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "pusher-relay-config-test-{}-{n}",
                std::process::id()
            ));
            std::fs::write(&path, content).expect("write secret file");
            SecretFile(path)
        }

        fn path(&self) -> String {
            self.0.to_string_lossy().into_owned()
        }
    }

    impl Drop for SecretFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn every_secret_may_come_from_a_file_with_one_newline_trimmed() {
        let secret = SecretFile::new("from-file\n");
        let amqp = SecretFile::new("amqp://u:filepw@rabbit:5672/%2f\r\n");
        let token = SecretFile::new("0123456789abcdef0123456789abcdef");
        let key = SecretFile::new("dGhpcyBpcyBhIDMyIGJ5dGUgbWFzdGVyIGtleSEhISE=\n");
        // One newline only: the second stays part of the value.
        let db = SecretFile::new("postgres://u:dbpw@db/relay\n\n");
        let cfg = load(&[
            ("PUSHER_APP_ID", "1"),
            ("PUSHER_APP_KEY", "k"),
            ("PUSHER_APP_SECRET_FILE", &secret.path()),
            ("AMQP_URL_FILE", &amqp.path()),
            ("DATABASE_URL_FILE", &db.path()),
            ("RELAY_ADMIN_TOKEN_FILE", &token.path()),
            ("PUSHER_ENCRYPTION_MASTER_KEY_BASE64_FILE", &key.path()),
        ])
        .expect("valid");
        assert_eq!(cfg.pusher.secret.expose(), "from-file");
        assert_eq!(cfg.amqp.urls(), ["amqp://u:filepw@rabbit:5672/%2f"]);
        assert_eq!(cfg.database_url.expose(), "postgres://u:dbpw@db/relay\n");
        assert_eq!(
            cfg.http.admin_token.as_ref().map(Secret::expose),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert!(cfg.pusher.encryption_master_key.is_some());
        let shown = format!("{:?} {:?}", cfg.redacted(), cfg);
        for secret in ["from-file", "filepw", "dbpw", "0123456789abcdef", "dGhpcy"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn a_secret_and_its_file_together_are_refused_naming_both() {
        let file = SecretFile::new("from-file");
        let path = file.path();
        let mut vars: Vec<(&str, &str)> = BASE.to_vec();
        vars.extend([("AMQP_URL", "amqp://h/%2f"), ("AMQP_URL_FILE", &path)]);
        let found = problems(&vars);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].var, "AMQP_URL");
        assert!(
            found[0].problem.contains("AMQP_URL_FILE"),
            "{}",
            found[0].problem
        );
        let mut vars: Vec<(&str, &str)> = BASE.to_vec();
        vars.push(("PUSHER_APP_SECRET_FILE", &path));
        let found = problems(&vars);
        assert_eq!(found[0].var, "PUSHER_APP_SECRET");
        assert!(found[0].problem.contains("PUSHER_APP_SECRET_FILE"));
        assert!(!found[0].problem.contains("from-file"));
    }

    #[test]
    fn an_unreadable_secret_file_is_refused_naming_the_variable_and_path() {
        let missing = std::env::temp_dir()
            .join(format!(
                "pusher-relay-config-test-{}-absent",
                std::process::id()
            ))
            .to_string_lossy()
            .into_owned();
        let mut vars: Vec<(&str, &str)> = BASE.to_vec();
        vars.push(("RELAY_ADMIN_TOKEN_FILE", &missing));
        let found = problems(&vars);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].var, "RELAY_ADMIN_TOKEN");
        assert!(
            found[0].problem.contains("RELAY_ADMIN_TOKEN_FILE")
                && found[0].problem.contains(&missing),
            "{}",
            found[0].problem
        );
        // Settings that are not secret have no file variant.
        vars.pop();
        vars.push(("AMQP_QUEUE_FILE", &missing));
        assert_eq!(load(&vars).expect("ignored").amqp.queue, "pusher.intents");
    }

    #[test]
    fn redact_url_keeps_urls_without_password() {
        assert_eq!(
            redact_url("sqlite://pusher-relay.db"),
            "sqlite://pusher-relay.db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://u:p@h/db?x=@"),
            "postgres://u:***@h/db?x=@"
        );
    }
}
