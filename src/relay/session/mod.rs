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
//!
//! Its parts: `intake` says what a delivery is (pure); `unfinished` is the
//! work taken and not yet finished, deliveries and parked rows alike, and
//! the ledger that finishing writes; `parked` drives parking for the
//! session; `broker` is its broker I/O. This file is the session's life and
//! its event loop.

mod broker;
mod intake;
mod parked;
mod unfinished;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Channel;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::circuit::Circuit;
use super::concurrency::Limiter;
use super::dead_letter_writer;
use super::dedup::DedupCache;
use super::dispatch::{self, Outcome};
use super::health::Health;
use super::lanes::{Scheduler, UnitId};
use super::parked_log::Reply;
use super::parking::Board;
use super::phase::Phase;
use super::retry::RetryPolicy;
use crate::amqp::acker::{AckTracker, STRAGGLER_DELAY};
use crate::amqp::{self, AmqpError};
use crate::clock::now_ms;
use crate::config::Config;
use crate::deadletter::{DeadLetterReason, Store};
use crate::metrics::{self, Settled};
use crate::pusher::Client;
use crate::shutdown::Shutdown;
pub use broker::WAKE_HEADER;
pub(crate) use broker::{connection_name, sample_lag, LAG_SAMPLE_INTERVAL};
pub(crate) use intake::loose_type;
use intake::{Incoming, Intake, Rules};
use parked::ParkingDriver;
use unfinished::{Ledger, Unfinished};

/// How often the session looks at whether its channel is still open.
pub(super) const LIVENESS_INTERVAL: Duration = Duration::from_secs(1);

/// After a connection loss, how long in-flight requests may still take
/// beyond Pusher's request timeout: whatever a request answered within it
/// delivered is remembered (so its redelivery is dropped, not sent again),
/// and a request still out when the session ends is cancelled, so no old
/// request lands after what the next session sends for the same channel.
const LOST_DRAIN_MARGIN: Duration = Duration::from_secs(1);

