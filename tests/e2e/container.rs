//! The container image built from the Dockerfile and run as an operator
//! would: the `prebuilt` target packaged with the binary from `cargo build
//! --release` (the official Rust builder image cannot be pulled here), run
//! with the image's own ENTRYPOINT and CMD against the local RabbitMQ and a
//! signature-checking fake Pusher. Checks what only a real image shows: it
//! holds the stripped binary, the libraries ldd lists, the CA bundle and
//! the passwd entry and nothing else (no shell) within MAX_IMAGE_BYTES; the
//! binary runs on that empty base as a non-root uid, /readyz turns 200, an
//! intent arrives, and SIGTERM, which is what `docker stop` and Kubernetes
//! send, ends it with exit code 0.
//!
//! Needs buildah, podman, readelf and the local debian:bookworm-slim image
//! the Dockerfile gathers the files in: `scripts/deploy-tools` provides
//! them. No Docker daemon is involved: `buildah run --isolation chroot` runs
//! the container on the host network.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::distant::Distant;
use common::{free_port, unique, Broker, KEY, SECRET};
use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BASE_IMAGE: &str = "docker.io/library/debian:bookworm-slim";
const BINARY: &str = "target/release/pusher-relay";
const UID: &str = "10001";
/// The image may not grow past this (it is about 23 MB: the binary is 20).
const MAX_IMAGE_BYTES: u64 = 40_000_000;
/// Where the Dockerfile puts the binary; ENTRYPOINT names it.
const INSTALLED: &str = "usr/local/bin/pusher-relay";

/// Runs a tool to completion; failure to start names where it comes from.
fn tool(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} cannot run ({e}): run scripts/deploy-tools to install it")
        })
}

fn checked(program: &str, args: &[&str]) -> String {
    let out = tool(program, args);
    assert!(
        out.status.success(),
        "{program} {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The image and working container this test made, removed however the
/// test ends. The base image stays: it is the cache scripts/deploy-tools
/// built once.
struct Cleanup {
    image: String,
    container: Option<String>,
    worker: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut child) = self.worker.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(c) = self.container.take() {
            let _ = tool("buildah", &["rm", &c]);
        }
        let _ = tool("buildah", &["rmi", "--force", &self.image]);
    }
}

/// The release binary, built once when missing. An existing one is used as
/// it is: CI builds it fresh (`cargo build --release --locked` in
/// scripts/test), and rebuilding under a running benchmark would swap it.
fn release_binary() {
    if !Path::new(ROOT).join(BINARY).exists() {
        let status = Command::new("nice")
            .args(["-n", "10", "cargo", "build", "--release", "--locked"])
            .args(["--bin", "pusher-relay"])
            .current_dir(ROOT)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --release failed");
    }
}

/// The pid of the process named `comm` among `parent`'s descendants.
fn descendant(parent: u32, comm: &str) -> Option<u32> {
    let mut children: Vec<(u32, u32, String)> = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split at ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let ppid = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        children.push((pid, ppid, name));
    }
    let mut frontier = vec![parent];
    while let Some(p) = frontier.pop() {
        for (pid, ppid, name) in &children {
            if *ppid == p {
                if name == comm {
                    return Some(*pid);
                }
                frontier.push(*pid);
            }
        }
    }
    None
}

/// The real uid of `pid` as the kernel sees it.
fn uid_of(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("Uid line")
        .to_string()
}

/// Every regular file under `root`, relative to it.
fn files_under(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("read the image's tree")
            .flatten()
        {
            let kind = entry.file_type().expect("file type");
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            assert!(
                !kind.is_symlink(),
                "{rel} is a symlink; the image holds files only"
            );
            if kind.is_dir() {
                dirs.push(entry.path());
            } else {
                found.insert(rel);
            }
        }
    }
    found
}

