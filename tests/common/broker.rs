//! RabbitMQ for the integration tests: a uniquely named exchange and queue
//! per test, deleted when the [`Broker`] is dropped, and the broker-side
//! views and actions a test needs (what is left in the queue, acked or not;
//! closing a client's connection as a restart would).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{teardown, unique};

/// The broker the tests run against: the machine's RabbitMQ 3.10 unless
/// `TEST_AMQP_URL` names another (`scripts/test` runs the broker-facing
/// tests again with the RabbitMQ 4.0 node of `scripts/rabbitmq4`).
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// `host:port` of [`amqp_url`], for the tests' TCP proxies.
pub fn amqp_addr() -> String {
    let url = url::Url::parse(&amqp_url()).expect("TEST_AMQP_URL is a URL");
    format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5672)
    )
}

/// Whether the tests run against RabbitMQ 4 (`TEST_AMQP_URL` on the node
/// of `scripts/rabbitmq4`): what only one version does is checked there.
pub fn on_rabbitmq4() -> bool {
    amqp_addr().ends_with(":5692")
}

/// The topology names one test owns, and a channel to publish with.
pub struct Broker {
    pub exchange: String,
    pub queue: String,
    pub webhooks: String,
    pub channel: lapin::Channel,
    pub conn: lapin::Connection,
    names: Names,
}

/// What a test declared, deleted on drop (see [`teardown`]).
struct Names {
    url: String,
    queues: Mutex<Vec<String>>,
    exchanges: Mutex<Vec<String>>,
}

impl Drop for Names {
    fn drop(&mut self) {
        let take = |names: &mut Mutex<Vec<String>>| {
            std::mem::take(names.get_mut().unwrap_or_else(PoisonError::into_inner))
        };
        let (queues, exchanges) = (take(&mut self.queues), take(&mut self.exchanges));
        let url = self.url.clone();
        teardown::run(move || async move {
            let Ok(conn) =
                lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
            else {
                return;
            };
            if let Ok(channel) = conn.create_channel().await {
                for queue in &queues {
                    let _ = channel.queue_delete(queue, Default::default()).await;
                }
                for exchange in &exchanges {
                    let _ = channel.exchange_delete(exchange, Default::default()).await;
                }
            }
            let _ = conn.close(200, "test teardown").await;
        });
    }
}

impl Broker {
    pub async fn new(prefix: &str) -> Broker {
        Broker::at(&amqp_url(), prefix).await
    }

    /// Names of the test's own on the broker at `url` (a node of the
    /// cluster), removed from there when dropped.
    pub async fn at(url: &str, prefix: &str) -> Broker {
        let id = unique(prefix);
        let (conn, channel) = Self::connect(url).await;
        let (exchange, queue, webhooks) = (
            format!("{id}.intents"),
            format!("{id}.intents"),
            format!("{id}.webhooks"),
        );
        Broker {
            names: Names {
                url: url.to_string(),
                queues: Mutex::new(vec![queue.clone(), format!("{queue}.delivery-limit")]),
                exchanges: Mutex::new(vec![exchange.clone(), webhooks.clone()]),
            },
            exchange,
            queue,
            webhooks,
            channel,
            conn,
        }
    }

    /// The same names on a new connection, e.g. after a broker restart.
    pub async fn reconnect(self) -> Broker {
        let (conn, channel) = Self::connect(&self.names.url).await;
        Broker {
            channel,
            conn,
            ..self
        }
    }

    async fn connect(url: &str) -> (lapin::Connection, lapin::Channel) {
        let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        (conn, channel)
    }

    /// Deletes these too when the broker is dropped: what the test declared
    /// besides the worker's names.
    pub fn delete_on_drop(&self, queues: &[&str], exchanges: &[&str]) {
        let add = |names: &Mutex<Vec<String>>, more: &[&str]| {
            names
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(more.iter().map(|n| n.to_string()));
        };
        add(&self.names.queues, queues);
        add(&self.names.exchanges, exchanges);
    }

    /// The worker's own declarations, so a test can publish before it starts.
    pub async fn declare(&self) {
        let cfg = self.amqp_config();
        pusher_relay::amqp::declare_topology(&self.conn, &cfg)
            .await
            .expect("topology");
    }

    /// The broker these names live on.
    pub fn url(&self) -> &str {
        &self.names.url
    }

    pub fn amqp_config(&self) -> pusher_relay::config::AmqpConfig {
        pusher_relay::config::AmqpConfig::new(
            &self.names.url,
            &self.exchange,
            &self.queue,
            &self.webhooks,
        )
    }

    /// Publishes intents as an app would (wire contract v1), confirmed.
    pub async fn publish(&self, intents: &[serde_json::Value]) {
        let mut confirms = Vec::with_capacity(intents.len());
        for intent in intents {
            confirms.push(
                self.publish_raw(
                    intent["type"].as_str().unwrap_or("event"),
                    intent.to_string().as_bytes(),
                )
                .await,
            );
        }
        for c in confirms {
            assert!(
                c.await.expect("confirm").is_ack(),
                "broker refused a publish"
            );
        }
    }

