//! Settings, read once from the environment (and `.env`), validated at start
//! and passed down. No other module reads the environment.
//!
//! The `PUSHER_*` names and defaults are the seed PHP app's, so an app's
//! existing `.env` works unchanged. A bad value fails start-up with the
//! variable's name, what is wrong and what is expected; every bad variable is
//! reported at once, not one per restart.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;

use crate::intent::ChannelTemplates;

/// Per-channel order allows one request per channel in flight, so the
/// useful concurrency is about the number of channels with work waiting
/// (more when small channels share a batch); this covers a few hundred
/// busy channels at any distance, and the adaptive limit finds the part of
/// it Pusher accepts.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Unacked deliveries held. Keeping Pusher busy takes 10 events per request
/// in flight plus the next batch of every lane waiting behind it, and a hot
/// channel's backlog must not fill the window and starve the others: see
/// the README's "distance" section for the figures behind this number.
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

/// Splits `AMQP_URL` at the commas that start another URL (`,amqp://`, or
/// any `,scheme://`, so that a wrong scheme is named as its own entry) or
/// end the list: a comma inside a password stays in it.
fn split_urls(list: &str) -> Vec<&str> {
    let mut urls = Vec::new();
    let mut start = 0;
    for (i, _) in list.match_indices(',') {
        let next = list[i + 1..].trim_start();
        if next.is_empty() || starts_with_scheme(next) {
            urls.push(&list[start..i]);
            start = i + 1;
        }
    }
    urls.push(&list[start..]);
    urls.into_iter()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
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

/// Reads variables through a lookup function, collecting every problem.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    invalid: Vec<InvalidVar>,
    /// Whether the Pusher credentials must be set (not for commands that
    /// only touch the broker or the store).
    credentials: bool,
}

