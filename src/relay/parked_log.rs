//! Writes and reads one session's parked log (see [`super::parking`]), in
//! its own task so the event loop never waits on the store. Requests are
//! served in the order sent, which is what keeps the log in arrival order: a
//! write sent before a read is committed before the read runs. Consecutive
//! writes to one group go in one transaction, consecutive deletes in one
//! statement. A write that fails is retried with backoff, its deliveries
//! unacked meanwhile, as the dead-letter writer does.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::mpsc;

use super::health::Health;
use crate::deadletter::{Adopted, NewParked, Parked, Store, StoreError};
use crate::metrics;

/// Rows written in one transaction at most.
const MAX_ROWS_PER_WRITE: usize = 500;

#[derive(Debug)]
pub enum Request {
    /// Append rows (with the delivery tag to ack once committed) to `group`,
    /// after moving the rows of `merge` into it.
    Park {
        group: String,
        merge: Vec<String>,
        rows: Vec<(u64, NewParked)>,
    },
    /// The first `limit` rows of `group`.
    Read { group: String, limit: usize },
    /// Delete finished rows.
    Unpark { seqs: Vec<i64> },
    /// Renew the log's lease, and adopt the logs of `queue` whose lease ran
    /// out before `cutoff_ms` (competing consumers only).
    Lease {
        queue: String,
        now_ms: i64,
        cutoff_ms: i64,
    },
}

#[derive(Debug)]
pub enum Reply {
    /// Committed: `tags` may be acked; `added` rows were new.
    Parked {
        group: String,
        tags: Vec<u64>,
        added: u64,
    },
    /// A page, or `None` when it could not be read (asked again later).
    Read {
        group: String,
        rows: Option<Vec<Parked>>,
    },
    Unparked {
        seqs: Vec<i64>,
    },
    /// `held`: whether the lease was still this log's (`None` when the
    /// store could not say); `adopted`: what moved into this log.
    Lease {
        held: Option<bool>,
        adopted: Vec<Adopted>,
    },
}

/// Serves `log`'s requests until `requests` closes or nobody listens.
pub async fn run(
    store: Store,
    health: Arc<Health>,
    log: String,
    mut requests: mpsc::UnboundedReceiver<Request>,
    replies: mpsc::UnboundedSender<Reply>,
) {
    let mut next = None;
    loop {
        let request = match next.take() {
            Some(r) => r,
            None => match requests.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        let reply = match request {
            Request::Park { group, merge, rows } => {
                let mut rows = rows;
                // Later writes to the same group join this transaction;
                // anything else waits its turn, in order.
                while rows.len() < MAX_ROWS_PER_WRITE {
                    match requests.try_recv() {
                        Ok(Request::Park {
                            group: g,
                            merge: m,
                            rows: more,
                        }) if g == group && m.is_empty() => rows.extend(more),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let (tags, new): (Vec<u64>, Vec<NewParked>) = rows.into_iter().unzip();
                let Some(added) = retried(&health, &replies, "park", || {
                    store.park(&log, &group, &merge, &new)
                })
                .await
                else {
                    return;
                };
                Reply::Parked { group, tags, added }
            }
            Request::Read { group, limit } => match store.parked_page(&log, &group, limit).await {
                Ok(rows) => Reply::Read {
                    group,
                    rows: Some(rows),
                },
                Err(e) => {
                    metrics::store_error();
                    tracing::error!(error = %e, %group, "cannot read the parked log; trying again shortly");
                    health.set_store(Some(e.to_string()));
                    Reply::Read { group, rows: None }
                }
            },
            Request::Unpark { mut seqs } => {
                loop {
                    match requests.try_recv() {
                        Ok(Request::Unpark { seqs: more }) => seqs.extend(more),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if retried(&health, &replies, "unpark", || store.unpark(&seqs))
                    .await
                    .is_none()
                {
                    return;
                }
                Reply::Unparked { seqs }
            }
            Request::Lease {
                queue,
                now_ms,
                cutoff_ms,
            } => match lease(&store, &log, &queue, now_ms, cutoff_ms).await {
                Ok((held, adopted)) => Reply::Lease {
                    held: Some(held),
                    adopted,
                },
                Err(e) => {
                    metrics::store_error();
                    tracing::warn!(error = %e, "cannot renew the parked log's lease; trying again shortly");
                    Reply::Lease {
                        held: None,
                        adopted: Vec::new(),
                    }
                }
            },
        };
        if replies.send(reply).is_err() {
            return;
        }
    }
}

/// Renews `log`'s lease, then takes over every log of `queue` whose lease
/// ran out: their rows are this log's from here on.
async fn lease(
    store: &Store,
    log: &str,
    queue: &str,
    now_ms: i64,
    cutoff_ms: i64,
) -> Result<(bool, Vec<Adopted>), StoreError> {
    let held = store.renew_lease(log, queue, now_ms).await?;
    let mut adopted = Vec::new();
    for orphan in store.orphaned_parked_logs(queue, log, cutoff_ms).await? {
        if let Some(a) = store.adopt_parked_log(&orphan, log, cutoff_ms).await? {
            adopted.push(a);
        }
    }
    Ok((held, adopted))
}

/// Runs `op` until it succeeds; `None` when the session went away meanwhile.
async fn retried<F, Fut, T>(
    health: &Health,
    replies: &mpsc::UnboundedSender<Reply>,
    what: &str,
    mut op: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut waits = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .without_max_times()
        .build();
    loop {
        match op().await {
            Ok(v) => {
                health.set_store(None);
                return Some(v);
            }
            Err(e) => {
                metrics::store_error();
                let wait = waits.next().unwrap_or(Duration::from_secs(10));
                tracing::error!(error = %e, what, retry_in_ms = wait.as_millis() as u64,
                    "cannot write the parked log; its deliveries stay unacked until the store is back");
                health.set_store(Some(e.to_string()));
                if replies.is_closed() {
                    return None;
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}
