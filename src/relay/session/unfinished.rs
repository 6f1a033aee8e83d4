//! Work the session took and has not finished: a delivery from the queue or
//! a row of the parked log read back, one type for both, since either may
//! be delivered, dead-lettered or (a delivery) parked, and each of those
//! builds its row from the same fields. [`Ledger`] is what finishing one
//! writes: the acks, the dead letters handed to the writer, the delivery
//! metrics and the dedup cache.

use std::sync::{Arc, Mutex};

use lapin::types::ShortString;
use tokio::sync::mpsc;

use super::super::dead_letter_writer::ToStore;
use super::super::dedup::{self, DedupCache};
use super::super::dispatch::Failure;
use super::super::lanes::UnitId;
use crate::amqp;
use crate::amqp::acker::AckTracker;
use crate::clock::now_ms;
use crate::deadletter::{replay, NewDeadLetter, NewParked};
use crate::metrics::{self, Settled};

/// A delivery taken from the queue, or a parked row read back, and not yet
/// finished (delivered, or stored as a dead letter); its event waits in the
/// lanes meanwhile.
pub(super) struct Unfinished {
    body: Vec<u8>,
    /// lapin's for a delivery, kept as is: only a stored row needs a copy.
    routing_key: ShortString,
    source: Source,
    pub(super) intent_id: String,
    /// The dedup cache's key for `intent_id`, kept by
    /// [`Unfinished::identify`]: a delivery's is looked up when taken and
    /// inserted when delivered, and hashing it once saves a SHA-256.
    dedup_key: Option<u64>,
    pub(super) kind: String,
    pub(super) channels: Vec<String>,
    /// Enqueue time (created_at, else AMQP timestamp), for latency.
    pub(super) enqueued_at_ms: Option<i64>,
    first_seen_ms: i64,
}

/// Where the headers of an unfinished unit come from.
enum Source {
    /// Kept as received; turned into JSON only if it is dead-lettered or
    /// parked. Boxed: it is most of the unit's size and rarely read, and the
    /// session holds a prefetch window of these (10,000 by default).
    Delivery(Box<lapin::BasicProperties>),
    /// A parked row's, as the log stored them.
    Parked {
        headers: serde_json::Value,
        replay_of: Option<i64>,
    },
}

impl Unfinished {
    /// A delivery as received, before its body is decoded: its id is the
    /// AMQP `message_id` and its enqueue time the AMQP timestamp until the
    /// intent says better.
    pub(super) fn received(
        body: Vec<u8>,
        routing_key: ShortString,
        properties: Box<lapin::BasicProperties>,
        first_seen_ms: i64,
    ) -> Unfinished {
        let enqueued_at_ms = properties
            .timestamp()
            .map(|s| (s as i64).saturating_mul(1000));
        let intent_id = properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        Unfinished {
            body,
            routing_key,
            source: Source::Delivery(properties),
            intent_id,
            dedup_key: None,
            kind: String::new(),
            channels: Vec::new(),
            enqueued_at_ms,
            first_seen_ms,
        }
    }

    /// A parked row read back, of intent type `kind`.
    pub(super) fn parked(row: NewParked, kind: String) -> Unfinished {
        Unfinished {
            body: row.body,
            routing_key: row.routing_key.into(),
            source: Source::Parked {
                headers: row.headers,
                replay_of: row.replay_of,
            },
            intent_id: row.intent_id,
            dedup_key: None,
            kind,
            channels: row.channels,
            enqueued_at_ms: row.enqueued_at_ms,
            first_seen_ms: row.first_seen_at_ms,
        }
    }

    /// Names the unit by its decoded intent's id.
    pub(super) fn identify(&mut self, intent_id: String) {
        self.dedup_key = Some(intent_id.as_str())
            .filter(|id| !id.is_empty())
            .map(dedup::key);
        self.intent_id = intent_id;
    }

