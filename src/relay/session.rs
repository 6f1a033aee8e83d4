//! One connection's worth of relaying: the event loop that takes deliveries,
//! feeds the lanes, starts requests, collects outcomes and acks.
//!
//! What a session changes lives in its one task; the only lock it takes
//! per delivery is the dedup cache's, which the sessions of every queue
//! share (one capacity for the worker) and which is held for one hash
//! lookup or insert. Requests and dead-letter writes run in their own tasks
//! and report back through channels. Where the session is in its life is
//! one value, a `Phase`, changed only by its own methods. A session
//! ends on shutdown (after draining), on a handoff, or when the connection
//! is lost (the caller reconnects).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::circuit::Circuit;
use super::concurrency::Limiter;
use super::dedup::DedupCache;
use super::dispatch::{self, Failure, Outcome};
use super::health::Health;
use super::lanes::{Scheduler, UnitId};
use super::phase::Phase;
use super::retry::RetryPolicy;
use super::writer::{self, ToStore};
use crate::amqp::acker::{AckTracker, STRAGGLER_DELAY};
use crate::amqp::{self, AmqpError};
use crate::config::Config;
use crate::deadletter::{replay, NewDeadLetter, Reason, Store};
use crate::intent::{self, DecodeContext, Intent};
use crate::metrics;
use crate::pusher::Client;
use crate::shutdown::Shutdown;

/// How often the queue depth is sampled for the lag gauge.
const LAG_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// After a connection loss, how long in-flight requests may finish so that
/// what they delivered is remembered (and not sent again on redelivery).
const LOST_DRAIN: Duration = Duration::from_secs(5);

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

enum Msg {
    Done(Vec<(UnitId, Outcome)>),
    Stored(Vec<(u64, Reason)>),
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
    let conn = amqp::connect(&shared.cfg.amqp, &format!("pusher-relay {}", queue.name)).await?;
    let channel = amqp::open_channel(&conn).await?;
    amqp::declare_topology(&channel, &shared.cfg.amqp).await?;
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
    let answered = channel
        .queue_declare(queue, passive, FieldTable::default())
        .await
        .is_ok();
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
}

impl Session {
    fn new(shared: Arc<Shared>, queue: Arc<ConsumedQueue>, channel: Channel) -> Session {
        let (tx, rx) = mpsc::unbounded_channel();
        let (to_store, rows) = mpsc::unbounded_channel();
        let (stored_tx, mut stored_rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(
            shared.store.clone(),
            shared.health.clone(),
            rows,
            stored_tx,
        ));
        let forward = tx.clone();
        tokio::spawn(async move {
            while let Some(stored) = stored_rx.recv().await {
                if forward.send(Msg::Stored(stored)).is_err() {
                    return;
                }
            }
        });
        Session {
            shared,
            queue,
            channel,
            taken: HashMap::new(),
            scheduler: Scheduler::default(),
            acks: AckTracker::default(),
            in_flight: 0,
            storing: 0,
            consumed: HashMap::new(),
            delivery_metrics: metrics::DeliveryMetrics::new(),
            tx,
            rx,
            to_store,
        }
    }