/// One queue the worker consumes (the intent queue, or one shard), and what
/// its sessions tell the rebalancer.
#[derive(Debug)]
pub(crate) struct ConsumedQueue {
    /// Its position in [`Shared::queues`], for health.
    pub(crate) index: usize,
    pub(crate) name: String,
    /// This queue's share of `RELAY_PREFETCH`.
    pub(crate) prefetch: u16,
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
    pub(crate) fn new(index: usize, name: String, prefetch: u16) -> ConsumedQueue {
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
    pub(crate) fn active_within(&self, window: Duration, now_ms: i64) -> bool {
        if self.handoff.load(Ordering::Relaxed) {
            return false;
        }
        let last = self.last_delivery_ms.load(Ordering::Relaxed);
        last > 0 && now_ms.saturating_sub(last) <= window.as_millis() as i64
    }

    /// Asks the session on this queue to hand it to the next worker: finish
    /// what is in flight, then close, leaving the rest unacked for them.
    pub(crate) fn request_handoff(&self) {
        self.handoff.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

/// What every session shares, built once by the worker.
pub(crate) struct Shared {
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
pub(crate) enum End {
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

enum Msg {
    Done(Vec<(UnitId, Outcome)>),
    Stored(Vec<(UnitId, DeadLetterReason)>),
    ParkedLog(Reply),
}

/// Runs one session on `queue`, on a fresh connection, until shutdown,
/// connection loss or handoff.
pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: Arc<ConsumedQueue>,
    mut shutdown: Shutdown,
) -> Result<End, AmqpError> {
    let (conn, channel, mut consumer) =
        broker::consume(&shared.cfg.amqp, &shared.held, &queue).await?;
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
    broker::close(conn, channel, &queue.name).await;
    // Dropped only now: lapin cancels a consumer dropped while its channel is
    // open. On a single-active queue a cancel makes RabbitMQ activate the
    // next worker at once, while the deliveries this one holds go back only
    // when its channel closes, behind what the next one was already given.
    // A closed channel returns them first and then activates the next.
    drop(consumer);
    Ok(end)
}

struct Session {
    shared: Arc<Shared>,
    queue: Arc<ConsumedQueue>,
    channel: Channel,
    /// Deliveries taken and not yet finished, by delivery tag.
    taken: HashMap<u64, Unfinished>,
    scheduler: Scheduler,
    /// The acks, dead letters, metrics and dedup entries finishing writes.
    ledger: Ledger,
    in_flight: usize,
    /// Metric handles, kept so the hot path skips registry lookups.
    consumed: HashMap<String, metrics::IntentCounter>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    parking: ParkingDriver,
    /// Every task the session started; see [`Session::finish`].
    tasks: JoinSet<()>,
}

impl Session {
    fn new(shared: Arc<Shared>, queue: Arc<ConsumedQueue>, channel: Channel) -> Session {
        let (tx, rx) = mpsc::unbounded_channel();
        let (to_store, rows) = mpsc::unbounded_channel();
        let (stored_tx, mut stored_rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        tasks.spawn(dead_letter_writer::run(
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
        let parking = ParkingDriver::new(&shared, queue.clone(), &mut tasks, &tx);
        Session {
            ledger: Ledger::new(
                AckTracker::new(usize::from(queue.prefetch)),
                to_store,
                shared.dedup.clone(),
            ),
            shared,
            queue,
            channel,
            taken: HashMap::new(),
            scheduler: Scheduler::default(),
            in_flight: 0,
            consumed: HashMap::new(),
            tx,
            rx,
            parking,
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
        if let Err(e) = self.parking.start().await {
            phase.lose(e);
        }
        let lease_every = self.parking.lease_every();
        let mut lease_tick =
            tokio::time::interval(lease_every.unwrap_or(Duration::from_secs(3600)));
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            if self.queue.handoff.load(Ordering::Relaxed) && phase.hand_off() {
                tracing::info!(queue = %self.queue.name, in_flight = self.in_flight, "handing this queue to another worker: finishing what is in flight, leaving the rest for them");
            }
            // 1. Start every request that is due and allowed.
            if phase.takes_deliveries() {
                self.parking.read_parked_pages();
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
                    if let Some(reason) = self.parking.take_lost_lease() {
                        phase.lose(reason);
                    }
                }
                _ = lease_tick.tick(), if lease_every.is_some() && !phase.is_lost() => {
                    self.parking.renew_lease();
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
                _ = ack_tick.tick(), if !phase.is_lost() && self.ledger.acks.unacked() > 0 => {
                    let wait = self.ledger.acks.straggler_wait();
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
                    self.parking.tick_parking(&self.channel).await;
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
                if self.in_flight == 0
                    && self.ledger.storing == 0
                    && self.parking.log_settled() =>
            {
                Some(match shutdown {
                    Some(_) => End::Shutdown,
                    None => End::HandedOff,
                })
            }
            Phase::HandingOff { shutdown } => shutdown.and_then(|by| self.drained_or_late(by)),
            Phase::Returning { shutdown }
                if self.in_flight == 0
                    && self.ledger.storing == 0
                    && self.parking.log_settled() =>
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
    /// tasks, the dead-letter writer, the parked log's task and their forwarders, the
    /// lag samples): none outlives it.
    async fn finish(mut self) {
        self.tasks.shutdown().await;
    }

    fn drained_or_late(&self, deadline: Instant) -> Option<End> {
        if self.taken.is_empty()
            && self.ledger.storing == 0
            && self.in_flight == 0
            && self.parking.log_settled()
        {
            tracing::info!("drained: every taken intent is delivered or dead-lettered and acked");
            return Some(End::Shutdown);
        }
        tracing::warn!(
            taken = self.taken.len(),
            storing = self.ledger.storing,
            in_flight = self.in_flight,
            settled = self.parking.log_settled(),
            sched_empty = self.scheduler.is_empty(),
        );
        if Instant::now() >= deadline {
            tracing::warn!(
                unfinished =
                    self.taken.len() + self.ledger.storing + self.parking.rows_being_written(),
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
            broker::cancel(&self.channel).await;
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
        broker::send_acks(&self.channel, &mut self.ledger.acks, stragglers).await
    }

    /// A delivery, seen first for what it says of this session: the first
    /// one makes a single-active consumer the active one. A wake-up is
    /// counted (as consumed type `wake`), acked and goes no further.
    async fn take(&mut self, delivery: lapin::message::Delivery) -> Result<(), String> {
        self.parking.delivery_came().await?;
        let tag = delivery.delivery_tag;
        let now = now_ms();
        self.queue.last_delivery_ms.store(now, Ordering::Relaxed);
        let ledger = &self.ledger;
        let intake = intake::classify(
            Incoming::from(delivery),
            now,
            &Rules::of(&self.shared.cfg),
            |k| ledger.seen_key(k),
            self.parking.decision(),
        );
        let now = Instant::now().into_std();
        match intake {
            Intake::Wake => {
                metrics::intent_consumed("wake");
                self.ledger.settle(tag, Settled::Wake, now);
            }
            Intake::DeadLetter {
                unit,
                failure,
                decoded: false,
            } => {
                metrics::intent_consumed("invalid");
                tracing::warn!(tag, error = %failure.error, "intent can never be sent; dead-lettering it");
                self.ledger
                    .dead_letter(UnitId::Delivery(tag), unit, failure);
            }
            Intake::DeadLetter {
                unit,
                failure,
                decoded: true,
            } => {
                self.count_consumed(&unit.kind);
                self.ledger
                    .dead_letter(UnitId::Delivery(tag), unit, failure);
            }
            Intake::Duplicate(unit) => {
                self.count_consumed(&unit.kind);
                metrics::intent_duplicate();
                tracing::debug!(id = %unit.intent_id, "already delivered; acking the redelivery without sending");
                self.ledger.settle(tag, Settled::Duplicate, now);
            }
            Intake::Park { unit, group, merge } => {
                self.count_consumed(&unit.kind);
                self.parking
                    .send_park(group, merge, vec![(tag, unit.parked_row())]);
            }
            Intake::WaitForRoom(unit, trigger) => {
                self.count_consumed(&unit.kind);
                self.parking.wait_for_room(tag, unit, trigger);
            }
            Intake::Lanes(unit, trigger) => {
                self.count_consumed(&unit.kind);
                let channels = unit.channels.clone();
                self.scheduler.push(UnitId::Delivery(tag), trigger, now);
                // Taken first: parking the channel may move this very delivery.
                self.taken.insert(tag, unit);
                self.parking
                    .park_hot(&channels, &mut self.scheduler, &mut self.taken);
            }
        }
        Ok(())
    }

    fn count_consumed(&mut self, kind: &str) {
        match self.consumed.get(kind) {
            Some(counter) => counter.increment(),
            None => {
                let counter = metrics::intents_consumed(kind);
                counter.increment();
                self.consumed.insert(kind.to_string(), counter);
            }
        }
    }

    /// Takes in what a request, the dead-letter writer or the parked log reports; returns
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
                        UnitId::Parked(seq) => {
                            self.parking
                                .on_parked_outcome(seq, outcome, lost, &mut self.ledger);
                            continue;
                        }
                    };
                    let Some(taken) = self.taken.remove(&tag) else {
                        continue;
                    };
                    match outcome {
                        Outcome::Delivered => {
                            self.ledger.delivered(&taken);
                            if !lost {
                                self.ledger.settle(
                                    tag,
                                    Settled::Delivered,
                                    Instant::now().into_std(),
                                );
                            }
                        }
                        Outcome::Failed(f) => {
                            tracing::warn!(tag, id = %taken.intent_id, reason = f.reason.as_str(), error = %f.error, "delivery failed; dead-lettering");
                            if !lost {
                                self.ledger.dead_letter(id, taken, f);
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
                    self.ledger.storing = self.ledger.storing.saturating_sub(1);
                    metrics::dead_letter(reason.as_str());
                    match id {
                        UnitId::Parked(seq) => self.parking.finish_row(seq),
                        UnitId::Delivery(tag) => {
                            self.ledger.settle(tag, Settled::DeadLettered, now)
                        }
                    }
                }
            }
            Msg::ParkedLog(reply) => self.parking.on_parked_log(
                reply,
                lost,
                &mut self.scheduler,
                &mut self.ledger,
                &mut self.taken,
            ),
        }
        returned
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
