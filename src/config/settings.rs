//! The settings table: every environment variable pusher-relay reads, once.
//!
//! Each row holds a variable's name, the default it falls back to, one line
//! of documentation, whether it is secret, how its text is parsed into
//! [`Config`] and how its value is shown. Loading walks the rows in order
//! (so problems are reported in this order), `pusher-relay config` prints
//! one line per row, redaction follows each row's [`Secrecy`], and every
//! secret row also reads `NAME_FILE`, a file holding the value (Kubernetes
//! and Docker mount secrets as files). The table of `docs/configuration.md`
//! is made from the rows ([`reference_table`]); `.env.example` and the
//! Kubernetes ConfigMap list their names too; `tests/offline/settings_docs.rs`
//! checks all three agree with the rows.
//!
//! The layout imitates ripgrep's flag definitions (`crates/core/flags/defs.rs`):
//! one list, each entry carrying its own parser and printer. A new setting
//! is a row here and a field of [`Config`] (with its value in `blank()`),
//! a line in `.env.example` and, when Kubernetes should set it, the
//! ConfigMap; `UPDATE_DOCS=1 cargo test --test offline settings_docs`
//! rewrites the documentation's table, and the test fails until the rest
//! agrees with the rows.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;

use super::urls::{redact_url, split_urls};
use super::{
    parse_duration, parse_master_key, AmqpConfig, ChannelTemplates, ConcurrencyMode, Config,
    HttpConfig, PusherConfig, RelayConfig, Scheme, Secret, ADMIN_TOKEN_PLACEHOLDER, MAX_SHARDS,
    MIN_ADMIN_TOKEN_CHARS,
};

/// How a setting's value may be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    /// Shown as it is.
    Public,
    /// Shown as `***` when set; also read from `NAME_FILE`.
    Secret,
    /// A URL, shown with its password as `***`; also read from `NAME_FILE`.
    Url,
    /// URLs separated by commas, each shown with its password as `***`;
    /// also read from `NAME_FILE`.
    Urls,
}

impl Secrecy {
    /// Whether the value must never be shown whole (and may come from a file).
    pub fn is_secret(self) -> bool {
        self != Secrecy::Public
    }

