//! The relay: RabbitMQ intents in, Pusher events out, nothing lost.
//!
//! The parts, each replaceable alone (as Vector's sinks are built):
//! - [`lanes`]: per-channel queues and the batcher that packs them;
//! - [`dispatch`]: delivers one request's work, splitting rejected batches;
//! - [`retry`]: what a failed attempt means, and the retries, backoff and
//!   budget that follow;
//! - [`circuit`]: pauses everything while Pusher is down or refusing us;
//! - [`concurrency`]: how many requests may be in flight, found from
//!   Pusher's round trips and pushback;
//! - [`dead_letter_writer`]: stores dead letters before their deliveries are
//!   acked;
//! - [`parking`]: which hot channels are parked out of the queue's window,
//!   and [`parked_log`], which writes and reads their parked log;
//! - [`dedup`]: remembers delivered intent ids to drop redeliveries, in
//!   memory and in the store's delivered log;
//! - [`session`]: the event loop of one broker connection, tying them up;
//!   `phase` is where a session is in its life, and every change of it;
//! - [`rebalance`]: with shards, hands shards to other workers until each
//!   holds its share;
//! - `outage`: while the circuit is open, a queue's consumer holds nothing
//!   and waits with a bare connection;
//! - `limit`: drains what RabbitMQ dead-lettered at the delivery limit into
//!   the dead-letter store.
//!
//! - [`health`] and [`status`]: what the relay reports of itself, read by
//!   `/readyz` and the console, which never hold the parts themselves.
//!
//! [`Relay::run`] runs a session per consumed queue, reconnecting with
//! backoff, until shutdown. It knows nothing of HTTP, the admin API or the
//! console: [`crate::app`] wires those around it.

pub(crate) mod circuit;
pub(crate) mod concurrency;
pub(crate) mod dead_letter_writer;
pub(crate) mod dedup;
pub(crate) mod dispatch;
pub mod health;
pub(crate) mod lanes;
mod limit;
mod outage;
pub(crate) mod parked_log;
pub(crate) mod parking;
mod phase;
pub(crate) mod rebalance;
pub(crate) mod retry;
pub mod session;
pub(crate) mod status;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::Config;
use crate::deadletter::{Store, StoreError};
use crate::metrics;
use crate::pusher::{Client, PusherError};
use crate::shutdown::Shutdown;
use health::Health;
pub use status::RelayStatus;

/// Why the worker could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot build the Pusher client: {0}")]
    Pusher(#[from] PusherError),
    #[error("dead-letter store (DATABASE_URL): {0}")]
    Store(#[from] StoreError),
    #[error("the worker task failed: {0}")]
    Join(String),
    #[error("RabbitMQ: {0}")]
    Broker(#[from] crate::amqp::AmqpError),
}

/// After a handoff, how long before re-registering on the queue.
const HANDOFF_PAUSE: Duration = Duration::from_secs(1);

/// How often the store is pinged for `/readyz` when nothing is written.
const STORE_PING_INTERVAL: Duration = Duration::from_secs(5);

/// The relay before it runs: the parts that outlive any one broker session
/// and that the status view reads.
pub struct Relay {
    client: Client,
    health: Arc<Health>,
    limiter: Arc<concurrency::Limiter>,
    circuit: Arc<circuit::Circuit>,
    parked: Arc<parking::Board>,
}

impl Relay {
    /// Builds the Pusher client and the shared parts; connects nothing.
    pub fn new(cfg: &Config) -> Result<Relay, RelayError> {
        let client = Client::new(&cfg.pusher)?;
        Ok(Relay {
            health: Arc::new(Health::default()),
            limiter: concurrency::Limiter::new(cfg.relay.concurrency, cfg.relay.max_in_flight),
            circuit: circuit::Circuit::new(probe(client.clone())),
            parked: Arc::new(parking::Board::default()),
            client,
        })
    }

    /// Readiness, which the relay sets and `/readyz` reads.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// A read-only view of the relay's state.
    pub fn status(&self) -> RelayStatus {
        RelayStatus::new(
            self.health.clone(),
            self.circuit.clone(),
            self.limiter.clone(),
            self.parked.clone(),
        )
    }

    /// Connects the store (waiting while it is down), fills `store_cell` for
    /// whoever serves dead letters, and consumes until shutdown.
    pub async fn run(
        self,
        cfg: Config,
        store_cell: Arc<OnceLock<Store>>,
        mut shutdown: Shutdown,
    ) -> Result<(), RelayError> {
        let Some(store) = connect_store(&cfg, &self.health, &mut shutdown).await? else {
            return Ok(());
        };
        let _ = store_cell.set(store.clone());
        run_sessions(cfg, self, store, shutdown).await
    }
}

fn reconnect_waits() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(15))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Sleeps unless shutdown comes first; returns whether shutdown came.
async fn sleep_or_shutdown(wait: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = shutdown.recv() => true,
    }
}

