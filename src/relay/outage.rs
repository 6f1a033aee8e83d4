//! A queue's side of an outage: while the circuit is open, the worker holds
//! no intent of it (its session returned them and ended), and keeps only a
//! connection without a consumer, so that the lag gauge still shows the
//! backlog grow and `/readyz` still tells the broker's state. A connection
//! the broker closes meanwhile is replaced within a second or so.

use tokio::time::MissedTickBehavior;

use super::session::{self, ConsumedQueue, Shared, LAG_SAMPLE_INTERVAL, LIVENESS_INTERVAL};
use super::{reconnect_waits, sleep_or_shutdown};
use crate::amqp::{self, AmqpError};
use crate::metrics;
use crate::shutdown::Shutdown;

/// Waits until Pusher answers again (the circuit closes); returns `true`
/// when shutdown came first. The topology is declared meanwhile, so that
/// producers of a worker first started during an outage have a queue to
/// publish to; a topology the broker refuses is the only error.
pub(super) async fn wait_for_pusher(
    shared: &Shared,
    queue: &ConsumedQueue,
    shutdown: &mut Shutdown,
) -> Result<bool, AmqpError> {
    let mut waits = reconnect_waits();
    let describe = |cause: Option<crate::relay::circuit::Cause>| cause.map(|c| c.describe());
    while shared.circuit.open_cause().is_some() {
        let conn = match amqp::connect(&shared.cfg.amqp, &session::connection_name(&queue.name))
            .await
        {
            Ok(conn) => conn,
            Err(e) => {
                shared.health.set_broker(queue.index, false);
                let wait = waits.next().unwrap_or(std::time::Duration::from_secs(15));
                tracing::error!(queue = %queue.name, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot reach RabbitMQ while Pusher is away; retrying");
                if sleep_or_shutdown(wait, shutdown).await {
                    return Ok(true);
                }
                continue;
            }
        };
        match amqp::declare_topology(&conn, &shared.cfg.amqp).await {
            // Told only now, so that whoever reads it as "started" finds the
            // queues declared.
            Ok(_) => shared
                .health
                .set_circuit(describe(shared.circuit.open_cause())),
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                tracing::error!(queue = %queue.name, error = %e, "cannot declare the topology while Pusher is away; reconnecting");
                let _ = conn.close(200, "reconnecting").await;
                if sleep_or_shutdown(
                    waits.next().unwrap_or(std::time::Duration::from_secs(15)),
                    shutdown,
                )
                .await
                {
                    return Ok(true);
                }
                continue;
            }
        }
        let channel = match amqp::open_channel(&conn).await {
            Ok(channel) => channel,
            Err(e) => {
                tracing::error!(queue = %queue.name, error = %e, "cannot open a channel while Pusher is away; reconnecting");
                let _ = conn.close(200, "reconnecting").await;
                continue;
            }
        };
        waits = reconnect_waits();
        shared.health.set_broker(queue.index, true);
        let mut lag = tokio::time::interval(LAG_SAMPLE_INTERVAL);
        lag.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut liveness = tokio::time::interval(LIVENESS_INTERVAL);
        liveness.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let came = loop {
            tokio::select! {
                _ = shared.circuit.admit() => break Some(false),
                _ = shutdown.recv() => break Some(true),
                _ = lag.tick() => session::sample_lag(&channel, queue, &shared.queues).await,
                _ = liveness.tick() => {
                    if !channel.status().connected() {
                        break None;
                    }
                }
            }
        };
        match came {
            Some(shutdown_came) => {
                shared
                    .health
                    .set_circuit(describe(shared.circuit.open_cause()));
                let _ = channel.close(200, "Pusher answers again").await;
                let _ = conn.close(200, "Pusher answers again").await;
                return Ok(shutdown_came);
            }
            None => {
                shared.health.set_broker(queue.index, false);
                metrics::broker_connection_lost();
                tracing::error!(queue = %queue.name, "lost RabbitMQ while Pusher is away (this worker held nothing); reconnecting");
            }
        }
    }
    Ok(false)
}