    pub async fn publish_raw(
        &self,
        routing_key: &str,
        body: &[u8],
    ) -> lapin::publisher_confirm::PublisherConfirm {
        self.publish_with_headers(routing_key, body, None).await
    }

    /// [`Broker::publish_raw`] with a header table of the caller's.
    pub async fn publish_with_headers(
        &self,
        routing_key: &str,
        body: &[u8],
        headers: Option<lapin::types::FieldTable>,
    ) -> lapin::publisher_confirm::PublisherConfirm {
        let mut props = lapin::BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_timestamp(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default(),
            );
        if let Some(headers) = headers {
            props = props.with_headers(headers);
        }
        self.channel
            .basic_publish(&self.exchange, routing_key, Default::default(), body, props)
            .await
            .expect("publish")
    }

    /// Messages waiting in the queue (ready, not unacked).
    pub async fn ready(&self) -> u32 {
        let q = self
            .channel
            .queue_declare(
                &self.queue,
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("queue exists");
        q.message_count()
    }

    /// Ready messages once the broker has had time to requeue what a
    /// closed consumer left unacked, so that "nothing came back" is a real
    /// observation and not a race: the count unchanged for a second. A
    /// quorum queue applies a closed channel's last acks and returns through
    /// its log, and on a loaded machine a count read 500 ms after the close
    /// still held acked messages (a graceful-shutdown test failed 3 times
    /// in 8 that way, with the worker's acks all sent before the close).
    pub async fn ready_settled(&self) -> u32 {
        let step = Duration::from_millis(250);
        let deadline = Instant::now() + Duration::from_secs(10);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut last = self.ready().await;
        let mut unchanged = 0;
        while unchanged < 4 && Instant::now() < deadline {
            tokio::time::sleep(step).await;
            let now = self.ready().await;
            unchanged = if now == last { unchanged + 1 } else { 0 };
            last = now;
        }
        last
    }

    /// Waits until the queue holds nothing, ready or unacked: every
    /// delivery the worker got was acked, and the worker acks an intent only
    /// once it is sent, dropped as a duplicate or dead-lettered. So after
    /// this, nothing more reaches Pusher for what was published before it,
    /// which makes "exactly once" an observation rather than a guess at how
    /// long a straggler takes. Panics with the counts after `timeout`.
    pub async fn wait_acked(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = queue_counts(&self.queue).await;
            if counts == Some((0, 0)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not drained and acked within {timeout:?}: (ready, unacked) = {counts:?}",
                self.queue
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `rabbitmqctl` against the tests' broker: the machine's node, or the
/// RabbitMQ 4 node through `scripts/rabbitmq4 ctl`.
pub fn rabbitmqctl() -> std::process::Command {
    if on_rabbitmq4() {
        let mut ctl =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rabbitmq4"));
        ctl.arg("ctl");
        ctl
    } else {
        std::process::Command::new("rabbitmqctl")
    }
}

/// `(ready, unacked)` of `queue` on the tests' node, from rabbitmqctl: the
/// AMQP passive declare counts only ready messages.
async fn queue_counts(queue: &str) -> Option<(u64, u64)> {
    let queue = queue.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = rabbitmqctl()
            .args([
                "list_queues",
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "-q",
                "--no-table-headers",
            ])
            .output()
            .expect("rabbitmqctl runs");
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut cols = l.split('\t');
            if cols.next()? != queue {
                return None;
            }
            Some((
                cols.next()?.trim().parse().ok()?,
                cols.next()?.trim().parse().ok()?,
            ))
        })
    })
    .await
    .expect("rabbitmqctl task")
}

/// Closes the worker's broker connection from the broker's side, as a
/// broker restart or a network cut does. The worker names its connection
/// `pusher-relay {queue}`.
pub fn close_broker_connection(queue: &str) -> bool {
    close_connections_mentioning(&format!("\"pusher-relay {queue}\"")) > 0
}

/// Closes, from the broker's side, every connection whose client properties
/// contain `needle` (a connection name, an app id in it); returns how many.
pub fn close_connections_mentioning(needle: &str) -> usize {
    // The table format prints pids in the form close_connection takes
    // (`<rabbit@host.1.2.0>`); the JSON formatter does not.
    let out = rabbitmqctl()
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "-q",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut closed = 0;
    for line in text.lines().filter(|l| l.contains(needle)) {
        let pid = line.split('\t').next().unwrap_or_default();
        let status = rabbitmqctl()
            .args(["close_connection", pid, "test: simulated broker restart"])
            .status()
            .expect("rabbitmqctl");
        closed += usize::from(status.success());
    }
    closed
}