impl Reader<'_> {
    /// A set, non-empty value. The seed's `.env` lists `PUSHER_HOST=` and
    /// `PUSHER_PORT=` empty, meaning "unset", so empty is treated as unset.
    fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn bad(&mut self, var: &'static str, problem: impl Into<String>) {
        self.invalid.push(InvalidVar {
            var,
            problem: problem.into(),
        });
    }

    fn string(&mut self, var: &'static str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_string())
    }

    fn required(&mut self, var: &'static str, what: &str) -> String {
        match self.get(var) {
            Some(v) => v,
            None if !self.credentials => String::new(),
            None => {
                self.bad(var, format!("is not set; expected {what}"));
                String::new()
            }
        }
    }

    fn bool(&mut self, var: &'static str, default: bool) -> bool {
        let Some(raw) = self.get(var) else {
            return default;
        };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                self.bad(
                    var,
                    format!("{raw:?} is not a boolean; expected true or false (also 1/0, yes/no, on/off)"),
                );
                default
            }
        }
    }

    fn number<T>(&mut self, var: &'static str, default: T, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + Copy + fmt::Display,
    {
        let Some(raw) = self.get(var) else {
            return default;
        };
        match raw.parse::<T>() {
            Ok(n) if n >= min && n <= max => n,
            _ => {
                self.bad(
                    var,
                    format!("{raw:?} is out of range or not a number; expected an integer from {min} to {max}"),
                );
                default
            }
        }
    }

    fn optional_port(&mut self, var: &'static str) -> Option<u16> {
        let raw = self.get(var)?;
        match raw.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                self.bad(
                    var,
                    format!("{raw:?} is not a port; expected an integer from 1 to 65535"),
                );
                None
            }
        }
    }

    fn duration(&mut self, var: &'static str, default: Option<Duration>) -> Option<Duration> {
        let Some(raw) = self.get(var) else {
            return default;
        };
        match parse_duration(&raw) {
            Some(d) => Some(d),
            None => {
                self.bad(
                    var,
                    format!("{raw:?} is not a duration; expected a number with a unit, like 500ms, 30s, 5m or 2h"),
                );
                default
            }
        }
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
        let mut r = Reader {
            lookup,
            invalid: Vec::new(),
            credentials,
        };

        let app_id = r.required(
            "PUSHER_APP_ID",
            "the numeric app id from the Pusher dashboard",
        );
        if !app_id.is_empty() && !app_id.chars().all(|c| c.is_ascii_digit()) {
            r.bad(
                "PUSHER_APP_ID",
                format!("{app_id:?} is not numeric; expected the app id from the Pusher dashboard, like 123456"),
            );
        }
        let key = r.required("PUSHER_APP_KEY", "the app key from the Pusher dashboard");
        let secret = Secret::new(r.required(
            "PUSHER_APP_SECRET",
            "the app secret from the Pusher dashboard",
        ));
        let cluster = r.string("PUSHER_APP_CLUSTER", "mt1");
        if !cluster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            r.bad(
                "PUSHER_APP_CLUSTER",
                format!("{cluster:?} is not a cluster name; expected letters, digits and '-', like mt1 or eu"),
            );
        }
        let use_tls = r.bool("PUSHER_USE_TLS", true);
        let host = r.get("PUSHER_HOST");
        if let Some(h) = &host {
            if h.contains("://") || h.contains('/') {
                r.bad(
                    "PUSHER_HOST",
                    format!("{h:?} is not a bare host name; expected a host like api-eu.pusher.com or 127.0.0.1 (set the scheme with PUSHER_SCHEME and the port with PUSHER_PORT)"),
                );
            }
        }
        let port = r.optional_port("PUSHER_PORT");
        let scheme = match r.get("PUSHER_SCHEME").map(|s| s.to_ascii_lowercase()) {
            None => None,
            Some(s) if s == "http" => Some(Scheme::Http),
            Some(s) if s == "https" => Some(Scheme::Https),
            Some(s) => {
                r.bad(
                    "PUSHER_SCHEME",
                    format!("{s:?} is not a scheme; expected http or https"),
                );
                None
            }
        };
        let verify_ssl = r.bool("PUSHER_VERIFY_SSL", true);
        let disable_stats = r.bool("PUSHER_DISABLE_STATS", false);
        let encryption_master_key = match r.get("PUSHER_ENCRYPTION_MASTER_KEY_BASE64") {
            None => None,
            Some(raw) => match parse_master_key(&raw) {
                Ok(key) => Some(key),
                Err(problem) => {
                    r.bad("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", problem);
                    None
                }
            },
        };
        let max_event_bytes = r.number("PUSHER_MAX_EVENT_BYTES", 10_240usize, 1, 1 << 20);
        let timeout = Duration::from_millis(r.number("PUSHER_TIMEOUT_MS", 10_000u64, 1, 600_000));
        let connect_timeout =
            Duration::from_millis(r.number("PUSHER_CONNECT_TIMEOUT_MS", 3_000u64, 1, 600_000));
        let auth_endpoint = r.get("PUSHER_AUTH_ENDPOINT");
        let user_auth_endpoint = r.get("PUSHER_USER_AUTH_ENDPOINT");

        let amqp = AmqpConfig {
            url: Secret::new(r.string("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")),
            exchange: r.string("AMQP_EXCHANGE", "pusher.intents"),
            queue: r.string("AMQP_QUEUE", "pusher.intents"),
            webhook_exchange: r.string("AMQP_WEBHOOK_EXCHANGE", "pusher.webhooks"),
            single_active: r.bool("RELAY_SINGLE_ACTIVE", false),
            shards: r.number("RELAY_SHARDS", 0u16, 0, MAX_SHARDS),
            max_body_bytes: r.number(
                "RELAY_MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                1024,
                16 << 20,
            ),
        };
        let urls = amqp.urls();
        if urls.is_empty() {
            r.bad(
                "AMQP_URL",
                "is empty; expected amqp://user:password@host:5672/vhost, or several such URLs separated by commas",
            );
        }
        for (i, url) in urls.iter().enumerate() {
            if !url.starts_with("amqp://") && !url.starts_with("amqps://") {
                r.bad(
                    "AMQP_URL",
                    format!("entry {} ({}) is not an AMQP URL; expected amqp://user:password@host:5672/vhost or amqps://..., several separated by commas", i + 1, redact_url(url)),
                );
            }
        }
        let database_url = Secret::new(r.string("DATABASE_URL", "sqlite://pusher-relay.db"));
        let db = database_url.expose();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            r.bad("DATABASE_URL", "has an unsupported scheme; expected sqlite://path/to/file.db or postgres://user@host/db");
        }

        let templates = match r.string("RELAY_CHANNEL_STYLE", "private").as_str() {
            "private" => ChannelTemplates::default(),
            "legacy" => ChannelTemplates::legacy(),
            other => {
                r.bad(
                    "RELAY_CHANNEL_STYLE",
                    format!("{other:?} is not a channel style; expected private (private-user-{{id}}, ...) or legacy (the seed app's public user-{{id}}, order-{{id}}, customer-{{id}})"),
                );
                ChannelTemplates::default()
            }
        };
        let mut templates = templates;
        for (var, slot) in [
            ("RELAY_CHANNEL_NOTIFICATION", &mut templates.notification),
            ("RELAY_CHANNEL_ANNOUNCEMENT", &mut templates.announcement),
            ("RELAY_CHANNEL_CHAT", &mut templates.chat),
            ("RELAY_CHANNEL_ORDER", &mut templates.order),
            ("RELAY_CHANNEL_CUSTOMER", &mut templates.customer),
            ("RELAY_CHANNEL_DASHBOARD", &mut templates.dashboard),
            ("RELAY_CHANNEL_INVENTORY", &mut templates.inventory),
            (
                "RELAY_CHANNEL_PRESENCE_ACTIVITY",
                &mut templates.presence_activity,
            ),
        ] {
            if let Some(template) = r.get(var) {
                *slot = template;
            }
        }
        if let Err(e) = templates.validate() {
            r.bad(
                "RELAY_CHANNEL_*",
                format!("{e}; expected a valid channel name with only the placeholders its intent type has (see README, wire contract)"),
            );
        }
        let concurrency = match r.string("RELAY_CONCURRENCY", "adaptive").as_str() {
            "adaptive" => ConcurrencyMode::Adaptive,
            "fixed" => ConcurrencyMode::Fixed,
            other => {
                r.bad(
                    "RELAY_CONCURRENCY",
                    format!("{other:?} is not a concurrency mode; expected adaptive (the limit follows Pusher's round trips and 429s, up to RELAY_MAX_IN_FLIGHT) or fixed (always RELAY_MAX_IN_FLIGHT)"),
                );
                ConcurrencyMode::Adaptive
            }
        };
        let relay = RelayConfig {
            prefetch: r.number("RELAY_PREFETCH", DEFAULT_PREFETCH, 1, u16::MAX),
            linger: Duration::from_millis(r.number("RELAY_LINGER_MS", 10u64, 0, 10_000)),
            max_in_flight: r.number("RELAY_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, 1, 4096),
            concurrency,
            max_attempts: r.number("RELAY_MAX_ATTEMPTS", 8usize, 1, 1000),
            max_retry_duration: r
                .duration("RELAY_MAX_RETRY_DURATION", Some(Duration::from_secs(300)))
                .unwrap_or(Duration::from_secs(300)),
            max_intent_age: r.duration("RELAY_MAX_INTENT_AGE", None),
            shutdown_timeout: r
                .duration("RELAY_SHUTDOWN_TIMEOUT", Some(Duration::from_secs(30)))
                .unwrap_or(Duration::from_secs(30)),
            dedup_capacity: r.number("RELAY_DEDUP_CAPACITY", 100_000usize, 0, 100_000_000),
            templates,
        };

        let addr_raw = r.string("HTTP_ADDR", "127.0.0.1:9464");
        let addr = match addr_raw.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                r.bad(
                    "HTTP_ADDR",
                    format!("{addr_raw:?} is not a socket address; expected ip:port like 127.0.0.1:9464 or 0.0.0.0:9464"),
                );
                SocketAddr::from(([127, 0, 0, 1], 9464))
            }
        };
        let admin_token = r.get("RELAY_ADMIN_TOKEN").map(Secret::new);
        if let Some(token) = &admin_token {
            let n = token.expose().chars().count();
            if token.expose() == ADMIN_TOKEN_PLACEHOLDER {
                r.bad(
                    "RELAY_ADMIN_TOKEN",
                    "is the placeholder of deploy/kubernetes/secret.example.yaml; expected a random token of at least 32 characters (openssl rand -hex 32)",
                );
            } else if n < MIN_ADMIN_TOKEN_CHARS {
                r.bad(
                    "RELAY_ADMIN_TOKEN",
                    format!("is {n} characters long; expected at least {MIN_ADMIN_TOKEN_CHARS} (openssl rand -hex 32), or unset to turn the admin API and console off"),
                );
            }
        }
        let http = HttpConfig { addr, admin_token };

        let log_json = match r.string("RELAY_LOG_FORMAT", "text").as_str() {
            "text" => false,
            "json" => true,
            other => {
                r.bad(
                    "RELAY_LOG_FORMAT",
                    format!("{other:?} is not a log format; expected text or json"),
                );
                false
            }
        };

        if !r.invalid.is_empty() {
            return Err(ConfigError { invalid: r.invalid });
        }
        Ok(Config {
            pusher: PusherConfig {
                app_id,
                key,
                secret,
                cluster,
                use_tls,
                host,
                port,
                scheme,
                verify_ssl,
                disable_stats,
                encryption_master_key,
                max_event_bytes,
                timeout,
                connect_timeout,
                auth_endpoint,
                user_auth_endpoint,
            },
            amqp,
            database_url,
            relay,
            http,
            log_json,
        })
    }

    /// The effective settings by variable name, secrets as `***` and URL
    /// passwords redacted: what `pusher-relay config` prints.
    pub fn redacted(&self) -> BTreeMap<&'static str, String> {
        let p = &self.pusher;
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let dur = |d: Duration| humantime::format_duration(d).to_string();
        let r = &self.relay;
        BTreeMap::from([
            ("PUSHER_APP_ID", p.app_id.clone()),
            ("PUSHER_APP_KEY", p.key.clone()),
            ("PUSHER_APP_SECRET", p.secret.to_string()),
            ("PUSHER_APP_CLUSTER", p.cluster.clone()),
            ("PUSHER_USE_TLS", p.use_tls.to_string()),
            ("PUSHER_HOST", opt(&p.host)),
            (
                "PUSHER_PORT",
                p.port.map(|v| v.to_string()).unwrap_or_default(),
            ),
            (
                "PUSHER_SCHEME",
                p.scheme.map(|s| s.as_str().to_string()).unwrap_or_default(),
            ),
            ("PUSHER_VERIFY_SSL", p.verify_ssl.to_string()),
            ("PUSHER_DISABLE_STATS", p.disable_stats.to_string()),
            (
                "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
                if p.encryption_master_key.is_some() {
                    "***".into()
                } else {
                    String::new()
                },
            ),
            ("PUSHER_MAX_EVENT_BYTES", p.max_event_bytes.to_string()),
            ("PUSHER_TIMEOUT_MS", p.timeout.as_millis().to_string()),
            (
                "PUSHER_CONNECT_TIMEOUT_MS",
                p.connect_timeout.as_millis().to_string(),
            ),
            ("PUSHER_AUTH_ENDPOINT", opt(&p.auth_endpoint)),
            ("PUSHER_USER_AUTH_ENDPOINT", opt(&p.user_auth_endpoint)),
            ("(effective Pusher endpoint)", p.base_url()),
            ("AMQP_URL", self.amqp.redacted_url()),
            ("AMQP_EXCHANGE", self.amqp.exchange.clone()),
            ("AMQP_QUEUE", self.amqp.queue.clone()),
            ("AMQP_WEBHOOK_EXCHANGE", self.amqp.webhook_exchange.clone()),
            ("DATABASE_URL", redact_url(self.database_url.expose())),
            ("RELAY_PREFETCH", r.prefetch.to_string()),
            ("RELAY_SINGLE_ACTIVE", self.amqp.single_active.to_string()),
            ("RELAY_SHARDS", self.amqp.shards.to_string()),
            ("RELAY_MAX_BODY_BYTES", self.amqp.max_body_bytes.to_string()),
            ("RELAY_LINGER_MS", r.linger.as_millis().to_string()),
            ("RELAY_MAX_IN_FLIGHT", r.max_in_flight.to_string()),
            ("RELAY_CONCURRENCY", r.concurrency.as_str().into()),
            ("RELAY_MAX_ATTEMPTS", r.max_attempts.to_string()),
            ("RELAY_MAX_RETRY_DURATION", dur(r.max_retry_duration)),
            (
                "RELAY_MAX_INTENT_AGE",
                r.max_intent_age.map(dur).unwrap_or_default(),
            ),
            ("RELAY_SHUTDOWN_TIMEOUT", dur(r.shutdown_timeout)),
            ("RELAY_DEDUP_CAPACITY", r.dedup_capacity.to_string()),
            (
                "RELAY_CHANNEL_STYLE",
                if r.templates == ChannelTemplates::legacy() {
                    "legacy"
                } else {
                    "private"
                }
                .into(),
            ),
            (
                "RELAY_LOG_FORMAT",
                if self.log_json { "json" } else { "text" }.into(),
            ),
            (
                "RELAY_CHANNEL_NOTIFICATION",
                r.templates.notification.clone(),
            ),
            (
                "RELAY_CHANNEL_ANNOUNCEMENT",
                r.templates.announcement.clone(),
            ),
            ("RELAY_CHANNEL_CHAT", r.templates.chat.clone()),
            ("RELAY_CHANNEL_ORDER", r.templates.order.clone()),
            ("RELAY_CHANNEL_CUSTOMER", r.templates.customer.clone()),
            ("RELAY_CHANNEL_DASHBOARD", r.templates.dashboard.clone()),
            ("RELAY_CHANNEL_INVENTORY", r.templates.inventory.clone()),
            (
                "RELAY_CHANNEL_PRESENCE_ACTIVITY",
                r.templates.presence_activity.clone(),
            ),
            ("HTTP_ADDR", self.http.addr.to_string()),
            (
                "RELAY_ADMIN_TOKEN",
                if self.http.admin_token.is_some() {
                    "***".into()
                } else {
                    String::new()
                },
            ),
        ])
    }
}

