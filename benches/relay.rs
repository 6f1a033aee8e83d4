//! `cargo bench --bench relay`: the worker's throughput, latency and memory,
//! first against a Pusher tens of milliseconds away, then on loopback
//! against a ceiling measured in the same run on the same broker.
//!
//! Distance (the fake Pusher of `tests/common/distant.rs`: it answers after
//! a latency with jitter, can cap the requests it admits at once with 429 +
//! Retry-After, and checks every signature):
//! - A. 50 ms +- 10 ms, 50,000 intents over 100 channels, against the
//!   order-preserving limit (100 channels x 10 events / RTT); and the same
//!   with the old fixed 16 requests in flight, for comparison;
//! - B. the same with the server admitting 32 requests at once;
//! - C. a steady 2,000 intents/s while the round trip steps 20 -> 200 -> 20 ms;
//! - D. a noisy neighbour: 200 intents/s over 200 cold channels for 40 s
//!   alone (D1), beside a burst of 20,000 (D2) and of 100,000 (D3) to one
//!   channel, and beside a burst with a kill -9 (D4); D5, half of a 20,000
//!   backlog on one channel;
//! - L. light load: 10 intents/s, latency from publish to Pusher's answer.
//!
//! Loopback (E):
//! 1. ceiling: a plain lapin consumer drains 50,000 messages, acking with
//!    `multiple: true` every 250 deliveries;
//! 2. drain: 50,000 intents over 100 channels through the release binary;
//! 3. memory: peak RSS (VmHWM) draining a 100,000 backlog;
//! 4. latency at 1,000 intents/s for 5 s;
//! 5. what two cores leave the worker at 0.85 of the ceiling, given what
//!    RabbitMQ and the fake Pusher spent per event in the drain, beside
//!    what the bare lapin consumer spent per message in the ceiling run.
//!
//! Figures are printed beside their targets, never asserted: these machines
//! are noisy. Needs RabbitMQ on 127.0.0.1:5672. `BENCH_ONLY=a,b,c,d,l,e`
//! runs some sections (`d5`: D5 alone); `BENCH_WORKER_ENV="RELAY_PREFETCH=1000 ..."` passes
//! settings to every worker, for experiments.

#[path = "../tests/common/distant.rs"]
mod distant;
mod support;

use std::collections::HashMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use distant::{now_ms, percentile, Distant};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::Channel;

const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret";
const CHANNELS: usize = 100;
const DRAIN: usize = 50_000;
const BACKLOG: usize = 100_000;
const RATE: usize = 1_000;
const LINGER_MS: u64 = 10;
const RTT: Duration = Duration::from_millis(50);
const JITTER: Duration = Duration::from_millis(10);

/// `n` channel names, round-robin over `channels` channels.
fn round_robin(n: usize, channels: usize) -> Vec<String> {
    (0..n).map(|i| format!("bench-{}", i % channels)).collect()
}

/// Plain lapin consume + ack with `multiple: true` every 250 deliveries.
async fn ceiling(ch: &Channel, queue: &str, n: usize) -> f64 {
    ch.basic_qos(1000, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = ch
        .basic_consume(
            queue,
            "ceiling",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut started = None;
    let mut unacked_last = None;
    let mut count = 0;
    while count < n {
        let next = tokio::time::timeout(Duration::from_millis(5), consumer.next()).await;
        match next {
            Ok(Some(Ok(d))) => {
                started.get_or_insert_with(Instant::now);
                count += 1;
                unacked_last = Some(d.delivery_tag);
                if count % 250 == 0 {
                    ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true })
                        .await
                        .expect("ack");
                    unacked_last = None;
                }
            }
            Ok(_) => panic!("consumer ended"),
            Err(_) => {
                if let Some(tag) = unacked_last.take() {
                    ch.basic_ack(tag, BasicAckOptions { multiple: true })
                        .await
                        .expect("ack");
                }
            }
        }
    }
    if let Some(tag) = unacked_last {
        ch.basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .expect("ack");
    }
    n as f64 / started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(1.0)
}