    async fn run(&mut self, consumer: &mut lapin::Consumer, shutdown: &mut Shutdown) -> End {
        let single_active = self.shared.cfg.amqp.single_active_queues();
        let mut circuit_changes = self.shared.circuit.subscribe();
        let mut phase = Phase::Consuming {
            paused: self.shared.circuit.open_cause().is_some(),
        };
        let mut ack_tick = tokio::time::interval(STRAGGLER_DELAY / 2);
        ack_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lag_tick = tokio::time::interval(LAG_SAMPLE_INTERVAL);
        lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            if self.queue.handoff.load(Ordering::Relaxed) && phase.hand_off() {
                tracing::info!(queue = %self.queue.name, in_flight = self.in_flight, "handing this queue to another worker: finishing what is in flight, leaving the rest for them");
            }
            // 1. Start every request that is due and allowed.
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
                Phase::Lost { since, .. } => Some(*since + LOST_DRAIN),
                _ => phase.deadline(),
            };
            tokio::select! {
                _ = shutdown.recv(), if phase.awaits_shutdown() => {
                    self.begin_shutdown(&mut phase, single_active).await;
                }
                Some(msg) = self.rx.recv() => self.on_message(msg, phase.is_lost()),
                delivery = consumer.next(), if phase.takes_deliveries() => match delivery {
                    Some(Ok(delivery)) => self.on_delivery(delivery),
                    Some(Err(e)) => phase.lose(e.to_string()),
                    None => phase.lose("the broker cancelled the consumer".into()),
                },
                _ = circuit_changes.changed() => {
                    // A change to closed means it was open since the last
                    // look: the failures that opened it drove the limit
                    // down, and they say nothing of the Pusher that is back.
                    let cause = self.shared.circuit.open_cause();
                    if cause.is_none() {
                        self.shared.limiter.restart();
                    }
                    phase.pause(cause.is_some());
                    self.shared.health.set_circuit(cause.map(|c| c.describe()));
                }
                _ = sleep_until(linger_deadline), if linger_deadline.is_some() => {}
                _ = self.shared.limiter.room(), if !self.scheduler.is_empty() => {}
                _ = ack_tick.tick(), if !phase.is_lost() && self.acks.unacked() > 0 => {
                    if let Err(e) = self.send_acks(Some(STRAGGLER_DELAY)).await {
                        phase.lose(e);
                    }
                }
                _ = lag_tick.tick(), if !phase.is_lost() => self.sample_lag().await,
                _ = sleep_until(deadline), if deadline.is_some() => {}
                _ = self.queue.wake.notified(), if phase.hands_off_on_request() => {}
            }
        }
    }

    /// Whether the session is over, and how.
    fn end(&self, phase: &Phase) -> Option<End> {
        match phase {
            Phase::Consuming { .. } => None,
            Phase::Lost { reason, since } => (self.in_flight == 0 || since.elapsed() >= LOST_DRAIN)
                .then(|| End::ConnectionLost(reason.clone())),
            // What was taken and not started goes back to the queue, in its
            // order, for the worker that takes over: nothing it sends can
            // overtake what this one sent.
            Phase::HandingOff { shutdown } if self.in_flight == 0 && self.storing == 0 => {
                Some(match shutdown {
                    Some(_) => End::Shutdown,
                    None => End::HandedOff,
                })
            }
            Phase::HandingOff { shutdown } => shutdown.and_then(|by| self.drained_or_late(by)),
            Phase::Draining { deadline, .. } => self.drained_or_late(*deadline),
        }
    }

    fn drained_or_late(&self, deadline: Instant) -> Option<End> {
        if self.taken.is_empty() && self.storing == 0 {
            tracing::info!("drained: every taken intent is delivered or dead-lettered and acked");
            return Some(End::Shutdown);
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                unfinished = self.taken.len() + self.storing,
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
            tokio::spawn(async move {
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

    async fn sample_lag(&self) {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if let Ok(queue) = self
            .channel
            .queue_declare(&self.queue.name, passive, FieldTable::default())
            .await
        {
            self.queue
                .ready
                .store(queue.message_count(), Ordering::Relaxed);
            let total: u64 = self
                .shared
                .queues
                .iter()
                .map(|q| u64::from(q.ready.load(Ordering::Relaxed)))
                .sum();
            metrics::consumer_lag(total);
        }
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
                self.dead_letter(tag, taken, failure(Reason::Expired, error));
                return;
            }
        }
        if self.dedup().contains(&intent.id) {
            metrics::intent_duplicate();
            tracing::debug!(id = %intent.id, "already delivered; acking the redelivery without sending");
            self.acks.finish(tag, Instant::now().into_std());
            return;
        }

        self.scheduler
            .push(tag, intent.trigger, Instant::now().into_std());
        self.taken.insert(tag, taken);
    }

    /// The intent a delivery carries, or why it can never be sent.
    fn decode(&self, taken: &Taken, message_id: Option<&str>, now: i64) -> Result<Intent, Failure> {
        // A message the guard rewrote is not what the producer sent: it is
        // never decoded, let alone delivered.
        if let Some(problems) = unreadable(&taken.properties) {
            let reason = if amqp::guard::body_was_cut(&problems) {
                Reason::TooLarge
            } else {
                Reason::Invalid
            };
            let error = format!("the AMQP message was rewritten to be read: {problems}");
            return Err(failure(reason, error));
        }
        let ctx = DecodeContext {
            message_id,
            enqueued_at_ms: taken.enqueued_at_ms,
            now_ms: now,
            max_event_bytes: self.shared.cfg.pusher.max_event_bytes,
            templates: &self.shared.cfg.relay.templates,
        };
        intent::decode(&taken.body, &ctx).map_err(|e| {
            let reason = match e.reason() {
                intent::Reason::TooLarge => Reason::TooLarge,
                intent::Reason::Invalid => Reason::Invalid,
            };
            failure(reason, e.to_string())
        })
    }

    fn on_message(&mut self, msg: Msg, lost: bool) {
        match msg {
            Msg::Done(outcomes) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                metrics::in_flight(self.in_flight);
                let ids: Vec<UnitId> = outcomes.iter().map(|(id, _)| *id).collect();
                self.scheduler.complete(&ids);
                for (tag, outcome) in outcomes {
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
                                self.acks.finish(tag, Instant::now().into_std());
                            }
                        }
                        Outcome::Failed(f) => {
                            tracing::warn!(tag, id = %taken.intent_id, reason = f.reason.as_str(), error = %f.error, "delivery failed; dead-lettering");
                            if !lost {
                                self.dead_letter(tag, taken, f);
                            }
                        }
                    }
                }
            }
            Msg::Stored(rows) => {
                let now = Instant::now().into_std();
                for (tag, reason) in rows {
                    self.storing = self.storing.saturating_sub(1);
                    metrics::dead_letter(reason.as_str());
                    self.acks.finish(tag, now);
                }
            }
        }
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
        if self.to_store.send(ToStore { tag, row }).is_ok() {
            self.storing += 1;
        }
    }

    fn dedup(&self) -> std::sync::MutexGuard<'_, DedupCache> {
        self.shared.dedup.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn failure(reason: Reason, error: String) -> Failure {
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
fn loose_type(body: &[u8]) -> String {
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
