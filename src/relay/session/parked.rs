//! The session's side of parking (see [`super::super::parking`]): the
//! decision, the rows on their way to and from the parked log, and the
//! parked rows read back into the lanes. The log's own task
//! ([`super::super::parked_log`]) does the store's I/O and answers through the
//! session's channel.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use lapin::Channel;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::super::circuit::Circuit;
use super::super::dispatch::Outcome;
use super::super::lanes::{Scheduler, UnitId};
use super::super::parked_log::{self, Reply, Request};
use super::super::parking::{Board, Parking, Route};
use super::broker;
use super::intake::{self, Rules};
use super::unfinished::{Ledger, Unfinished};
use super::{ConsumedQueue, Msg, Shared};
use crate::clock::now_ms;
use crate::config::RelayConfig;
use crate::deadletter::{NewParked, Parked, Store};
use crate::metrics::{self, Settled};
use crate::pusher::Trigger;

/// Parking as one session drives it.
pub(super) struct ParkingDriver {
    store: Store,
    circuit: Arc<Circuit>,
    /// Where operators see what is parked.
    board: Arc<Board>,
    relay: RelayConfig,
    /// Pusher's event size limit, for decoding rows read back.
    max_event_bytes: usize,
    queue: Arc<ConsumedQueue>,
    /// Which channels are parked; `None` with `RELAY_PARKING=off`.
    parking: Option<Parking>,
    /// Parked rows read into the lanes, by seq.
    units: HashMap<i64, Unfinished>,
    to_log: mpsc::UnboundedSender<Request>,
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
    /// Deliveries for the log while it is full, in arrival order: unacked,
    /// so they stay RabbitMQ's until there is room.
    waiting: VecDeque<(u64, Unfinished, Trigger)>,
    /// With competing consumers, the log takes a lease (see
    /// `deadletter::lease`): renewed every `lease / 3`.
    lease: Option<Duration>,
    /// Set when the lease was found taken: another worker adopted this
    /// log's rows, so the session's parked set is wrong and it ends.
    lost_lease: Option<String>,
}