async fn connect_store(
    cfg: &Config,
    health: &Health,
    shutdown: &mut Shutdown,
) -> Result<Option<Store>, RelayError> {
    let mut waits = reconnect_waits();
    loop {
        match Store::connect(cfg.database_url.expose()).await {
            Ok(store) => {
                health.set_store(None);
                tracing::info!(backend = store.backend(), "dead-letter store ready");
                return Ok(Some(store));
            }
            Err(e) if e.is_unavailable() => {
                let wait = waits.next().unwrap_or(Duration::from_secs(15));
                tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "dead-letter store unavailable; not consuming until it is");
                health.set_store(Some(e.to_string()));
                if sleep_or_shutdown(wait, shutdown).await {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn run_sessions(
    cfg: Config,
    relay: Relay,
    store: Store,
    shutdown: Shutdown,
) -> Result<(), RelayError> {
    let Relay {
        client,
        health,
        limiter,
        circuit,
        parked,
    } = relay;
    let pinger = tokio::spawn(ping_store(store.clone(), health.clone(), shutdown.clone()));
    let policy = retry::RetryPolicy {
        max_attempts: cfg.relay.max_attempts,
        max_duration: cfg.relay.max_retry_duration,
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(30),
    };
    let names = crate::amqp::consumed_queues(&cfg.amqp);
    // The window is shared out so that a worker holding every shard holds
    // no more than RELAY_PREFETCH intents.
    let prefetch = cfg.relay.prefetch.div_ceil(names.len() as u16);
    let queues: Vec<Arc<session::ConsumedQueue>> = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Arc::new(session::ConsumedQueue::new(i, name, prefetch)))
        .collect();
    health.set_queues(queues.len());
    let sharded = cfg.amqp.shards > 0;
    let held = crate::amqp::Budget::new(cfg.amqp.max_held_bytes);
    let shared = Arc::new(session::Shared {
        dedup: Arc::new(Mutex::new(dedup::DedupCache::new(cfg.relay.dedup_capacity))),
        circuit,
        limiter,
        health: health.clone(),
        store: store.clone(),
        client,
        policy,
        cfg,
        queues: queues.clone(),
        parked,
        held,
    });

    // Before anything is consumed: the ids the last run delivered, so that
    // what it had not acked is not sent again; and a worker started while
    // Pusher is away takes nothing until it answers.
    let capacity = shared.cfg.relay.dedup_capacity;
    dedup::load(&store, &shared.dedup, capacity).await;
    let (stop_log, log_stopped) = tokio::sync::oneshot::channel();
    let log_writer = tokio::spawn(dedup::write_log(
        store.clone(),
        shared.dedup.clone(),
        capacity,
        log_stopped,
    ));
    shared.circuit.probe_at_start().await;
    let mut consumers = tokio::task::JoinSet::new();
    for queue in queues {
        consumers.spawn(consume(shared.clone(), queue, shutdown.clone()));
    }
    consumers.spawn(limit::drain(
        shared.cfg.clone(),
        shared.store.clone(),
        shutdown.clone(),
    ));
    let rebalancer =
        sharded.then(|| tokio::spawn(rebalance::run(shared.clone(), shutdown.clone())));
    let mut result = Ok(());
    while let Some(joined) = consumers.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            // A topology the broker refuses will be refused on every node
            // and every retry: stop, and let the error say what to change.
            Ok(Err(e)) => {
                result = Err(e);
                break;
            }
            Err(e) => {
                result = Err(RelayError::Join(e.to_string()));
                break;
            }
        }
    }
    consumers.abort_all();
    while consumers.join_next().await.is_some() {}
    if let Some(task) = rebalancer {
        task.abort();
    }
    pinger.abort();
    // After the sessions: what they delivered last is logged before the
    // store closes.
    let _ = stop_log.send(());
    let _ = log_writer.await;
    store.close().await;
    tracing::info!("stopped");
    result
}

/// Consumes one queue until shutdown: a session per connection, reconnecting
/// with backoff (to another node when `AMQP_URL` lists several).
async fn consume(
    shared: Arc<session::Shared>,
    queue: Arc<session::ConsumedQueue>,
    mut shutdown: Shutdown,
) -> Result<(), RelayError> {
    let health = &shared.health;
    let mut waits = reconnect_waits();
    while !shutdown.is_shutdown() {
        if shared.circuit.open_cause().is_some() {
            if outage::wait_for_pusher(&shared, &queue, &mut shutdown).await? {
                break;
            }
            continue;
        }
        match session::run(shared.clone(), queue.clone(), shutdown.clone()).await {
            Ok(session::End::Shutdown) => break,
            Ok(session::End::Paused) => {
                tracing::info!(queue = %queue.name, "returned what this worker held to the queue; consuming again once Pusher answers");
            }
            Ok(session::End::ConnectionLost(reason)) => {
                health.set_broker(queue.index, false);
                metrics::broker_connection_lost();
                waits = reconnect_waits();
                tracing::error!(queue = %queue.name, %reason, "lost RabbitMQ; unacked intents will be redelivered; reconnecting");
            }
            Ok(session::End::HandedOff) => {
                health.set_broker(queue.index, false);
                tracing::info!(queue = %queue.name, "handed the queue over; standing by on it again");
                // A moment for the next worker's consumer to become the
                // active one before this one queues up behind it again.
                if sleep_or_shutdown(HANDOFF_PAUSE, &mut shutdown).await {
                    break;
                }
            }
            Err(e) if e.is_permanent() => return Err(e.into()),
            Err(e) => {
                health.set_broker(queue.index, false);
                let wait = waits.next().unwrap_or(Duration::from_secs(15));
                tracing::error!(queue = %queue.name, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot consume from RabbitMQ; retrying");
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The circuit's probe: `GET /channels` needs a valid signature and changes
/// nothing. A Pusher that stays away (sockudo still building on a first
/// run, a long outage) is reported at the first failed probe and then every
/// [`PROBE_WARN_EVERY`] probes, not once a second.
fn probe(client: Client) -> circuit::Probe {
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    Arc::new(move || {
        let client = client.clone();
        let failed = failed.clone();
        Box::pin(async move {
            use std::sync::atomic::Ordering;
            match client.channels(None, &[]).await {
                Ok(_) => {
                    failed.store(0, Ordering::Relaxed);
                    Ok(())
                }
                Err(e) => {
                    let n = failed.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % PROBE_WARN_EVERY == 1 {
                        tracing::warn!(error = %e, failed_probes = n, "Pusher does not answer; delivery stays paused, intents wait in RabbitMQ");
                    } else {
                        tracing::debug!(error = %e, failed_probes = n, "probe failed");
                    }
                    Err(match retry::classify(&e) {
                        retry::Verdict::Unauthorized | retry::Verdict::ClockSkew => {
                            circuit::Cause::Unauthorized(e.to_string())
                        }
                        retry::Verdict::Forbidden => circuit::Cause::Forbidden(e.to_string()),
                        _ => circuit::Cause::Outage(e.to_string()),
                    })
                }
            }
        })
    })
}

/// Failed probes between two warnings (about 30 s at one probe a second).
/// A count of this outage's failed probes, not a clock like the webhooks'
/// log throttle: it starts over at the first success, so the next outage
/// is reported at its first failed probe however recent the last warning,
/// and each warning carries the outage's failed probes so far. No crate in
/// the tree throttles log lines.
const PROBE_WARN_EVERY: u64 = 30;

/// Store pings between two counts of the store's tables (about a minute).
const TABLE_COUNT_EVERY: u64 = 12;

async fn ping_store(store: Store, health: Arc<Health>, mut shutdown: Shutdown) {
    let mut pings = 0u64;
    loop {
        if sleep_or_shutdown(STORE_PING_INTERVAL, &mut shutdown).await {
            return;
        }
        match store.ping().await {
            Ok(()) => health.set_store(None),
            Err(e) => health.set_store(Some(e.to_string())),
        }
        // Sampled here rather than on every insert or replay: the count is
        // the store's (other workers and the CLI change it too).
        match store.pending_by_reason().await {
            Ok(counts) => {
                for (reason, n) in counts {
                    metrics::dead_letters_pending(reason.as_str(), n);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot count pending dead letters"),
        }
        // A full count of each table: once a minute is enough for a gauge
        // that warns of a store filling up over hours.
        pings += 1;
        if pings % TABLE_COUNT_EVERY != 1 {
            continue;
        }
        match store.table_rows().await {
            Ok(tables) => {
                for (table, n) in tables {
                    metrics::store_rows(table, n);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot count the store's rows"),
        }
    }
}
