//! RabbitMQ: connecting on tokio, the worker's topology, and acking in runs.

pub mod acker;
pub mod guard;
mod held;

pub use held::Budget;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use rand::seq::SliceRandom;

use crate::config::{redact_url, AmqpConfig};

/// The header producers set to the intent's ordering key (see
/// [`crate::intent::Intent::ordering_key`]); with `RELAY_SHARDS`, the
/// consistent-hash exchange routes on it, so one channel's intents always
/// land in one shard.
pub const ORDERING_KEY_HEADER: &str = "ordering-key";

/// What a publishing connection accepts in a returned message's body: its
/// own intents come back only when unroutable, and never past this.
const PUBLISHER_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// And in its header table.
const PUBLISHER_MAX_HEADER_BYTES: u32 = 1024 * 1024;

/// How long one node may take to accept a connection before the next is
/// tried: a node that is down refuses at once, an unreachable one does not.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the broker could not be used; URLs in messages have no password.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("cannot connect to RabbitMQ (AMQP_URL): {tried}")]
    Connect { tried: String },
    #[error("cannot declare {what} on RabbitMQ: {source}")]
    Declare { what: String, source: lapin::Error },
    #[error("{0}")]
    Topology(String),
    #[error("RabbitMQ channel failed while {doing}: {source}")]
    Channel {
        doing: &'static str,
        source: lapin::Error,
    },
}

impl AmqpError {
    /// Whether retrying cannot help: the broker refused the topology itself
    /// (a queue declared with other arguments, a missing plugin).
    pub fn is_permanent(&self) -> bool {
        matches!(self, AmqpError::Topology(_))
    }
}

/// Connects with lapin driven by the current tokio runtime (no extra
/// executor threads), through the [`guard`]: every connection made here may
/// consume, and what arrives on it is producers' input.
pub async fn connect(cfg: &AmqpConfig, name: &str) -> Result<Connection, AmqpError> {
    connect_guarded(cfg, name, None).await
}

/// [`connect`] for the worker's consuming sessions: deliveries wait while
/// the worker holds `budget`'s bytes of them, over all its connections.
pub async fn connect_within(
    cfg: &AmqpConfig,
    name: &str,
    budget: &Arc<Budget>,
) -> Result<Connection, AmqpError> {
    connect_guarded(cfg, name, Some(budget)).await
}

async fn connect_guarded(
    cfg: &AmqpConfig,
    name: &str,
    budget: Option<&Arc<Budget>>,
) -> Result<Connection, AmqpError> {
    let limits = guard::Limits {
        max_body_bytes: cfg.max_body_bytes,
        max_header_bytes: cfg.max_header_bytes,
    };
    connect_any(cfg, Some((limits, budget)), || {
        ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio)
            .with_connection_name(name.into())
    })
    .await
}

/// Tries each URL of `AMQP_URL` once, in a random order so that workers
/// given the same list spread over the nodes, and returns the first
/// connection made; the error lists every node's failure.
async fn connect_any(
    cfg: &AmqpConfig,
    guarded: Option<(guard::Limits, Option<&Arc<Budget>>)>,
    props: impl Fn() -> ConnectionProperties,
) -> Result<Connection, AmqpError> {
    let mut urls = cfg.urls();
    urls.shuffle(&mut rand::thread_rng());
    let mut tried = Vec::new();
    for url in urls {
        match tokio::time::timeout(CONNECT_TIMEOUT, open(url, guarded, props())).await {
            Ok(Ok(conn)) => {
                if !tried.is_empty() {
                    tracing::warn!(node = %redact_url(url), unreachable = %tried.join("; "), "connected to RabbitMQ after other nodes failed");
                }
                return Ok(conn);
            }
            Ok(Err(e)) => tried.push(format!("{}: {e}", redact_url(url))),
            Err(_) => tried.push(format!(
                "{}: no answer within {CONNECT_TIMEOUT:?}",
                redact_url(url)
            )),
        }
    }
    Err(AmqpError::Connect {
        tried: tried.join("; "),
    })
}

