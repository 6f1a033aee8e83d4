//! One connection's worth of relaying: the event loop that takes deliveries,
//! feeds the lanes, starts requests, collects outcomes and acks.
//!
//! What a session changes lives in its one task. The locks it takes per
//! delivery are short: the dedup cache's, which the sessions of every
//! queue share (one capacity for the worker) and which is held for one
//! hash lookup or insert, and, when a channel is parked, the circuit's.
//! Requests and dead-letter writes run in tasks of the session's own
//! (cancelled and awaited before it returns) and report back through
//! channels. Where the session is in its life is
//! one value, a `Phase`, changed only by its own methods. A session
//! ends on shutdown (after draining), on a handoff, or when the connection
//! is lost (the caller reconnects).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::circuit::Circuit;
use super::concurrency::Limiter;
use super::dedup::DedupCache;
use super::dispatch::{self, Failure, Outcome};
use super::health::Health;
use super::lanes::{Scheduler, UnitId};
use super::parker::{self, Reply, Request};
use super::parking::{Board, Parking, Route};
use super::phase::Phase;
use super::retry::RetryPolicy;
use super::writer::{self, ToStore};
use crate::amqp::acker::{AckTracker, STRAGGLER_DELAY};
use crate::amqp::{self, AmqpError};
use crate::config::Config;
use crate::deadletter::{replay, DeadLetterReason, NewDeadLetter, NewParked, Parked, Store};
use crate::intent::{self, DecodeContext, Intent};
use crate::metrics::{self, Settled};
use crate::pusher::Client;
use crate::shutdown::Shutdown;

/// How often the queue depth is sampled for the lag gauge.
pub(super) const LAG_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a lag sample may hold the event loop (see `sample_lag`).
const LAG_SAMPLE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the close waits for its round trip (see [`close`]).
const CLOSE_SYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the session looks at whether its channel is still open.
pub(super) const LIVENESS_INTERVAL: Duration = Duration::from_secs(1);

/// After a connection loss, how long in-flight requests may still take
/// beyond Pusher's request timeout: whatever a request answered within it
/// delivered is remembered (so its redelivery is dropped, not sent again),
/// and a request still out when the session ends is cancelled, so no old
/// request lands after what the next session sends for the same channel.
const LOST_DRAIN_MARGIN: Duration = Duration::from_secs(1);

/// A standby session publishes a wake-up to its queue when the queue's
/// parked log has rows, so that whichever consumer is active learns it is
/// (single-active consumers are told nothing else) and goes on with the log
/// even while the queue is empty. A wake-up is this header on an empty body
/// published straight to the queue (the default exchange), as a worker
/// sends it; see [`is_wake`].
pub const WAKE_HEADER: &str = "x-pusher-relay-wake";

/// Whether a delivery is a worker's wake-up. A producer's message with the
/// header but a body, or published through an exchange, is an ordinary
/// intent (delivered or dead-lettered like any other): the header alone
/// must not let anyone have a message acked and dropped. An empty body can
/// never be an intent, so taking one sent by someone else for a wake-up
/// drops nothing that could have been delivered.
fn is_wake(delivery: &lapin::message::Delivery) -> bool {
    delivery.data.is_empty()
        && delivery.exchange.as_str().is_empty()
        && delivery
            .properties
            .headers()
            .as_ref()
            .is_some_and(|h| h.inner().contains_key(WAKE_HEADER))
}

/// One queue the worker consumes (the intent queue, or one shard), and what
/// its sessions tell the rebalancer.
#[derive(Debug)]
pub struct ConsumedQueue {
    /// Its position in [`Shared::queues`], for health.
    pub index: usize,
    pub name: String,
    /// This queue's share of `RELAY_PREFETCH`.
    pub prefetch: u16,
    /// Unix ms of the last delivery taken, 0 after a handoff: on a
    /// single-active queue, deliveries are the only sign that this worker's
    /// consumer is the active one.
    last_delivery_ms: AtomicI64,
    /// Messages ready in the queue at the last sample.
    ready: AtomicU32,
    handoff: AtomicBool,
    wake: Notify,
    /// Whether the warning that this queue has no delivery limit was given.
    warned_without_limit: AtomicBool,
}

impl ConsumedQueue {
    pub fn new(index: usize, name: String, prefetch: u16) -> ConsumedQueue {
        ConsumedQueue {
            index,
            name,
            prefetch,
            last_delivery_ms: AtomicI64::new(0),
            ready: AtomicU32::new(0),
            handoff: AtomicBool::new(false),
            wake: Notify::new(),
            warned_without_limit: AtomicBool::new(false),
        }
    }

    /// Whether this worker took a delivery from the queue within `window`
    /// and is not handing it over.
    pub fn active_within(&self, window: Duration, now_ms: i64) -> bool {
        if self.handoff.load(Ordering::Relaxed) {
            return false;
        }
        let last = self.last_delivery_ms.load(Ordering::Relaxed);
        last > 0 && now_ms.saturating_sub(last) <= window.as_millis() as i64
    }

