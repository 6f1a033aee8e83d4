//! Every metric the worker exports: name, unit and help text in one place,
//! and one small function per event so that call sites cannot misspell a
//! name or a label. The metrics table of docs/operations.md mirrors this file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const INTENTS_CONSUMED: &str = "pusher_relay_intents_consumed_total";
pub const INTENTS_DUPLICATE: &str = "pusher_relay_intents_duplicate_total";
pub const EVENTS_DELIVERED: &str = "pusher_relay_events_delivered_total";
pub const PUSHER_REQUESTS: &str = "pusher_relay_pusher_requests_total";
pub const PUSHER_REQUEST_DURATION: &str = "pusher_relay_pusher_request_duration_seconds";
pub const BATCH_SIZE: &str = "pusher_relay_batch_size_events";
pub const DELIVERY_LATENCY: &str = "pusher_relay_delivery_latency_seconds";
pub const RETRIES: &str = "pusher_relay_retries_total";
pub const DEAD_LETTERS: &str = "pusher_relay_dead_letters_total";
pub const IN_FLIGHT: &str = "pusher_relay_requests_in_flight";
pub const CIRCUIT_OPEN: &str = "pusher_relay_circuit_open";
pub const CIRCUIT_OPENS: &str = "pusher_relay_circuit_opens_total";
pub const CONSUMER_LAG: &str = "pusher_relay_consumer_lag_messages";
pub const SHARDS_ACTIVE: &str = "pusher_relay_shards_active";
pub const WORKERS: &str = "pusher_relay_workers";
pub const STORE_ERRORS: &str = "pusher_relay_store_errors_total";
pub const WEBHOOKS_RECEIVED: &str = "pusher_relay_webhooks_received_total";
pub const WEBHOOKS_REJECTED: &str = "pusher_relay_webhooks_rejected_total";
pub const WEBHOOKS_DUPLICATE: &str = "pusher_relay_webhooks_duplicate_total";
pub const WEBHOOK_EVENTS_PUBLISHED: &str = "pusher_relay_webhook_events_published_total";
pub const BROKER_CONNECTIONS_LOST: &str = "pusher_relay_broker_connections_lost_total";
pub const DEAD_LETTERS_PENDING: &str = "pusher_relay_dead_letters_pending";
pub const REPLAYS: &str = "pusher_relay_replays_total";
pub const CONCURRENCY_LIMIT: &str = "pusher_relay_concurrency_limit";
pub const CONCURRENCY_DECREASES: &str = "pusher_relay_concurrency_decreases_total";
pub const RTT_BASELINE: &str = "pusher_relay_pusher_rtt_baseline_seconds";
pub const TLS_CERT_EXPIRY: &str = "pusher_relay_tls_certificate_expiry_days";
pub const PARKED_CHANNELS: &str = "pusher_relay_parked_channels";
pub const INTENTS_PARKED: &str = "pusher_relay_intents_parked_total";
pub const INTENTS_UNPARKED: &str = "pusher_relay_intents_unparked_total";
pub const PARKED_OLDEST_AGE: &str = "pusher_relay_parked_oldest_age_seconds";
pub const PARKED_WAITING_FOR_ROOM: &str = "pusher_relay_parked_waiting_for_room";
pub const PARKED_LOGS_ADOPTED: &str = "pusher_relay_parked_logs_adopted_total";
pub const STORE_ROWS: &str = "pusher_relay_store_rows";
pub const INTENTS_SETTLED: &str = "pusher_relay_intents_settled_total";
pub const HELD_BYTES: &str = "pusher_relay_held_bytes";
pub const INTAKE_HELD_BACK: &str = "pusher_relay_intake_held_back_total";