/// One connection to `url`; with `guarded`, the TCP (and TLS) connection is
/// made here and lapin talks AMQP to the guard in front of it.
async fn open(
    url: &str,
    guarded: Option<(guard::Limits, Option<&Arc<Budget>>)>,
    props: ConnectionProperties,
) -> Result<Connection, String> {
    // A raw / ? # in the password would be misread, its rest taken for the
    // host, vhost or query, which the broker's refusal then repeats.
    if crate::config::userinfo_is_ambiguous(url) {
        return Err(format!("not used: {}", crate::config::AMBIGUOUS_USERINFO));
    }
    // lapin's parse errors quote the whole URL, or a part of a password
    // (`Invalid SASL mechanism: ...`); only the url crate's reason, fixed
    // text, is shown. Parsed here for both paths: `Connection::connect(url)`
    // would show lapin's.
    let mut uri: AMQPUri = url
        .parse()
        .map_err(|_: String| match url::Url::parse(url) {
            Err(e) => format!("not an AMQP URL ({e})"),
            Ok(_) => "not an AMQP URL".to_string(),
        })?;
    let endpoint = tls::endpoint(url).map_err(|e| e.to_string())?;
    // A plain publisher talks to the broker directly; TLS is always made
    // here (see `tls`), and lapin then speaks AMQP through the guard.
    if guarded.is_none() && endpoint.is_none() {
        return Connection::connect_uri(uri, props)
            .await
            .map_err(|e| e.to_string());
    }
    let (limits, budget) = guarded.unwrap_or((
        guard::Limits {
            max_body_bytes: PUBLISHER_MAX_BODY_BYTES,
            max_header_bytes: PUBLISHER_MAX_HEADER_BYTES,
        },
        None,
    ));
    let budget = budget.cloned();
    let (host, port) = match &endpoint {
        Some(e) => (e.host.clone(), e.port),
        None => (uri.authority.host.clone(), uri.authority.port),
    };
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let lapin_end = match &endpoint {
        None => guard::spawn(tcp, limits, budget).await,
        Some(e) => guard::spawn(tls::connect(tcp, e).await?, limits, budget).await,
    }
    .map_err(|e| format!("cannot start the AMQP guard: {e}"))?;
    // lapin speaks plain AMQP on the socket the guard connected for it.
    uri.scheme = AMQPScheme::AMQP;
    #[allow(clippy::result_large_err)] // lapin's type, see `hand_over`
    let connect: Box<dyn FnOnce(&AMQPUri) -> lapin::tcp::HandshakeResult + Send + Sync> =
        Box::new(move |_| hand_over(lapin_end));
    Connection::connector(uri, connect, props)
        .await
        .map_err(|e| e.to_string())
}

