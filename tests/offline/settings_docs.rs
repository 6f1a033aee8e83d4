//! The settings table (`pusher_relay::config::SETTINGS`) is the one list of
//! environment variables; the three places that document them for
//! operators must list exactly its names:
//!
//! - `.env.example`: every setting as `NAME=value`, and each secret's
//!   `NAME_FILE` variant mentioned in a comment;
//! - the configuration table of `docs/configuration.md`: every setting and
//!   every `NAME_FILE` variant, each setting's default in its row;
//! - `deploy/kubernetes/configmap.yaml`: every setting that is not secret,
//!   and no secret (those belong in the Secret, `secret.example.yaml`).
//!   `RUST_LOG` is there too: the log filter's variable, read by the
//!   tracing subscriber, not a setting of the list.

use std::collections::BTreeSet;
use std::path::Path;

use pusher_relay::config::SETTINGS;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|err| panic!("{}: {err}", full.display()))
}

fn names() -> BTreeSet<String> {
    SETTINGS.iter().map(|s| s.name.to_owned()).collect()
}

fn file_vars() -> BTreeSet<String> {
    SETTINGS.iter().filter_map(|s| s.file_var()).collect()
}

/// Whether `s` looks like an environment variable's name.
fn is_var(s: &str) -> bool {
    s.len() > 1
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// What is in backticks in `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The configuration table of `docs/configuration.md`: (the names of the
/// first cell, the default cell) per row. A name written `_SUFFIX` continues
/// the cell's first name: `RELAY_CHANNEL_CHAT`, `_ORDER` is
/// `RELAY_CHANNEL_ORDER`. Only the text before the page's first `##` section
/// counts, so a later section's table cannot pass for it.
fn documented_rows() -> Vec<(Vec<String>, String)> {
    let page = read("docs/configuration.md");
    let section = page
        .strip_prefix("# Configuration\n")
        .expect("docs/configuration.md starts with its title, # Configuration");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let mut names: Vec<String> = Vec::new();
            for token in backticked(cells[1]) {
                match (token.strip_prefix('_'), names.first()) {
                    (Some(_), Some(first)) => {
                        let prefix = first.rsplit_once('_').map_or("", |(p, _)| p);
                        names.push(format!("{prefix}{token}"));
                    }
                    _ => names.push(token.to_owned()),
                }
            }
            (names, cells[2].to_owned())
        })
        .collect()
}

#[test]
fn env_example_sets_every_setting_and_mentions_every_file_variant() {
    let text = read(".env.example");
    let set: BTreeSet<String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name.trim().to_owned())
        .filter(|name| is_var(name))
        .collect();
    assert_eq!(set, names(), ".env.example sets other names than the list");
    for file_var in file_vars() {
        let mentioned = text
            .lines()
            .any(|line| line.starts_with('#') && line.contains(&file_var));
        assert!(mentioned, ".env.example has no comment on {file_var}");
    }
}

#[test]
fn configuration_doc_lists_every_setting_and_file_variant_with_its_default() {
    let rows = documented_rows();
    let listed: Vec<&String> = rows.iter().flat_map(|(names, _)| names).collect();
    let unique: BTreeSet<String> = listed.iter().map(|n| n.to_string()).collect();
    assert_eq!(listed.len(), unique.len(), "a name is in two rows");
    let expected: BTreeSet<String> = names().union(&file_vars()).cloned().collect();
    assert_eq!(
        unique, expected,
        "docs/configuration.md's table lists other names than the settings and their _FILE variants"
    );
    for setting in SETTINGS {
        let Some(default) = setting.default else {
            continue;
        };
        let (_, cell) = rows
            .iter()
            .find(|(names, _)| names.iter().any(|n| n == setting.name))
            .expect("listed");
        assert!(
            backticked(cell).contains(&default),
            "docs/configuration.md gives {} a default other than `{default}`: {cell}",
            setting.name
        );
    }
}

#[test]
fn configmap_holds_every_setting_that_is_not_secret_and_no_secret() {
    let yaml = read("deploy/kubernetes/configmap.yaml");
    let data = yaml.split("\ndata:\n").nth(1).expect("a data: block");
    let keys: BTreeSet<String> = data
        .lines()
        .filter(|line| line.starts_with("  ") && !line.trim_start().starts_with('#'))
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(key, _)| key.to_owned())
        .collect();
    let mut expected: BTreeSet<String> = SETTINGS
        .iter()
        .filter(|s| !s.secrecy.is_secret())
        .map(|s| s.name.to_owned())
        .collect();
    expected.insert("RUST_LOG".to_owned());
    assert_eq!(
        keys, expected,
        "the ConfigMap holds other keys than the settings that are not secret"
    );
}