/// How often histogram samples are folded into their buckets. The recorder
/// keeps every sample until then; without this, a worker nobody scrapes
/// would grow by every latency it records.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Bucket bounds of every seconds histogram, shared by the Prometheus
/// recorder and [`Live`]'s delivery latency.
pub const SECONDS_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Running totals of this process, beside the Prometheus registry, for the
/// ops console's history ([`crate::ui::history`]): the recorder's values can
/// only be read back by rendering and parsing its text, so the few the
/// console charts are also counted here, by the same functions below.
#[derive(Debug, Default)]
pub struct Live {
    pub intents_consumed: AtomicU64,
    pub events_delivered: AtomicU64,
    pub pusher_requests: AtomicU64,
    pub retries: AtomicU64,
    pub dead_letters: AtomicU64,
    /// Delivery latencies per [`SECONDS_BUCKETS`] bucket (the last one is
    /// everything above 60 s): the console derives p50/p99 per interval.
    pub latency_buckets: [AtomicU64; SECONDS_BUCKETS.len() + 1],
    /// Messages ready in the consumed queues, as last sampled.
    pub backlog: AtomicU64,
}

/// The process's one [`Live`].
pub fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(Live::default)
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Installs the Prometheus recorder once per process and returns the handle
/// `/metrics` renders. Later calls return the same handle, so tests that
/// start several workers in one process share one registry.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(BATCH_SIZE.into()),
                    &[1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 20.0, 50.0, 100.0],
                )
                .and_then(|b| b.set_buckets(&SECONDS_BUCKETS))
                .and_then(|b| b.install_recorder());
            match handle {
                Ok(handle) => {
                    describe();
                    let upkeep = handle.clone();
                    // A thread, not a task: the handle outlives any one
                    // runtime (tests start several).
                    let _ = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || loop {
                            std::thread::sleep(UPKEEP_INTERVAL);
                            upkeep.run_upkeep();
                        });
                    handle
                }
                // Another recorder is already installed (an embedding app
                // chose its own); ours then renders an empty registry.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

