//! Shards spread over workers.
//!
//! Every shard queue is single-active-consumer and every worker registers a
//! consumer on each, so RabbitMQ gives each shard to one worker and keeps the
//! others waiting in registration order. It does not spread them: the
//! worker that started first is active on all of them. So each worker, every
//! [`INTERVAL`]:
//! - counts the live workers: the consumers on the roll-call queue
//!   (`{queue}.workers`, nothing is published to it), on which every worker
//!   keeps one consumer; a single-active queue's own consumer count tells
//!   only the active one;
//! - counts the shards it is active on: those it took a delivery from within
//!   [`ACTIVE_WINDOW`] (deliveries are the only sign RabbitMQ 3.x gives; an
//!   idle shard costs nothing wherever it is);
//! - when it holds more than its share, `ceil(shards / workers)`, it hands
//!   the excess back, chosen at random: each such shard's session stops
//!   starting requests, finishes those in flight, acks, and closes its
//!   channel; what it took and did not start goes back to the queue in order,
//!   and the next waiting worker becomes active on it. The session then
//!   registers again, at the back of the line.
//!
//! No worker ever hands back below its share and the shares add up to at
//! least the number of shards, so the handoffs stop: a shard handed to a
//! worker already at its share is handed on at its next round. The spread
//! is even when the shards are a multiple of the workers or many more; 12
//! shards over 5 workers settle at 3, 3, 3, 3 and 0, because a worker cannot
//! ask for a shard, only give one up.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use rand::seq::SliceRandom;

use super::session::Shared;
use crate::amqp::{self, AmqpError};
use crate::clock::now_ms;
use crate::metrics;
use crate::shutdown::Shutdown;

/// How often the shares are checked.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// A shard that gave this worker a delivery this recently is held by it.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(6);

/// The most shards one of `workers` workers should be active on.
pub fn fair_share(shards: usize, workers: usize) -> usize {
    shards.div_ceil(workers.max(1))
}

/// How many of its `active` shards a worker should hand back.
pub fn excess(active: usize, shards: usize, workers: usize) -> usize {
    active.saturating_sub(fair_share(shards, workers))
}

/// Keeps this worker on the roll call and its shards at its share, until
/// shutdown; reconnects after a lost connection.
pub async fn run(shared: Arc<Shared>, mut shutdown: Shutdown) {
    while !shutdown.is_shutdown() {
        if let Err(e) = roll_call(&shared, &mut shutdown).await {
            tracing::warn!(error = %e, "shard rebalancing paused; retrying");
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = shutdown.recv() => return,
            }
        }
    }
}

async fn roll_call(shared: &Shared, shutdown: &mut Shutdown) -> Result<(), AmqpError> {
    let amqp_cfg = &shared.cfg.amqp;
    let queue = amqp::roll_call_queue(amqp_cfg);
    let conn = amqp::connect(amqp_cfg, &format!("pusher-relay roll call {queue}")).await?;
    let channel = amqp::open_channel(&conn).await?;
    // The shard queues are the sessions' to declare; this needs only its own.
    amqp::declare_roll_call(&channel, amqp_cfg).await?;
    // Held for the connection's life: while it is registered, this worker
    // is counted.
    let _consumer = channel
        .basic_consume(
            &queue,
            "pusher-relay",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| AmqpError::Channel {
            doing: "joining the roll call",
            source,
        })?;
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => {
                let _ = conn.close(200, "pusher-relay stopping").await;
                return Ok(());
            }
        }
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let workers = channel
            .queue_declare(&queue, passive, FieldTable::default())
            .await
            .map_err(|source| AmqpError::Channel {
                doing: "counting workers",
                source,
            })?
            .consumer_count() as usize;
        let now = now_ms();
        let mut active: Vec<_> = shared
            .queues
            .iter()
            .filter(|q| q.active_within(ACTIVE_WINDOW, now))
            .collect();
        metrics::shards(active.len(), workers);
        let hand_back = excess(active.len(), shared.queues.len(), workers);
        if hand_back == 0 {
            continue;
        }
        tracing::info!(
            active = active.len(),
            workers,
            share = fair_share(shared.queues.len(), workers),
            hand_back,
            "active on more than this worker's share of shards; handing some to the others"
        );
        // At random, so that workers handing back at once do not all pick
        // the same shards.
        active.shuffle(&mut rand::thread_rng());
        for queue in active.into_iter().take(hand_back) {
            queue.request_handoff();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_shard() {
        for shards in 1..=16 {
            for workers in 1..=8 {
                assert!(fair_share(shards, workers) * workers >= shards);
            }
        }
        assert_eq!(fair_share(8, 3), 3);
        assert_eq!(fair_share(8, 0), 8);
    }

    /// RabbitMQ's behaviour modelled: a handed-back shard goes to the first
    /// worker waiting on it; the worker that handed it back queues last. From
    /// the worst start (one worker active on all), rounds of handing back
    /// stop, with every worker at its share or one below.
    #[test]
    fn handing_back_settles_at_the_fair_share() {
        for workers in 1..=5 {
            for shards in workers..=12 {
                // owner[s]: the active worker; line[s]: those waiting.
                let mut owner = vec![0usize; shards];
                let mut line: Vec<Vec<usize>> = vec![(1..workers).collect(); shards];
                let mut rounds = 0;
                loop {
                    let mut moved = false;
                    for w in 0..workers {
                        let held: Vec<usize> = (0..shards).filter(|&s| owner[s] == w).collect();
                        for &s in held.iter().take(excess(held.len(), shards, workers)) {
                            if line[s].is_empty() {
                                continue;
                            }
                            owner[s] = line[s].remove(0);
                            line[s].push(w);
                            moved = true;
                        }
                    }
                    if !moved {
                        break;
                    }
                    rounds += 1;
                    assert!(rounds <= workers, "{shards} shards, {workers} workers");
                }
                let share = fair_share(shards, workers);
                for w in 0..workers {
                    let held = owner.iter().filter(|&&o| o == w).count();
                    assert!(held <= share, "worker {w} holds {held} of {shards}");
                }
                // The shares can add up to more than the shards (12 over 5
                // workers: 3, 3, 3, 3, 0); an even spread needs shards a
                // multiple of the workers, or well over them.
                if (workers, shards) == (3, 8) {
                    let mut held: Vec<usize> = (0..workers)
                        .map(|w| owner.iter().filter(|&&o| o == w).count())
                        .collect();
                    held.sort_unstable();
                    assert_eq!(held, [2, 3, 3]);
                }
            }
        }
    }
}