    /// Asks the session on this queue to hand it to the next worker: finish
    /// what is in flight, then close, leaving the rest unacked for them.
    pub fn request_handoff(&self) {
        self.handoff.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

/// What every session shares, built once by the worker.
pub struct Shared {
    pub cfg: Config,
    pub client: Client,
    pub circuit: Arc<Circuit>,
    pub limiter: Arc<Limiter>,
    pub health: Arc<Health>,
    pub dedup: Arc<Mutex<DedupCache>>,
    pub store: Store,
    pub policy: RetryPolicy,
    pub queues: Vec<Arc<ConsumedQueue>>,
    pub parked: Arc<Board>,
    /// `RELAY_MAX_HELD_BYTES`, shared by every queue's session.
    pub held: Arc<amqp::Budget>,
}

/// How a session ended.
#[derive(Debug)]
pub enum End {
    /// Shutdown was asked for and the session drained.
    Shutdown,
    /// The broker connection or channel failed.
    ConnectionLost(String),
    /// The queue was handed to another worker (shards rebalancing).
    HandedOff,
    /// The circuit opened: what the session held went back to the queue,
    /// and the caller consumes again once Pusher answers.
    Paused,
}

/// A delivery taken from the queue and not yet finished (delivered, or
/// stored as a dead letter); its event waits in the lanes meanwhile.
struct Taken {
    body: Vec<u8>,
    routing_key: String,
    /// Kept as received; turned into JSON only if it is dead-lettered.
    /// Boxed: it is most of this struct's size and rarely read, and the
    /// session holds a prefetch window of these (10,000 by default).
    properties: Box<lapin::BasicProperties>,
    intent_id: String,
    kind: String,
    channels: Vec<String>,
    /// Enqueue time (created_at, else AMQP timestamp), for latency.
    enqueued_at_ms: Option<i64>,
    first_seen_ms: i64,
}

/// A parked row read back into the lanes.
struct ParkedUnit {
    seq: i64,
    row: NewParked,
    kind: String,
}

enum Msg {
    Done(Vec<(UnitId, Outcome)>),
    Stored(Vec<(UnitId, DeadLetterReason)>),
    Parker(Reply),
}

use crate::clock::now_ms;

/// Runs one session on `queue`, on a fresh connection, until shutdown,
/// connection loss or handoff.
pub async fn run(
    shared: Arc<Shared>,
    queue: Arc<ConsumedQueue>,
    mut shutdown: Shutdown,
) -> Result<End, AmqpError> {
    // The queue in the connection name tells operators (and tests) which
    // worker a connection in the management UI belongs to.
    let conn = amqp::connect_within(
        &shared.cfg.amqp,
        &connection_name(&queue.name),
        &shared.held,
    )
    .await?;
    let declared = amqp::declare_topology(&conn, &shared.cfg.amqp).await?;
    if declared.without_limit.contains(&queue.name)
        && !queue.warned_without_limit.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(queue = %queue.name, fix = %amqp::limit_policy_command(&shared.cfg.amqp), "this queue was declared by an earlier version, without a delivery limit and its dead-letter target; RabbitMQ 4 drops what a quorum queue redelivers 20 times unless it has a target. The policy below gives it both (`pusher-relay check` reports it too)");
    }
    let channel = amqp::open_channel(&conn).await?;
    channel
        .basic_qos(queue.prefetch, BasicQosOptions::default())
        .await
        .map_err(|source| AmqpError::Channel {
            doing: "setting prefetch",
            source,
        })?;
    let mut consumer = channel
        .basic_consume(
            &queue.name,
            CONSUMER_TAG,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| AmqpError::Channel {
            doing: "starting the consumer",
            source,
        })?;
    shared.health.set_broker(queue.index, true);
    shared.health.set_consumer(queue.index, true);
    queue.handoff.store(false, Ordering::Relaxed);
    tracing::info!(queue = %queue.name, prefetch = queue.prefetch, "consuming intents");

    let mut session = Session::new(shared.clone(), queue.clone(), channel.clone());
    let end = session.run(&mut consumer, &mut shutdown).await;
    session.finish().await;
    shared.parked.set(&queue.name, Vec::new(), None);
    shared.health.set_consumer(queue.index, false);
    queue.last_delivery_ms.store(0, Ordering::Relaxed);
    close(conn, channel, &queue.name).await;
    // Dropped only now: lapin cancels a consumer dropped while its channel is
    // open. On a single-active queue a cancel makes RabbitMQ activate the
    // next worker at once, while the deliveries this one holds go back only
    // when its channel closes, behind what the next one was already given.
    // A closed channel returns them first and then activates the next.
    drop(consumer);
    Ok(end)
}

const CONSUMER_TAG: &str = "pusher-relay";

/// The connection's name as the management UI shows it: the queue in it
/// tells operators (and tests) which worker a connection belongs to.
pub fn connection_name(queue: &str) -> String {
    format!("pusher-relay {queue}")
}
/// How long a closing session waits for RabbitMQ to apply its last acks.
const SETTLE_PAUSE: Duration = Duration::from_millis(300);

async fn close(conn: Connection, channel: Channel, queue: &str) {
    // A synchronous round trip first: the broker answers it only after it has
    // processed every ack sent before it on this channel, so none of them can
    // be lost to the close. Unacked deliveries then go back to the queue.
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    // Bounded: with the held bytes at their budget, the answer waits behind
    // a delivery the guard holds back, and only the channel's close
    // releases it.
    let answered = tokio::time::timeout(
        CLOSE_SYNC_TIMEOUT,
        channel.queue_declare(queue, passive, FieldTable::default()),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    // Processed by the channel is not yet applied by a quorum queue: its
    // leader settles acks through Raft, and a channel closed meanwhile has
    // some of them dropped and their messages returned (rabbitmq-server
    // #10327, open). On this project's 2-core machines about one graceful
    // shutdown in twenty sent tens of delivered intents around again. A
    // channel that no longer answers (the connection was lost) has nothing
    // left to settle, and its reconnect should not wait.
    if answered {
        tokio::time::sleep(SETTLE_PAUSE).await;
    }
    let _ = channel.close(200, "pusher-relay stopping").await;
    let _ = conn.close(200, "pusher-relay stopping").await;
}

struct Session {
    shared: Arc<Shared>,
    queue: Arc<ConsumedQueue>,
    channel: Channel,
    /// Deliveries taken and not yet finished, by delivery tag.
    taken: HashMap<u64, Taken>,
    scheduler: Scheduler,
    acks: AckTracker,
    in_flight: usize,
    /// Metric handles, kept so the hot path skips registry lookups.
    consumed: HashMap<String, metrics::IntentCounter>,
    delivery_metrics: metrics::DeliveryMetrics,
    /// Dead letters handed to the writer and not yet stored: their
    /// deliveries are finished only once stored, so draining waits for them.
    storing: usize,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    to_store: mpsc::UnboundedSender<ToStore>,
    /// Which channels are parked; `None` with `RELAY_PARKING=off`.
    parking: Option<Parking>,
    /// Parked rows read into the lanes, by unit id.
    parked_units: HashMap<UnitId, ParkedUnit>,
    to_parker: mpsc::UnboundedSender<Request>,
    /// Rows sent to the parked log and not yet committed: their deliveries
    /// are finished only then, so leaving the queue waits for them.
    parking_rows: usize,
    /// Finished parked rows whose delete is not yet committed.
    unparking_rows: usize,
    /// Whether this session knows it is the queue's active consumer: with
    /// competing consumers from the start, on a single-active queue from its
    /// first delivery. Only the active one reads or writes the parked log.
    active: bool,
    /// The parked log's name in the store.
    log: String,
    /// Every task the session started; see [`Session::finish`].
    tasks: JoinSet<()>,
}

impl Session {
    fn new(shared: Arc<Shared>, queue: Arc<ConsumedQueue>, channel: Channel) -> Session {
        let (tx, rx) = mpsc::unbounded_channel();
        let (to_store, rows) = mpsc::unbounded_channel();
        let (stored_tx, mut stored_rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        tasks.spawn(writer::run(
            shared.store.clone(),
            shared.health.clone(),
            rows,
            stored_tx,
        ));
        let forward = tx.clone();
        tasks.spawn(async move {
            while let Some(stored) = stored_rx.recv().await {
                if forward.send(Msg::Stored(stored)).is_err() {
                    return;
                }
            }
        });
        let single_active = shared.cfg.amqp.single_active_queues();
        // A single-active queue has one owner at a time, so its log is the
        // queue's; competing workers each keep their own, by host name.
        let log = if single_active {
            queue.name.clone()
        } else {
            format!("{}@{}", queue.name, host_name())
        };
        let (to_parker, requests) = mpsc::unbounded_channel();
        let (replies, mut replies_rx) = mpsc::unbounded_channel();
        tasks.spawn(parker::run(
            shared.store.clone(),
            shared.health.clone(),
            log.clone(),
            requests,
            replies,
        ));
        let forward = tx.clone();
        tasks.spawn(async move {
            while let Some(reply) = replies_rx.recv().await {
                if forward.send(Msg::Parker(reply)).is_err() {
                    return;
                }
            }
        });
        let relay = &shared.cfg.relay;
        let parking = relay
            .parking
            .then(|| Parking::new(relay.park_threshold.min(usize::from(queue.prefetch) / 2)));
        Session {
            acks: AckTracker::new(usize::from(queue.prefetch)),
            shared,
            queue,
            channel,
            taken: HashMap::new(),
            scheduler: Scheduler::default(),
            in_flight: 0,
            storing: 0,
            consumed: HashMap::new(),
            delivery_metrics: metrics::DeliveryMetrics::new(),
            tx,
            rx,
            to_store,
            parking,
            parked_units: HashMap::new(),
            to_parker,
            parking_rows: 0,
            unparking_rows: 0,
            active: !single_active,
            log,
            tasks,
        }
    }

    async fn run(&mut self, consumer: &mut lapin::Consumer, shutdown: &mut Shutdown) -> End {
        let single_active = self.shared.cfg.amqp.single_active_queues();
        // Subscribed before the circuit is read: a change between the two
        // is then seen in the loop. Health is told here too, since the
        // circuit may have closed after the outage's wait last told it
        // (seen once under load: readiness said open for good).
        let mut circuit_changes = self.shared.circuit.subscribe();
        let mut phase = Phase::Consuming;
        let cause = self.shared.circuit.open_cause();
        if cause.is_some() {
            self.return_held(&mut phase);
        }
        self.shared.health.set_circuit(cause.map(|c| c.describe()));
        let mut liveness = tokio::time::interval(LIVENESS_INTERVAL);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ack_tick = tokio::time::interval(STRAGGLER_DELAY / 2);
        ack_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lag_tick = tokio::time::interval(LAG_SAMPLE_INTERVAL);
        lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if self.active {
            if let Err(e) = self.rebuild_parked().await {
                phase.lose(e);
            }
        }

        loop {
            if self.queue.handoff.load(Ordering::Relaxed) && phase.hand_off() {
                tracing::info!(queue = %self.queue.name, in_flight = self.in_flight, "handing this queue to another worker: finishing what is in flight, leaving the rest for them");
            }
            // 1. Start every request that is due and allowed.
            if phase.takes_deliveries() {
                self.read_parked_pages();
            }
            let flush = phase.starts_requests();
            if let Some(flush) = flush {
                self.dispatch_due(flush);
            }
            // 2. Ack what is finished: runs at once, stragglers on the tick
            //    (looking for them costs a scan of every finished delivery),
            //    everything when leaving the queue.
            if !phase.is_lost() {
                let stragglers = phase.is_leaving().then_some(Duration::ZERO);
                if let Err(e) = self.send_acks(stragglers).await {
                    phase.lose(e);
                }
            }
            // 3. Done?
            if let Some(end) = self.end(&phase) {
                return end;
            }

            // A linger ends only where partial batches wait for it; a stale
            // deadline elsewhere would spin the loop.
            let linger_deadline = match flush {
                Some(false) => self.scheduler.next_deadline().map(Instant::from_std),
                _ => None,
            };
            // Woken at the shutdown deadline, or when a lost connection's
            // in-flight requests have had their time.
            let deadline = match &phase {
                Phase::Lost { since, .. } => Some(*since + self.lost_drain()),
                _ => phase.deadline(),
            };
            tokio::select! {
                _ = shutdown.recv(), if phase.awaits_shutdown() => {
                    self.begin_shutdown(&mut phase, single_active).await;
                }
                Some(msg) = self.rx.recv() => {
                    if self.on_message(msg, phase.is_lost()) {
                        self.return_held(&mut phase);
                    }
                }
                delivery = consumer.next(), if phase.takes_deliveries() => match delivery {
                    Some(Ok(delivery)) => {
                        if let Err(e) = self.take(delivery).await {
                            phase.lose(e);
                        }
                    }
                    Some(Err(e)) => phase.lose(e.to_string()),
                    None => phase.lose("the broker cancelled the consumer".into()),
                },
                _ = circuit_changes.changed() => {
                    // A change to closed means it was open since the last
                    // look: the failures that opened it drove the limit
                    // down, and they say nothing of the Pusher that is back.
                    let cause = self.shared.circuit.open_cause();
                    match &cause {
                        None => self.shared.limiter.restart(),
                        Some(_) => self.return_held(&mut phase),
                    }
                    self.shared.health.set_circuit(cause.map(|c| c.describe()));
                }
                // A closed connection is seen here whatever else the loop
                // waits on: a paused or leaving session polls no consumer.
                _ = liveness.tick(), if !phase.is_lost() => {
                    if !self.channel.status().connected() {
                        phase.lose("RabbitMQ closed the channel or the connection".into());
                    }
                }
                _ = sleep_until(linger_deadline), if linger_deadline.is_some() => {}
                _ = self.shared.limiter.room(), if !self.scheduler.is_empty() => {}
                _ = ack_tick.tick(), if !phase.is_lost() && self.acks.unacked() > 0 => {
                    let wait = self.acks.straggler_wait();
                    if let Err(e) = self.send_acks(Some(wait)).await {
                        phase.lose(e);
                    }
                }
                _ = lag_tick.tick(), if !phase.is_lost() => {
                    // Beside the loop: with the held bytes at their budget,
                    // the answer waits behind a delivery the guard holds
                    // back until this loop acks.
                    let (channel, queue) = (self.channel.clone(), self.queue.clone());
                    let shared = self.shared.clone();
                    self.tasks.spawn(async move {
                        sample_lag(&channel, &queue, &shared.queues).await;
                    });
                    self.tick_parking().await;
                }
                _ = sleep_until(deadline), if deadline.is_some() => {}
                _ = self.queue.wake.notified(), if phase.hands_off_on_request() => {}
            }
        }
    }

    /// Stops taking and starting work because the circuit opened: what is
    /// held goes back to the queue once what is in flight has stopped.
    fn return_held(&self, phase: &mut Phase) {
        if phase.return_held() {
            tracing::warn!(queue = %self.queue.name, held = self.taken.len(), in_flight = self.in_flight, "Pusher is away: returning the intents this worker holds to the queue, in order; consuming again once Pusher answers");
        }
    }

    /// Whether the session is over, and how.
    fn end(&self, phase: &Phase) -> Option<End> {
        match phase {
            Phase::Consuming => None,
            Phase::Lost { reason, since } => (self.in_flight == 0
                || since.elapsed() >= self.lost_drain())
            .then(|| End::ConnectionLost(reason.clone())),
            // What was taken and not started goes back to the queue, in its
            // order, for the worker that takes over: nothing it sends can
            // overtake what this one sent.
            Phase::HandingOff { shutdown }
                if self.in_flight == 0 && self.storing == 0 && self.log_settled() =>
            {
                Some(match shutdown {
                    Some(_) => End::Shutdown,
                    None => End::HandedOff,
                })
            }
            Phase::HandingOff { shutdown } => shutdown.and_then(|by| self.drained_or_late(by)),
            Phase::Returning { shutdown }
                if self.in_flight == 0 && self.storing == 0 && self.log_settled() =>
            {
                Some(match shutdown {
                    Some(_) => End::Shutdown,
                    None => End::Paused,
                })
            }
            Phase::Returning { shutdown } => shutdown.and_then(|by| self.drained_or_late(by)),
            Phase::Draining { deadline, .. } => self.drained_or_late(*deadline),
        }
    }

    /// See [`LOST_DRAIN_MARGIN`].
    fn lost_drain(&self) -> Duration {
        self.shared.cfg.pusher.timeout + LOST_DRAIN_MARGIN
    }

    /// Cancels and awaits every task the session started (the request
    /// tasks, the dead-letter writer, the parker and their forwarders): none
    /// outlives it.
    async fn finish(mut self) {
        self.tasks.shutdown().await;
    }

    fn drained_or_late(&self, deadline: Instant) -> Option<End> {
        if self.taken.is_empty() && self.storing == 0 && self.in_flight == 0 && self.log_settled() {
            tracing::info!("drained: every taken intent is delivered or dead-lettered and acked");
            return Some(End::Shutdown);
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                unfinished = self.taken.len() + self.storing + self.parking_rows,
                "shutdown timeout: leaving unfinished intents unacked for redelivery"
            );
            return Some(End::Shutdown);
        }
        None
    }

    async fn begin_shutdown(&mut self, phase: &mut Phase, single_active: bool) {
        self.shared.health.set_shutting_down();
        let timeout = self.shared.cfg.relay.shutdown_timeout;
        phase.shut_down(Instant::now() + timeout, single_active);
        if single_active {
            // As a handoff: the next worker starts where this one stops.
            // Flushing everything taken after a cancel would race the next
            // worker's first sends.
            tracing::info!(unstarted = self.taken.len(), in_flight = self.in_flight, "shutting down: finishing in-flight requests; what is not started goes back to the queue, in order, for the next worker");
        } else {
            tracing::info!(unfinished = self.taken.len(), timeout = ?timeout, "shutting down: no new intents, flushing in-flight work");
            let _ = self
                .channel
                .basic_cancel(CONSUMER_TAG, BasicCancelOptions::default())
                .await;
        }
    }

    fn dispatch_due(&mut self, flush: bool) {
        // Finished request tasks are reaped here, as they end by the
        // thousand a second.
        while self.tasks.try_join_next().is_some() {}
        // A request is made only with a permit in hand: one made to wait for
        // a permit would hold its lanes, which could meanwhile fill fuller
        // batches. A request waiting to retry holds no permit.
        loop {
            let Some(permit) = self.shared.limiter.try_acquire() else {
                break;
            };
            let Some(work) = self.scheduler.next(
                Instant::now().into_std(),
                self.shared.cfg.relay.linger,
                flush,
            ) else {
                break;
            };
            self.in_flight += 1;
            metrics::in_flight(self.in_flight);
            let shared = self.shared.clone();
            let tx = self.tx.clone();
            self.tasks.spawn(async move {
                let outcomes = dispatch::deliver(
                    &shared.client,
                    &shared.circuit,
                    &shared.limiter,
                    permit,
                    &shared.policy,
                    work,
                )
                .await;
                let _ = tx.send(Msg::Done(outcomes));
            });
        }
    }

    async fn send_acks(&mut self, stragglers: Option<Duration>) -> Result<(), String> {
        for ack in self.acks.take_acks(Instant::now().into_std(), stragglers) {
            self.channel
                .basic_ack(
                    ack.tag,
                    BasicAckOptions {
                        multiple: ack.multiple,
                    },
                )
                .await
                .map_err(|e| format!("ack failed: {e}"))?;
        }
        Ok(())
    }

    fn on_delivery(&mut self, delivery: lapin::message::Delivery) {
        let tag = delivery.delivery_tag;
        let props = Box::new(delivery.properties);
        let now = now_ms();
        self.queue.last_delivery_ms.store(now, Ordering::Relaxed);
        let enqueued_at_ms = props.timestamp().map(|s| (s as i64).saturating_mul(1000));
        let message_id = props.message_id().as_ref().map(|m| m.as_str().to_string());
        let mut taken = Taken {
            routing_key: delivery.routing_key.as_str().to_string(),
            properties: props,
            intent_id: message_id.clone().unwrap_or_default(),
            kind: String::new(),
            channels: Vec::new(),
            enqueued_at_ms,
            first_seen_ms: now,
            body: delivery.data,
        };
        let intent = match self.decode(&taken, message_id.as_deref(), now) {
            Ok(intent) => intent,
            Err(f) => {
                metrics::intent_consumed("invalid");
                taken.kind = loose_type(&taken.body);
                tracing::warn!(tag, error = %f.error, "intent can never be sent; dead-lettering it");
                self.dead_letter(tag, taken, f);
                return;
            }
        };
        match self.consumed.get(&intent.kind) {
            Some(counter) => counter.increment(),
            None => {
                let counter = metrics::intents_consumed(&intent.kind);
                counter.increment();
                self.consumed.insert(intent.kind.clone(), counter);
            }
        }
        taken.intent_id = intent.id.clone();
        taken.kind = intent.kind.clone();
        taken.channels = intent.trigger.channels.clone();
        taken.enqueued_at_ms = intent.created_at_ms.or(enqueued_at_ms);

        if let (Some(max_age), Some(born)) =
            (self.shared.cfg.relay.max_intent_age, taken.enqueued_at_ms)
        {
            let age = Duration::from_millis(now.saturating_sub(born).max(0) as u64);
            if age > max_age {
                let error =
                    format!("intent is {age:?} old, older than RELAY_MAX_INTENT_AGE {max_age:?}");
                self.dead_letter(tag, taken, failure(DeadLetterReason::Expired, error));
                return;
            }
        }
        if self.dedup().contains(&intent.id) {
            metrics::intent_duplicate();
            tracing::debug!(id = %intent.id, "already delivered; acking the redelivery without sending");
            self.settle(tag, Settled::Duplicate, Instant::now().into_std());
            return;
        }

        if let Some(Route::Park { group, merge }) =
            self.parking.as_mut().map(|p| p.route(&taken.channels))
        {
            let row = parked_row(taken);
            self.send_park(group, merge, vec![(tag, row)]);
            return;
        }
        let channels = taken.channels.clone();
        self.scheduler.push(
            UnitId::Delivery(tag),
            intent.trigger,
            Instant::now().into_std(),
        );
        // Taken first: parking the channel may move this very delivery.
        self.taken.insert(tag, taken);
        self.park_hot(&channels);
    }

    /// A delivery, seen first for what it says of this session: the first
    /// one makes a single-active consumer the active one. A wake-up is
    /// counted (as consumed type `wake`), acked and goes no further.
    async fn take(&mut self, delivery: lapin::message::Delivery) -> Result<(), String> {
        if !self.active {
            self.active = true;
            self.rebuild_parked().await?;
        }
        if is_wake(&delivery) {
            metrics::intent_consumed("wake");
            self.queue
                .last_delivery_ms
                .store(now_ms(), Ordering::Relaxed);
            self.settle(
                delivery.delivery_tag,
                Settled::Wake,
                Instant::now().into_std(),
            );
            return Ok(());
        }
        self.on_delivery(delivery);
        Ok(())
    }

    /// Reads the parked set from the log: what an earlier session (this
    /// worker's, or another's before a takeover) left parked goes on before
    /// any delivery of those channels is routed.
    async fn rebuild_parked(&mut self) -> Result<(), String> {
        let Some(parking) = self.parking.as_mut() else {
            return Ok(());
        };
        let groups = self
            .shared
            .store
            .parked_groups(&self.log)
            .await
            .map_err(|e| format!("cannot read the parked log before consuming: {e}"))?;
        if !groups.is_empty() {
            let rows: u64 = groups.iter().map(|g| g.rows).sum();
            tracing::info!(queue = %self.queue.name, groups = groups.len(), rows, "parked channels found in the log; they go on in order");
        }
        parking.rebuild(groups, now_ms());
        self.publish_parked();
        Ok(())
    }

    /// Parks every channel of `channels` the session now holds too much of:
    /// the tail of its lane that waits moves to the log, and later intents
    /// of it follow. Not while the circuit is open: an outage holds every
    /// lane, and the backlog belongs in RabbitMQ.
    fn park_hot(&mut self, channels: &[String]) {
        if self.shared.circuit.open_cause().is_some() {
            return;
        }
        for channel in channels {
            let held = self.scheduler.held(channel);
            let Some(parking) = self.parking.as_mut() else {
                return;
            };
            if !parking.over_threshold(channel, held) {
                continue;
            }
            parking.park(channel, now_ms());
            let tail = self.scheduler.take_tail(channel);
            let rows: Vec<(u64, NewParked)> = tail
                .into_iter()
                .filter_map(|(id, _)| match id {
                    UnitId::Delivery(tag) => Some((tag, parked_row(self.taken.remove(&tag)?))),
                    UnitId::Parked(_) => None,
                })
                .collect();
            parking.adding(channel, rows.len() as u64);
            tracing::info!(queue = %self.queue.name, %channel, held = self.scheduler.held(channel) + rows.len(), moved = rows.len(), "parked a hot channel: its intents wait in the parked log, in order, while the queue serves the others");
            self.send_park(channel.clone(), Vec::new(), rows);
            self.publish_parked();
        }
    }

    fn send_park(&mut self, group: String, merge: Vec<String>, rows: Vec<(u64, NewParked)>) {
        let n = rows.len();
        if self
            .to_parker
            .send(Request::Park { group, merge, rows })
            .is_ok()
        {
            self.parking_rows += n;
        }
    }

    /// Asks for a page of every parked group that is running low in memory.
    fn read_parked_pages(&mut self) {
        if !self.active {
            return;
        }

        let Some(parking) = self.parking.as_mut() else {
            return;
        };
        for (group, limit) in parking.wanting_pages() {
            let _ = self.to_parker.send(Request::Read { group, limit });
        }
    }

    /// Whether every write and delete of the parked log has been answered.
    fn log_settled(&self) -> bool {
        self.parking_rows == 0 && self.unparking_rows == 0
    }

    fn on_parker(&mut self, reply: Reply, lost: bool) {
        if self.parking.is_none() {
            return;
        }
        match reply {
            Reply::Parked { group, tags, added } => {
                self.parking_rows = self.parking_rows.saturating_sub(tags.len());
                metrics::intents_parked(tags.len());
                if !lost {
                    let now = Instant::now().into_std();
                    for tag in &tags {
                        self.settle(*tag, Settled::Parked, now);
                    }
                }
                let written = self
                    .parking
                    .as_mut()
                    .and_then(|p| p.written(&group, tags.len() as u64, added));
                if let Some(view) = written {
                    tracing::info!(queue = %self.queue.name, channels = ?view.channels, "unparked: nothing of it is left in the log");
                }
                self.publish_parked();
            }
            Reply::Read { group, rows: None } => {
                if let Some(p) = self.parking.as_mut() {
                    p.read_failed(&group);
                }
            }
            Reply::Read {
                group,
                rows: Some(rows),
            } => {
                let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
                let fresh = self
                    .parking
                    .as_mut()
                    .map(|p| p.read(&group, &seqs))
                    .unwrap_or_default();
                for row in rows {
                    if fresh.contains(&row.seq) {
                        self.load_row(row);
                    }
                }
            }
            Reply::Unparked { seqs, .. } => {
                self.unparking_rows = self.unparking_rows.saturating_sub(seqs.len());
                metrics::intents_unparked(seqs.len());
                let unparked = self
                    .parking
                    .as_mut()
                    .map(|p| p.deleted(&seqs))
                    .unwrap_or_default();
                for view in unparked {
                    tracing::info!(queue = %self.queue.name, channels = ?view.channels, "unparked: nothing of it is left in the log");
                }
                self.publish_parked();
            }
        }
    }

    /// Puts a parked row into its lanes, behind whatever they hold.
    fn load_row(&mut self, parked: Parked) {
        let Parked { seq, row } = parked;
        let id = UnitId::Parked(seq);
        let now = now_ms();
        let message_id = Some(row.intent_id.as_str()).filter(|s| !s.is_empty());
        let intent = match self.decode_body(&row.body, message_id, row.enqueued_at_ms, now) {
            Ok(intent) => intent,
            Err(f) => {
                let unit = ParkedUnit {
                    seq,
                    kind: loose_type(&row.body),
                    row,
                };
                self.dead_letter_parked(id, unit, f);
                return;
            }
        };
        if self.dedup().contains(&intent.id) {
            metrics::intent_duplicate();
            self.finish_row(seq);
            return;
        }
        let unit = ParkedUnit {
            seq,
            kind: intent.kind.clone(),
            row,
        };
        self.scheduler
            .push(id, intent.trigger, Instant::now().into_std());
        self.parked_units.insert(id, unit);
    }

    /// A parked row is done with: delete it from the log.
    fn finish_row(&mut self, seq: i64) {
        let Some(parking) = self.parking.as_mut() else {
            return;
        };
        parking.finished(seq);
        if self
            .to_parker
            .send(Request::Unpark { seqs: vec![seq] })
            .is_ok()
        {
            self.unparking_rows += 1;
        }
    }

    fn on_parked_outcome(&mut self, id: UnitId, outcome: Outcome, lost: bool) {
        let Some(unit) = self.parked_units.remove(&id) else {
            return;
        };
        match outcome {
            Outcome::Delivered => {
                self.delivery_metrics
                    .delivered(unit.row.channels.len() as u64);
                if let Some(born) = unit.row.enqueued_at_ms {
                    let ms = now_ms().saturating_sub(born).max(0);
                    self.delivery_metrics.latency(ms as f64 / 1000.0);
                }
                if !unit.row.intent_id.is_empty() {
                    self.dedup().insert(&unit.row.intent_id);
                }
                self.finish_row(unit.seq);
            }
            // Lost or returned: the row stays in the log for the next session.
            Outcome::Failed(_) if lost => {}
            Outcome::Returned => {}
            Outcome::Failed(f) => {
                tracing::warn!(id = %unit.row.intent_id, reason = f.reason.as_str(), error = %f.error, "delivery of a parked intent failed; dead-lettering");
                self.dead_letter_parked(id, unit, f);
            }
        }
    }

    fn dead_letter_parked(&mut self, id: UnitId, unit: ParkedUnit, f: Failure) {
        let ParkedUnit { row, kind, .. } = unit;
        let dl = NewDeadLetter {
            body: row.body,
            routing_key: row.routing_key,
            headers: row.headers,
            intent_id: Some(row.intent_id).filter(|id| !id.is_empty()),
            intent_type: Some(kind).filter(|k| !k.is_empty()),
            channels: row.channels,
            reason: f.reason,
            error: f.error,
            pusher_status: f.status,
            pusher_body: f.body,
            attempts: f.attempts,
            first_seen_at_ms: row.first_seen_at_ms,
            dead_lettered_at_ms: now_ms(),
            replay_of: row.replay_of,
        };
        if self.to_store.send(ToStore { id, row: dl }).is_ok() {
            self.storing += 1;
        }
    }

    /// What operators see of this session's parking: the console's list and
    /// the gauges.
    fn publish_parked(&self) {
        if let Some(parking) = &self.parking {
            let now = now_ms();
            self.shared.parked.set(
                &self.queue.name,
                parking.views(now),
                parking.oldest_parked_ms(),
            );
        }
    }

    /// Every few seconds: the oldest parked intent's age, and on a standby
    /// session a wake-up for the active consumer when the log has rows.
    async fn tick_parking(&self) {
        if self.parking.is_none() {
            return;
        }
        self.publish_parked();
        metrics::parked_oldest_age(self.shared.parked.oldest_age_s(now_ms()));
        if self.active {
            return;
        }
        match self.shared.store.oldest_parked(&self.log).await {
            Ok(Some(_)) => {
                let mut headers = FieldTable::default();
                headers.insert(WAKE_HEADER.into(), AMQPValue::Boolean(true));
                let props = lapin::BasicProperties::default().with_headers(headers);
                let _ = self
                    .channel
                    .basic_publish(
                        "",
                        &self.queue.name,
                        BasicPublishOptions::default(),
                        &[],
                        props,
                    )
                    .await;
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "cannot look at the parked log"),
        }
    }

    /// The intent a delivery carries, or why it can never be sent.
    fn decode(&self, taken: &Taken, message_id: Option<&str>, now: i64) -> Result<Intent, Failure> {
        // A message the guard rewrote is not what the producer sent: it is
        // never decoded, let alone delivered.
        if let Some(problems) = unreadable(&taken.properties) {
            let reason = if amqp::guard::too_large(&problems) {
                DeadLetterReason::TooLarge
            } else {
                DeadLetterReason::Invalid
            };
            let error = format!("the AMQP message was rewritten to be read: {problems}");
            return Err(failure(reason, error));
        }
        self.decode_body(&taken.body, message_id, taken.enqueued_at_ms, now)
    }

    /// The intent a body carries, or why it can never be sent.
    fn decode_body(
        &self,
        body: &[u8],
        message_id: Option<&str>,
        enqueued_at_ms: Option<i64>,
        now: i64,
    ) -> Result<Intent, Failure> {
        let ctx = DecodeContext {
            message_id,
            enqueued_at_ms,
            now_ms: now,
            max_event_bytes: self.shared.cfg.pusher.max_event_bytes,
            templates: &self.shared.cfg.relay.templates,
        };
        intent::decode(body, &ctx).map_err(|e| {
            let reason = match e.reason() {
                intent::DecodeReason::TooLarge => DeadLetterReason::TooLarge,
                intent::DecodeReason::Invalid => DeadLetterReason::Invalid,
            };
            failure(reason, e.to_string())
        })
    }

    /// Takes in what a request, the writer or the parker reports; returns
    /// whether a request gave its work back (the circuit is open).
    fn on_message(&mut self, msg: Msg, lost: bool) -> bool {
        let mut returned = false;
        match msg {
            Msg::Done(outcomes) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                metrics::in_flight(self.in_flight);
                let ids: Vec<UnitId> = outcomes.iter().map(|(id, _)| *id).collect();
                self.scheduler.complete(&ids);
                for (id, outcome) in outcomes {
                    returned |= outcome == Outcome::Returned;
                    let tag = match id {
                        UnitId::Delivery(tag) => tag,
                        UnitId::Parked(_) => {
                            self.on_parked_outcome(id, outcome, lost);
                            continue;
                        }
                    };
                    let Some(taken) = self.taken.remove(&tag) else {
                        continue;
                    };
                    match outcome {
                        Outcome::Delivered => {
                            self.delivery_metrics.delivered(taken.channels.len() as u64);
                            if let Some(born) = taken.enqueued_at_ms {
                                let ms = now_ms().saturating_sub(born).max(0);
                                self.delivery_metrics.latency(ms as f64 / 1000.0);
                            }
                            self.dedup().insert(&taken.intent_id);
                            if !lost {
                                self.settle(tag, Settled::Delivered, Instant::now().into_std());
                            }
                        }
                        Outcome::Failed(f) => {
                            tracing::warn!(tag, id = %taken.intent_id, reason = f.reason.as_str(), error = %f.error, "delivery failed; dead-lettering");
                            if !lost {
                                self.dead_letter(tag, taken, f);
                            }
                        }
                        // Left unacked: the session ends, and closing its
                        // channel gives it back.
                        Outcome::Returned => {}
                    }
                }
            }
            Msg::Stored(rows) => {
                let now = Instant::now().into_std();
                for (id, reason) in rows {
                    self.storing = self.storing.saturating_sub(1);
                    metrics::dead_letter(reason.as_str());
                    match id {
                        UnitId::Parked(seq) => self.finish_row(seq),
                        UnitId::Delivery(tag) => self.settle(tag, Settled::DeadLettered, now),
                    }
                }
            }
            Msg::Parker(reply) => self.on_parker(reply, lost),
        }
        returned
    }

    /// A delivery is finished: it goes to the acker, counted in its one
    /// outcome.
    fn settle(&mut self, tag: u64, outcome: Settled, now: std::time::Instant) {
        metrics::intents_settled(outcome, 1);
        self.acks.finish(tag, now);
    }

    fn dead_letter(&mut self, tag: u64, p: Taken, f: Failure) {
        let row = NewDeadLetter {
            body: p.body,
            routing_key: p.routing_key,
            headers: amqp::properties_json(&p.properties),
            intent_id: Some(p.intent_id).filter(|id| !id.is_empty()),
            intent_type: Some(p.kind).filter(|k| !k.is_empty()),
            channels: p.channels,
            reason: f.reason,
            error: f.error,
            pusher_status: f.status,
            pusher_body: f.body,
            attempts: f.attempts,
            first_seen_at_ms: p.first_seen_ms,
            dead_lettered_at_ms: now_ms(),
            replay_of: replay::replay_of(&p.properties),
        };
        // The writer lives as long as this session; a send error means the
        // session is ending and the delivery will come back unacked.
        if self
            .to_store
            .send(ToStore {
                id: UnitId::Delivery(tag),
                row,
            })
            .is_ok()
        {
            self.storing += 1;
        }
    }

    fn dedup(&self) -> std::sync::MutexGuard<'_, DedupCache> {
        self.shared.dedup.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Samples the queue's depth for the lag gauge. The event loop waits on
/// this broker round trip, so it is bounded by [`LAG_SAMPLE_TIMEOUT`]: a
/// broker that stops answering while the connection looks alive (a
/// partition the heartbeat has not caught yet) would otherwise hold every
/// delivery, ack and Pusher answer behind it. A sample that times out is
/// skipped.
pub(super) async fn sample_lag(
    channel: &Channel,
    queue: &ConsumedQueue,
    queues: &[Arc<ConsumedQueue>],
) {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declared = tokio::time::timeout(
        LAG_SAMPLE_TIMEOUT,
        channel.queue_declare(&queue.name, passive, FieldTable::default()),
    )
    .await;
    if let Ok(Ok(declared)) = declared {
        queue
            .ready
            .store(declared.message_count(), Ordering::Relaxed);
        let total: u64 = queues
            .iter()
            .map(|q| u64::from(q.ready.load(Ordering::Relaxed)))
            .sum();
        metrics::consumer_lag(total);
    }
}

/// A taken delivery as a row of the parked log.
fn parked_row(taken: Taken) -> NewParked {
    NewParked {
        headers: amqp::properties_json(&taken.properties),
        replay_of: replay::replay_of(&taken.properties),
        intent_id: taken.intent_id,
        channels: taken.channels,
        body: taken.body,
        routing_key: taken.routing_key,
        enqueued_at_ms: taken.enqueued_at_ms,
        first_seen_at_ms: taken.first_seen_ms,
        parked_at_ms: now_ms(),
    }
}

/// This machine's name, which keeps competing workers' parked logs apart.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn failure(reason: DeadLetterReason, error: String) -> Failure {
    Failure {
        reason,
        error,
        status: None,
        body: None,
        attempts: 0,
    }
}

/// What the AMQP guard ([`amqp::guard`]) had to rewrite in this message, if
/// anything: such a message is never delivered, since what it says is not
/// what the producer sent.
fn unreadable(props: &lapin::BasicProperties) -> Option<String> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(amqp::guard::UNREADABLE_HEADER)? {
        lapin::types::AMQPValue::LongString(s) => {
            Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        other => Some(format!("{other:?}")),
    }
}

/// The `type` of a body that failed to decode, when it has one, so operators
/// can filter dead letters by type.
pub(super) fn loose_type(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_default()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
