//! Writes dead letters, in batches, and reports which units are now
//! finished (deliveries to ack, parked rows to delete from their log). A row
//! is committed before its delivery is acked; while the store is down
//! nothing is acked, the writer retries with backoff, and `/readyz` says
//! why.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::mpsc;

use super::health::Health;
use super::lanes::UnitId;
use crate::deadletter::{DeadLetterReason, NewDeadLetter, Store};
use crate::metrics;

/// Rows written in one transaction at most.
const MAX_ROWS_PER_WRITE: usize = 256;

/// A dead letter to write, and the unit to finish once it is written.
#[derive(Debug)]
pub struct ToStore {
    pub id: UnitId,
    pub row: NewDeadLetter,
}

/// Runs until `rows` closes; sends `(id, reason)` of each stored row.
pub async fn run(
    store: Store,
    health: Arc<Health>,
    mut rows: mpsc::UnboundedReceiver<ToStore>,
    stored: mpsc::UnboundedSender<Vec<(UnitId, DeadLetterReason)>>,
) {
    while let Some(first) = rows.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_ROWS_PER_WRITE {
            match rows.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let new_rows: Vec<NewDeadLetter> = batch.iter().map(|b| b.row.clone()).collect();
        let mut waits = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .without_max_times()
            .build();
        loop {
            match store.insert_many(&new_rows).await {
                Ok(_) => {
                    health.set_store(None);
                    let done = batch.iter().map(|b| (b.id, b.row.reason)).collect();
                    if stored.send(done).is_err() {
                        return;
                    }
                    break;
                }
                Err(e) => {
                    metrics::store_error();
                    let wait = waits.next().unwrap_or(Duration::from_secs(10));
                    tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(|s| s.to_string()), rows = new_rows.len(), retry_in_ms = wait.as_millis() as u64,
                        "cannot write dead letters; their deliveries stay unacked until the store is back");
                    health.set_store(Some(e.to_string()));
                    if stored.is_closed() {
                        return;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