/// One worker (the release binary) on its own queue and SQLite store.
struct Run {
    queue: String,
    db: std::path::PathBuf,
    http_port: u16,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Run {
    fn start(pusher: &Distant, queue: &str, extra: &[(&str, &str)]) -> Run {
        let db = std::env::temp_dir().join(format!("{queue}.db"));
        let http_port = free_port();
        let mut cmd = support::worker(
            env!("CARGO_BIN_EXE_pusher-relay"),
            KEY,
            SECRET,
            pusher.port,
            queue,
            &db,
        );
        cmd.env("HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("RELAY_LINGER_MS", LINGER_MS.to_string());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        // For experiments: `BENCH_WORKER_ENV="RELAY_PREFETCH=1000 ..."`.
        for pair in std::env::var("BENCH_WORKER_ENV")
            .unwrap_or_default()
            .split_whitespace()
        {
            if let Some((k, v)) = pair.split_once('=') {
                cmd.env(k, v);
            }
        }
        Run {
            queue: queue.into(),
            db,
            http_port,
            child: cmd.spawn().expect("release binary"),
        }
    }

    /// A gauge or counter from the worker's /metrics (summed over labels).
    async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.http_port))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Channels parked now (0 when the worker does not answer).
    async fn parked(&self) -> f64 {
        self.metric("pusher_relay_parked_channels")
            .await
            .unwrap_or(0.0)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Until `/readyz` answers 200: connected and consuming.
    async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.http_port);
        for _ in 0..600 {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the worker on {} was not ready after 30 s", self.queue);
    }

    /// SIGKILL, leaving the queue and the store as they are.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn finish(mut self, ch: &Channel) -> u64 {
        let dead = self
            .metric("pusher_relay_dead_letters_total")
            .await
            .unwrap_or(0.0) as u64;
        let _ = self.child.kill();
        let _ = self.child.wait();
        support::cleanup(ch, &self.queue, &self.db).await;
        dead
    }
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of those, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// RabbitMQ's Erlang VM, to see how much of the machine the broker takes.
fn broker_pid() -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-o", "beam.smp"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Waits until `n` events of the `bench-cold` channels have arrived; returns
/// the cores the worker `pid`, RabbitMQ and this process (the publisher and
/// the fake Pusher) kept busy meanwhile, to tell a fair share from a full
/// machine.
async fn cores_until_cold(pusher: &Distant, n: usize, pid: u32) -> f64 {
    let beam = broker_pid();
    let used = || {
        cpu_seconds(pid) + beam.map(cpu_seconds).unwrap_or(0.0) + cpu_seconds(std::process::id())
    };
    let (before, started) = (used(), Instant::now());
    let cold = || {
        let seen = pusher.seen();
        seen.events
            .iter()
            .filter(|e| e.channel.starts_with("bench-cold"))
            .count()
    };
    while cold() < n && started.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (used() - before) / started.elapsed().as_secs_f64()
}