/// `url` as it may be shown: the password of `scheme://user:password@host`
/// and every `password=`, `pass=` or `sslpassword=` query value replaced by
/// `***`. The one redaction of the crate, for AMQP and database URLs alike.
///
/// Passwords are often typed raw, so they may hold `/ ? # @ : ,`: the
/// userinfo ends at the last `@` followed by a host and port (anything up
/// to the next `/`, `?` or `#` without another `@`), not at the first `/`.
/// When a path or query also holds an `@`, more is hidden than needed
/// (`***@` in place of a userinfo that is not certain), never less. Without
/// `://`, everything before the last `@` is hidden.
pub fn redact_url(url: &str) -> String {
    // What is hidden is found on the URL as given, then cut out at once:
    // a query's password may hold an `@` taken for the userinfo's end, and
    // a raw password a `?` taken for the query's start; both are hidden.
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let mut hidden: Vec<(usize, usize)> = Vec::new();
    let at = userinfo_end(rest);
    if let Some(at) = at {
        let userinfo = &rest[..at];
        // A user name holds none of these; if it seems to, the `@` taken
        // is a later one (in the path or query) and the real userinfo,
        // password included, is somewhere in `userinfo`: none of it shows.
        let odd = |s: &str| s.contains(['@', '/', '?', '#']);
        let from = match userinfo.split_once(':') {
            _ if start == 0 => Some(0),
            Some((user, _password)) if !odd(user) => Some(user.len() + 1),
            None if !odd(userinfo) => None,
            _ => Some(0),
        };
        if let Some(from) = from {
            hidden.push((from, at));
        }
    }
    let query_starts = [
        rest.find('?'),
        at.and_then(|at| rest[at..].find('?').map(|q| at + q)),
    ];
    for q in query_starts.into_iter().flatten() {
        let mut pair_start = q + 1;
        for pair in rest[q + 1..].split('&') {
            if let Some((key, _)) = pair.split_once('=') {
                if ["password", "pass", "sslpassword"]
                    .iter()
                    .any(|p| key.eq_ignore_ascii_case(p))
                {
                    hidden.push((pair_start + key.len() + 1, pair_start + pair.len()));
                }
            }
            pair_start += pair.len() + 1;
        }
    }
    hidden.sort_unstable();
    let mut out = url[..start].to_string();
    let mut shown_to = 0;
    for (from, to) in hidden {
        if from < shown_to {
            // Overlaps the range just hidden: hide on to its end.
            if to > shown_to {
                shown_to = to;
            }
            continue;
        }
        out.push_str(&rest[shown_to..from]);
        out.push_str("***");
        shown_to = to;
    }
    out.push_str(&rest[shown_to..]);
    out
}

