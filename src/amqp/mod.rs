//! RabbitMQ: connecting on tokio, the worker's topology, and acking in runs.

pub mod acker;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::config::{redact_url, AmqpConfig};

/// Why the broker could not be used; the URL in messages has no password.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("cannot connect to RabbitMQ at {url}: {source}")]
    Connect { url: String, source: lapin::Error },
    #[error("cannot declare {what} on RabbitMQ: {source}")]
    Declare { what: String, source: lapin::Error },
    #[error("RabbitMQ channel failed while {doing}: {source}")]
    Channel {
        doing: &'static str,
        source: lapin::Error,
    },
}

/// Connects with lapin driven by the current tokio runtime (no extra
/// executor threads).
pub async fn connect(cfg: &AmqpConfig, name: &str) -> Result<Connection, AmqpError> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name(name.into());
    Connection::connect(cfg.url.expose(), props)
        .await
        .map_err(|source| AmqpError::Connect {
            url: redact_url(cfg.url.expose()),
            source,
        })
}

/// A connection and a channel with publisher confirms, for short-lived
/// publishers (the `publish` and `dlq replay` commands). It runs on lapin's
/// own executor rather than tokio's: with tokio's, lapin's I/O thread fails
/// loudly while a CLI's runtime shuts down right after the last confirm.
pub async fn connect_confirmed(
    cfg: &AmqpConfig,
    name: &str,
) -> Result<(Connection, Channel), AmqpError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let conn = Connection::connect(cfg.url.expose(), props)
        .await
        .map_err(|source| AmqpError::Connect {
            url: redact_url(cfg.url.expose()),
            source,
        })?;
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

/// Declares the intent exchange (topic), the quorum intent queue bound with
/// `#`, and the webhook exchange. Idempotent: the same declarations on every
/// start; a queue that exists with other arguments fails loudly here rather
/// than being silently used.
pub async fn declare_topology(channel: &Channel, cfg: &AmqpConfig) -> Result<(), AmqpError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for exchange in [&cfg.exchange, &cfg.webhook_exchange] {
        channel
            .exchange_declare(
                exchange,
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|source| AmqpError::Declare {
                what: format!("topic exchange {exchange:?}"),
                source,
            })?;
    }
    let mut args = FieldTable::default();
    // Quorum queues replicate and survive a broker restart with their
    // messages; classic queues would lose the backlog on a node failure.
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            &cfg.queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .map_err(|source| AmqpError::Declare {
            what: format!("quorum queue {:?}", cfg.queue),
            source,
        })?;
    channel
        .queue_bind(
            &cfg.queue,
            &cfg.exchange,
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| AmqpError::Declare {
            what: format!("binding of {:?} to {:?}", cfg.queue, cfg.exchange),
            source,
        })?;
    Ok(())
}

/// The message's properties and headers as JSON, kept with a dead letter so
/// replay can restore them. AMQP values keep their type tags.
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
    if let Some(headers) = props.headers() {
        out.insert(
            "headers".into(),
            serde_json::to_value(headers).unwrap_or(serde_json::Value::Null),
        );
    }
    serde_json::Value::Object(out)
}
