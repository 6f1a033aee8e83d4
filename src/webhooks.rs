//! Pusher webhook ingress: `POST /webhooks/pusher` verifies the request and
//! republishes each event to the webhook exchange, so handling webhooks is
//! no longer a synchronous side effect of an HTTP request.
//!
//! Pusher retries a non-2xx webhook for five minutes, so the answer is 200
//! only once RabbitMQ has confirmed every event, and 503 while the broker is
//! unavailable: Pusher then keeps the webhook and tries again.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;

use crate::amqp;
use crate::config::{AmqpConfig, Secret};
use crate::metrics;
use crate::pusher::webhook::{self, WebhookToken};

/// Largest webhook body accepted; Pusher's batched webhooks are far smaller.
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// How long one publish may wait for its confirm before the webhook is
/// answered 503 (Pusher wants an answer within a few seconds).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(3);

/// Verifies webhooks and publishes their events.
pub struct WebhookIngress {
    key: String,
    secret: Secret,
    amqp: AmqpConfig,
    /// One confirmed channel, opened on first use and replaced after a failure.
    link: Mutex<Option<(Connection, Channel)>>,
}

impl WebhookIngress {
    pub fn new(key: String, secret: Secret, amqp: AmqpConfig) -> Arc<WebhookIngress> {
        Arc::new(WebhookIngress {
            key,
            secret,
            amqp,
            link: Mutex::new(None),
        })
    }

    async fn channel(&self) -> Result<Channel, String> {
        let mut link = self.link.lock().await;
        if let Some((conn, channel)) = link.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let conn = amqp::connect(&self.amqp, "pusher-relay webhooks")
            .await
            .map_err(|e| e.to_string())?;
        let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        *link = Some((conn, channel.clone()));
        Ok(channel)
    }

    /// Publishes every event, then waits for all confirms.
    async fn publish(
        &self,
        time_ms: Option<i64>,
        events: &[serde_json::Value],
    ) -> Result<(), String> {
        let channel = self.channel().await?;
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let name = event
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("unknown")
                .to_string();
            let mut body = event.clone();
            if let (Some(obj), Some(t)) = (body.as_object_mut(), time_ms) {
                obj.insert("time_ms".into(), t.into());
            }
            let mut headers = FieldTable::default();
            if let Some(t) = time_ms {
                headers.insert("x-pusher-time-ms".into(), AMQPValue::LongLongInt(t));
            }
            let mut props = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_headers(headers);
            if let Some(t) = time_ms {
                props = props.with_timestamp((t / 1000).max(0) as u64);
            }
            let confirm = channel
                .basic_publish(
                    &self.amqp.webhook_exchange,
                    &name,
                    BasicPublishOptions::default(),
                    body.to_string().as_bytes(),
                    props,
                )
                .await
                .map_err(|e| e.to_string())?;
            confirms.push((name, confirm));
        }
        for (name, confirm) in confirms {
            let answer = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
                .await
                .map_err(|_| "RabbitMQ did not confirm in time".to_string())?
                .map_err(|e| e.to_string())?;
            if answer.is_nack() {
                return Err(format!("RabbitMQ refused the {name} event"));
            }
            metrics::webhook_event_published(&name);
        }
        Ok(())
    }

    async fn forget_link(&self) {
        *self.link.lock().await = None;
    }
}

/// The `POST /webhooks/pusher` handler.
pub async fn receive(
    State(ingress): State<Arc<WebhookIngress>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    metrics::webhook_received();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let tokens = [WebhookToken {
        key: &ingress.key,
        secret: ingress.secret.expose(),
    }];
    let hook = match webhook::verify(
        &tokens,
        header("x-pusher-key"),
        header("x-pusher-signature"),
        &body,
        None,
    ) {
        Ok(hook) => hook,
        Err(e) => {
            metrics::webhook_rejected(e.reason());
            let status = match e {
                webhook::WebhookError::BadJson(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            };
            tracing::warn!(reason = e.reason(), error = %e, "webhook refused");
            return (status, format!("{e}\n"));
        }
    };
    // Re-read the events as raw JSON so fields this version does not model
    // reach consumers unchanged.
    let raw: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let events: Vec<serde_json::Value> = raw
        .get("events")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    match ingress.publish(hook.time_ms, &events).await {
        Ok(()) => (
            StatusCode::OK,
            format!("{{\"published\":{}}}\n", events.len()),
        ),
        Err(e) => {
            ingress.forget_link().await;
            metrics::webhook_rejected("broker_unavailable");
            tracing::error!(error = %e, "cannot publish webhook events; answering 503 so that Pusher retries");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "broker unavailable, retry later\n".into(),
            )
        }
    }
}

/// `pusher-relay webhooks tail`: binds a temporary queue (exclusive,
/// deleted when this process goes) to the webhook exchange and hands each
/// arriving event to `on_event` with its routing key.
pub async fn tail(
    amqp_cfg: &AmqpConfig,
    mut on_event: impl FnMut(&str, serde_json::Value),
) -> Result<(), amqp::AmqpError> {
    use futures_util::StreamExt;
    use lapin::options::{
        BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };

    let conn = amqp::connect(amqp_cfg, "pusher-relay webhooks tail").await?;
    let channel = amqp::open_channel(&conn).await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            &amqp_cfg.webhook_exchange,
            lapin::ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(|source| amqp::AmqpError::Declare {
            what: format!("topic exchange {:?}", amqp_cfg.webhook_exchange),
            source,
        })?;
    let temp = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("", temp, FieldTable::default())
        .await
        .map_err(|source| amqp::AmqpError::Declare {
            what: "a temporary queue".into(),
            source,
        })?;
    channel
        .queue_bind(
            queue.name().as_str(),
            &amqp_cfg.webhook_exchange,
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| amqp::AmqpError::Declare {
            what: "the temporary queue's binding".into(),
            source,
        })?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = channel
        .basic_consume(
            queue.name().as_str(),
            "webhooks-tail",
            no_ack,
            FieldTable::default(),
        )
        .await
        .map_err(|source| amqp::AmqpError::Channel {
            doing: "consuming webhook events",
            source,
        })?;
    tracing::info!(exchange = %amqp_cfg.webhook_exchange, "waiting for webhook events");
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.map_err(|source| amqp::AmqpError::Channel {
            doing: "consuming webhook events",
            source,
        })?;
        let event = serde_json::from_slice(&delivery.data).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&delivery.data).into_owned())
        });
        on_event(delivery.routing_key.as_str(), event);
    }
    Ok(())
}
