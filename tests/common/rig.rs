//! The setup most worker tests start from: a fake Pusher, the test's own
//! exchange and queue, and a dead-letter store, with the worker
//! configuration that ties them together. Dropping them stops the fake and
//! removes the names and the store.

use pusher_relay::config::Config;

use super::{pusher, Broker, Db, FakePusher};

/// A fake Pusher and the server it answers on, names from `prefix`, and
/// `db`: `let (fake, server, broker, db) = rig("name", Db::sqlite()).await`.
pub async fn rig(prefix: &str, db: Db) -> (FakePusher, wiremock::MockServer, Broker, Db) {
    let (fake, server) = FakePusher::start().await;
    (fake, server, Broker::new(prefix).await, db)
}

/// The environment of a worker for a test: its own queue names, store,
/// Pusher at `pusher_uri` and an ephemeral HTTP port, then `extra`.
pub fn relay_vars(
    pusher_uri: &str,
    broker: &Broker,
    db: &Db,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut vars = pusher::pusher_vars(pusher_uri);
    let own = [
        ("AMQP_URL", broker.url().to_string()),
        ("AMQP_EXCHANGE", broker.exchange.clone()),
        ("AMQP_QUEUE", broker.queue.clone()),
        ("AMQP_WEBHOOK_EXCHANGE", broker.webhooks.clone()),
        ("DATABASE_URL", db.url()),
        ("HTTP_ADDR", "127.0.0.1:0".into()),
        ("RELAY_LINGER_MS", "5".into()),
    ];
    vars.extend(own.into_iter().map(|(k, v)| (k.to_string(), v)));
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    vars
}

/// Worker configuration for a test, from [`relay_vars`].
pub fn relay_config(pusher_uri: &str, broker: &Broker, db: &Db, extra: &[(&str, &str)]) -> Config {
    pusher::config_from(relay_vars(pusher_uri, broker, db, extra))
}