fn describe() {
    describe_counter!(INTENTS_CONSUMED, Unit::Count, "Intents taken from RabbitMQ, by intent type (`invalid` when the body could not be decoded, `wake` for a standby worker's wake-up).");
    describe_counter!(
        INTENTS_DUPLICATE,
        Unit::Count,
        "Redelivered intents dropped because this worker had already delivered them."
    );
    describe_counter!(
        EVENTS_DELIVERED,
        Unit::Count,
        "Pusher events accepted by Pusher (one per channel of an intent)."
    );
    describe_counter!(PUSHER_REQUESTS, Unit::Count, "Requests to Pusher by endpoint (batch_events, events) and status class (2xx, 4xx, 5xx, error).");
    describe_histogram!(
        PUSHER_REQUEST_DURATION,
        Unit::Seconds,
        "Time from sending a request to Pusher to its answer, by endpoint."
    );
    describe_histogram!(BATCH_SIZE, Unit::Count, "Events per batch_events request.");
    describe_histogram!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "Time from enqueue (AMQP timestamp or created_at) to Pusher's 2xx."
    );
    describe_counter!(
        RETRIES,
        Unit::Count,
        "Requests retried after a transient failure, by reason (5xx, 429, timeout, connect, skew)."
    );
    describe_counter!(DEAD_LETTERS, Unit::Count, "Intents stored as dead letters, by reason (invalid, too_large, rejected, exhausted, expired, delivery_limit).");
    describe_gauge!(IN_FLIGHT, Unit::Count, "Requests to Pusher in flight now.");
    describe_gauge!(CIRCUIT_OPEN, Unit::Count, "1 while delivery is paused because Pusher is failing every request (outage, 401, 403), else 0.");
    describe_counter!(
        CIRCUIT_OPENS,
        Unit::Count,
        "Times delivery was paused, by cause (outage, unauthorized, forbidden)."
    );
    describe_gauge!(
        CONSUMER_LAG,
        Unit::Count,
        "Messages ready in the intent queue, sampled every few seconds."
    );
    describe_gauge!(
        PARKED_CHANNELS,
        Unit::Count,
        "Hot channels parked out of the prefetch window now."
    );
    describe_counter!(
        INTENTS_PARKED,
        Unit::Count,
        "Intents written to the parked log and acked from the queue."
    );
    describe_counter!(
        INTENTS_UNPARKED,
        Unit::Count,
        "Parked intents finished (delivered or dead-lettered) and removed from the log."
    );
    describe_gauge!(
        PARKED_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest intent in the parked log (0 when none)."
    );
    describe_gauge!(
        PARKED_WAITING_FOR_ROOM,
        Unit::Count,
        "Intents of parked channels held unacked because their parked log holds RELAY_PARKED_MAX_ROWS rows (they stay in RabbitMQ's window until rows are delivered)."
    );
    describe_counter!(
        PARKED_LOGS_ADOPTED,
        Unit::Count,
        "Parked logs of gone competing workers (lease run out) whose rows this worker took over."
    );
    describe_gauge!(
        STORE_ROWS,
        Unit::Count,
        "Rows in the store by table (parked_intents, dead_letters), counted every minute; shared by every worker on a PostgreSQL store."
    );
    describe_counter!(
        INTENTS_SETTLED,
        Unit::Count,
        "Messages taken from RabbitMQ and finished, each in exactly one outcome: delivered, dead_lettered, parked, duplicate or wake. Their sum is what was consumed."
    );
    describe_gauge!(
        HELD_BYTES,
        Unit::Bytes,
        "Bytes (as on the wire) of the deliveries the worker holds and has not yet acked, against RELAY_MAX_HELD_BYTES."
    );
    describe_counter!(
        INTAKE_HELD_BACK,
        Unit::Count,
        "Times a delivery waited because the held bytes reached RELAY_MAX_HELD_BYTES."
    );
    describe_counter!(
        STORE_ERRORS,
        Unit::Count,
        "Failed writes to the dead-letter store (retried; nothing is acked meanwhile)."
    );
    describe_counter!(
        WEBHOOKS_RECEIVED,
        Unit::Count,
        "Requests to POST /webhooks/pusher."
    );
    describe_counter!(WEBHOOKS_REJECTED, Unit::Count, "Webhooks refused, by reason (missing_key, wrong_key, missing_signature, bad_signature, bad_json, stale, missing_time, in_flight, broker_unavailable).");
    describe_counter!(WEBHOOKS_DUPLICATE, Unit::Count, "Webhooks answered 200 without publishing: the same body was published within the replay window (a Pusher retry or a replay).");
    describe_counter!(
        WEBHOOK_EVENTS_PUBLISHED,
        Unit::Count,
        "Webhook events published to the webhook exchange, by event name."
    );
    describe_counter!(BROKER_CONNECTIONS_LOST, Unit::Count, "Connections to RabbitMQ lost; the worker reconnects with backoff and unacked intents are redelivered.");
    describe_gauge!(SHARDS_ACTIVE, Unit::Count, "With RELAY_SHARDS: the shard queues this worker is the active consumer of (took a delivery from in the last few seconds).");
    describe_gauge!(
        WORKERS,
        Unit::Count,
        "With RELAY_SHARDS: live workers on these shards (consumers of the roll-call queue)."
    );
    describe_gauge!(DEAD_LETTERS_PENDING, Unit::Count, "Dead letters in the store not yet replayed, by reason (sampled every few seconds; shared by every worker on a PostgreSQL store).");
    describe_gauge!(CONCURRENCY_LIMIT, Unit::Count, "Requests to Pusher allowed in flight now: adapted between 1 and RELAY_MAX_IN_FLIGHT from round trips and pushback (RELAY_CONCURRENCY=adaptive), or RELAY_MAX_IN_FLIGHT (fixed).");
    describe_counter!(CONCURRENCY_DECREASES, Unit::Count, "Times the concurrency limit was lowered, by cause (429, error: 5xx/timeout/connection, rtt: round trip above its baseline).");
    describe_gauge!(RTT_BASELINE, Unit::Seconds, "The smoothed fastest round trip to Pusher (per controller interval) that the concurrency controller compares new ones with.");
    describe_gauge!(TLS_CERT_EXPIRY, "Days until the peer's TLS certificate expires, by link (rabbitmq, postgresql, pusher; the soonest of a cluster's nodes), probed at start and every hour; absent for a plain link.");
    describe_counter!(
        REPLAYS,
        Unit::Count,
        "Dead letters republished by replays run in this process, by outcome (replayed, failed)."
    );
}

