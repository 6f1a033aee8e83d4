//! Publishing intents the way the wire contract asks: JSON body, the type as
//! routing key, persistent, `message_id` and `timestamp` set, and every
//! publish confirmed by the broker before it counts.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::AmqpError;
use crate::config::{redact_url, AmqpConfig};

/// Why a publish did not count.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    #[error("RabbitMQ did not confirm the intent on exchange {exchange:?} (routing key {routing_key:?}): {detail}")]
    NotConfirmed {
        exchange: String,
        routing_key: String,
        detail: String,
    },
}

/// A confirmed publisher of intents to the intent exchange.
pub struct Publisher {
    exchange: String,
    channel: Channel,
    conn: Connection,
}

impl Publisher {
    /// Connects and turns on publisher confirms.
    pub async fn connect(cfg: &AmqpConfig) -> Result<Publisher, PublishError> {
        // lapin's own executor rather than tokio's: a short-lived publisher
        // (the CLI) would otherwise see lapin's I/O thread fail loudly while
        // the tokio runtime shuts down after the last confirm.
        let props =
            ConnectionProperties::default().with_connection_name("pusher-relay publisher".into());
        let conn = Connection::connect(cfg.url.expose(), props)
            .await
            .map_err(|source| AmqpError::Connect {
                url: redact_url(cfg.url.expose()),
                source,
            })?;
        let channel = conn
            .create_channel()
            .await
            .map_err(|source| AmqpError::Channel {
                doing: "opening a channel",
                source,
            })?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|source| AmqpError::Channel {
                doing: "enabling publisher confirms",
                source,
            })?;
        Ok(Publisher {
            exchange: cfg.exchange.clone(),
            channel,
            conn,
        })
    }

    /// Publishes one intent body (already valid JSON) and waits for the
    /// broker's confirm. `mandatory` makes an unroutable intent (no queue
    /// bound) an error instead of a silent drop.
    pub async fn publish(
        &self,
        routing_key: &str,
        id: &str,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let not_confirmed = |detail: String| PublishError::NotConfirmed {
            exchange: self.exchange.clone(),
            routing_key: routing_key.to_string(),
            detail,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(id.into())
            .with_timestamp(now);
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = self
            .channel
            .basic_publish(&self.exchange, routing_key, options, body, props)
            .await
            .map_err(|e| not_confirmed(e.to_string()))?
            .await
            .map_err(|e| not_confirmed(e.to_string()))?;
        if confirm.is_nack() {
            return Err(not_confirmed("the broker refused it (nack)".into()));
        }
        if confirm.take_message().is_some() {
            return Err(not_confirmed("no queue is bound for it (returned as unroutable); is the worker's queue declared?".into()));
        }
        Ok(())
    }

    /// Closes the channel and connection cleanly, so the broker logs no
    /// abrupt disconnect.
    pub async fn close(self) {
        let _ = self.conn.close(200, "done").await;
    }
}