/// lapin's end of the guard's hop, as lapin's own connect would leave a
/// socket for its reactor: non-blocking. The result type is lapin's, large
/// error variant and all.
#[allow(clippy::result_large_err)]
fn hand_over(stream: std::net::TcpStream) -> lapin::tcp::HandshakeResult {
    let stream = lapin::tcp::TcpStream::from_std(stream)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// A connection for a short-lived command (`check`, `publish`, `dlq
/// replay`). It runs on lapin's own executor rather than tokio's: with
/// tokio's, lapin's I/O thread fails loudly while a CLI's runtime shuts
/// down right after its last exchange.
pub async fn connect_short_lived(cfg: &AmqpConfig, name: &str) -> Result<Connection, AmqpError> {
    connect_any(cfg, None, || {
        ConnectionProperties::default().with_connection_name(name.into())
    })
    .await
}

/// A connection and a channel with publisher confirms, for short-lived
/// publishers (see [`connect_short_lived`]).
pub async fn connect_confirmed(
    cfg: &AmqpConfig,
    name: &str,
) -> Result<(Connection, Channel), AmqpError> {
    let conn = connect_short_lived(cfg, name).await?;
    let channel = open_channel(&conn).await?;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .map_err(|source| AmqpError::Channel {
            doing: "enabling publisher confirms",
            source,
        })?;
    Ok((conn, channel))
}

/// A new channel on `conn`.
pub async fn open_channel(conn: &Connection) -> Result<Channel, AmqpError> {
    conn.create_channel()
        .await
        .map_err(|source| AmqpError::Channel {
            doing: "opening a channel",
            source,
        })
}

/// The queues the worker consumes: the intent queue, or with `RELAY_SHARDS`
/// its shards `{queue}.shard-0` ... `{queue}.shard-{N-1}`.
pub fn consumed_queues(cfg: &AmqpConfig) -> Vec<String> {
    if cfg.shards == 0 {
        vec![cfg.queue.clone()]
    } else {
        (0..cfg.shards)
            .map(|i| format!("{}.shard-{i}", cfg.queue))
            .collect()
    }
}

/// With shards, a queue nothing is published to, on which every worker
/// keeps one consumer: its consumer count is the number of live workers,
/// which single-active queues do not tell (they count only the active one).
pub fn roll_call_queue(cfg: &AmqpConfig) -> String {
    format!("{}.workers", cfg.queue)
}

/// How many times RabbitMQ may hand out one intent before it dead-letters
/// it to [`limit_queue`]. Every return counts: a worker that crashes, loses
/// its connection or hands its queue over while it holds the intent. The
/// worker holds nothing through a Pusher outage (see the relay's circuit),
/// so only those events spend it; 50 is far more than a healthy queue
/// spends, and few enough that a message which kills the worker every time
/// it is taken stops the crash loop after 50 rounds instead of never.
/// RabbitMQ 4 sets 20 on every quorum queue that names none, and drops
/// what reaches it unless the queue has a dead-letter target.
pub const DELIVERY_LIMIT: i64 = 50;

/// The limit queue's own limit: its consumer returns a message only when
/// the store is down, and a store outage must not cost what it holds.
const LIMIT_QUEUE_DELIVERY_LIMIT: i64 = 1_000_000;

/// Where RabbitMQ dead-letters intents that reached [`DELIVERY_LIMIT`]
/// (from the intent queue or any shard); the worker drains it into the
/// dead-letter store.
pub fn limit_queue(cfg: &AmqpConfig) -> String {
    format!("{}.delivery-limit", cfg.queue)
}

/// What the topology's declaration found.
#[derive(Debug, Default)]
pub struct Declared {
    /// Intent queues that existed from before the delivery limit, with
    /// their old arguments: RabbitMQ cannot change a queue's arguments, so
    /// they are used as they are, and [`limit_policy_command`] is the way to
    /// give them the limit and its dead-letter target.
    pub without_limit: Vec<String>,
}

/// Declares the worker's topology; idempotent, the same declarations on
/// every start. A queue that exists with other arguments than these
/// settings declare fails here with the way out, rather than being silently
/// used; one that only lacks the delivery limit (declared by an earlier
/// version) is used, and reported in [`Declared::without_limit`].
///
/// - The intent exchange (topic) and the webhook exchange.
/// - The limit queue ([`limit_queue`]), first: at-least-once dead-lettering
///   keeps what it cannot yet route.
/// - Unsharded: the quorum intent queue bound with `#`
///   (single-active-consumer with `RELAY_SINGLE_ACTIVE`).
/// - Sharded: `{exchange}.shards`, a headers exchange bound with `#`, sends
///   intents that carry the ordering-key header to `{exchange}.by-key`, a
///   consistent-hash exchange on that header, and the others (its alternate
///   exchange) to `{exchange}.by-id`, a consistent-hash exchange on the
///   message id: a consistent-hash exchange alone would send every intent
///   without the header to one shard. Both feed the N single-active-consumer
///   shard queues with equal weights.
///
/// Every intent queue has [`DELIVERY_LIMIT`] and dead-letters at least once
/// (`x-dead-letter-strategy`, which RabbitMQ honours only with
/// `x-overflow=reject-publish`; that overflow mode acts only on a length
/// limit, and none is set, so publishers see no difference).
pub async fn declare_topology(conn: &Connection, cfg: &AmqpConfig) -> Result<Declared, AmqpError> {
    let mut channel = open_channel(conn).await?;
    let mut declared = Declared::default();
    for exchange in [&cfg.exchange, &cfg.webhook_exchange] {
        declare_exchange(
            &channel,
            exchange,
            ExchangeKind::Topic,
            FieldTable::default(),
        )
        .await?;
    }
    declare_limit_queue(&channel, cfg).await?;
    if cfg.shards == 0 {
        declare_intent_queue(
            conn,
            &mut channel,
            cfg,
            &cfg.queue,
            cfg.single_active,
            &mut declared,
        )
        .await?;
        bind_queue(&channel, &cfg.queue, &cfg.exchange, "#").await?;
        let _ = channel.close(200, "declared").await;
        return Ok(declared);
    }
    let router = format!("{}.shards", cfg.exchange);
    let by_key = format!("{}.by-key", cfg.exchange);
    let by_id = format!("{}.by-id", cfg.exchange);
    let hash = ExchangeKind::Custom("x-consistent-hash".into());
    let mut args = FieldTable::default();
    args.insert("hash-property".into(), long_string("message_id"));
    declare_exchange(&channel, &by_id, hash.clone(), args).await?;
    let mut args = FieldTable::default();
    args.insert("hash-header".into(), long_string(ORDERING_KEY_HEADER));
    declare_exchange(&channel, &by_key, hash, args).await?;
    let mut args = FieldTable::default();
    args.insert("alternate-exchange".into(), long_string(&by_id));
    declare_exchange(&channel, &router, ExchangeKind::Headers, args).await?;
    // A void value matches on the header's presence, whatever its value.
    let mut has_key = FieldTable::default();
    has_key.insert("x-match".into(), long_string("all"));
    has_key.insert(ORDERING_KEY_HEADER.into(), AMQPValue::Void);
    bind_exchange(&channel, &by_key, &router, "", has_key).await?;
    bind_exchange(&channel, &router, &cfg.exchange, "#", FieldTable::default()).await?;
    for queue in consumed_queues(cfg) {
        declare_intent_queue(conn, &mut channel, cfg, &queue, true, &mut declared).await?;
        // The binding key of a consistent-hash exchange is the queue's weight.
        bind_queue(&channel, &queue, &by_key, "1").await?;
        bind_queue(&channel, &queue, &by_id, "1").await?;
    }
    declare_roll_call(&channel, cfg).await?;
    let _ = channel.close(200, "declared").await;
    Ok(declared)
}

/// Declares one intent queue with the delivery limit; one that exists with
/// the arguments of an earlier version (the same, less the limit) is taken
/// as it is. A refused declaration closes its channel, so `channel` is
/// replaced then.
async fn declare_intent_queue(
    conn: &Connection,
    channel: &mut Channel,
    cfg: &AmqpConfig,
    name: &str,
    single_active: bool,
    declared: &mut Declared,
) -> Result<(), AmqpError> {
    let limited = QueueKind::Intents {
        single_active,
        limit: Some(limit_queue(cfg)),
    };
    match declare_queue(channel, name, limited).await {
        Err(AmqpError::Topology(first)) => {
            *channel = open_channel(conn).await?;
            let earlier = QueueKind::Intents {
                single_active,
                limit: None,
            };
            match declare_queue(channel, name, earlier).await {
                Ok(()) => {
                    declared.without_limit.push(name.to_string());
                    Ok(())
                }
                // Not the earlier version's queue either: the settings are
                // what differs, which the first refusal explains.
                Err(AmqpError::Topology(_)) => Err(AmqpError::Topology(first)),
                Err(e) => Err(e),
            }
        }
        other => other,
    }
}

/// How an intent queue on the broker stands against what the worker
/// declares, for `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueState {
    /// Not declared yet: the worker declares it at start.
    Absent,
    /// Declared as this version declares it.
    AsDeclared,
    /// Declared by an earlier version, without the delivery limit and its
    /// dead-letter target; [`limit_policy_command`] gives it both.
    WithoutLimit,
    /// Declared with other arguments than these settings ask for: the
    /// worker would refuse to start, saying this.
    Refused(String),
}

