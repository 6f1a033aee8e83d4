//! Replays started from the console: each runs as a task in the worker
//! (the same [`replay::replay`] as the CLI and the API, so it claims rows,
//! counts in `pusher_relay_replays_total` and is safe beside other replays),
//! and the page follows its progress here.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::config::AmqpConfig;
use crate::deadletter::replay::{self, ReplayOptions};
use crate::deadletter::{Filter, Store};

/// Jobs remembered for their pages; older ones are forgotten (their effect
/// is in the store).
const KEPT: usize = 50;

/// One replay's progress and outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    /// What was asked, in words ("3 selected", "every match of ...").
    pub what: String,
    pub started_ms: i64,
    /// Rows this run will try (pending matches, or every match with force).
    pub eligible: u64,
    /// Rows republished or failed so far.
    pub done: u64,
    pub replayed: u64,
    pub failed: u64,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    /// Why it stopped, when it failed; the first publish errors otherwise.
    pub errors: Vec<String>,
}

/// The console's replay jobs.
#[derive(Debug, Default)]
pub struct Replays {
    jobs: Mutex<(u64, VecDeque<Job>)>,
}

impl Replays {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, VecDeque<Job>)> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: u64) -> Option<Job> {
        self.lock().1.iter().find(|j| j.id == id).cloned()
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<Job> {
        self.lock().1.iter().rev().cloned().collect()
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Job)) {
        if let Some(job) = self.lock().1.iter_mut().find(|j| j.id == id) {
            f(job);
        }
    }

    /// Starts replaying `filter`'s matches in the background; returns the
    /// job's id at once.
    pub fn start(
        self: &Arc<Self>,
        store: Store,
        amqp: AmqpConfig,
        filter: Filter,
        what: String,
    ) -> u64 {
        let id = {
            let mut jobs = self.lock();
            jobs.0 += 1;
            let id = jobs.0;
            if jobs.1.len() == KEPT {
                jobs.1.pop_front();
            }
            jobs.1.push_back(Job {
                id,
                what,
                started_ms: crate::clock::now_ms(),
                eligible: 0,
                done: 0,
                replayed: 0,
                failed: 0,
                state: "running",
                errors: Vec::new(),
            });
            id
        };
        let jobs = self.clone();
        tokio::spawn(async move {
            let progress_jobs = jobs.clone();
            let result = replay::replay(
                &store,
                &amqp,
                &filter,
                &ReplayOptions::default(),
                move |done, eligible| {
                    progress_jobs.update(id, |j| {
                        j.done = done;
                        j.eligible = eligible;
                    })
                },
            )
            .await;
            jobs.update(id, |j| match result {
                Ok(report) => {
                    j.eligible = report.eligible;
                    j.done = report.replayed + report.failed;
                    j.replayed = report.replayed;
                    j.failed = report.failed;
                    j.errors = report.errors.into_iter().take(5).collect();
                    j.state = if report.failed == 0 { "done" } else { "failed" };
                }
                Err(e) => {
                    tracing::error!(error = %e, job = id, "console replay failed");
                    j.errors = vec![e.to_string()];
                    j.state = "failed";
                }
            });
        });
        id
    }
}
