//! The three-node RabbitMQ cluster of `scripts/cluster` (relay1..relay3 on
//! 127.0.0.1:5681..5683), for failover tests. Nodes are numbered 1 to 3, as
//! in their names.
//!
//! `Cluster::ensure()` runs `scripts/cluster start` once per test binary
//! (the script is idempotent: a cluster already running costs one status
//! check, a fresh one some 20-25 s on a loaded two-core machine). The
//! cluster is left running after the tests; `scripts/cluster stop` removes
//! it. A test that stops a node should hold `serial()` so that the other
//! tests of its binary do not see the node vanish; a node a failed test
//! left stopped is started again by the next `ensure()` of any binary.
//!
//! Every method blocks (it runs the script, and rabbitmqctl under it, for
//! about a second; stopping a node about one, starting one 5-10 s): call
//! them from a multi-thread runtime or through `spawn_blocking`.

use std::process::Command;
use std::sync::OnceLock;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster");

pub struct Cluster {
    urls: Vec<String>,
}

impl Cluster {
    /// Starts the cluster unless it runs (once per test binary); panics
    /// when it cannot be started.
    pub fn ensure() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            let out = script(&["start"]);
            let urls: Vec<String> = out
                .lines()
                .last()
                .unwrap_or_default()
                .split(',')
                .map(str::to_owned)
                .collect();
            assert_eq!(urls.len(), 3, "scripts/cluster start printed {out:?}");
            Cluster { urls }
        })
    }

    /// The nodes' AMQP URLs, node 1 first.
    pub fn urls(&self) -> Vec<String> {
        self.urls.clone()
    }

    /// Node `node`'s (1..=3) AMQP URL.
    pub fn url_of(&self, node: usize) -> String {
        assert!((1..=3).contains(&node), "cluster nodes are 1, 2 and 3");
        self.urls[node - 1].clone()
    }

    /// Held by a test that stops nodes, for as long as it does (an async
    /// lock: the guard lives across awaits).
    pub async fn serial(&self) -> tokio::sync::MutexGuard<'static, ()> {
        static SERIAL: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
        SERIAL.get_or_init(Default::default).lock().await
    }

    /// Stops node `node`'s whole VM (its connections drop, its quorum queue
    /// members go down); returns once it has exited.
    pub fn stop_node(&self, node: usize) {
        script(&["stop-node", &node.to_string()]);
    }

    /// Starts node `node` again on its data; returns once it answers AMQP
    /// and the other running nodes list it as running.
    pub fn start_node(&self, node: usize) {
        script(&["start-node", &node.to_string()]);
    }

    /// The node holding the leader of quorum queue `queue` (in vhost `/`),
    /// as a running node sees it; `None` when there is no such queue or it
    /// has no leader.
    pub fn quorum_leader(&self, queue: &str) -> Option<usize> {
        let q = self.queue_info(queue)?;
        node_number(q.get("leader")?.as_str()?)
    }

    /// The nodes holding a member of quorum queue `queue`, sorted (empty
    /// when there is no such queue).
    pub fn members(&self, queue: &str) -> Vec<usize> {
        let mut nodes: Vec<usize> = self
            .queue_info(queue)
            .and_then(|q| q.get("members")?.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| node_number(m.as_str()?))
            .collect();
        nodes.sort_unstable();
        nodes
    }

    /// `rabbitmqctl ARGS` against a running node; its stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut all = vec!["ctl"];
        all.extend_from_slice(args);
        script(&all)
    }

    fn queue_info(&self, queue: &str) -> Option<serde_json::Value> {
        let out = script(&[
            "ctl",
            "-q",
            "list_queues",
            "name",
            "leader",
            "members",
            "--formatter",
            "json",
        ]);
        let queues: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("list_queues printed no JSON ({e}): {out:?}"));
        queues
            .as_array()?
            .iter()
            .find(|q| q["name"] == queue)
            .cloned()
    }
}

/// 2 for "relay2@localhost".
fn node_number(name: &str) -> Option<usize> {
    let n = name.strip_prefix("relay")?.strip_suffix("@localhost")?;
    n.parse().ok().filter(|n| (1..=3).contains(n))
}

/// Runs `scripts/cluster ARGS`, returning its stdout; panics with its
/// stderr when it fails. Its stderr (progress and timings) goes to the
/// test's output, which libtest shows for a failed test.
fn script(args: &[&str]) -> String {
    let out = Command::new(SCRIPT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.is_empty() {
        eprint!("{stderr}");
    }
    assert!(
        out.status.success(),
        "scripts/cluster {} failed ({}); is RabbitMQ installed, and are we root or rabbitmq?",
        args.join(" "),
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
