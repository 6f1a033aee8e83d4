//! The operator files in deploy/ only name metrics the worker exports, so a
//! renamed metric cannot silently blank a dashboard panel or an alert.

use std::collections::BTreeSet;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}"))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every `pusher_relay_*` name in `text`, with Prometheus' histogram series
/// suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("pusher_relay_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                name = base;
            }
        }
        names.insert(name.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn dashboards_and_alerts_use_only_exported_metrics() {
    let exported = metric_names(&read("src/metrics.rs"));
    assert!(
        exported.len() >= 15,
        "metrics.rs lists the metrics: {exported:?}"
    );
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/pusher-relay.json",
    ] {
        let used = metric_names(&read(file));
        assert!(!used.is_empty(), "{file} names no metric");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the worker does not export: {unknown:?}"
        );
    }
}

#[test]
fn the_dashboard_is_json_with_a_query_in_every_panel() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/pusher-relay.json")).expect("dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    for p in panels {
        let exprs: Vec<&str> = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["expr"].as_str())
            .collect();
        assert!(!exprs.is_empty(), "panel {} has no query", p["title"]);
    }
}

#[test]
fn every_alert_has_an_expression_and_a_summary() {
    let rules = read("deploy/prometheus/alerts.yml");
    let alerts = rules.matches("- alert:").count();
    assert!(alerts >= 5, "{alerts} alerts");
    assert_eq!(rules.matches("expr:").count(), alerts);
    assert_eq!(rules.matches("summary:").count(), alerts);
}