    /// `value` as it may be shown.
    fn redact(self, value: String) -> String {
        match self {
            Secrecy::Public => value,
            Secrecy::Secret if value.is_empty() => value,
            Secrecy::Secret => "***".into(),
            Secrecy::Url => redact_url(&value),
            Secrecy::Urls => split_urls(&value)
                .into_iter()
                .map(redact_url)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// What is wrong with a value: one line per problem, each naming what is
/// expected and never repeating a secret.
struct Problems(Vec<String>);

impl From<String> for Problems {
    fn from(problem: String) -> Self {
        Problems(vec![problem])
    }
}

impl From<&str> for Problems {
    fn from(problem: &str) -> Self {
        Problems(vec![problem.to_owned()])
    }
}

/// Parses a set value into the config.
type Read = fn(&mut Config, &str) -> Result<(), Problems>;

/// A check of several settings together, run once the last of them is
/// read, so that its problem keeps its place among the others.
#[derive(Debug, Clone, Copy)]
struct Check {
    /// The name the problem is reported under.
    var: &'static str,
    run: fn(&Config) -> Result<(), String>,
}

/// One environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The variable's name.
    pub name: &'static str,
    /// The text parsed when the variable is unset or empty (the seed's
    /// `.env` writes `PUSHER_HOST=` for "unset"); `None` leaves it unset.
    pub default: Option<&'static str>,
    /// What it is for, in one line.
    pub doc: &'static str,
    /// Whether and how its value is hidden.
    pub secrecy: Secrecy,
    /// For the Pusher credentials, which have no default: what is expected,
    /// reported when they must be set and are not.
    pub required: Option<&'static str>,
    read: Read,
    /// The value in effect, whole; [`Config::redacted`] hides what is secret.
    show: fn(&Config) -> String,
    then: Option<Check>,
}

impl Setting {
    const fn new(
        name: &'static str,
        default: Option<&'static str>,
        doc: &'static str,
        read: Read,
        show: fn(&Config) -> String,
    ) -> Setting {
        Setting {
            name,
            default,
            doc,
            secrecy: Secrecy::Public,
            required: None,
            read,
            show,
            then: None,
        }
    }

    const fn secret(self, secrecy: Secrecy) -> Setting {
        Setting { secrecy, ..self }
    }

    const fn required(self, what: &'static str) -> Setting {
        Setting {
            required: Some(what),
            ..self
        }
    }

    const fn then(self, var: &'static str, run: fn(&Config) -> Result<(), String>) -> Setting {
        Setting {
            then: Some(Check { var, run }),
            ..self
        }
    }

    /// The variable naming a file that holds the value, for secrets.
    pub fn file_var(&self) -> Option<String> {
        self.secrecy
            .is_secret()
            .then(|| format!("{}_FILE", self.name))
    }

    /// The value given, trimmed, `None` when unset or empty; for a secret,
    /// the content of the file `NAME_FILE` names (one trailing newline
    /// trimmed) when that is set instead.
    pub(super) fn given(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, String> {
        let set = |var: &str| set_value(lookup, var);
        let direct = set(self.name);
        let Some(file_var) = self.file_var() else {
            return Ok(direct);
        };
        let Some(path) = set(&file_var) else {
            return Ok(direct);
        };
        if direct.is_some() {
            return Err(format!(
                "is set and so is {file_var}; expected one or the other"
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|err| {
            format!("{file_var} names {path:?}, which cannot be read ({err}); expected a readable file holding the value")
        })?;
        let value = text
            .strip_suffix('\n')
            .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
        Ok(Some(value.to_owned()).filter(|v| !v.is_empty()))
    }

    /// Where the value in effect comes from: `NAME_FILE`, the variable (set
    /// by `.env` when `dotenv` holds the same value, `.env` never
    /// overriding the environment), the default, or nowhere.
    pub(super) fn origin(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        dotenv: &std::collections::HashMap<String, String>,
    ) -> super::Origin {
        let set = |var: &str| set_value(lookup, var);
        if let Some(file_var) = self.file_var() {
            if let Some(path) = set(&file_var) {
                return super::Origin::File {
                    var: file_var,
                    path,
                };
            }
        }
        match set(self.name) {
            Some(value) if dotenv.get(self.name).map(|v| v.trim()) == Some(value.as_str()) => {
                super::Origin::DotEnv
            }
            Some(_) => super::Origin::Environment,
            None if self.default.is_some() => super::Origin::Default,
            None => super::Origin::Unset,
        }
    }

    /// Parses `text` (the value given, or the default) into `config`.
    fn read(&self, config: &mut Config, text: &str) -> Result<(), Problems> {
        (self.read)(config, text)
    }

    /// Reads this setting into `config`: the value given, else the default,
    /// else nothing (an error for a credential when `credentials` are
    /// required). Returns the problems found.
    pub(super) fn load(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        credentials: bool,
        config: &mut Config,
    ) -> Vec<String> {
        let given = match self.given(lookup) {
            Ok(given) => given,
            Err(problem) => return vec![problem],
        };
        match given.as_deref().or(self.default) {
            Some(text) => self.read(config, text).err().map_or_else(Vec::new, |p| p.0),
            None => match self.required.filter(|_| credentials) {
                Some(what) => vec![format!("is not set; expected {what}")],
                None => Vec::new(),
            },
        }
    }

    /// The problem of the check that runs after this setting, if any, with
    /// the name it is reported under.
    pub(super) fn check_after(&self, config: &Config) -> Option<(&'static str, String)> {
        let check = self.then?;
        (check.run)(config)
            .err()
            .map(|problem| (check.var, problem))
    }

    /// The value in effect as it may be shown: secrets as `***`, URL
    /// passwords as `***`.
    pub(super) fn shown(&self, config: &Config) -> String {
        self.secrecy.redact((self.show)(config))
    }
}

/// `var`'s value, trimmed; `None` when unset or empty (the seed's
/// `PUSHER_HOST=` means unset).
fn set_value(lookup: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    lookup(var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The config the rows write into. A row with a default always writes its
/// field (from the default when unset), so those start values are never
/// seen; a row without one leaves its field as here, unset (`None`). The
/// templates start as the private style, so that a bad style, already
/// reported, does not add a complaint about templates.
pub(super) fn blank() -> Config {
    Config {
        pusher: PusherConfig {
            app_id: String::new(),
            key: String::new(),
            secret: Secret::new(""),
            cluster: String::new(),
            use_tls: true,
            host: None,
            port: None,
            scheme: None,
            verify_ssl: true,
            ca_file: None,
            disable_stats: false,
            encryption_master_key: None,
            max_event_bytes: 0,
            timeout: Duration::ZERO,
            connect_timeout: Duration::ZERO,
            auth_endpoint: None,
            user_auth_endpoint: None,
        },
        amqp: AmqpConfig::new("", "", "", ""),
        database_url: Secret::new(""),
        relay: RelayConfig {
            prefetch: 0,
            linger: Duration::ZERO,
            max_in_flight: 0,
            concurrency: ConcurrencyMode::Adaptive,
            max_attempts: 0,
            max_retry_duration: Duration::ZERO,
            max_intent_age: None,
            parking: true,
            park_threshold: 0,
            parked_max_rows: 0,
            parked_lease: Duration::ZERO,
            shutdown_timeout: Duration::ZERO,
            dedup_capacity: 0,
            templates: ChannelTemplates::default(),
        },
        http: HttpConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ops_addr: None,
            admin_token: None,
        },
        log_json: false,
    }
}

fn boolean(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{raw:?} is not a boolean; expected true or false (also 1/0, yes/no, on/off)"
        )),
    }
}

fn number<T>(raw: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + Copy + fmt::Display,
{
    match raw.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!(
            "{raw:?} is out of range or not a number; expected an integer from {min} to {max}"
        )),
    }
}

fn millis(raw: &str, min: u64, max: u64) -> Result<Duration, String> {
    number(raw, min, max).map(Duration::from_millis)
}

fn duration(raw: &str) -> Result<Duration, String> {
    parse_duration(raw).ok_or_else(|| {
        format!(
            "{raw:?} is not a duration; expected a number with a unit, like 500ms, 30s, 5m or 2h"
        )
    })
}

fn port(raw: &str) -> Result<u16, String> {
    match raw.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "{raw:?} is not a port; expected an integer from 1 to 65535"
        )),
    }
}