/// Looks at one intent queue without changing it: a passive declaration,
/// then the worker's own (a no-op on a queue that already has those
/// arguments, refused on one that has others).
pub async fn inspect_queue(
    conn: &Connection,
    cfg: &AmqpConfig,
    name: &str,
    single_active: bool,
) -> Result<QueueState, AmqpError> {
    let channel = open_channel(conn).await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    if channel
        .queue_declare(name, passive, FieldTable::default())
        .await
        .is_err()
    {
        return Ok(QueueState::Absent);
    }
    let mut channel = open_channel(conn).await?;
    let mut declared = Declared::default();
    let state =
        match declare_intent_queue(conn, &mut channel, cfg, name, single_active, &mut declared)
            .await
        {
            Ok(()) if declared.without_limit.is_empty() => QueueState::AsDeclared,
            Ok(()) => QueueState::WithoutLimit,
            Err(AmqpError::Topology(why)) => QueueState::Refused(why),
            Err(e) => return Err(e),
        };
    let _ = channel.close(200, "inspected").await;
    Ok(state)
}

/// The `rabbitmqctl set_policy` line that gives intent queues declared
/// before the delivery limit the same limit and dead-letter target as new
/// ones (a policy applies to existing queues; arguments cannot be changed).
pub fn limit_policy_command(cfg: &AmqpConfig) -> String {
    let pattern = format!("^{}(\\.shard-[0-9]+)?$", regex_escape(&cfg.queue));
    let definition = serde_json::json!({
        "delivery-limit": DELIVERY_LIMIT,
        "dead-letter-exchange": "",
        "dead-letter-routing-key": limit_queue(cfg),
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",
    });
    let vhost = cfg
        .urls()
        .first()
        .and_then(|u| u.parse::<AMQPUri>().ok())
        .map(|u| u.vhost)
        .filter(|v| v != "/")
        .map(|v| format!("-p '{v}' "))
        .unwrap_or_default();
    format!(
        "rabbitmqctl set_policy {vhost}--apply-to queues --priority 10 pusher-relay-delivery-limit '{pattern}' '{definition}'"
    )
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Declares the limit queue (see [`limit_queue`]).
pub async fn declare_limit_queue(channel: &Channel, cfg: &AmqpConfig) -> Result<(), AmqpError> {
    declare_queue(channel, &limit_queue(cfg), QueueKind::Limit).await
}

/// Declares the roll-call queue (see [`roll_call_queue`]).
pub async fn declare_roll_call(channel: &Channel, cfg: &AmqpConfig) -> Result<(), AmqpError> {
    declare_queue(channel, &roll_call_queue(cfg), QueueKind::RollCall).await
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
    args: FieldTable,
) -> Result<(), AmqpError> {
    let label = match &kind {
        ExchangeKind::Custom(k) => k.as_str(),
        ExchangeKind::Headers => "headers",
        _ => "topic",
    };
    let what = format!("{label} exchange {name:?}");
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(name, kind, durable, args)
        .await
        .map_err(|source| explain(what, source))
}

/// The queues the worker declares, by the arguments each needs.
enum QueueKind {
    /// An intent queue or shard; `limit` is the limit queue its intents go
    /// to at [`DELIVERY_LIMIT`], `None` for the arguments of an earlier
    /// version.
    Intents {
        single_active: bool,
        limit: Option<String>,
    },
    /// [`limit_queue`].
    Limit,
    /// [`roll_call_queue`].
    RollCall,
}

async fn declare_queue(channel: &Channel, name: &str, kind: QueueKind) -> Result<(), AmqpError> {
    let mut args = FieldTable::default();
    // Quorum queues replicate and survive a broker restart with their
    // messages; classic queues would lose the backlog on a node failure.
    args.insert("x-queue-type".into(), long_string("quorum"));
    let what = match &kind {
        QueueKind::Intents {
            single_active,
            limit,
        } => {
            if *single_active {
                args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            }
            if let Some(target) = limit {
                args.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongLongInt(DELIVERY_LIMIT),
                );
                args.insert("x-dead-letter-exchange".into(), long_string(""));
                args.insert("x-dead-letter-routing-key".into(), long_string(target));
                args.insert(
                    "x-dead-letter-strategy".into(),
                    long_string("at-least-once"),
                );
                args.insert("x-overflow".into(), long_string("reject-publish"));
            }
            let mut what = format!("quorum queue {name:?}");
            if *single_active {
                what.push_str(" (single active consumer)");
            }
            if limit.is_some() {
                what.push_str(&format!(" with delivery limit {DELIVERY_LIMIT}"));
            }
            what
        }
        QueueKind::Limit => {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(LIMIT_QUEUE_DELIVERY_LIMIT),
            );
            format!("quorum queue {name:?} (intents that reached the delivery limit)")
        }
        QueueKind::RollCall => format!("quorum queue {name:?} (roll call)"),
    };
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(name, durable, args)
        .await
        .map(|_| ())
        .map_err(|source| explain(what, source))
}

