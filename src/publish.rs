//! Producing intents: typed intents, a confirmed and reconnecting
//! [`Publisher`], and the JSONL batch behind `pusher-relay publish --file`.
//!
//! Every intent is checked with the worker's own decoder before it is
//! sent, so what the broker confirms is what the worker will deliver.
//!
//! ```no_run
//! use pusher_relay::config::Config;
//! use pusher_relay::publish::{Id, NewIntent, Publisher};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = Config::from_env()?;
//! let publisher = Publisher::connect(&cfg).await?;
//! let id = publisher
//!     .publish(&NewIntent::ChatMessage {
//!         room_id: Id::Int(42),
//!         user_id: Id::Int(7),
//!         user_name: "Ada".into(),
//!         message: "hello".into(),
//!     })
//!     .await?;
//! println!("confirmed {id}");
//! publisher.close().await;
//! # Ok(())
//! # }
//! ```

use std::io::BufRead;

use lapin::options::BasicPublishOptions;
use lapin::publisher_confirm::PublisherConfirm;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use serde::Serialize;

use crate::amqp::AmqpError;
use crate::config::Config;
use crate::intent::{self, DecodeContext, Intent, IntentError};

/// An identifier as the wire contract allows: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Id {
    Int(i64),
    Str(String),
}

/// An intent to publish, one variant per wire-contract type (docs/producers.md,
/// "Wire contract v1").
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum NewIntent {
    #[serde(rename = "notification")]
    Notification {
        user_id: Id,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        level: Option<String>,
    },
    #[serde(rename = "announcement")]
    Announcement {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        priority: Option<String>,
    },
    #[serde(rename = "chat.message")]
    ChatMessage {
        room_id: Id,
        user_id: Id,
        user_name: String,
        message: String,
    },
    #[serde(rename = "chat.joined")]
    ChatJoined {
        room_id: Id,
        user_id: Id,
        user_name: String,
    },
    #[serde(rename = "chat.left")]
    ChatLeft {
        room_id: Id,
        user_id: Id,
        user_name: String,
    },
    #[serde(rename = "order.status")]
    OrderStatus {
        order_id: Id,
        status: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        customer_id: Option<Id>,
    },
    #[serde(rename = "dashboard.metrics")]
    DashboardMetrics {
        metrics: serde_json::Map<String, serde_json::Value>,
    },
    #[serde(rename = "inventory.stock")]
    InventoryStock {
        product_id: Id,
        quantity: serde_json::Number,
    },
    #[serde(rename = "presence.activity")]
    PresenceActivity { user_id: Id, activity: String },
    /// Any event to 1..=100 channels.
    #[serde(rename = "event")]
    Event {
        channels: Vec<String>,
        event: String,
        data: serde_json::Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        socket_id: Option<String>,
    },
}

/// Why an intent was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the intent does not follow wire contract v1: {0}")]
    Invalid(IntentError),
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    #[error("RabbitMQ did not confirm the intent on exchange {exchange:?} (routing key {routing_key:?}): {detail}")]
    NotConfirmed {
        exchange: String,
        routing_key: String,
        detail: String,
    },
}

/// A publisher of intents with confirms; reconnects once and resends when
/// the connection was lost (the intent id stays the same, so the worker
/// drops the copy if both arrive).
pub struct Publisher {
    cfg: Config,
    link: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

use crate::clock::now_ms;

impl Publisher {
    /// Connects to `AMQP_URL` and turns on publisher confirms.
    pub async fn connect(cfg: &Config) -> Result<Publisher, PublishError> {
        let publisher = Publisher {
            cfg: cfg.clone(),
            link: tokio::sync::Mutex::new(None),
        };
        publisher.channel().await?;
        Ok(publisher)
    }

    async fn channel(&self) -> Result<Channel, AmqpError> {
        let mut link = self.link.lock().await;
        if let Some((conn, channel)) = link.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let (conn, channel) =
            crate::amqp::connect_confirmed(&self.cfg.amqp, "pusher-relay publisher").await?;
        *link = Some((conn, channel.clone()));
        Ok(channel)
    }

    /// Checks a JSON body exactly as the worker will.
    pub fn check(&self, body: &[u8]) -> Result<Intent, IntentError> {
        let now = now_ms();
        let ctx = DecodeContext {
            message_id: None,
            enqueued_at_ms: Some(now),
            now_ms: now,
            max_event_bytes: self.cfg.pusher.max_event_bytes,
            templates: &self.cfg.relay.templates,
        };
        intent::decode(body, &ctx)
    }

    /// Publishes a typed intent; returns its id once confirmed.
    pub async fn publish(&self, intent: &NewIntent) -> Result<String, PublishError> {
        let body = serde_json::to_vec(intent).expect("intents always serialise");
        self.publish_json(&body).await
    }

    /// Publishes a JSON intent body; returns its id once confirmed.
    pub async fn publish_json(&self, body: &[u8]) -> Result<String, PublishError> {
        let intent = self.check(body).map_err(PublishError::Invalid)?;
        let checked = Checked::new(intent, body.to_vec());
        self.publish_window(std::slice::from_ref(&checked)).await?;
        Ok(checked.id)
    }

    async fn connected(&self) -> bool {
        match self.link.lock().await.as_ref() {
            Some((conn, channel)) => conn.status().connected() && channel.status().connected(),
            None => false,
        }
    }

