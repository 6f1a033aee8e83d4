//! `cargo bench --bench scale`: the drain rate of 1, 2 and 3 workers on
//! shards (`RELAY_SHARDS=6`, so each count gets an even share), against the
//! fake Pusher 50 ms +- 10 ms away, each worker the release binary with its
//! defaults (adaptive concurrency).
//!
//! For each count: 100,000 intents over 1,000 channels are published, then
//! the workers start one after the other and drain them, spreading the
//! shards as they go (the time until each holds its share is printed). The
//! rate is from the first event at the fake to the last, with its ratio to
//! one worker's rate measured in the same run, and the order violations and
//! duplicates. On a 2-core machine the workers, RabbitMQ and the fake share
//! the cores: more workers there buy availability, not speed.
//! Needs RabbitMQ on 127.0.0.1:5672 with the consistent-hash exchange
//! plugin (scripts/services enables it).

#[path = "../tests/common/distant.rs"]
mod distant;
mod support;

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use distant::Distant;

const KEY: &str = "scale-key";
const SECRET: &str = "scale-secret";
const SHARDS: u16 = 6;
const CHANNELS: usize = 1_000;
const BATCH: usize = 100_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Worker {
    child: Child,
    http_port: u16,
    db: std::path::PathBuf,
}

impl Worker {
    async fn shards_active(&self) -> usize {
        let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.http_port)).await
        else {
            return 0;
        };
        resp.text()
            .await
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("pusher_relay_shards_active ")?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0) as usize
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db.display()));
        }
    }
}

struct Measured {
    spread: Option<Duration>,
    rate: f64,
    violations: usize,
    duplicates: usize,
    bad_signatures: usize,
}

async fn measure(workers: usize) -> Measured {
    let queue = format!("bench-scale-{}-{workers}", std::process::id());
    let (conn, ch) = support::channel().await;
    let mut amqp = pusher_relay::config::AmqpConfig::new(
        support::AMQP_URL,
        &format!("{queue}.x"),
        &queue,
        &format!("{queue}.w"),
    );
    amqp.shards = SHARDS;
    pusher_relay::amqp::declare_topology(&conn, &amqp)
        .await
        .expect("topology (is the consistent-hash exchange plugin enabled?)");
    let pusher = Distant::start(
        KEY,
        SECRET,
        Duration::from_millis(50),
        Duration::from_millis(10),
    )
    .await;
    // The backlog first: published beside the draining, the rate would be
    // the broker's publishing rate (about 6,000/s here, below one worker's).
    let channels: Vec<String> = (0..CHANNELS).map(|c| format!("scale-{c}")).collect();
    let all: Vec<String> = (0..BATCH).map(|i| channels[i % CHANNELS].clone()).collect();
    let exchange = format!("{queue}.x");
    support::publish_to(&ch, &exchange, "event", &all, &mut HashMap::new(), true).await;

    let mut running = Vec::new();
    let started = Instant::now();
    for w in 0..workers {
        let http_port = free_port();
        // One SQLite file each: nothing is dead-lettered here, and a shared
        // store is PostgreSQL's job.
        let db = std::env::temp_dir().join(format!("{queue}-{w}.db"));
        let mut cmd = support::worker(
            env!("CARGO_BIN_EXE_pusher-relay"),
            KEY,
            SECRET,
            pusher.port,
            &queue,
            &db,
        );
        cmd.env("HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("RELAY_SHARDS", SHARDS.to_string());
        running.push(Worker {
            child: cmd.spawn().expect("release binary"),
            http_port,
            db,
        });
    }
    let share = usize::from(SHARDS) / workers;
    let mut spread = None;
    while pusher.seen().accepted() < BATCH {
        if spread.is_none() {
            let mut active = Vec::new();
            for w in &running {
                active.push(w.shards_active().await);
            }
            if active.iter().all(|&n| n == share) {
                spread = Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let measured = {
        let seen = pusher.seen();
        let ats: Vec<Duration> = seen.events.iter().map(|e| e.at).collect();
        let rate = match (ats.iter().min(), ats.iter().max()) {
            (Some(a), Some(b)) if b > a => ats.len() as f64 / (*b - *a).as_secs_f64(),
            _ => f64::NAN,
        };
        Measured {
            spread,
            rate,
            violations: seen.violations,
            duplicates: seen.duplicates,
            bad_signatures: seen.bad_signatures,
        }
    };
    drop(running);
    for q in pusher_relay::amqp::consumed_queues(&amqp)
        .into_iter()
        .chain([pusher_relay::amqp::roll_call_queue(&amqp)])
    {
        let _ = ch.queue_delete(&q, Default::default()).await;
    }
    for x in ["", ".shards", ".by-key", ".by-id"] {
        let _ = ch
            .exchange_delete(&format!("{exchange}{x}"), Default::default())
            .await;
    }
    support::cleanup(
        &ch,
        &queue,
        &std::env::temp_dir().join(format!("{queue}.db")),
    )
    .await;
    let _ = conn.close(200, "done").await;
    measured
}

#[tokio::main]
async fn main() {
    println!("drain of {BATCH} intents over {CHANNELS} channels, {SHARDS} shards, Pusher 50 ms +- 10 ms away");
    let mut one = f64::NAN;
    for workers in 1..=3 {
        let m = measure(workers).await;
        if workers == 1 {
            one = m.rate;
        }
        let spread = m.spread.map_or("not spread in 30 s".to_string(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        });
        println!(
            "{workers} worker(s): {:.0} events/s ({:.2} of one worker); shards spread after {spread}; violations {}, duplicates {}, bad signatures {}",
            m.rate,
            m.rate / one,
            m.violations,
            m.duplicates,
            m.bad_signatures
        );
    }
}
