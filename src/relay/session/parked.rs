//! The session's side of parking (see [`super::super::parking`]): the
//! decision, the rows on their way to and from the parked log, and the
//! parked rows read back into the lanes. The log's own task
//! ([`super::super::parked_log`]) does the store's I/O and answers through the
//! session's channel.

use std::collections::HashMap;
use std::sync::Arc;

use lapin::Channel;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::super::dispatch::Outcome;
use super::super::lanes::{Scheduler, UnitId};
use super::super::parked_log::{self, Reply, Request};
use super::super::parking::Parking;
use super::broker;
use super::intake::{self, Rules};
use super::unfinished::{Ledger, Unfinished};
use super::{ConsumedQueue, Msg, Shared};
use crate::clock::now_ms;
use crate::deadletter::{NewParked, Parked};
use crate::metrics::{self, Settled};

/// Parking as one session drives it.
pub(super) struct ParkingDriver {
    shared: Arc<Shared>,
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
}

impl ParkingDriver {
    /// Starts the parked log's task on the session's log, in `tasks`, its replies
    /// forwarded to `tx`.
    pub(super) fn new(
        shared: Arc<Shared>,
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
        let parking = relay
            .parking
            .then(|| Parking::new(relay.park_threshold.min(usize::from(queue.prefetch) / 2)));
        ParkingDriver {
            shared,
            queue,
            parking,
            units: HashMap::new(),
            to_log,
            parking_rows: 0,
            unparking_rows: 0,
            active: !single_active,
            log,
        }
    }

    /// At the session's start: an active session reads the parked set.
    pub(super) async fn start(&mut self) -> Result<(), String> {
        if self.active {
            self.rebuild_parked().await?;
        }
        Ok(())
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
    pub(super) fn park_hot(
        &mut self,
        channels: &[String],
        scheduler: &mut Scheduler,
        taken: &mut HashMap<u64, Unfinished>,
    ) {
        if self.shared.circuit.open_cause().is_some() {
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
    ) {
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
                        self.load_row(row, scheduler, ledger);
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
    fn load_row(&mut self, parked: Parked, scheduler: &mut Scheduler, ledger: &mut Ledger) {
        let Parked { seq, row } = parked;
        let id = UnitId::Parked(seq);
        let now = now_ms();
        let message_id = Some(row.intent_id.as_str()).filter(|s| !s.is_empty());
        let rules = Rules::of(&self.shared.cfg);
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
            self.shared.parked.set(
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
        metrics::parked_oldest_age(self.shared.parked.oldest_age_s(now_ms()));
        if self.active {
            return;
        }
        match self.shared.store.oldest_parked(&self.log).await {
            Ok(Some(_)) => broker::publish_wake(channel, &self.queue.name).await,
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "cannot look at the parked log"),
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