pub fn intent_consumed(kind: &str) {
    intents_consumed(kind).increment();
}

/// The counter of one intent type, for callers that keep the handle: the
/// event loop counts every intent, and a registry lookup per intent costs
/// more than the increment.
pub fn intents_consumed(kind: &str) -> IntentCounter {
    IntentCounter(counter!(INTENTS_CONSUMED, "type" => kind.to_string()))
}

/// [`INTENTS_CONSUMED`] of one intent type.
pub struct IntentCounter(metrics::Counter);

impl IntentCounter {
    pub fn increment(&self) {
        self.0.increment(1);
        bump(&live().intents_consumed, 1);
    }
}

/// Handles for the per-delivery metrics, looked up once.
pub struct DeliveryMetrics {
    delivered: metrics::Counter,
    latency: metrics::Histogram,
}

impl DeliveryMetrics {
    pub fn new() -> Self {
        DeliveryMetrics {
            delivered: counter!(EVENTS_DELIVERED),
            latency: histogram!(DELIVERY_LATENCY),
        }
    }

    /// `events` accepted by Pusher.
    pub fn delivered(&self, events: u64) {
        self.delivered.increment(events);
        bump(&live().events_delivered, events);
    }

    /// One intent's time from enqueue to Pusher's 2xx.
    pub fn latency(&self, seconds: f64) {
        self.latency.record(seconds);
        let bucket = SECONDS_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(SECONDS_BUCKETS.len());
        bump(&live().latency_buckets[bucket], 1);
    }
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Handles the concurrency limiter updates on every interval.
pub struct ConcurrencyMetrics {
    pub limit: metrics::Gauge,
    pub rtt_baseline: metrics::Gauge,
}

impl ConcurrencyMetrics {
    pub fn new() -> Self {
        ConcurrencyMetrics {
            limit: gauge!(CONCURRENCY_LIMIT),
            rtt_baseline: gauge!(RTT_BASELINE),
        }
    }
}

impl Default for ConcurrencyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn concurrency_decrease(cause: &'static str) {
    counter!(CONCURRENCY_DECREASES, "cause" => cause).increment(1);
}

/// How a message taken from the queue was finished, so that it may be acked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    DeadLettered,
    Parked,
    Duplicate,
    Wake,
}

impl Settled {
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::Delivered => "delivered",
            Settled::DeadLettered => "dead_lettered",
            Settled::Parked => "parked",
            Settled::Duplicate => "duplicate",
            Settled::Wake => "wake",
        }
    }
}

pub fn intents_settled(outcome: Settled, n: u64) {
    counter!(INTENTS_SETTLED, "outcome" => outcome.as_str()).increment(n);
}

pub fn intent_duplicate() {
    counter!(INTENTS_DUPLICATE).increment(1);
}

/// One answered or failed request; `status` is `None` when Pusher did not answer.
pub fn pusher_request(endpoint: &'static str, status: Option<u16>, elapsed: Duration) {
    let class = match status {
        Some(s) => match s / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
        None => "error",
    };
    counter!(PUSHER_REQUESTS, "endpoint" => endpoint, "status_class" => class).increment(1);
    bump(&live().pusher_requests, 1);
    histogram!(PUSHER_REQUEST_DURATION, "endpoint" => endpoint).record(elapsed.as_secs_f64());
}