impl ParkingDriver {
    /// Starts the parked log's task on the session's log, in `tasks`, its replies
    /// forwarded to `tx`.
    pub(super) fn new(
        shared: &Shared,
        queue: Arc<ConsumedQueue>,
        tasks: &mut JoinSet<()>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> ParkingDriver {
        let single_active = shared.cfg.amqp.single_active_queues();
        // A single-active queue has one owner at a time, so its log is the
        // queue's; competing workers each keep their own, by host name.
        let log = if single_active {
            queue.name.clone()
        } else {
            format!("{}@{}", queue.name, host_name())
        };
        let (to_log, requests) = mpsc::unbounded_channel();
        let (replies, mut replies_rx) = mpsc::unbounded_channel();
        tasks.spawn(parked_log::run(
            shared.store.clone(),
            shared.health.clone(),
            log.clone(),
            requests,
            replies,
        ));
        let forward = tx.clone();
        tasks.spawn(async move {
            while let Some(reply) = replies_rx.recv().await {
                if forward.send(Msg::ParkedLog(reply)).is_err() {
                    return;
                }
            }
        });
        let relay = &shared.cfg.relay;
        let parking = relay.parking.then(|| {
            Parking::new(
                relay.park_threshold.min(usize::from(queue.prefetch) / 2),
                relay.parked_max_rows,
            )
        });
        let lease = (relay.parking && !single_active).then_some(relay.parked_lease);
        ParkingDriver {
            store: shared.store.clone(),
            circuit: shared.circuit.clone(),
            board: shared.parked.clone(),
            relay: relay.clone(),
            max_event_bytes: shared.cfg.pusher.max_event_bytes,
            queue,
            parking,
            units: HashMap::new(),
            to_log,
            parking_rows: 0,
            unparking_rows: 0,
            active: !single_active,
            log,
            waiting: VecDeque::new(),
            lease,
            lost_lease: None,
        }
    }

    /// At the session's start: an active session reads the parked set.
    pub(super) async fn start(&mut self) -> Result<(), String> {
        if self.lease.is_some() {
            // Before the log is read: a worker that took it over after the
            // read would leave this session counting rows it no longer has.
            self.store
                .renew_lease(&self.log, &self.queue.name, now_ms())
                .await
                .map_err(|e| {
                    format!("cannot renew the parked log's lease before consuming: {e}")
                })?;
        }
        if self.active {
            self.rebuild_parked().await?;
        }
        Ok(())
    }

    /// How often the lease is renewed, when the log takes one.
    pub(super) fn lease_every(&self) -> Option<Duration> {
        self.lease.map(|l| l / 3)
    }

    /// Renews the lease and adopts the logs of gone workers, through the
    /// log's task.
    pub(super) fn renew_lease(&mut self) {
        let Some(lease) = self.lease else {
            return;
        };
        let now = now_ms();
        let _ = self.to_log.send(Request::Lease {
            queue: self.queue.name.clone(),
            now_ms: now,
            cutoff_ms: now - lease.as_millis() as i64,
        });
    }

    /// Why the session must end, once: its log was adopted by another
    /// worker while the lease could not be renewed.
    pub(super) fn take_lost_lease(&mut self) -> Option<String> {
        self.lost_lease.take()
    }

    /// A delivery came: the first one makes a single-active consumer the
    /// active one, which reads the parked set before routing anything.
    pub(super) async fn delivery_came(&mut self) -> Result<(), String> {
        if !self.active {
            self.active = true;
            self.rebuild_parked().await?;
        }
        Ok(())
    }

    /// The parking decision, for routing a delivery; `None` when off.
    pub(super) fn decision(&mut self) -> Option<&mut Parking> {
        self.parking.as_mut()
    }

    /// Rows being written to the log, not yet committed.
    pub(super) fn rows_being_written(&self) -> usize {
        self.parking_rows
    }

    /// Reads the parked set from the log: what an earlier session (this
    /// worker's, or another's before a takeover) left parked goes on before
    /// any delivery of those channels is routed.
    async fn rebuild_parked(&mut self) -> Result<(), String> {
        let Some(parking) = self.parking.as_mut() else {
            return Ok(());
        };
        let groups = self
            .store
            .parked_groups(&self.log)
            .await
            .map_err(|e| format!("cannot read the parked log before consuming: {e}"))?;
        if !groups.is_empty() {
            let rows: u64 = groups.iter().map(|g| g.rows).sum();
            tracing::info!(queue = %self.queue.name, groups = groups.len(), rows, "parked channels found in the log; they go on in order");
        }
        let merges = parking.rebuild(groups, now_ms());
        for (into, from) in merges {
            self.send_park(into, from, Vec::new());
        }
        self.publish_parked();
        Ok(())
    }

    /// A delivery for the full log waits, unacked, behind the others.
    pub(super) fn wait_for_room(&mut self, tag: u64, unit: Unfinished, trigger: Trigger) {
        if let Some(p) = self.parking.as_mut() {
            p.hold(&unit.channels);
        }
        if self.waiting.is_empty() {
            tracing::warn!(queue = %self.queue.name, max_rows = self.relay.parked_max_rows, "the parked log is full: intents of parked channels stay in RabbitMQ until its rows are delivered");
        }
        self.waiting.push_back((tag, unit, trigger));
        metrics::parked_waiting_for_room(1.0);
    }

    /// Routes the deliveries waiting for room, oldest first, for as long as
    /// there is room.
    fn release_waiting(&mut self, scheduler: &mut Scheduler, taken: &mut HashMap<u64, Unfinished>) {
        while let Some((_, unit, _)) = self.waiting.front() {
            let Some(parking) = self.parking.as_mut() else {
                return;
            };
            let route = parking.route_held(&unit.channels);
            if route == Route::Full {
                return;
            }
            let Some((tag, unit, trigger)) = self.waiting.pop_front() else {
                return;
            };
            metrics::parked_waiting_for_room(-1.0);
            match route {
                Route::Park { group, merge } => {
                    let row = unit.parked_row();
                    self.send_park(group, merge, vec![(tag, row)]);
                }
                Route::Lanes | Route::Full => {
                    scheduler.push(UnitId::Delivery(tag), trigger, Instant::now().into_std());
                    taken.insert(tag, unit);
                }
            }
        }
    }

    /// Parks every channel of `channels` the session now holds too much of:
    /// the tail of its lane that waits moves to the log, and later intents
    /// of it follow. Not while the circuit is open: an outage holds every
    /// lane, and the backlog belongs in RabbitMQ.
    pub(super) fn park_hot(
        &mut self,
        channels: &[String],
        scheduler: &mut Scheduler,
        taken: &mut HashMap<u64, Unfinished>,
    ) {
        if self.circuit.open_cause().is_some() {
            return;
        }
        // A full log takes no more: the channel stays in the window.
        if self.parking.as_ref().is_some_and(Parking::full) {
            return;
        }
        for channel in channels {
            let held = scheduler.held(channel);
            let Some(parking) = self.parking.as_mut() else {
                return;
            };
            if !parking.over_threshold(channel, held) {
                continue;
            }
            parking.park(channel, now_ms());
            let tail = scheduler.take_tail(channel);
            let rows: Vec<(u64, NewParked)> = tail
                .into_iter()
                .filter_map(|(id, _)| match id {
                    UnitId::Delivery(tag) => Some((tag, taken.remove(&tag)?.parked_row())),
                    UnitId::Parked(_) => None,
                })
                .collect();
            parking.adding(channel, rows.len() as u64);
            tracing::info!(queue = %self.queue.name, %channel, held = scheduler.held(channel) + rows.len(), moved = rows.len(), "parked a hot channel: its intents wait in the parked log, in order, while the queue serves the others");
            self.send_park(channel.clone(), Vec::new(), rows);
            self.publish_parked();
        }
    }

    pub(super) fn send_park(
        &mut self,
        group: String,
        merge: Vec<String>,
        rows: Vec<(u64, NewParked)>,
    ) {
        let n = rows.len();
        if self
            .to_log
            .send(Request::Park { group, merge, rows })
            .is_ok()
        {
            self.parking_rows += n;
        }
    }

    /// Asks for a page of every parked group that is running low in memory.
    pub(super) fn read_parked_pages(&mut self) {
        if !self.active {
            return;
        }

        let Some(parking) = self.parking.as_mut() else {
            return;
        };
        for (group, limit) in parking.wanting_pages() {
            let _ = self.to_log.send(Request::Read { group, limit });
        }
    }

    /// Whether every write and delete of the parked log has been answered.
    pub(super) fn log_settled(&self) -> bool {
        self.parking_rows == 0 && self.unparking_rows == 0
    }

    pub(super) fn on_parked_log(
        &mut self,
        reply: Reply,
        lost: bool,
        scheduler: &mut Scheduler,
        ledger: &mut Ledger,
        taken: &mut HashMap<u64, Unfinished>,
    ) {
        if self.parking.is_none() {
            return;
        }
        self.on_reply(reply, lost, scheduler, ledger);
        if !lost {
            self.release_waiting(scheduler, taken);
        }
    }

    fn on_reply(
        &mut self,
        reply: Reply,
        lost: bool,
        scheduler: &mut Scheduler,
        ledger: &mut Ledger,
    ) {
        match reply {
            Reply::Parked { group, tags, added } => {
                self.parking_rows = self.parking_rows.saturating_sub(tags.len());
                metrics::intents_parked(tags.len());
                if !lost {
                    let now = Instant::now().into_std();
                    for tag in &tags {
                        ledger.settle(*tag, Settled::Parked, now);
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
                        let channels = row.row.channels.clone();
                        self.load_row(row, scheduler, ledger);
                        let opened = self
                            .parking
                            .as_mut()
                            .map(|p| p.in_lanes(&group, &channels))
                            .unwrap_or_default();
                        for view in &opened {
                            tracing::info!(queue = %self.queue.name, channels = ?view.channels, "unparked: the intent it waited for is on its way");
                        }
                        if !opened.is_empty() {
                            self.publish_parked();
                        }
                    }
                }
            }
            Reply::Lease { held, adopted } => {
                if held == Some(false) {
                    self.lost_lease = Some(format!("the lease on parked log {} ran out and another worker adopted its rows; starting over with what it holds now", self.log));
                }
                for a in adopted {
                    let rows: u64 = a.groups.iter().map(|g| g.rows).sum();
                    metrics::parked_log_adopted();
                    tracing::warn!(queue = %self.queue.name, from = %a.from, rows, groups = a.groups.len(), "adopted the parked log of a worker whose lease ran out: its intents go on from here");
                    let merges = self
                        .parking
                        .as_mut()
                        .map(|p| p.adopt(a.groups, now_ms()))
                        .unwrap_or_default();
                    for (into, from) in merges {
                        self.send_park(into, from, Vec::new());
                    }
                }
                self.publish_parked();
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
    fn load_row(&mut self, parked: Parked, scheduler: &mut Scheduler, ledger: &mut Ledger) {
        let Parked { seq, row } = parked;
        let id = UnitId::Parked(seq);
        let now = now_ms();
        let message_id = Some(row.intent_id.as_str()).filter(|s| !s.is_empty());
        let rules = Rules::with(self.max_event_bytes, &self.relay);
        let intent =
            match intake::decode_body(&row.body, message_id, row.enqueued_at_ms, &rules, now) {
                Ok(intent) => intent,
                Err(f) => {
                    let kind = intake::loose_type(&row.body);
                    ledger.dead_letter(id, Unfinished::parked(row, kind), f);
                    return;
                }
            };
        if ledger.seen(&intent.id) {
            metrics::intent_duplicate();
            self.finish_row(seq);
            return;
        }
        scheduler.push(id, intent.trigger, Instant::now().into_std());
        self.units.insert(seq, Unfinished::parked(row, intent.kind));
    }

    /// A parked row is done with: delete it from the log.
    pub(super) fn finish_row(&mut self, seq: i64) {
        let Some(parking) = self.parking.as_mut() else {
            return;
        };
        parking.finished(seq);
        if self
            .to_log
            .send(Request::Unpark { seqs: vec![seq] })
            .is_ok()
        {
            self.unparking_rows += 1;
        }
    }

    pub(super) fn on_parked_outcome(
        &mut self,
        seq: i64,
        outcome: Outcome,
        lost: bool,
        ledger: &mut Ledger,
    ) {
        let Some(unit) = self.units.remove(&seq) else {
            return;
        };
        match outcome {
            Outcome::Delivered => {
                ledger.delivered(&unit);
                self.finish_row(seq);
            }
            // Lost or returned: the row stays in the log for the next session.
            Outcome::Failed(_) if lost => {}
            Outcome::Returned => {}
            Outcome::Failed(f) => {
                tracing::warn!(id = %unit.intent_id, reason = f.reason.as_str(), error = %f.error, "delivery of a parked intent failed; dead-lettering");
                ledger.dead_letter(UnitId::Parked(seq), unit, f);
            }
        }
    }

    /// What operators see of this session's parking: the console's list and
    /// the gauges.
    fn publish_parked(&self) {
        if let Some(parking) = &self.parking {
            let now = now_ms();
            self.board.set(
                &self.queue.name,
                parking.views(now),
                parking.oldest_parked_ms(),
            );
        }
    }

    /// Every few seconds: the oldest parked intent's age, and on a standby
    /// session a wake-up for the active consumer when the log has rows.
    pub(super) async fn tick_parking(&self, channel: &Channel) {
        if self.parking.is_none() {
            return;
        }
        self.publish_parked();
        metrics::parked_oldest_age(self.board.oldest_age_s(now_ms()));
        if self.active {
            return;
        }
        match self.store.oldest_parked(&self.log).await {
            Ok(Some(_)) => broker::publish_wake(channel, &self.queue.name).await,
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "cannot look at the parked log"),
        }
    }
}

impl Drop for ParkingDriver {
    /// What waits for room goes back to the queue with the session's
    /// channel: the gauge forgets it.
    fn drop(&mut self) {
        if !self.waiting.is_empty() {
            metrics::parked_waiting_for_room(-(self.waiting.len() as f64));
        }
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