fn show_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The values of the style that `RELAY_CHANNEL_STYLE` names.
fn channel_style(raw: &str) -> Result<ChannelTemplates, String> {
    match raw {
        "private" => Ok(ChannelTemplates::default()),
        "legacy" => Ok(ChannelTemplates::legacy()),
        other => Err(format!("{other:?} is not a channel style; expected private (private-user-{{id}}, ...) or legacy (the seed app's public user-{{id}}, order-{{id}}, customer-{{id}})")),
    }
}

fn check_amqp_urls(list: &str) -> Result<(), Problems> {
    let urls = split_urls(list);
    if urls.is_empty() {
        return Err("is empty; expected amqp://user:password@host:5672/vhost, or several such URLs separated by commas".into());
    }
    let problems: Vec<String> = urls
        .iter()
        .enumerate()
        .filter(|(_, url)| !url.starts_with("amqp://") && !url.starts_with("amqps://"))
        .map(|(i, url)| format!("entry {} ({}) is not an AMQP URL; expected amqp://user:password@host:5672/vhost or amqps://..., several separated by commas", i + 1, redact_url(url)))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

fn check_admin_token(token: &str) -> Result<(), String> {
    let n = token.chars().count();
    if token == ADMIN_TOKEN_PLACEHOLDER {
        Err("is the placeholder of deploy/kubernetes/secret.example.yaml; expected a random token of at least 32 characters (openssl rand -hex 32)".into())
    } else if n < MIN_ADMIN_TOKEN_CHARS {
        Err(format!("is {n} characters long; expected at least {MIN_ADMIN_TOKEN_CHARS} (openssl rand -hex 32), or unset to turn the admin API and console off"))
    } else {
        Ok(())
    }
}

/// Every setting, in the order loading reads and reports them.
// Laid out by hand, a row in a few lines: rustfmt would spread each over a
// dozen and hide the table.
#[rustfmt::skip]
/// The configuration reference: a Markdown table of every setting and of
/// every secret's `_FILE` variant, made from [`SETTINGS`].
/// `docs/configuration.md` holds it word for word (a test compares them),
/// so the reference cannot drift from what the worker reads.
pub fn reference_table() -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for s in SETTINGS {
        let default = match s.default {
            Some(d) => format!("`{d}`"),
            None => "unset".to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {default} | {} |\n",
            s.name,
            s.doc.replace('|', "\\|")
        ));
    }
    for s in SETTINGS {
        if let Some(file_var) = s.file_var() {
            out.push_str(&format!(
                "| `{file_var}` | unset | a file holding {} (a mounted Kubernetes or Docker secret): its content is the value, one trailing newline trimmed; setting both is an error |\n",
                s.name
            ));
        }
    }
    out
}