/// Events per second between the first and the last accepted event that
/// `pick` selects.
fn rate_of(pusher: &Distant, pick: impl Fn(&distant::EventSeen) -> bool) -> f64 {
    let seen = pusher.seen();
    let ats: Vec<Duration> = seen
        .events
        .iter()
        .filter(|e| pick(e))
        .map(|e| e.at)
        .collect();
    match (ats.iter().min(), ats.iter().max()) {
        (Some(a), Some(b)) if b > a => ats.len() as f64 / (*b - *a).as_secs_f64(),
        _ => f64::NAN,
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

struct Drained {
    rate: f64,
    requests_per_event: f64,
    violations: usize,
    duplicates: usize,
    bad_signatures: usize,
    dead: u64,
    /// The worker's concurrency limit, every 100 ms while it drained.
    limits: Vec<f64>,
}

impl Drained {
    fn limit_summary(&self) -> String {
        let n = self.limits.len().max(1) as f64;
        let mean = self.limits.iter().sum::<f64>() / n;
        let min = self.limits.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.limits.iter().copied().fold(0.0, f64::max);
        format!("concurrency limit while draining: mean {mean:.0}, min {min:.0}, max {max:.0}")
    }
}

/// Fills a queue with `n` intents over 100 channels, starts a worker, waits
/// until the fake accepted them all.
async fn drain(
    ch: &Channel,
    pusher: &Distant,
    queue: &str,
    n: usize,
    extra: &[(&str, &str)],
) -> Drained {
    support::declare_quorum(ch, queue).await;
    support::publish(ch, queue, &round_robin(n, CHANNELS), &mut HashMap::new()).await;
    let run = Run::start(pusher, queue, extra);
    let mut limits = Vec::new();
    while pusher.seen().accepted() < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if pusher.seen().accepted() > 0 {
            limits.extend(run.metric("pusher_relay_concurrency_limit").await);
        }
    }
    let rate = rate_of(pusher, |_| true);
    let dead = run.finish(ch).await;
    let seen = pusher.seen();
    let ok_requests = seen.answered(200);
    Drained {
        rate,
        requests_per_event: ok_requests as f64 / seen.accepted() as f64,
        violations: seen.violations,
        duplicates: seen.duplicates,
        bad_signatures: seen.bad_signatures,
        dead,
        limits,
    }
}

/// Cold traffic of section D: `COLD_RATE` intents/s over `COLD_CHANNELS`
/// channels for `COLD_SECS` seconds.
const COLD_RATE: usize = 200;
const COLD_CHANNELS: usize = 200;
const COLD_SECS: u64 = 40;
/// When the burst starts, after the cold traffic has.
const BURST_AFTER: Duration = Duration::from_secs(2);

async fn pusher_at_distance() -> Distant {
    Distant::start(KEY, SECRET, RTT, JITTER).await
}

/// Latency from publish to Pusher's answer of a set of intents.
struct Latency {
    p50: u64,
    p99: u64,
    max: u64,
    n: usize,
}

/// What one run of section D saw.
struct Noisy {
    /// The cold intents, each at its first arrival.
    cold: Latency,
    /// The hot channel's events/s between its first and last event.
    hot_rate: f64,
    published: usize,
    lost: usize,
    violations: usize,
    duplicates: usize,
    dead: u64,
    max_channel_in_flight: usize,
    /// Highest `pusher_relay_parked_channels` sampled every 500 ms.
    most_parked: f64,
    /// Over every worker process of the run.
    peak_rss_mb: f64,
}

/// Cold traffic on its own connection, and after `BURST_AFTER` a burst of
/// `burst` intents to `bench-hot`; with `kill_after`, the worker is killed
/// by SIGKILL that long after the burst began and started again on the same
/// queue and store. Returns once every published intent has arrived.
async fn noisy(
    ch: &Channel,
    pusher: &Distant,
    queue: &str,
    burst: usize,
    kill_after: Option<Duration>,
) -> Noisy {
    support::declare_quorum(ch, queue).await;
    let mut run = Run::start(pusher, queue, &[]);
    run.wait_ready().await;
    let (cold_conn, cold_ch) = support::channel().await;
    let cold_queue = queue.to_string();
    let cold = tokio::spawn(async move {
        let _conn = cold_conn;
        let mut seqs = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let per_tick = COLD_RATE / 10;
        let mut sent = 0;
        for _ in 0..COLD_SECS * 10 {
            tick.tick().await;
            let names: Vec<String> = (sent..sent + per_tick)
                .map(|i| format!("bench-cold-{}", i % COLD_CHANNELS))
                .collect();
            support::publish(&cold_ch, &cold_queue, &names, &mut seqs).await;
            sent += per_tick;
        }
        sent
    });
    let mut peak_rss: f64 = 0.0;
    let mut most_parked: f64 = 0.0;
    if burst > 0 {
        tokio::time::sleep(BURST_AFTER).await;
        let began = tokio::time::Instant::now();
        let (hot_conn, hot_ch) = support::channel().await;
        let hot_queue = queue.to_string();
        let hot = tokio::spawn(async move {
            let _conn = hot_conn;
            let mut seqs = HashMap::new();
            // In slices, so that a kill lands while the burst is still
            // arriving when it is long enough.
            for _ in 0..burst.div_ceil(1000) {
                let names = vec!["bench-hot".to_string(); 1000];
                support::publish(&hot_ch, &hot_queue, &names, &mut seqs).await;
            }
        });
        if let Some(after) = kill_after {
            while began.elapsed() < after {
                tokio::time::sleep(Duration::from_millis(500)).await;
                most_parked = most_parked.max(run.parked().await);
            }
            peak_rss = peak_rss.max(peak_rss_mb(run.pid()));
            run.kill9();
            run = Run::start(pusher, queue, &[]);
        }
        hot.await.expect("burst publisher");
    }
    let published = cold.await.expect("cold publisher") + burst.div_ceil(1000) * 1000;
    let unique = |p: &Distant| {
        let seen = p.seen();
        seen.accepted() - seen.duplicates
    };
    let deadline = Instant::now() + Duration::from_secs(120 + (published / 100) as u64);
    while unique(pusher) < published && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        most_parked = most_parked.max(run.parked().await);
    }
    peak_rss = peak_rss.max(peak_rss_mb(run.pid()));
    let dead = run.finish(ch).await;
    let hot_rate = rate_of(pusher, |e| e.channel == "bench-hot");
    let seen = pusher.seen();
    let mut first = std::collections::HashSet::new();
    let mut cold_ms: Vec<u64> = seen
        .events
        .iter()
        .filter(|e| {
            e.channel.starts_with("bench-cold") && first.insert((e.channel.as_str(), e.seq))
        })
        .map(|e| e.latency_ms)
        .collect();
    let unique = seen.accepted() - seen.duplicates;
    Noisy {
        cold: Latency {
            p50: percentile(&mut cold_ms, 0.5),
            p99: percentile(&mut cold_ms, 0.99),
            max: cold_ms.iter().copied().max().unwrap_or(0),
            n: cold_ms.len(),
        },
        hot_rate,
        published,
        lost: published.saturating_sub(unique),
        violations: seen.violations,
        duplicates: seen.duplicates,
        dead,
        max_channel_in_flight: seen.max_channel_in_flight,
        most_parked,
        peak_rss_mb: peak_rss,
    }
}