async fn bind_queue(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), AmqpError> {
    channel
        .queue_bind(
            queue,
            exchange,
            key,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| AmqpError::Declare {
            what: format!("binding of {queue:?} to {exchange:?}"),
            source,
        })
}

async fn bind_exchange(
    channel: &Channel,
    destination: &str,
    source_exchange: &str,
    key: &str,
    args: FieldTable,
) -> Result<(), AmqpError> {
    channel
        .exchange_bind(
            destination,
            source_exchange,
            key,
            ExchangeBindOptions::default(),
            args,
        )
        .await
        .map_err(|source| AmqpError::Declare {
            what: format!("binding of exchange {destination:?} to {source_exchange:?}"),
            source,
        })
}

/// Turns the broker's refusals that no retry can cure into what to do.
fn explain(what: String, source: lapin::Error) -> AmqpError {
    let lapin::Error::ProtocolError(e) = &source else {
        return AmqpError::Declare { what, source };
    };
    let answer = e.get_message().as_str();
    if answer.contains("inequivalent arg") {
        return AmqpError::Topology(format!(
            "cannot declare {what}: RabbitMQ answered \"{answer}\". The queue exists with \
             other arguments than these settings (RELAY_SINGLE_ACTIVE, RELAY_SHARDS) declare, \
             and RabbitMQ cannot change a queue's arguments in place. To move: start workers \
             with the new settings and a new AMQP_QUEUE (they declare and bind the new queue), \
             remove the old queue's binding to the intent exchange, let the old workers drain \
             the old queue, then stop them and delete it. docs/scaling.md's \
             \"Scaling and high availability\" has the details."
        ));
    }
    if answer.contains("exchange type") {
        return AmqpError::Topology(format!(
            "cannot declare {what}: RabbitMQ answered \"{answer}\". RELAY_SHARDS needs the \
             consistent-hash exchange plugin on every node: \
             rabbitmq-plugins enable rabbitmq_consistent_hash_exchange"
        ));
    }
    AmqpError::Declare { what, source }
}

