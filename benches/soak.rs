//! `cargo bench --bench soak`: the worker under a steady load for an hour
//! (not part of CI). 1,000 intents/s over 200 channels, the fake Pusher
//! 15-25 ms away; every minute the worker's RSS and open file descriptors
//! are printed, and at the end every intent must have arrived once and in
//! order. Nobody scrapes /metrics meanwhile, as on a host whose Prometheus
//! is down: whatever the worker keeps for a scrape must not grow.
//!
//! `SOAK_SECS` shortens or lengthens it (default 3600); `SOAK_BIN` runs
//! another build of the worker (default: this one's release binary).

#[path = "../tests/common/distant.rs"]
mod distant;
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use distant::{now_ms, Distant};

const KEY: &str = "soak-key";
const SECRET: &str = "soak-secret";
const RATE: usize = 1_000;
const CHANNELS: usize = 200;

fn status_kb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(f64::NAN)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    let bin =
        std::env::var("SOAK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pusher-relay").into());
    let queue = format!("soak-{}-{}", std::process::id(), now_ms());
    let db = std::env::temp_dir().join(format!("{queue}.db"));

    let pusher = Distant::start(
        KEY,
        SECRET,
        Duration::from_millis(20),
        Duration::from_millis(5),
    )
    .await;
    let (_conn, ch) = support::channel().await;
    support::declare_quorum(&ch, &queue).await;

    let mut worker = support::worker(&bin, KEY, SECRET, pusher.port, &queue, &db)
        .env("HTTP_ADDR", "127.0.0.1:0")
        .spawn()
        .expect("the worker binary");
    let pid = worker.id();
    println!("soak: {RATE} intents/s over {CHANNELS} channels for {secs} s, fake Pusher 20 +- 5 ms, worker pid {pid} ({bin})");
    println!(
        "{:>7} {:>10} {:>9} {:>9} {:>5}",
        "minute", "published", "RSS MB", "peak MB", "fds"
    );

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut seqs: HashMap<String, usize> = HashMap::new();
    let mut published = 0usize;
    let mut next_report = Duration::from_secs(10);
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let names: Vec<String> = (published..published + RATE / 100)
            .map(|i| format!("soak-{}", i % CHANNELS))
            .collect();
        support::publish(&ch, &queue, &names, &mut seqs).await;
        published += names.len();
        if started.elapsed() >= next_report {
            println!(
                "{:>7.1} {:>10} {:>9.1} {:>9.1} {:>5}",
                started.elapsed().as_secs_f64() / 60.0,
                published,
                status_kb(pid, "VmRSS:") / 1024.0,
                status_kb(pid, "VmHWM:") / 1024.0,
                open_fds(pid)
            );
            next_report = if next_report < Duration::from_secs(60) {
                Duration::from_secs(60)
            } else {
                next_report + Duration::from_secs(60)
            };
        }
    }
    pusher.wait_for(published, Duration::from_secs(120)).await;
    let (accepted, violations, duplicates, bad) = {
        let seen = pusher.seen();
        (
            seen.accepted(),
            seen.violations,
            seen.duplicates,
            seen.bad_signatures,
        )
    };
    println!(
        "end: published {published}, accepted {accepted}, duplicates {duplicates}, order violations {violations}, bad signatures {bad}; RSS {:.1} MB, peak {:.1} MB, fds {}",
        status_kb(pid, "VmRSS:") / 1024.0,
        status_kb(pid, "VmHWM:") / 1024.0,
        open_fds(pid)
    );
    let _ = worker.kill();
    let _ = worker.wait();
    support::cleanup(&ch, &queue, &db).await;
    let lost = published.saturating_sub(accepted - duplicates);
    println!(
        "delivered once and in order: {}",
        if lost == 0 && violations == 0 && duplicates == 0 {
            "yes"
        } else {
            "NO"
        }
    );
}