/// Where the userinfo of `rest` (a URL after its `scheme://`) ends: the
/// last `@` that [`ends_userinfo`], else the last `@`.
fn userinfo_end(rest: &str) -> Option<usize> {
    let last = rest.rfind('@')?;
    Some(
        rest.rmatch_indices('@')
            .map(|(i, _)| i)
            .find(|&i| ends_userinfo(&rest[i + 1..]))
            .unwrap_or(last),
    )
}

/// Whether `url`'s userinfo, as [`redact_url`] finds it, holds a raw `/`,
/// `?` or `#`. URL parsers (lapin's, sqlx's) end the authority there and
/// read the rest of the password as host, port, vhost or query, which the
/// broker or they themselves may then repeat in an error or a log line
/// (`vhost '...' not found`), so such a URL is refused before use. It may
/// also be a URL without password whose path or query holds a raw `@`; the
/// cure is the same: percent-encoding.
pub fn userinfo_is_ambiguous(url: &str) -> bool {
    let Some(scheme_end) = url.find("://") else {
        return false;
    };
    let rest = &url[scheme_end + 3..];
    userinfo_end(rest).is_some_and(|at| rest[..at].contains(['/', '?', '#']))
}

/// The error for a URL that [`userinfo_is_ambiguous`]: fixed text, no part
/// of the URL.
pub const AMBIGUOUS_USERINFO: &str = "has a raw /, ? or # before its last @ (in the password, or an @ in the path or query): percent-encode them (%2F, %3F, %23, %40)";