    /// Sends one intent and returns its confirm, not yet awaited: sends on
    /// one channel keep their order, so a caller may send many and await
    /// their confirms together.
    async fn start(
        &self,
        routing_key: &str,
        id: &str,
        ordering_key: &str,
        body: &[u8],
    ) -> Result<PublisherConfirm, PublishError> {
        let channel = self.channel().await?;
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(id.into())
            .with_timestamp((now_ms() / 1000) as u64)
            .with_headers(ordering_headers(ordering_key));
        // `mandatory`: an intent no queue receives is an error, not a drop.
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        channel
            .basic_publish(&self.cfg.amqp.exchange, routing_key, options, body, props)
            .await
            .map_err(|e| self.not_confirmed(routing_key, e.to_string()))
    }

    /// Waits for what RabbitMQ says of one intent [`Publisher::start`] sent.
    async fn settle(
        &self,
        routing_key: &str,
        confirm: PublisherConfirm,
    ) -> Result<(), PublishError> {
        let confirm = confirm
            .await
            .map_err(|e| self.not_confirmed(routing_key, e.to_string()))?;
        if confirm.is_nack() {
            return Err(self.not_confirmed(routing_key, "the broker refused it (nack)".into()));
        }
        if confirm.take_message().is_some() {
            return Err(self.not_confirmed(
                routing_key,
                "no queue is bound for it (returned as unroutable); has the worker declared its queue?".into(),
            ));
        }
        Ok(())
    }

    fn not_confirmed(&self, routing_key: &str, detail: String) -> PublishError {
        PublishError::NotConfirmed {
            exchange: self.cfg.amqp.exchange.clone(),
            routing_key: routing_key.to_string(),
            detail,
        }
    }

    /// Publishes checked intents in their order and waits for all their
    /// confirms; sends them all again once if the connection was lost (their
    /// ids stay the same, so the worker drops the copies it already has).
    async fn publish_window(&self, window: &[Checked]) -> Result<(), PublishError> {
        match self.send_window(window).await {
            Err(PublishError::Amqp(_)) | Err(PublishError::NotConfirmed { .. })
                if !self.connected().await =>
            {
                tracing::warn!(
                    intents = window.len(),
                    "connection to RabbitMQ lost while publishing; reconnecting and sending the unconfirmed intents again"
                );
                self.send_window(window).await
            }
            other => other,
        }
    }

    async fn send_window(&self, window: &[Checked]) -> Result<(), PublishError> {
        let mut confirms = Vec::with_capacity(window.len());
        for c in window {
            confirms.push(self.start(&c.kind, &c.id, &c.key, &c.body).await?);
        }
        for (c, confirm) in window.iter().zip(confirms) {
            self.settle(&c.kind, confirm).await?;
        }
        Ok(())
    }

    /// Closes the connection cleanly.
    pub async fn close(self) {
        if let Some((conn, _)) = self.link.lock().await.take() {
            let _ = conn.close(200, "done").await;
        }
    }
}

/// The headers every producer sets: the ordering key, which shards route on.
pub fn ordering_headers(key: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        crate::amqp::ORDERING_KEY_HEADER.into(),
        AMQPValue::LongString(key.into()),
    );
    headers
}

/// One line of a JSONL file that was not published.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

/// What `publish --file` did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub published: usize,
    pub rejected: Vec<Rejected>,
}

/// How many intents `publish_lines` sends before waiting for their
/// confirms, which then come back together: waiting for each in turn held a
/// file to one round trip per intent (see docs/benchmarks.md, "Other
/// measured figures", for both rates).
const CONFIRM_WINDOW: usize = 256;

/// An intent that passed the worker's checks, ready to send.
struct Checked {
    kind: String,
    id: String,
    key: String,
    body: Vec<u8>,
}

impl Checked {
    fn new(intent: Intent, body: Vec<u8>) -> Checked {
        Checked {
            key: intent.ordering_key().to_string(),
            kind: intent.kind,
            id: intent.id,
            body,
        }
    }
}

/// Publishes every non-empty line of `input` as one intent, in order, with
/// up to [`CONFIRM_WINDOW`] awaiting their confirms at once. A line that is
/// not a valid intent is reported with its number and reason and skipped;
/// a broker failure stops the run (what was confirmed stays published).
/// `progress` is called with the number of lines done so far.
pub async fn publish_lines(
    publisher: &Publisher,
    input: impl BufRead,
    mut progress: impl FnMut(usize),
) -> Result<Summary, PublishError> {
    let mut summary = Summary::default();
    let mut window: Vec<Checked> = Vec::with_capacity(CONFIRM_WINDOW);
    let mut line_no = 0;
    for (n, line) in input.lines().enumerate() {
        line_no = n + 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                summary.rejected.push(Rejected {
                    line: line_no,
                    reason: format!("cannot read the line: {e}"),
                });
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match publisher.check(line.as_bytes()) {
            Ok(intent) => window.push(Checked::new(intent, line.into_bytes())),
            Err(e) => summary.rejected.push(Rejected {
                line: line_no,
                reason: e.to_string(),
            }),
        }
        if window.len() == CONFIRM_WINDOW {
            publisher.publish_window(&window).await?;
            summary.published += window.len();
            window.clear();
            progress(line_no);
        }
    }
    publisher.publish_window(&window).await?;
    summary.published += window.len();
    progress(line_no);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_intents_serialise_to_the_wire_contract() {
        let intent = NewIntent::OrderStatus {
            order_id: Id::Str("A-1".into()),
            status: "shipped".into(),
            customer_id: Some(Id::Int(9)),
        };
        assert_eq!(
            serde_json::to_value(&intent).expect("json"),
            serde_json::json!({"type": "order.status", "order_id": "A-1", "status": "shipped", "customer_id": 9})
        );
        let note = NewIntent::Notification {
            user_id: Id::Int(1),
            message: "hi".into(),
            level: None,
        };
        assert_eq!(
            serde_json::to_value(&note).expect("json"),
            serde_json::json!({"type": "notification", "user_id": 1, "message": "hi"})
        );
    }
}