pub fn batch_size(events: usize) {
    histogram!(BATCH_SIZE).record(events as f64);
}

pub fn retry(reason: &'static str) {
    counter!(RETRIES, "reason" => reason).increment(1);
    bump(&live().retries, 1);
}

pub fn dead_letter(reason: &'static str) {
    counter!(DEAD_LETTERS, "reason" => reason).increment(1);
    bump(&live().dead_letters, 1);
}

pub fn in_flight(n: usize) {
    gauge!(IN_FLIGHT).set(n as f64);
}

pub fn circuit(open: bool, cause: &'static str) {
    gauge!(CIRCUIT_OPEN).set(if open { 1.0 } else { 0.0 });
    if open {
        counter!(CIRCUIT_OPENS, "cause" => cause).increment(1);
    }
}

/// With shards: how many this worker is active on, and the live workers.
pub fn shards(active: usize, workers: usize) {
    gauge!(SHARDS_ACTIVE).set(active as f64);
    gauge!(WORKERS).set(workers as f64);
}

pub fn consumer_lag(messages: u64) {
    gauge!(CONSUMER_LAG).set(messages as f64);
    live().backlog.store(messages, Ordering::Relaxed);
}

pub fn parked_channels(n: usize) {
    gauge!(PARKED_CHANNELS).set(n as f64);
}

pub fn intents_parked(n: usize) {
    counter!(INTENTS_PARKED).increment(n as u64);
}

pub fn intents_unparked(n: usize) {
    counter!(INTENTS_UNPARKED).increment(n as u64);
}

pub fn parked_oldest_age(seconds: f64) {
    gauge!(PARKED_OLDEST_AGE).set(seconds);
}

/// Intents waiting for room in one session's parked log; sessions of
/// several queues add up, so each reports the change.
pub fn parked_waiting_for_room(delta: f64) {
    gauge!(PARKED_WAITING_FOR_ROOM).increment(delta);
}

pub fn parked_log_adopted() {
    counter!(PARKED_LOGS_ADOPTED).increment(1);
}

/// The store's rows in `table`.
pub fn store_rows(table: &'static str, n: i64) {
    gauge!(STORE_ROWS, "table" => table).set(n as f64);
}

/// The held-bytes gauge's handle: it moves with every frame of a
/// delivery, so the guard keeps the handle rather than look it up.
pub fn held_bytes() -> metrics::Gauge {
    gauge!(HELD_BYTES)
}

pub fn intake_held_back() {
    counter!(INTAKE_HELD_BACK).increment(1);
}

pub fn store_error() {
    counter!(STORE_ERRORS).increment(1);
}

pub fn broker_connection_lost() {
    counter!(BROKER_CONNECTIONS_LOST).increment(1);
}

pub fn webhook_received() {
    counter!(WEBHOOKS_RECEIVED).increment(1);
}

pub fn webhook_duplicate() {
    counter!(WEBHOOKS_DUPLICATE).increment(1);
}

pub fn webhook_rejected(reason: &'static str) {
    counter!(WEBHOOKS_REJECTED, "reason" => reason).increment(1);
}

pub fn webhook_event_published(name: &str) {
    counter!(WEBHOOK_EVENTS_PUBLISHED, "name" => name.to_string()).increment(1);
}

/// The store's pending dead letters for one reason.
pub fn dead_letters_pending(reason: &'static str, n: i64) {
    gauge!(DEAD_LETTERS_PENDING, "reason" => reason).set(n as f64);
}

/// `n` dead letters replayed (`replayed`) or not (`failed`).
pub fn replays(outcome: &'static str, n: u64) {
    if n > 0 {
        counter!(REPLAYS, "outcome" => outcome).increment(n);
    }
}

/// Days until `link`'s peer certificate expires (negative once it has).
pub fn tls_certificate_expiry_days(link: &'static str, days: f64) {
    gauge!(TLS_CERT_EXPIRY, "link" => link).set(days);
}