/// The message's properties and headers as JSON, kept with a dead letter so
/// replay can restore them. AMQP values keep their type tags.
/// Stored properties (as [`properties_json`] keeps them) for people to read:
/// headers are kept in lapin's typed form so that a replay sends them back
/// with their AMQP types, which shows a string as
/// `{"LongString": [112, 114, ...]}`; here each header is its plain value.
pub fn readable_properties(stored: &serde_json::Value) -> serde_json::Value {
    let mut out = stored.clone();
    if let Some(headers) = out.get_mut("headers") {
        if let Ok(table) = serde_json::from_value::<FieldTable>(headers.clone()) {
            *headers = table_json(&table);
        }
    }
    out
}

fn table_json(table: &FieldTable) -> serde_json::Value {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.to_string(), value_json(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn value_json(v: &AMQPValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into(),
        AMQPValue::ShortString(s) => s.as_str().into(),
        AMQPValue::Boolean(b) => (*b).into(),
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => (*n).into(),
        AMQPValue::Timestamp(n) => (*n).into(),
        AMQPValue::Float(n) => (*n).into(),
        AMQPValue::Double(n) => (*n).into(),
        AMQPValue::FieldTable(t) => table_json(t),
        AMQPValue::FieldArray(a) => a.as_slice().iter().map(value_json).collect(),
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into(),
        AMQPValue::DecimalValue(d) => format!("{}e-{}", d.value, d.scale).into(),
        AMQPValue::Void => Value::Null,
    }
}

pub fn properties_json(props: &lapin::BasicProperties) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(v) = props.message_id() {
        out.insert("message_id".into(), v.as_str().into());
    }
    if let Some(v) = props.timestamp() {
        out.insert("timestamp".into(), (*v).into());
    }
    if let Some(v) = props.content_type() {
        out.insert("content_type".into(), v.as_str().into());
    }
    if let Some(v) = props.delivery_mode() {
        out.insert("delivery_mode".into(), (*v).into());
    }
    if let Some(v) = props.correlation_id() {
        out.insert("correlation_id".into(), v.as_str().into());
    }
    if let Some(v) = props.app_id() {
        out.insert("app_id".into(), v.as_str().into());
    }
    if let Some(v) = props.content_encoding() {
        out.insert("content_encoding".into(), v.as_str().into());
    }
    if let Some(v) = props.priority() {
        out.insert("priority".into(), (*v).into());
    }
    if let Some(v) = props.reply_to() {
        out.insert("reply_to".into(), v.as_str().into());
    }
    if let Some(v) = props.expiration() {
        out.insert("expiration".into(), v.as_str().into());
    }
    if let Some(v) = props.kind() {
        out.insert("type".into(), v.as_str().into());
    }
    if let Some(v) = props.user_id() {
        out.insert("user_id".into(), v.as_str().into());
    }
    if let Some(v) = props.cluster_id() {
        out.insert("cluster_id".into(), v.as_str().into());
    }
    if let Some(headers) = props.headers() {
        out.insert(
            "headers".into(),
            serde_json::to_value(headers).unwrap_or(serde_json::Value::Null),
        );
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_headers_read_as_their_plain_values() {
        let mut table = FieldTable::default();
        table.insert(
            "ordering-key".into(),
            AMQPValue::LongString("chat-room-5".into()),
        );
        table.insert("attempt".into(), AMQPValue::LongInt(3));
        let mut nested = FieldTable::default();
        nested.insert("ok".into(), AMQPValue::Boolean(true));
        table.insert("nested".into(), AMQPValue::FieldTable(nested));
        let props = lapin::BasicProperties::default()
            .with_message_id("m-1".into())
            .with_headers(table);
        let stored = properties_json(&props);
        assert_eq!(
            readable_properties(&stored),
            json!({
                "message_id": "m-1",
                "headers": {"ordering-key": "chat-room-5", "attempt": 3, "nested": {"ok": true}}
            })
        );
        // What is stored stays typed, so that a replay sends the same types.
        assert!(stored["headers"]["ordering-key"]
            .get("LongString")
            .is_some());
    }
}