/// What the final stage, on an empty base, holds: the stripped binary, the
/// shared libraries it links, the CA bundle, passwd and group; no shell or
/// anything else a base image would bring.
fn check_contents(root: &Path) {
    let files = files_under(root);
    // ldd runs the binary's loader on this host, which is the Debian
    // release the Dockerfile gathers the libraries from.
    let linked: BTreeSet<String> = checked("ldd", &[BINARY])
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            match l.split_once(" => ") {
                Some((_, path)) => path.split_whitespace().next(),
                None => l.split_whitespace().next().filter(|p| p.starts_with('/')),
            }
        })
        .filter_map(|p| Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    assert!(linked.contains("libc.so.6"), "ldd lists {linked:?}");
    let mut libs = BTreeSet::new();
    for file in &files {
        match file.as_str() {
            INSTALLED | "etc/passwd" | "etc/group" | "etc/ssl/certs/ca-certificates.crt" => {}
            lib if lib.starts_with("lib/") || lib.starts_with("lib64/") => {
                let name = lib.rsplit('/').next().unwrap_or(lib).to_string();
                assert!(linked.contains(&name), "{lib} is in the image, yet not linked");
                libs.insert(name);
            }
            other => panic!("{other} is in the image: only the binary, its libraries, the CA bundle, passwd and group belong there"),
        }
    }
    assert_eq!(libs, linked, "the image lacks libraries the binary links");
    for needed in [
        INSTALLED,
        "etc/passwd",
        "etc/group",
        "etc/ssl/certs/ca-certificates.crt",
    ] {
        assert!(
            files.contains(needed),
            "the image lacks {needed}: {files:?}"
        );
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    assert!(
        passwd.lines().any(|l| l.split(':').nth(2) == Some(UID)),
        "no passwd entry for uid {UID}: {passwd}"
    );
    let sections = checked(
        "readelf",
        &[
            "--section-headers",
            "--wide",
            &root.join(INSTALLED).display().to_string(),
        ],
    );
    assert!(!sections.contains(".symtab"), "the binary is not stripped");
    let bytes: u64 = files
        .iter()
        .map(|f| {
            std::fs::metadata(root.join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    eprintln!(
        "the image holds {} files, {:.1} MB: {files:?}",
        files.len(),
        bytes as f64 / 1e6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_the_worker_as_non_root_delivers_and_stops_cleanly_on_sigterm() {
    tool("buildah", &["--version"]);
    tool("podman", &["--version"]);
    assert!(
        tool("podman", &["image", "exists", BASE_IMAGE])
            .status
            .success(),
        "the base image {BASE_IMAGE} is missing: run scripts/deploy-tools \
         (it builds it from the Debian archive, no registry needed)"
    );
    release_binary();

    let tag = format!("localhost/{}:test", unique("pusher-relay-image"));
    let mut cleanup = Cleanup {
        image: tag.clone(),
        container: None,
        worker: None,
    };

    let started = Instant::now();
    checked(
        "nice",
        &[
            "-n",
            "10",
            "buildah",
            "bud",
            "--quiet",
            "--isolation",
            "chroot",
            "--layers=false",
            "--target",
            "prebuilt",
            "--build-arg",
            &format!("BINARY={BINARY}"),
            "--tag",
            &tag,
            "--file",
            "Dockerfile",
            ".",
        ],
    );
    eprintln!("image built in {:.1?}", started.elapsed());

    // What the image promises before it runs.
    let inspect: Value =
        serde_json::from_str(&checked("podman", &["image", "inspect", &tag])).expect("JSON");
    let image = &inspect[0];
    let config = &image["Config"];
    assert_eq!(config["User"], format!("{UID}:{UID}"), "non-root by uid");
    assert_eq!(config["Entrypoint"], json!([format!("/{INSTALLED}")]));
    assert_eq!(config["Cmd"], json!(["run"]));
    assert_eq!(config["StopSignal"], "SIGTERM");
    assert!(
        config["ExposedPorts"].get("9464/tcp").is_some(),
        "EXPOSE 9464: {config}"
    );
    let env: Vec<&str> = config["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for secret in [
        "PUSHER_APP_SECRET",
        "PUSHER_APP_KEY",
        "AMQP_URL",
        "DATABASE_URL",
        "RELAY_ADMIN_TOKEN",
        "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
    ] {
        assert!(
            !env.iter().any(|e| e.starts_with(&format!("{secret}="))),
            "the image bakes in {secret}: {env:?}"
        );
    }
    let size = image["Size"].as_u64().expect("Size");
    eprintln!("image size: {:.1} MB ({size} bytes)", size as f64 / 1e6);
    assert!(
        size <= MAX_IMAGE_BYTES,
        "the image is {size} bytes, above {MAX_IMAGE_BYTES}"
    );

    let pusher = Distant::start(KEY, SECRET, Duration::ZERO, Duration::ZERO).await;
    let broker = Broker::new("container").await;
    let port = free_port();
    let container = checked(
        "buildah",
        &["from", "--name", &unique("pusher-relay-ctr"), &tag],
    );
    cleanup.container = Some(container.clone());
    // `buildah rm` unmounts it.
    let rootfs = checked("buildah", &["mount", &container]);
    check_contents(Path::new(&rootfs));

    // Settings come from the environment at run time, as in production.
    let settings = [
        ("PUSHER_APP_ID", "4242".to_string()),
        ("PUSHER_APP_KEY", KEY.to_string()),
        ("PUSHER_APP_SECRET", SECRET.to_string()),
        ("PUSHER_HOST", "127.0.0.1".to_string()),
        ("PUSHER_PORT", pusher.port.to_string()),
        ("PUSHER_SCHEME", "http".to_string()),
        ("AMQP_URL", common::amqp_url()),
        ("AMQP_EXCHANGE", broker.exchange.clone()),
        ("AMQP_QUEUE", broker.queue.clone()),
        ("AMQP_WEBHOOK_EXCHANGE", broker.webhooks.clone()),
        ("HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("RELAY_SHUTDOWN_TIMEOUT", "10s".to_string()),
    ];
    let mut run = Command::new("buildah");
    run.args(["run", "--isolation", "chroot", "--network", "host"]);
    for (k, v) in &settings {
        run.arg("--env").arg(format!("{k}={v}"));
    }
    // The image's own ENTRYPOINT and CMD, not a command of the test's.
    run.arg(&container).arg("--");
    for part in config["Entrypoint"]
        .as_array()
        .into_iter()
        .chain(config["Cmd"].as_array())
        .flatten()
    {
        run.arg(part.as_str().expect("string"));
    }
    let child = run
        .stdin(Stdio::null())
        .spawn()
        .expect("buildah run starts");
    let buildah_pid = child.id();
    cleanup.worker = Some(child);

    let http = reqwest::Client::new();
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(&readyz).send().await {
            if r.status() == 200 {
                break;
            }
        }
        if let Some(status) = cleanup
            .worker
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("the container exited before it was ready: {status}");
        }
        assert!(Instant::now() < deadline, "{readyz} not 200 after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("ready {:.1?} after the build", started.elapsed());

    let worker_pid = descendant(buildah_pid, "pusher-relay").expect("the worker's process");
    let uid = uid_of(worker_pid);
    assert_eq!(uid, UID, "the worker runs as uid {uid}");

    let channel = unique("container");
    broker
        .publish(&[
            json!({"type": "event", "channels": [channel], "event": "container-test",
                          "data": {"seq": 0, "t": common::distant::now_ms()}}),
        ])
        .await;
    pusher.wait_for(1, Duration::from_secs(30)).await;
    {
        let seen = pusher.seen();
        assert_eq!(seen.bad_signatures, 0, "signatures from inside the image");
        assert_eq!(seen.events[0].channel, channel);
    }

    // What `docker stop` does: STOPSIGNAL to the container's main process.
    let killed = Command::new("kill")
        .args(["-TERM", &worker_pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let mut child = cleanup.worker.take().expect("worker");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            cleanup.worker = Some(child);
            panic!("the worker did not exit within 30 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert_eq!(broker.ready_settled().await, 0, "nothing left in the queue");
    eprintln!("whole test {:.1?}", started.elapsed());
}