/// Whether `s` starts with `scheme://`.
fn starts_with_scheme(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// Whether the `@` before `s` may end the userinfo: what follows it up to
/// the next `/`, `?` or `#` (the host and port, whatever their shape) holds
/// no other `@`, and the `@` does not end the URL. Of several such `@`, the
/// last is taken, so an `@` in a password is never mistaken for the end.
fn ends_userinfo(s: &str) -> bool {
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    !s.is_empty() && !s[..end].contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Connecting with a printable password, raw or encoded, to a port
        /// nothing listens on: the AMQP error (both connection paths) and
        /// the store's error show no piece of it. The user is `localhost`,
        /// so that a URL a raw password makes lapin or sqlx misread (host =
        /// the user) fails without a DNS lookup.
        #[test]
        fn connect_errors_show_no_password(
            password in "[ -~]{8,24}",
            encoded in proptest::bool::ANY,
        ) {
            let pw = if encoded { encode(&password) } else { password.clone() };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let amqp = crate::config::AmqpConfig::new(
                &format!("amqp://localhost:{pw}@127.0.0.1:1/%2f"),
                "x",
                "q",
                "w",
            );
            let db = format!("postgres://localhost:{pw}@127.0.0.1:1/db");
            let shown = rt.block_on(async {
                let limit = Duration::from_secs(5);
                let guarded = tokio::time::timeout(limit, crate::amqp::connect(&amqp, "t")).await;
                let plain = tokio::time::timeout(limit, crate::amqp::connect_confirmed(&amqp, "t")).await;
                let store = tokio::time::timeout(limit, crate::deadletter::Store::connect(&db)).await;
                format!(
                    "{} | {} | {}",
                    guarded.map_or("timeout".into(), |r| r.err().map(|e| e.to_string()).unwrap_or_default()),
                    plain.map_or("timeout".into(), |r| r.err().map(|e| e.to_string()).unwrap_or_default()),
                    store.map_or("timeout".into(), |r| r.err().map(|e| e.to_string()).unwrap_or_default()),
                )
            });
            for secret in [&password, &pw] {
                let leaked = pieces_shown(&shown, secret);
                proptest::prop_assert!(leaked.is_empty(), "{:?} of {:?} in {}", leaked, secret, shown);
            }
        }
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