pub static SETTINGS: &[Setting] = &[
    // --- Pusher: the seed PHP app's names and defaults.
    Setting::new("PUSHER_APP_ID", None, "numeric app id (required)",
        |c, v| {
            c.pusher.app_id = v.into();
            if v.chars().all(|c| c.is_ascii_digit()) {
                Ok(())
            } else {
                Err(format!("{v:?} is not numeric; expected the app id from the Pusher dashboard, like 123456").into())
            }
        },
        |c| c.pusher.app_id.clone(),
    )
    .required("the numeric app id from the Pusher dashboard"),
    Setting::new("PUSHER_APP_KEY", None, "app key (required)",
        |c, v| { c.pusher.key = v.into(); Ok(()) },
        |c| c.pusher.key.clone(),
    )
    .required("the app key from the Pusher dashboard"),
    Setting::new("PUSHER_APP_SECRET", None, "app secret (required)",
        |c, v| { c.pusher.secret = Secret::new(v); Ok(()) },
        |c| c.pusher.secret.expose().into(),
    )
    .secret(Secrecy::Secret)
    .required("the app secret from the Pusher dashboard"),
    Setting::new("PUSHER_APP_CLUSTER", Some("mt1"), "cluster, for the default host and pusher-js",
        |c, v| {
            c.pusher.cluster = v.into();
            if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                Ok(())
            } else {
                Err(format!("{v:?} is not a cluster name; expected letters, digits and '-', like mt1 or eu").into())
            }
        },
        |c| c.pusher.cluster.clone(),
    ),
    Setting::new("PUSHER_USE_TLS", Some("true"), "https when PUSHER_SCHEME is empty",
        |c, v| { c.pusher.use_tls = boolean(v)?; Ok(()) },
        |c| c.pusher.use_tls.to_string(),
    ),
    Setting::new("PUSHER_HOST", None, "explicit API host (self-hosted server)",
        |c, v| {
            if v.contains("://") || v.contains('/') {
                return Err(format!("{v:?} is not a bare host name; expected a host like api-eu.pusher.com or 127.0.0.1 (set the scheme with PUSHER_SCHEME and the port with PUSHER_PORT)").into());
            }
            c.pusher.host = Some(v.into());
            Ok(())
        },
        |c| c.pusher.host.clone().unwrap_or_default(),
    ),
    Setting::new("PUSHER_PORT", None, "explicit port; else the scheme's default",
        |c, v| { c.pusher.port = Some(port(v)?); Ok(()) },
        |c| c.pusher.port.map(|p| p.to_string()).unwrap_or_default(),
    ),
    Setting::new("PUSHER_SCHEME", None, "http or https; wins over PUSHER_USE_TLS",
        |c, v| {
            let s = v.to_ascii_lowercase();
            c.pusher.scheme = Some(match s.as_str() {
                "http" => Scheme::Http,
                "https" => Scheme::Https,
                _ => return Err(format!("{s:?} is not a scheme; expected http or https").into()),
            });
            Ok(())
        },
        |c| c.pusher.scheme.map(|s| s.as_str().to_owned()).unwrap_or_default(),
    ),
    Setting::new("PUSHER_VERIFY_SSL", Some("true"), "verify TLS certificates; false logs a warning at start",
        |c, v| { c.pusher.verify_ssl = boolean(v)?; Ok(()) },
        |c| c.pusher.verify_ssl.to_string(),
    ),
    Setting::new("PUSHER_CA_FILE", None, "PEM file of CAs trusted besides the system's (SSL_CERT_FILE, SSL_CERT_DIR)",
        |c, v| {
            let text = std::fs::read_to_string(v).map_err(|e| {
                format!("names {v:?}, which cannot be read ({e}); expected a readable PEM file of CA certificates")
            })?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!("names {v:?}, which holds no certificate; expected PEM (-----BEGIN CERTIFICATE-----)").into());
            }
            c.pusher.ca_file = Some(v.into());
            Ok(())
        },
        |c| c.pusher.ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
    ),
    Setting::new("PUSHER_DISABLE_STATS", Some("false"), "passed to pusher-js",
        |c, v| { c.pusher.disable_stats = boolean(v)?; Ok(()) },
        |c| c.pusher.disable_stats.to_string(),
    ),
    Setting::new("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", None, "32 bytes, base64, for private-encrypted- channels",
        |c, v| { c.pusher.encryption_master_key = Some(parse_master_key(v)?); Ok(()) },
        |c| c.pusher.encryption_master_key.map(|key| base64::engine::general_purpose::STANDARD.encode(key)).unwrap_or_default(),
    )
    .secret(Secrecy::Secret),
    Setting::new("PUSHER_MAX_EVENT_BYTES", Some("10240"), "largest event data, in bytes",
        |c, v| { c.pusher.max_event_bytes = number(v, 1, 1 << 20)?; Ok(()) },
        |c| c.pusher.max_event_bytes.to_string(),
    ),
    Setting::new("PUSHER_TIMEOUT_MS", Some("10000"), "whole-request timeout",
        |c, v| { c.pusher.timeout = millis(v, 1, 600_000)?; Ok(()) },
        |c| c.pusher.timeout.as_millis().to_string(),
    ),
    Setting::new("PUSHER_CONNECT_TIMEOUT_MS", Some("3000"), "connect timeout",
        |c, v| { c.pusher.connect_timeout = millis(v, 1, 600_000)?; Ok(()) },
        |c| c.pusher.connect_timeout.as_millis().to_string(),
    ),
    Setting::new("PUSHER_AUTH_ENDPOINT", None, "channel auth endpoint handed to pusher-js by config --client",
        |c, v| { c.pusher.auth_endpoint = Some(v.into()); Ok(()) },
        |c| c.pusher.auth_endpoint.clone().unwrap_or_default(),
    ),
    Setting::new("PUSHER_USER_AUTH_ENDPOINT", None, "user auth endpoint handed to pusher-js by config --client",
        |c, v| { c.pusher.user_auth_endpoint = Some(v.into()); Ok(()) },
        |c| c.pusher.user_auth_endpoint.clone().unwrap_or_default(),
    ),
    // --- RabbitMQ.
    Setting::new("AMQP_EXCHANGE", Some("pusher.intents"), "topic exchange applications publish intents to",
        |c, v| { c.amqp.exchange = v.into(); Ok(()) },
        |c| c.amqp.exchange.clone(),
    ),
    Setting::new("AMQP_QUEUE", Some("pusher.intents"), "quorum queue the worker consumes",
        |c, v| { c.amqp.queue = v.into(); Ok(()) },
        |c| c.amqp.queue.clone(),
    ),
    Setting::new("AMQP_WEBHOOK_EXCHANGE", Some("pusher.webhooks"), "exchange webhook events are published to",
        |c, v| { c.amqp.webhook_exchange = v.into(); Ok(()) },
        |c| c.amqp.webhook_exchange.clone(),
    ),
    Setting::new("RELAY_SINGLE_ACTIVE", Some("false"), "hot standby: the queue is single-active-consumer",
        |c, v| { c.amqp.single_active = boolean(v)?; Ok(()) },
        |c| c.amqp.single_active.to_string(),
    ),
    Setting::new("RELAY_SHARDS", Some("0"), "order-keeping shard queues (0 to 64; 0 for one queue)",
        |c, v| { c.amqp.shards = number(v, 0, MAX_SHARDS)?; Ok(()) },
        |c| c.amqp.shards.to_string(),
    ),
    Setting::new("RELAY_MAX_BODY_BYTES", Some("65536"), "a larger consumed body is cut to a 4 KiB excerpt and dead-lettered as too_large (1024 to 16 MiB)",
        |c, v| { c.amqp.max_body_bytes = number(v, 1024, 16 << 20)?; Ok(()) },
        |c| c.amqp.max_body_bytes.to_string(),
    ),
    Setting::new("RELAY_MAX_HEADER_BYTES", Some("16384"), "a consumed message whose header table is larger, or has more than one entry per 16 bytes of this (1,024 at the default), loses the table and is dead-lettered as too_large with a summary of it (1024 to 1 MiB)",
        |c, v| { c.amqp.max_header_bytes = number(v, 1024, 1 << 20)?; Ok(()) },
        |c| c.amqp.max_header_bytes.to_string(),
    ),
    Setting::new("RELAY_MAX_HELD_BYTES", Some("16777216"), "bytes of unsettled deliveries (as on the wire, plus 160 per header value) the worker holds, over all its queues, before it takes no more: the memory bound whatever producers send, resident memory staying under about 60 MB + 4 x this (1 MiB to 4 GiB)",
        |c, v| { c.amqp.max_held_bytes = number(v, 1 << 20, 4 << 30)?; Ok(()) },
        |c| c.amqp.max_held_bytes.to_string(),
    ),
    // Read after the other broker settings, as it always was, so that a
    // list of problems keeps its order.
    Setting::new("AMQP_URL", Some("amqp://guest:guest@127.0.0.1:5672/%2f"), "broker URL, or every node's URL separated by commas (tried shuffled); amqps:// takes cacertfile, certfile, keyfile, verify and server_name_indication",
        |c, v| {
            c.amqp.url = Secret::new(v);
            check_amqp_urls(v)
        },
        |c| c.amqp.url.expose().into(),
    )
    .secret(Secrecy::Urls),
    // --- Dead-letter store.
    Setting::new("DATABASE_URL", Some("sqlite://pusher-relay.db"), "dead-letter store (and the parked and delivered logs): sqlite://file or postgres://...; TLS with libpq's sslmode, sslrootcert, sslcert and sslkey, and a PostgreSQL beyond loopback without sslmode=verify-full or verify-ca is warned about at start",
        |c, v| {
            c.database_url = Secret::new(v);
            if v.starts_with("sqlite:") || v.starts_with("postgres://") || v.starts_with("postgresql://") {
                Ok(())
            } else {
                Err("has an unsupported scheme; expected sqlite://path/to/file.db or postgres://user@host/db".into())
            }
        },
        |c| c.database_url.expose().into(),
    )
    .secret(Secrecy::Url),
    // --- Relay. The style comes before the per-type templates it presets.
    Setting::new("RELAY_CHANNEL_STYLE", Some("private"), "private or legacy channel names",
        |c, v| { c.relay.templates = channel_style(v)?; Ok(()) },
        |c| {
            if c.relay.templates == ChannelTemplates::legacy() {
                "legacy".into()
            } else {
                "private".into()
            }
        },
    ),
    Setting::new("RELAY_CHANNEL_NOTIFICATION", None, "channel template of notification; checked at start",
        |c, v| { c.relay.templates.notification = v.into(); Ok(()) },
        |c| c.relay.templates.notification.clone(),
    ),
    Setting::new("RELAY_CHANNEL_ANNOUNCEMENT", None, "channel template of announcement; checked at start",
        |c, v| { c.relay.templates.announcement = v.into(); Ok(()) },
        |c| c.relay.templates.announcement.clone(),
    ),
    Setting::new("RELAY_CHANNEL_CHAT", None, "channel template of chat.message, chat.joined and chat.left; checked at start",
        |c, v| { c.relay.templates.chat = v.into(); Ok(()) },
        |c| c.relay.templates.chat.clone(),
    ),
    Setting::new("RELAY_CHANNEL_ORDER", None, "channel template of order.status; checked at start",
        |c, v| { c.relay.templates.order = v.into(); Ok(()) },
        |c| c.relay.templates.order.clone(),
    ),
    Setting::new("RELAY_CHANNEL_CUSTOMER", None, "channel template of order.status with a customer_id; checked at start",
        |c, v| { c.relay.templates.customer = v.into(); Ok(()) },
        |c| c.relay.templates.customer.clone(),
    ),
    Setting::new("RELAY_CHANNEL_DASHBOARD", None, "channel template of dashboard.metrics; checked at start",
        |c, v| { c.relay.templates.dashboard = v.into(); Ok(()) },
        |c| c.relay.templates.dashboard.clone(),
    ),
    Setting::new("RELAY_CHANNEL_INVENTORY", None, "channel template of inventory.stock; checked at start",
        |c, v| { c.relay.templates.inventory = v.into(); Ok(()) },
        |c| c.relay.templates.inventory.clone(),
    ),
    Setting::new("RELAY_CHANNEL_PRESENCE_ACTIVITY", None, "channel template of presence.activity; checked at start",
        |c, v| { c.relay.templates.presence_activity = v.into(); Ok(()) },
        |c| c.relay.templates.presence_activity.clone(),
    )
    // The last template: the style and every override are read.
    .then("RELAY_CHANNEL_*", |c| {
        c.relay.templates.validate().map_err(|e| {
            format!("{e}; expected a valid channel name with only the placeholders its intent type has (see docs/producers.md, wire contract)")
        })
    }),
    Setting::new("RELAY_CONCURRENCY", Some("adaptive"), "adaptive (the limit follows Pusher's round trips and pushback) or fixed",
        |c, v| {
            c.relay.concurrency = match v {
                "adaptive" => ConcurrencyMode::Adaptive,
                "fixed" => ConcurrencyMode::Fixed,
                other => return Err(format!("{other:?} is not a concurrency mode; expected adaptive (the limit follows Pusher's round trips and 429s, up to RELAY_MAX_IN_FLIGHT) or fixed (always RELAY_MAX_IN_FLIGHT)").into()),
            };
            Ok(())
        },
        |c| c.relay.concurrency.as_str().into(),
    ),
    Setting::new("RELAY_PREFETCH", Some("10000"), "unacked deliveries held (memory bound, outage backpressure)",
        |c, v| { c.relay.prefetch = number(v, 1, u16::MAX)?; Ok(()) },
        |c| c.relay.prefetch.to_string(),
    ),
    Setting::new("RELAY_PARKING", Some("on"), "park hot channels out of the prefetch window (on or off)",
        |c, v| { c.relay.parking = boolean(v)?; Ok(()) },
        |c| if c.relay.parking { "on" } else { "off" }.into(),
    ),
    Setting::new("RELAY_PARK_THRESHOLD", Some("500"), "intents of one channel held before it is parked (at most half the window)",
        |c, v| { c.relay.park_threshold = number(v, 10, 1_000_000)?; Ok(()) },
        |c| c.relay.park_threshold.to_string(),
    ),
    Setting::new("RELAY_PARKED_MAX_ROWS", Some("1000000"), "rows one parked log holds at most; past it, a parked channel's intents wait unacked in RabbitMQ (in order) until rows are delivered, and the window fills as without parking",
        |c, v| { c.relay.parked_max_rows = number(v, 10, 1_000_000_000)?; Ok(()) },
        |c| c.relay.parked_max_rows.to_string(),
    ),
    Setting::new("RELAY_PARKED_LEASE", Some("30s"), "with competing consumers: how long a worker's parked log outlives its last lease renewal (renewed every third of it) before a live worker of the queue adopts its rows; from 3s to 1h",
        |c, v| {
            let d = duration(v)?;
            if d < Duration::from_secs(3) || d > Duration::from_secs(3600) {
                return Err(format!("{v:?} is out of range; expected a duration from 3s to 1h").into());
            }
            c.relay.parked_lease = d;
            Ok(())
        },
        |c| show_duration(c.relay.parked_lease),
    ),
    Setting::new("RELAY_LINGER_MS", Some("10"), "how long a partly filled batch waits for more events",
        |c, v| { c.relay.linger = millis(v, 0, 10_000)?; Ok(()) },
        |c| c.relay.linger.as_millis().to_string(),
    ),
    Setting::new("RELAY_MAX_IN_FLIGHT", Some("256"), "most Pusher requests in flight: the adaptive limit's ceiling, or the limit when fixed",
        |c, v| { c.relay.max_in_flight = number(v, 1, 4096)?; Ok(()) },
        |c| c.relay.max_in_flight.to_string(),
    ),
    Setting::new("RELAY_MAX_ATTEMPTS", Some("8"), "attempts per request, while Pusher is otherwise healthy, before the intent is dead-lettered as exhausted",
        |c, v| { c.relay.max_attempts = number(v, 1, 1000)?; Ok(()) },
        |c| c.relay.max_attempts.to_string(),
    ),
    Setting::new("RELAY_MAX_RETRY_DURATION", Some("5m"), "time spent retrying one request, while Pusher is otherwise healthy, before exhausted",
        |c, v| { c.relay.max_retry_duration = duration(v)?; Ok(()) },
        |c| show_duration(c.relay.max_retry_duration),
    ),
    Setting::new("RELAY_MAX_INTENT_AGE", None, "older intents are dead-lettered as expired; off when unset",
        |c, v| { c.relay.max_intent_age = Some(duration(v)?); Ok(()) },
        |c| c.relay.max_intent_age.map(show_duration).unwrap_or_default(),
    ),
    Setting::new("RELAY_SHUTDOWN_TIMEOUT", Some("30s"), "drain time on SIGTERM",
        |c, v| { c.relay.shutdown_timeout = duration(v)?; Ok(()) },
        |c| show_duration(c.relay.shutdown_timeout),
    ),
    Setting::new("RELAY_DEDUP_CAPACITY", Some("100000"), "delivered intent ids remembered to drop redeliveries, in memory and in the store's delivered log, which a restart reads back (0 turns it off)",
        |c, v| { c.relay.dedup_capacity = number(v, 0, 100_000_000)?; Ok(()) },
        |c| c.relay.dedup_capacity.to_string(),
    ),
    // --- HTTP listener.
    Setting::new("HTTP_ADDR", Some("127.0.0.1:9464"), "listener for /metrics, /healthz, /readyz, webhooks, /api and /ui",
        |c, v| {
            c.http.addr = v.parse().map_err(|_| {
                format!("{v:?} is not a socket address; expected ip:port like 127.0.0.1:9464 or 0.0.0.0:9464")
            })?;
            Ok(())
        },
        |c| c.http.addr.to_string(),
    ),
    Setting::new("HTTP_OPS_ADDR", None, "when set, /metrics, /healthz and /readyz listen here alone, and HTTP_ADDR serves the rest: the probes answer whatever floods the public port (the Kubernetes base uses 0.0.0.0:9465)",
        |c, v| {
            let addr = v.parse().map_err(|_| {
                format!("{v:?} is not a socket address; expected ip:port like 0.0.0.0:9465")
            })?;
            c.http.ops_addr = Some(addr);
            Ok(())
        },
        |c| c.http.ops_addr.map(|a| a.to_string()).unwrap_or_default(),
    ),
    Setting::new("RELAY_ADMIN_TOKEN", None, "admin API token and the ops console's sign-in, both off when unset; at least 32 characters (openssl rand -hex 32)",
        |c, v| {
            c.http.admin_token = Some(Secret::new(v));
            check_admin_token(v)?;
            Ok(())
        },
        |c| c.http.admin_token.as_ref().map(|t| t.expose().to_owned()).unwrap_or_default(),
    )
    .secret(Secrecy::Secret),
    Setting::new("RELAY_LOG_FORMAT", Some("text"), "text or json; the level comes from RUST_LOG; text has colour only when stderr is a terminal and NO_COLOR is unset",
        |c, v| {
            c.log_json = match v {
                "text" => false,
                "json" => true,
                other => return Err(format!("{other:?} is not a log format; expected text or json").into()),
            };
            Ok(())
        },
        |c| if c.log_json { "json" } else { "text" }.into(),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
    }

    #[test]
    fn every_default_parses_and_matches_the_constants() {
        let mut config = blank();
        for setting in SETTINGS {
            if let Some(default) = setting.default {
                assert!(
                    setting.read(&mut config, default).is_ok(),
                    "{}'s default {default:?} does not parse",
                    setting.name
                );
            }
        }
        assert_eq!(config.relay.prefetch, super::super::DEFAULT_PREFETCH);
        assert_eq!(
            config.relay.max_in_flight,
            super::super::DEFAULT_MAX_IN_FLIGHT
        );
        assert_eq!(
            config.amqp.max_body_bytes,
            super::super::DEFAULT_MAX_BODY_BYTES
        );
        assert_eq!(
            config.pusher.max_event_bytes,
            super::super::pusher_rules::DEFAULT_MAX_EVENT_BYTES
        );
    }

    #[test]
    fn only_secrets_read_a_file_and_the_credentials_are_required() {
        let secrets: Vec<&str> = SETTINGS
            .iter()
            .filter(|s| s.file_var().is_some())
            .map(|s| s.name)
            .collect();
        assert_eq!(
            secrets,
            [
                "PUSHER_APP_SECRET",
                "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
                "AMQP_URL",
                "DATABASE_URL",
                "RELAY_ADMIN_TOKEN"
            ]
        );
        let required: Vec<&str> = SETTINGS
            .iter()
            .filter(|s| s.required.is_some())
            .map(|s| s.name)
            .collect();
        assert_eq!(
            required,
            ["PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET"]
        );
    }
}
