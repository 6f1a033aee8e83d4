//! The worker under test, launched one of two ways: in this process
//! ([`start_worker`], for tests that read its health or status directly),
//! or as the `pusher-relay run` binary ([`Process`], for kills and signals,
//! and for assertions on counters: the metrics registry is global to a
//! process, so only a worker of its own has counters that no other test in
//! the same binary moves).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pusher_relay::config::Config;

use super::{eventually, free_port, relay_vars, Broker, Db};

/// How long a worker may take to start consuming.
const START: Duration = Duration::from_secs(60);

/// What the worker's `/metrics` answers now.
pub async fn metrics_text(worker: &pusher_relay::app::Worker) -> String {
    reqwest::get(format!("http://{}/metrics", worker.http_addr))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics is text")
}

/// Starts the worker and waits until it consumes (its topology declared).
pub async fn start_worker(cfg: Config) -> pusher_relay::app::Worker {
    let worker = pusher_relay::app::Worker::start(cfg)
        .await
        .expect("the worker starts");
    // A worker that finds Pusher away at start consumes nothing until it
    // answers: started is then its circuit open.
    eventually(
        START,
        "the worker to consume, or to wait for Pusher",
        || {
            let readiness = worker.health.readiness();
            readiness.consumer || readiness.circuit != "closed"
        },
    )
    .await;
    worker
}

/// Graceful shutdown, as SIGTERM does, and waits until the worker stopped.
pub async fn stop(worker: pusher_relay::app::Worker) {
    worker.shutdown();
    worker.wait().await.expect("the worker stops cleanly");
}

/// A `pusher-relay run` process, killed (SIGKILL) if still running when
/// dropped, so a failed test leaves no worker consuming behind it.
pub struct Process {
    pub child: Child,
    pub http_addr: SocketAddr,
    /// Where its stderr goes, when not to the test's own.
    pub log: Option<PathBuf>,
}

impl Process {
    /// Spawns the binary with exactly `vars` (and PATH) in its environment,
    /// in a directory outside the repository so that no developer `.env`
    /// is picked up, serving HTTP on a free port; stderr goes to `log`
    /// when given.
    pub fn spawn(vars: &[(String, String)], log: Option<PathBuf>) -> Process {
        let http_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let stderr = match &log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None => Stdio::inherit(),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_pusher-relay"))
            .arg("run")
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .env("HTTP_ADDR", http_addr.to_string())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the pusher-relay binary starts");
        Process {
            child,
            http_addr,
            log,
        }
    }

    /// A worker on the test's fake Pusher, queue and store (as
    /// [`super::relay_config`] configures one in process), with overrides.
    pub fn spawn_for(
        pusher_uri: &str,
        broker: &Broker,
        db: &Db,
        extra: &[(&str, &str)],
    ) -> Process {
        Process::spawn(&relay_vars(pusher_uri, broker, db, extra), None)
    }

    /// [`Process::spawn_for`], and waits until it consumes, as
    /// [`start_worker`] does.
    pub async fn start(
        pusher_uri: &str,
        broker: &Broker,
        db: &Db,
        extra: &[(&str, &str)],
    ) -> Process {
        let worker = Process::spawn_for(pusher_uri, broker, db, extra);
        worker
            .wait_readyz(|status, body| {
                status.is_some() && (body["consumer"] == true || body["circuit"] != "closed")
            })
            .await;
        worker
    }

    /// Status and body of a GET to the worker, `None` while it does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = reqwest::get(format!("http://{}{path}", self.http_addr))
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    /// What `/readyz` answers: its status and JSON body.
    pub async fn readyz(&self) -> Option<(u16, serde_json::Value)> {
        let (status, body) = self.get("/readyz").await?;
        Some((status, serde_json::from_str(&body).ok()?))
    }

    /// Waits until `/readyz` satisfies `check` (given `None` and `null`
    /// while the worker does not answer); panics after a minute.
    pub async fn wait_readyz(&self, check: impl Fn(Option<u16>, &serde_json::Value) -> bool) {
        let deadline = Instant::now() + START;
        loop {
            let (status, body) = match self.readyz().await {
                Some((status, body)) => (Some(status), body),
                None => (None, serde_json::Value::Null),
            };
            if check(status, &body) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the worker on {} not as awaited within {START:?}: /readyz {status:?} {body}{}",
                self.http_addr,
                self.log
                    .as_ref()
                    .map(|l| format!("; log: {}", l.display()))
                    .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/readyz` answers 200: connected to the broker and the
    /// store, consuming, the circuit closed.
    pub async fn wait_ready(&self) {
        self.wait_readyz(|status, _| status == Some(200)).await;
    }

    /// What `/metrics` answers now.
    pub async fn metrics_text(&self) -> String {
        self.get("/metrics").await.expect("/metrics answers").1
    }

    /// A gauge or counter without labels from `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status once the worker drained (at most 30 s).
    pub async fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.child.try_wait().expect("wait") {
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not stop within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Graceful shutdown, as [`stop`] is for a worker in this process.
    pub async fn stop(self) {
        let exit = self.terminate().await;
        assert!(exit.success(), "the worker stops cleanly: {exit:?}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