#[tokio::main]
async fn main() {
    let run_id = format!("bench-{}-{}", std::process::id(), now_ms());
    let (_conn, ch) = support::channel().await;
    let rtt_s = RTT.as_secs_f64();
    // One channel's ceiling: 10 events a request, one request in flight.
    let hot_limit = 10.0 / rtt_s;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wants = |section: &str| only.is_empty() || only.split(',').any(|s| s == section);
    println!(
        "pusher-relay benchmark (linger {LINGER_MS} ms; the fake Pusher checks every signature)"
    );
    println!();
    println!(
        "Distance: the fake Pusher answers after {} ms +- {} ms",
        RTT.as_millis(),
        JITTER.as_millis()
    );

    if wants("a") {
        // A. Distance, no cap.
        let pusher = Distant::start(KEY, SECRET, RTT, JITTER).await;
        let a = drain(&ch, &pusher, &format!("{run_id}.a"), DRAIN, &[]).await;
        let limit_a = CHANNELS as f64 * 10.0 / rtt_s;
        println!("  A. {DRAIN} intents over {CHANNELS} channels, adaptive:");
        println!(
        "     drain {:>8.0} events/s = {:.2} of the order-preserving limit {limit_a:.0} (target >= 0.80: {})",
        a.rate,
        a.rate / limit_a,
        verdict(a.rate / limit_a >= 0.8)
    );
        println!(
        "     requests per event {:.3} (target <= 0.105: {}); order violations {} (target 0); duplicates {}; dead letters {}; bad signatures {}",
        a.requests_per_event,
        verdict(a.requests_per_event <= 0.105),
        a.violations,
        a.duplicates,
        a.dead,
        a.bad_signatures
    );
        let pusher = Distant::start(KEY, SECRET, RTT, JITTER).await;
        let fixed = drain(
            &ch,
            &pusher,
            &format!("{run_id}.a0"),
            DRAIN / 2,
            &[
                ("RELAY_CONCURRENCY", "fixed"),
                ("RELAY_MAX_IN_FLIGHT", "16"),
            ],
        )
        .await;
        println!(
        "     for comparison, fixed at 16 in flight (the old default): {:.0} events/s; adaptive is {:.1}x faster",
        fixed.rate,
        a.rate / fixed.rate
    );
    }
    if wants("b") {
        // B. Distance with a cap of 32 requests in flight.
        let cap = 32;
        let pusher = Distant::start(KEY, SECRET, RTT, JITTER).await;
        pusher.set_cap(Some(cap));
        let b = drain(&ch, &pusher, &format!("{run_id}.b"), DRAIN, &[]).await;
        let limit_b = cap as f64 * 10.0 / rtt_s;
        let (late_429, late_total) = {
            let seen = pusher.seen();
            let first = seen.requests.iter().map(|r| r.at).min().unwrap_or_default();
            let late: Vec<_> = seen
                .requests
                .iter()
                .filter(|r| r.at >= first + Duration::from_secs(2))
                .collect();
            (late.iter().filter(|r| r.status == 429).count(), late.len())
        };
        let share_429 = late_429 as f64 / late_total.max(1) as f64;
        let total_429 = pusher.seen().answered(429);
        println!("  B. the same, with the server admitting {cap} requests at once (429 + Retry-After: 1 beyond):");
        println!(
        "     drain {:>8.0} events/s = {:.2} of {cap} x 10 / RTT = {limit_b:.0} (target >= 0.80: {})",
        b.rate,
        b.rate / limit_b,
        verdict(b.rate / limit_b >= 0.8)
    );
        println!(
        "     429s after the first 2 s: {late_429} of {late_total} requests = {:.2}% (target <= 2%: {}); {total_429} in all; dead letters {} (target 0); order violations {}",
        share_429 * 100.0,
        verdict(share_429 <= 0.02),
        b.dead,
        b.violations
    );
        println!("     {}", b.limit_summary());
    }
    if wants("c") {
        // C. The round trip steps 20 -> 200 -> 20 ms under a steady feed.
        let pusher = Distant::start(
            KEY,
            SECRET,
            Duration::from_millis(20),
            Duration::from_millis(2),
        )
        .await;
        let q = format!("{run_id}.c");
        support::declare_quorum(&ch, &q).await;
        let run = Run::start(&pusher, &q, &[]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let phases = [(20u64, 5u64), (200, 10), (20, 10)];
        let feed = 2_000usize;
        let mut seqs = HashMap::new();
        let mut limits: Vec<(f64, f64)> = Vec::new();
        let mut boundaries_ms = Vec::new();
        let started = Instant::now();
        let mut published = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for (rtt_ms, secs) in phases {
            pusher.set_latency(
                Duration::from_millis(rtt_ms),
                Duration::from_millis(rtt_ms / 10),
            );
            boundaries_ms.push(now_ms());
            for step in 0..secs * 10 {
                tick.tick().await;
                let names = round_robin(feed / 10, CHANNELS);
                support::publish(&ch, &q, &names, &mut seqs).await;
                published += names.len();
                if step % 5 == 0 {
                    if let Some(limit) = run.metric("pusher_relay_concurrency_limit").await {
                        limits.push((started.elapsed().as_secs_f64(), limit));
                    }
                }
            }
        }
        boundaries_ms.push(now_ms());
        pusher.wait_for(published, Duration::from_secs(120)).await;
        let c_dead = run.finish(&ch).await;
        let c_violations = pusher.seen().violations;
        println!("  C. a steady {feed} intents/s over {CHANNELS} channels while the round trip steps 20 ms (5 s) -> 200 ms (10 s) -> 20 ms (10 s):");
        println!(
            "     dead letters {c_dead} (target 0: {}); order violations {c_violations}",
            verdict(c_dead == 0)
        );
        let phase_latency = |from: u64, to: u64| {
            let seen = pusher.seen();
            let mut lat: Vec<u64> = seen
                .events
                .iter()
                .filter(|e| (from..to).contains(&e.published_ms))
                .map(|e| e.latency_ms)
                .collect();
            (
                percentile(&mut lat, 0.5),
                percentile(&mut lat, 0.99),
                lat.len(),
            )
        };
        for (i, (rtt_ms, _)) in phases.iter().enumerate() {
            let (p50, p99, n) = phase_latency(boundaries_ms[i], boundaries_ms[i + 1]);
            println!("     phase {} (RTT {rtt_ms} ms): {n} intents, latency publish -> Pusher's answer p50 {p50} ms, p99 {p99} ms", i + 1);
        }
        let line: Vec<String> = limits
            .iter()
            .map(|(t, l)| format!("{t:.1}s:{l:.0}"))
            .collect();
        println!("     concurrency limit over time: {}", line.join(" "));
    }
    if wants("d") {
        // D. Noisy neighbour: steady cold traffic alone (D1), beside a burst
        // to one channel (D2, D3), and beside a burst with a kill -9 (D4).
        let d1 = noisy(
            &ch,
            &pusher_at_distance().await,
            &format!("{run_id}.d1"),
            0,
            None,
        )
        .await;
        let cold_target = (2 * d1.cold.p99).max(d1.cold.p99 + 100);
        println!("  D. noisy neighbour: {COLD_RATE} intents/s over {COLD_CHANNELS} cold channels for {COLD_SECS} s");
        println!(
            "     D1. cold alone: publish -> Pusher's answer p50 {} ms, p99 {} ms, max {} ms ({} intents; lost {}, order violations {})",
            d1.cold.p50, d1.cold.p99, d1.cold.max, d1.cold.n, d1.lost, d1.violations
        );
        for (label, burst, kill) in [
            ("D2", 20_000, None),
            ("D3", 100_000, None),
            ("D4", 20_000, Some(Duration::from_secs(8))),
        ] {
            let q = format!("{run_id}.{}", label.to_lowercase());
            let d = noisy(&ch, &pusher_at_distance().await, &q, burst, kill).await;
            let kill_note = if kill.is_some() {
                ", the worker killed by -9 8 s into it and started again"
            } else {
                ""
            };
            println!("     {label}. beside a burst of {burst} intents to one channel{kill_note}:");
            let cold_met = d.cold.p99 <= cold_target;
            let hot_met = d.hot_rate / hot_limit >= 0.8 && d.max_channel_in_flight == 1;
            if kill.is_none() {
                println!(
                    "         cold p50 {} ms, p99 {} ms (target <= max(2 x D1 p99, D1 p99 + 100) = {cold_target} ms: {}), max {} ms",
                    d.cold.p50, d.cold.p99, verdict(cold_met), d.cold.max
                );
                println!(
                    "         hot channel {:.0} events/s = {:.2} of 10 / RTT = {hot_limit:.0} (target >= 0.80: {}); most requests in flight for one channel: {} (target 1)",
                    d.hot_rate, d.hot_rate / hot_limit, verdict(hot_met), d.max_channel_in_flight
                );
            } else {
                println!(
                    "         cold p50 {} ms, p99 {} ms, max {} ms (no target: the kill stops delivery); hot channel {:.0} events/s over its drain",
                    d.cold.p50, d.cold.p99, d.cold.max, d.hot_rate
                );
            }
            println!(
                "         lost {} of {} (target 0: {}); order violations {} (target 0: {}); duplicates {}; dead letters {}; most parked at once {}",
                d.lost, d.published, verdict(d.lost == 0), d.violations, verdict(d.violations == 0),
                d.duplicates, d.dead, d.most_parked
            );
            let rss_target = if burst >= 100_000 {
                format!(" (target <= 100: {})", verdict(d.peak_rss_mb <= 100.0))
            } else {
                String::new()
            };
            println!("         peak RSS {:.1} MB{rss_target}", d.peak_rss_mb);
        }
    }
    if wants("d") || wants("d5") {
        // D5. The hot channel as a backlog present when the worker starts:
        // half of 20,000 intents on one channel, the rest over 99. The same
        // cold intents drained alone, in the same run, are the reference.
        let hot_n = 20_000;
        let cold_names = |i: usize| format!("bench-cold-{}", i % 99);
        let reference = {
            let pusher = pusher_at_distance().await;
            let q = format!("{run_id}.d0");
            support::declare_quorum(&ch, &q).await;
            let names: Vec<String> = (0..hot_n / 2).map(cold_names).collect();
            support::publish(&ch, &q, &names, &mut HashMap::new()).await;
            let run = Run::start(&pusher, &q, &[]);
            let cores = cores_until_cold(&pusher, names.len(), run.pid()).await;
            pusher.wait_for(names.len(), Duration::from_secs(600)).await;
            run.finish(&ch).await;
            (rate_of(&pusher, |_| true), cores)
        };
        let (reference, reference_cores) = reference;
        let pusher = pusher_at_distance().await;
        let q = format!("{run_id}.d5");
        support::declare_quorum(&ch, &q).await;
        let names: Vec<String> = (0..hot_n)
            .map(|i| {
                if i % 2 == 0 {
                    "bench-hot".to_string()
                } else {
                    cold_names(i / 2)
                }
            })
            .collect();
        support::publish(&ch, &q, &names, &mut HashMap::new()).await;
        let run = Run::start(&pusher, &q, &[]);
        let cores = cores_until_cold(&pusher, hot_n / 2, run.pid()).await;
        pusher.wait_for(hot_n, Duration::from_secs(600)).await;
        let d_dead = run.finish(&ch).await;
        let hot = rate_of(&pusher, |e| e.channel == "bench-hot");
        let cold = rate_of(&pusher, |e| e.channel.starts_with("bench-cold"));
        let (d_violations, per_channel) = {
            let seen = pusher.seen();
            (seen.violations, seen.max_channel_in_flight)
        };
        println!("     D5. {hot_n} intents, half on one channel, the rest over 99 (a backlog when the worker starts):");
        println!(
            "         cold channels keep {:.2} of their rate alone ({cold:.0} against {reference:.0} events/s; target >= 0.80: {}); dead letters {d_dead}; order violations {d_violations}",
            cold / reference,
            verdict(cold / reference >= 0.8)
        );
        println!(
            "         hot channel {hot:.0} events/s = {:.2} of 10 / RTT = {hot_limit:.0}; most requests in flight for one channel: {per_channel} (target 1)",
            hot / hot_limit,
        );
        println!(
            "         cores busy (worker + RabbitMQ + this process, of 2) until the cold intents were delivered: {cores:.2}, alone {reference_cores:.2}"
        );
    }
    if wants("l") {
        // L. Light load.
        let pusher = Distant::start(KEY, SECRET, RTT, JITTER).await;
        let q = format!("{run_id}.l");
        support::declare_quorum(&ch, &q).await;
        let run = Run::start(&pusher, &q, &[]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut seqs = HashMap::new();
        let light = 100;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for i in 0..light {
            tick.tick().await;
            support::publish(&ch, &q, &[format!("bench-{}", i % CHANNELS)], &mut seqs).await;
        }
        pusher.wait_for(light, Duration::from_secs(30)).await;
        run.finish(&ch).await;
        let mut lat: Vec<u64> = pusher.seen().events.iter().map(|e| e.latency_ms).collect();
        let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
        let target = LINGER_MS + RTT.as_millis() as u64 + 20;
        println!(
        "  L. 10 intents/s: latency publish -> Pusher's answer p50 {p50} ms, p99 {p99} ms (target p99 <= linger + RTT + 20 = {target} ms: {})",
        verdict(p99 <= target)
    );
    }
    if wants("e") {
        // E. Loopback.
        println!();
        println!("Loopback (the fake Pusher answers at once)");
        let q0 = format!("{run_id}.ceiling");
        support::declare_quorum(&ch, &q0).await;
        support::publish(&ch, &q0, &round_robin(DRAIN, CHANNELS), &mut HashMap::new()).await;
        let (_c2, ch2) = support::channel().await;
        let beam = broker_pid();
        // RabbitMQ's CPU seconds so far (NaN when its process is not found).
        let beam_now = || beam.map(cpu_seconds).unwrap_or(f64::NAN);
        let beam_before = beam_now();
        let bench_before = cpu_seconds(std::process::id());
        let ceiling = ceiling(&ch2, &q0, DRAIN).await;
        let ceiling_beam_us = (beam_now() - beam_before) * 1e6 / DRAIN as f64;
        let ceiling_lapin_us =
            (cpu_seconds(std::process::id()) - bench_before) * 1e6 / DRAIN as f64;
        let _ = ch.queue_delete(&q0, QueueDeleteOptions::default()).await;

        let pusher = Distant::start(KEY, SECRET, Duration::ZERO, Duration::ZERO).await;
        let q1 = format!("{run_id}.drain");
        support::declare_quorum(&ch, &q1).await;
        support::publish(&ch, &q1, &round_robin(DRAIN, CHANNELS), &mut HashMap::new()).await;
        let beam_before = beam_now();
        let bench_before = cpu_seconds(std::process::id());
        let wall = Instant::now();
        let run = Run::start(&pusher, &q1, &[]);
        pusher.wait_for(DRAIN, Duration::from_secs(300)).await;
        let wall = wall.elapsed().as_secs_f64();
        let drain_rss = peak_rss_mb(run.pid());
        let worker_cpu = cpu_seconds(run.pid());
        let beam_cpu = beam_now() - beam_before;
        let bench_cpu = cpu_seconds(std::process::id()) - bench_before;
        run.finish(&ch).await;
        let rate = rate_of(&pusher, |_| true);
        let (events, requests, violations, bad) = {
            let s = pusher.seen();
            (
                s.accepted(),
                s.answered(200),
                s.violations,
                s.bad_signatures,
            )
        };

        let pusher = Distant::start(KEY, SECRET, Duration::ZERO, Duration::ZERO).await;
        let q2 = format!("{run_id}.backlog");
        support::declare_quorum(&ch, &q2).await;
        support::publish(
            &ch,
            &q2,
            &round_robin(BACKLOG, CHANNELS),
            &mut HashMap::new(),
        )
        .await;
        let run = Run::start(&pusher, &q2, &[]);
        pusher.wait_for(BACKLOG, Duration::from_secs(600)).await;
        let backlog_rss = peak_rss_mb(run.pid());
        run.finish(&ch).await;
        let backlog_violations = pusher.seen().violations;

        let pusher = Distant::start(KEY, SECRET, Duration::ZERO, Duration::ZERO).await;
        let q3 = format!("{run_id}.latency");
        support::declare_quorum(&ch, &q3).await;
        let run = Run::start(&pusher, &q3, &[]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let total = RATE * 5;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut seqs = HashMap::new();
        let mut sent = 0;
        while sent < total {
            tick.tick().await;
            let burst = RATE / 100;
            let names: Vec<String> = (sent..sent + burst)
                .map(|i| format!("bench-{}", i % CHANNELS))
                .collect();
            support::publish(&ch, &q3, &names, &mut seqs).await;
            sent += burst;
        }
        pusher.wait_for(total, Duration::from_secs(60)).await;
        run.finish(&ch).await;
        let mut lat: Vec<u64> = pusher.seen().events.iter().map(|e| e.latency_ms).collect();
        let (p50, p99) = (percentile(&mut lat, 0.50), percentile(&mut lat, 0.99));

        println!("  ceiling (lapin consume + multiple ack):  {ceiling:>9.0} msg/s");
        println!("  worker drain:                            {rate:>9.0} events/s   ratio {:.2} (target >= 0.85)", rate / ceiling);
        println!(
            "  requests per event:                      {:>9.3}            (target <= 0.105)",
            requests as f64 / events as f64
        );
        println!("  order violations:                        {:>9}            (target 0; {backlog_violations} in the backlog run)", violations);
        println!("  bad signatures seen by the fake Pusher:  {bad:>9}");
        println!(
        "  CPU during the drain ({wall:.2} s wall, 2 cores = {:.2} core-s): worker {worker_cpu:.2} s ({:.1} us/event), RabbitMQ {beam_cpu:.2} s, fake Pusher + publisher {bench_cpu:.2} s",
        wall * 2.0,
        worker_cpu * 1e6 / events as f64
    );
        // What two cores leave the worker at the target rate, given what
        // RabbitMQ and the fake Pusher cost per event in this run.
        let target_rate = 0.85 * ceiling;
        let beam_us = beam_cpu * 1e6 / events as f64;
        let fake_us = bench_cpu * 1e6 / events as f64;
        let left_us = 2e6 / target_rate - beam_us - fake_us;
        println!(
        "  at 0.85 of the ceiling ({target_rate:.0}/s) two cores leave the worker {left_us:.1} us/event: 1e6 x 2 / rate, less RabbitMQ {beam_us:.1} and the fake Pusher {fake_us:.1} us/event (in the ceiling run: RabbitMQ {ceiling_beam_us:.1} us/msg, the bare lapin consumer {ceiling_lapin_us:.1} us/msg)"
    );
        println!("  peak RSS draining {DRAIN}:                 {drain_rss:>9.1} MB");
        println!(
        "  peak RSS draining a {BACKLOG} backlog:      {backlog_rss:>9.1} MB      (target <= 50: {})",
        verdict(backlog_rss <= 50.0)
    );
        println!(
        "  latency at {RATE}/s, p50 / p99:            {p50:>5} / {p99} ms  (target p99 <= {} ms)",
        LINGER_MS + 20
    );
    }
}
