//! The settings table (`pusher_relay::config::SETTINGS`) is the one list of
//! environment variables; the three places that document them for
//! operators must list exactly its names:
//!
//! - `.env.example`: every setting as `NAME=value`, and each secret's
//!   `NAME_FILE` variant mentioned in a comment;
//! - `docs/configuration.md`: the table `config::reference_table` makes
//!   from the list, word for word (`UPDATE_DOCS=1` rewrites it);
//! - `deploy/kubernetes/configmap.yaml`: every setting that is not secret,
//!   and no secret (those belong in the Secret, `secret.example.yaml`).
//!   `RUST_LOG` is there too: the log filter's variable, read by the
//!   tracing subscriber, not a setting of the list.

use std::collections::BTreeSet;
use std::path::Path;

use pusher_relay::config::{reference_table, SETTINGS};

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

/// Where the generated table sits in `docs/configuration.md`.
const TABLE_BEGIN: &str = "<!-- The table below is made from pusher_relay::config::SETTINGS; `UPDATE_DOCS=1 cargo test --test offline settings_docs` rewrites it. -->\n";
const TABLE_END: &str = "<!-- end of the generated table -->\n";

#[test]
fn configuration_doc_holds_the_settings_table_word_for_word() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let page = read("docs/configuration.md");
    let (before, rest) = page
        .split_once(TABLE_BEGIN)
        .expect("docs/configuration.md marks where its settings table begins");
    let (table, after) = rest
        .split_once(TABLE_END)
        .expect("docs/configuration.md marks where its settings table ends");
    let wanted = reference_table();
    if table == wanted {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(
            &path,
            format!("{before}{TABLE_BEGIN}{wanted}{TABLE_END}{after}"),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    panic!(
        "docs/configuration.md's settings table is not the one SETTINGS makes; \
         run `UPDATE_DOCS=1 cargo test --test offline settings_docs` and commit the result"
    );
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