    /// The dedup cache's key for `intent_id`; `None` when it is empty.
    pub(super) fn dedup_key(&self) -> Option<u64> {
        self.dedup_key.or_else(|| {
            Some(self.intent_id.as_str())
                .filter(|id| !id.is_empty())
                .map(dedup::key)
        })
    }

    pub(super) fn body(&self) -> &[u8] {
        &self.body
    }

    /// The AMQP properties of a delivery; `None` for a parked row.
    pub(super) fn properties(&self) -> Option<&lapin::BasicProperties> {
        match &self.source {
            Source::Delivery(props) => Some(props),
            Source::Parked { .. } => None,
        }
    }

    /// `(headers, replay_of)` as a row stores them.
    fn stored_headers(source: Source) -> (serde_json::Value, Option<i64>) {
        match source {
            Source::Delivery(props) => (amqp::properties_json(&props), replay::replay_of(&props)),
            Source::Parked { headers, replay_of } => (headers, replay_of),
        }
    }

    /// As a row of the parked log.
    pub(super) fn parked_row(self) -> NewParked {
        let (headers, replay_of) = Unfinished::stored_headers(self.source);
        NewParked {
            headers,
            replay_of,
            intent_id: self.intent_id,
            channels: self.channels,
            body: self.body,
            routing_key: self.routing_key.as_str().to_owned(),
            enqueued_at_ms: self.enqueued_at_ms,
            first_seen_at_ms: self.first_seen_ms,
            parked_at_ms: now_ms(),
        }
    }

    /// As a dead letter, for why it failed.
    pub(super) fn dead_letter_row(self, f: Failure) -> NewDeadLetter {
        let (headers, replay_of) = Unfinished::stored_headers(self.source);
        NewDeadLetter {
            body: self.body,
            routing_key: self.routing_key.as_str().to_owned(),
            headers,
            intent_id: Some(self.intent_id).filter(|id| !id.is_empty()),
            intent_type: Some(self.kind).filter(|k| !k.is_empty()),
            channels: self.channels,
            reason: f.reason,
            error: f.error,
            pusher_status: f.status,
            pusher_body: f.body,
            attempts: f.attempts,
            first_seen_at_ms: self.first_seen_ms,
            dead_lettered_at_ms: now_ms(),
            replay_of,
        }
    }
}

/// What finishing a unit writes, shared by deliveries and parked rows.
pub(super) struct Ledger {
    pub(super) acks: AckTracker,
    to_store: mpsc::UnboundedSender<ToStore>,
    /// Dead letters handed to the writer and not yet stored: their units
    /// are finished only once stored, so draining waits for them.
    pub(super) storing: usize,
    /// Metric handles, kept so the hot path skips registry lookups.
    delivery_metrics: metrics::DeliveryMetrics,
    dedup: Arc<Mutex<DedupCache>>,
}

impl Ledger {
    pub(super) fn new(
        acks: AckTracker,
        to_store: mpsc::UnboundedSender<ToStore>,
        dedup: Arc<Mutex<DedupCache>>,
    ) -> Ledger {
        Ledger {
            acks,
            to_store,
            storing: 0,
            delivery_metrics: metrics::DeliveryMetrics::new(),
            dedup,
        }
    }

    /// A delivery is finished: it goes to the acker, counted in its one
    /// outcome.
    pub(super) fn settle(&mut self, tag: u64, outcome: Settled, now: std::time::Instant) {
        metrics::intents_settled(outcome, 1);
        self.acks.finish(tag, now);
    }

    /// Hands a unit that can never be sent to the dead-letter writer; it is
    /// finished once the row is stored.
    pub(super) fn dead_letter(&mut self, id: UnitId, unit: Unfinished, f: Failure) {
        let row = unit.dead_letter_row(f);
        // The writer lives as long as this session; a send error means the
        // session is ending and the delivery will come back unacked (a
        // parked row stays in the log).
        if self.to_store.send(ToStore { id, row }).is_ok() {
            self.storing += 1;
        }
    }

    /// Pusher accepted the unit's event: counted, timed from its enqueue,
    /// and remembered so that a redelivery of it is not sent again.
    pub(super) fn delivered(&mut self, unit: &Unfinished) {
        self.delivery_metrics.delivered(unit.channels.len() as u64);
        if let Some(born) = unit.enqueued_at_ms {
            let ms = now_ms().saturating_sub(born).max(0);
            self.delivery_metrics.latency(ms as f64 / 1000.0);
        }
        if let Some(k) = unit.dedup_key() {
            self.dedup().insert(k);
        }
    }

    /// Whether an intent of this id was delivered already.
    pub(super) fn seen(&self, intent_id: &str) -> bool {
        self.dedup().contains(intent_id)
    }

    /// As [`Ledger::seen`], by the id's [`dedup::key`].
    pub(super) fn seen_key(&self, k: u64) -> bool {
        self.dedup().contains_key(k)
    }

    fn dedup(&self) -> std::sync::MutexGuard<'_, DedupCache> {
        self.dedup.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::{AMQPValue, FieldTable};

    use super::*;
    use crate::deadletter::replay::DEAD_LETTER_HEADER;
    use crate::deadletter::DeadLetterReason;

    fn received() -> Unfinished {
        let mut headers = FieldTable::default();
        headers.insert(
            DEAD_LETTER_HEADER.into(),
            AMQPValue::LongString("42".into()),
        );
        let props = lapin::BasicProperties::default()
            .with_message_id("m-1".into())
            .with_timestamp(1_700_000_000)
            .with_headers(headers);
        let mut unit = Unfinished::received(b"{}".to_vec(), "rk".into(), Box::new(props), 5);
        unit.kind = "notification".into();
        unit.channels = vec!["a".into()];
        unit
    }

    fn failure() -> Failure {
        Failure {
            reason: DeadLetterReason::Rejected,
            error: "400".into(),
            status: Some(400),
            body: None,
            attempts: 1,
        }
    }

    #[test]
    fn a_delivery_takes_its_id_and_enqueue_time_from_its_properties() {
        let unit = received();
        assert_eq!(unit.intent_id, "m-1");
        assert_eq!(unit.enqueued_at_ms, Some(1_700_000_000_000));
        assert!(unit.properties().is_some());
    }

    #[test]
    fn a_parked_delivery_read_back_and_dead_lettered_keeps_what_it_was_given() {
        let direct = received().dead_letter_row(failure());
        let row = received().parked_row();
        assert_eq!(row.replay_of, Some(42));
        let back = Unfinished::parked(row, "notification".into());
        assert!(back.properties().is_none());
        let via_log = back.dead_letter_row(failure());
        assert_eq!(via_log.headers, direct.headers);
        assert_eq!(via_log.replay_of, Some(42));
        assert_eq!(via_log.intent_id.as_deref(), Some("m-1"));
        assert_eq!(via_log.intent_type.as_deref(), Some("notification"));
        assert_eq!(via_log.channels, direct.channels);
        assert_eq!(via_log.first_seen_at_ms, 5);
        assert_eq!(via_log.routing_key, "rk");
    }

    #[test]
    fn the_ledger_remembers_a_delivered_id_and_hands_dead_letters_to_the_writer() {
        let (to_store, mut rows) = mpsc::unbounded_channel();
        let dedup = Arc::new(Mutex::new(DedupCache::new(10)));
        let mut ledger = Ledger::new(AckTracker::new(10), to_store, dedup);
        assert!(!ledger.seen("m-1"));
        ledger.delivered(&received());
        assert!(ledger.seen("m-1"));

        ledger.dead_letter(UnitId::Parked(7), received(), failure());
        assert_eq!(ledger.storing, 1);
        let stored = rows.try_recv().expect("a row for the writer");
        assert_eq!(stored.id, UnitId::Parked(7));
        assert_eq!(stored.row.reason, DeadLetterReason::Rejected);
    }
}
