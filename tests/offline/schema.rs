//! Guards `schema/intent-v1.schema.json`, the JSON Schema of wire contract v1.
//!
//! The worker's decoder (`pusher_relay::intent::decode`) is the source of
//! truth; these tests keep the schema in step with it:
//! - every intent shown in `README.md` and in the Markdown under `docs/` and
//!   `clients/` validates against the schema and is accepted by the decoder;
//! - a table of invalid intents is rejected by both, and a table of edge
//!   cases that are valid is accepted by both;
//! - every typed `pusher_relay::publish::NewIntent` serialises to
//!   schema-valid JSON;
//! - the rules the schema can only describe (the `data` size limit, channels
//!   rendered from identifiers, `1.0` as an integer) stay the only places
//!   where the two differ.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jsonschema::Validator;
use pusher_relay::intent::{self, ChannelTemplates, DecodeContext, Intent, IntentError};
use pusher_relay::publish::{Id, NewIntent};
use serde_json::{json, Value};

/// The schema file, relative to the crate root.
const SCHEMA_FILE: &str = "schema/intent-v1.schema.json";

/// The schema's `$id`, which producers may refer to.
const SCHEMA_ID: &str = "https://pusher-relay.invalid/schema/intent-v1.schema.json";

use pusher_relay::intent::KNOWN_TYPES;

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema_json() -> Value {
    let path = crate_root().join(SCHEMA_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
}

fn validator() -> Validator {
    jsonschema::draft202012::new(&schema_json())
        .unwrap_or_else(|err| panic!("{SCHEMA_FILE} does not compile as draft 2020-12: {err}"))
}

/// The schema's complaints about `value`, one line each; empty when valid.
fn schema_errors(validator: &Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|err| format!("{err} (at \"{}\")", err.instance_path))
        .collect()
}

/// Decodes a body as the worker does, with the default channel templates.
fn decode(body: &[u8]) -> Result<Intent, IntentError> {
    let templates = ChannelTemplates::default();
    let ctx = DecodeContext {
        message_id: None,
        enqueued_at_ms: None,
        now_ms: 0,
        max_event_bytes: 10_240,
        templates: &templates,
    };
    intent::decode(body, &ctx)
}

/// One intent found in the documentation.
struct Example {
    /// The Markdown file, relative to the crate root.
    file: String,
    /// 1-based line where the example starts.
    line: usize,
    /// The JSON text as written.
    text: String,
    /// The parsed object.
    value: Value,
}

impl Example {
    fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// `README.md` and every Markdown file under `docs/` and `clients/`,
/// skipping installed dependencies (`vendor/`, `node_modules/`) and hidden
/// folders.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !(name.starts_with('.') || name == "vendor" || name == "node_modules") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|ext| ext == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![crate_root().join("README.md")];
    for dir in ["docs", "clients"] {
        let dir = crate_root().join(dir);
        if dir.is_dir() {
            walk(&dir, &mut files);
        }
    }
    files.sort();
    files
}

/// JSON objects that start somewhere in `line`, with their byte offsets;
/// finds `{...}` inside shell commands too (`publish '{"type":...}'`).
fn objects_in_line(line: &str) -> Vec<(usize, &str, Value)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find('{').map(|i| from + i) {
        let mut stream = serde_json::Deserializer::from_str(&line[at..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value @ Value::Object(_))) => {
                let end = at + stream.byte_offset();
                found.push((at, &line[at..end], value));
                from = end;
            }
            _ => from = at + 1,
        }
    }
    found
}

/// Every JSON object with a `"type"` key in one Markdown text: whole
/// ```json blocks (one or more values, possibly spread over lines), JSON
/// objects on the lines of other fenced blocks, and lines outside fences
/// that start with `{`.
fn examples_in_markdown(file: &str, markdown: &str) -> Vec<Example> {
    let mut found: Vec<(usize, String, Value)> = Vec::new();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let fence = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f));
        let Some(fence) = fence else {
            if trimmed.starts_with('{') {
                for (_, text, value) in objects_in_line(lines[i]) {
                    found.push((i + 1, text.to_owned(), value));
                }
            }
            i += 1;
            continue;
        };
        let lang = trimmed[fence.len()..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && !lines[end].trim_start().starts_with(fence) {
            end += 1;
        }
        let block = &lines[start..end];
        let mut whole = None;
        if matches!(lang.as_str(), "json" | "jsonl" | "jsonc" | "ndjson") {
            whole = json_values_in_block(block, start);
        }
        match whole {
            Some(values) => found.extend(values),
            None => {
                for (n, line) in block.iter().enumerate() {
                    for (_, text, value) in objects_in_line(line) {
                        found.push((start + n + 1, text.to_owned(), value));
                    }
                }
            }
        }
        i = end + 1;
    }
    found
        .into_iter()
        .filter(|(_, _, value)| value.get("type").is_some())
        .map(|(line, text, value)| Example {
            file: file.to_owned(),
            line,
            text,
            value,
        })
        .collect()
}

/// The values of a JSON block when the whole block is a sequence of JSON
/// values, with the 1-based line each starts on; `None` when it is not
/// (then its lines are searched one by one).
fn json_values_in_block(block: &[&str], first_line: usize) -> Option<Vec<(usize, String, Value)>> {
    let text = block.join("\n");
    let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let mut values = Vec::new();
    let mut offset = 0;
    while let Some(next) = stream.next() {
        let value = next.ok()?;
        let end = stream.byte_offset();
        let start = offset + (text[offset..end].len() - text[offset..end].trim_start().len());
        let line = first_line + text[..start].matches('\n').count() + 1;
        values.push((line, text[start..end].to_owned(), value));
        offset = end;
    }
    Some(values)
}

/// Every intent example in the documentation; panics when there is none,
/// so the tests built on it cannot pass vacuously.
fn documented_examples() -> Vec<Example> {
    let mut examples = Vec::new();
    for path in markdown_files() {
        let markdown = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        let relative = path
            .strip_prefix(crate_root())
            .unwrap_or(&path)
            .display()
            .to_string();
        examples.extend(examples_in_markdown(&relative, &markdown));
    }
    assert!(
        !examples.is_empty(),
        "found no JSON intent example (an object with a \"type\") in README.md, docs/**/*.md or clients/**/*.md"
    );
    examples
}

#[test]
fn example_extraction_finds_blocks_shell_lines_and_json_lines() {
    let markdown = r#"# Doc
Prose with inline `{"type":"prose"}` is not an example.

```json
{
  "type": "multi-line",
  "n": 1
}
{"type":"second"}
```

```sh
cargo run -- publish '{"type":"shell","a":{"b":1}}' # and {"no":"type"}
```

```json
{"items": [...]} {"type":"fallback"}
```

{"type":"outside"}

~~~php
$x = ['type' => 'php']; function f() { return 1; }
~~~
"#;
    let found: Vec<(usize, String)> = examples_in_markdown("doc.md", markdown)
        .into_iter()
        .map(|e| (e.line, e.value["type"].as_str().unwrap_or("").to_owned()))
        .collect();
    let expected = [
        (5, "multi-line"),
        (9, "second"),
        (13, "shell"),
        (17, "fallback"),
        (20, "outside"),
    ];
    let expected: Vec<(usize, String)> = expected
        .into_iter()
        .map(|(line, kind)| (line, kind.to_owned()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn schema_is_a_valid_draft_2020_12_schema_listing_every_type() {
    let schema = schema_json();
    if let Err(err) = jsonschema::draft202012::meta::validate(&schema) {
        panic!("{SCHEMA_FILE} is not a valid draft 2020-12 schema: {err}");
    }
    assert_eq!(schema["$id"], SCHEMA_ID);
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["properties"]["type"]["enum"], json!(KNOWN_TYPES));
    for kind in KNOWN_TYPES {
        assert!(
            schema["$defs"][kind].is_object(),
            "{SCHEMA_FILE} has no $defs entry for {kind}"
        );
    }
}

#[test]
fn schema_types_are_the_decoders_types() {
    for kind in KNOWN_TYPES {
        let err = decode(json!({ "type": kind }).to_string().as_bytes())
            .expect_err("a body with only a type lacks required fields");
        assert!(
            matches!(err, IntentError::MissingField { .. }),
            "decoder does not know type {kind}: {err}"
        );
    }
}

#[test]
fn documented_examples_match_the_schema() {
    let validator = validator();
    let examples = documented_examples();
    let mut failures = String::new();
    for example in &examples {
        let errors = schema_errors(&validator, &example.value);
        if !errors.is_empty() {
            let _ = writeln!(
                failures,
                "{}: {}\n    {}",
                example.location(),
                example.text,
                errors.join("\n    ")
            );
        }
    }
    assert!(
        failures.is_empty(),
        "documented intents that do not match {SCHEMA_FILE}:\n{failures}"
    );
}

#[test]
fn documented_examples_are_accepted_by_the_decoder() {
    let examples = documented_examples();
    let mut failures = String::new();
    for example in &examples {
        if let Err(err) = decode(example.text.as_bytes()) {
            let _ = writeln!(
                failures,
                "{}: {}\n    {err}",
                example.location(),
                example.text
            );
        }
    }
    assert!(
        failures.is_empty(),
        "documented intents the worker would dead-letter:\n{failures}"
    );
}

/// Asserts the schema and the decoder both accept every case.
fn assert_both_accept(cases: &[(&str, Value)]) {
    let validator = validator();
    for (what, body) in cases {
        let errors = schema_errors(&validator, body);
        assert!(
            errors.is_empty(),
            "schema rejects {what}: {body}\n    {}",
            errors.join("\n    ")
        );
        if let Err(err) = decode(body.to_string().as_bytes()) {
            panic!("decoder rejects {what}: {body}\n    {err}");
        }
    }
}

#[test]
fn invalid_intents_are_rejected_by_schema_and_decoder() {
    let channels_101: Vec<String> = (0..101).map(|n| format!("c{n}")).collect();
    let cases = [
        ("not an object", json!(["type", "announcement"])),
        ("no type", json!({"message": "m"})),
        ("type not a string", json!({"type": 1, "message": "m"})),
        ("unknown type", json!({"type": "chat.typing", "room_id": 1})),
        (
            "missing field",
            json!({"type": "chat.message", "user_id": 1, "user_name": "n", "message": "m"}),
        ),
        (
            "required field null",
            json!({"type": "announcement", "message": null}),
        ),
        (
            "event without data",
            json!({"type": "event", "channels": ["a"], "event": "e"}),
        ),
        (
            "bad channel name",
            json!({"type": "event", "channels": ["a b"], "event": "e", "data": 1}),
        ),
        (
            "channel of 165 characters",
            json!({"type": "event", "channels": ["a".repeat(165)], "event": "e", "data": 1}),
        ),
        (
            "bare #server-to-user- channel",
            json!({"type": "event", "channels": ["#server-to-user-"], "event": "e", "data": 1}),
        ),
        (
            "101 channels",
            json!({"type": "event", "channels": channels_101, "event": "e", "data": 1}),
        ),
        (
            "no channels",
            json!({"type": "event", "channels": [], "event": "e", "data": 1}),
        ),
        (
            "channels not an array",
            json!({"type": "event", "channels": "a", "event": "e", "data": 1}),
        ),
        (
            "channel not a string",
            json!({"type": "event", "channels": ["a", 1], "event": "e", "data": 1}),
        ),
        (
            "encrypted channel among others",
            json!({"type": "event", "channels": ["private-encrypted-a", "b"], "event": "e", "data": 1}),
        ),
        (
            "empty event name",
            json!({"type": "event", "channels": ["a"], "event": "", "data": 1}),
        ),
        (
            "event name of 201 characters",
            json!({"type": "event", "channels": ["a"], "event": "e".repeat(201), "data": 1}),
        ),
        (
            "info not a string",
            json!({"type": "event", "channels": ["a"], "event": "e", "data": 1, "info": 1}),
        ),
        (
            "message not a string",
            json!({"type": "announcement", "message": 5}),
        ),
        (
            "metrics not an object",
            json!({"type": "dashboard.metrics", "metrics": [1]}),
        ),
        (
            "quantity not a number",
            json!({"type": "inventory.stock", "product_id": 1, "quantity": "3"}),
        ),
        (
            "identifier a fraction",
            json!({"type": "notification", "user_id": 1.5, "message": "m"}),
        ),
        (
            "identifier empty",
            json!({"type": "notification", "user_id": "", "message": "m"}),
        ),
        (
            "identifier a boolean",
            json!({"type": "notification", "user_id": true, "message": "m"}),
        ),
        (
            "optional identifier an object",
            json!({"type": "order.status", "order_id": 1, "status": "s", "customer_id": {"id": 1}}),
        ),
        (
            "level not a string",
            json!({"type": "notification", "user_id": 1, "message": "m", "level": 2}),
        ),
        (
            "id an integer",
            json!({"type": "announcement", "message": "m", "id": 5}),
        ),
        (
            "id empty",
            json!({"type": "announcement", "message": "m", "id": ""}),
        ),
        (
            "created_at a string",
            json!({"type": "announcement", "message": "m", "created_at": "2024"}),
        ),
        (
            "created_at a fraction",
            json!({"type": "announcement", "message": "m", "created_at": 1.5}),
        ),
        (
            "created_at past i64",
            json!({"type": "announcement", "message": "m", "created_at": 9_223_372_036_854_775_808_u64}),
        ),
        (
            "bad socket_id",
            json!({"type": "announcement", "message": "m", "socket_id": "1.1:"}),
        ),
        (
            "socket_id without a dot",
            json!({"type": "announcement", "message": "m", "socket_id": "123456"}),
        ),
        (
            "socket_id with non-ASCII digits",
            json!({"type": "announcement", "message": "m", "socket_id": "\u{0661}.\u{0662}"}),
        ),
        (
            "socket_id a number",
            json!({"type": "announcement", "message": "m", "socket_id": 1.5}),
        ),
    ];
    let validator = validator();
    for (what, body) in cases {
        assert!(!validator.is_valid(&body), "schema accepts {what}: {body}");
        match decode(body.to_string().as_bytes()) {
            Err(_) => {}
            Ok(intent) => panic!("decoder accepts {what}: {body}\n    {intent:?}"),
        }
    }
}

#[test]
fn valid_edge_cases_are_accepted_by_schema_and_decoder() {
    let channels_100: Vec<String> = (0..100).map(|n| format!("c{n}")).collect();
    assert_both_accept(&[
        (
            "null optional fields",
            json!({"type": "order.status", "order_id": 1, "status": "s", "customer_id": null,
                   "id": null, "socket_id": null, "created_at": null}),
        ),
        (
            "unknown fields",
            json!({"type": "announcement", "message": "m", "extra": {"nested": true}}),
        ),
        (
            "every common field",
            json!({"type": "announcement", "message": "", "priority": "high", "id": "a-1",
                   "socket_id": "123.456", "created_at": 1_700_000_000_123_i64}),
        ),
        (
            "largest and smallest integer identifiers",
            json!({"type": "chat.joined", "room_id": u64::MAX, "user_id": i64::MIN, "user_name": "n"}),
        ),
        (
            "identifier outside the channel charset where no template uses it",
            json!({"type": "chat.left", "room_id": 1, "user_id": "Ada Lovelace", "user_name": "n"}),
        ),
        (
            "fractional quantity",
            json!({"type": "inventory.stock", "product_id": "p", "quantity": 1.5}),
        ),
        (
            "empty metrics",
            json!({"type": "dashboard.metrics", "metrics": {}}),
        ),
        (
            "null data and info",
            json!({"type": "event", "channels": ["a"], "event": "e", "data": null, "info": null}),
        ),
        (
            "100 channels",
            json!({"type": "event", "channels": channels_100, "event": "e", "data": {}}),
        ),
        (
            "channel of 164 characters and every allowed character",
            json!({"type": "event", "channels": ["a".repeat(164), "-_=@,.;AZaz09"], "event": "e", "data": "x"}),
        ),
        (
            "#server-to-user- channel",
            json!({"type": "event", "channels": ["#server-to-user-42"], "event": "e", "data": 1}),
        ),
        (
            "encrypted channel alone",
            json!({"type": "event", "channels": ["private-encrypted-a"], "event": "e", "data": 1}),
        ),
        (
            "event name of 200 characters",
            json!({"type": "event", "channels": ["a"], "event": "é".repeat(200), "data": [1]}),
        ),
    ]);
}

/// Where the schema is knowingly looser than the decoder; each gap is
/// described in the schema, and would move to the tables above if the
/// schema learnt to express it.
#[test]
fn known_gaps_are_described_and_only_the_decoder_enforces_them() {
    let validator = validator();
    let schema = schema_json().to_string();
    let gaps = [
        (
            "data over 10 240 bytes",
            "PUSHER_MAX_EVENT_BYTES",
            json!({"type": "event", "channels": ["a"], "event": "e", "data": "x".repeat(10_241)}),
        ),
        (
            "typed intent whose data is over the limit",
            "PUSHER_MAX_EVENT_BYTES",
            json!({"type": "announcement", "message": "x".repeat(10_240)}),
        ),
        (
            "identifier outside the channel charset in a channel template",
            "must be a valid channel name",
            json!({"type": "chat.message", "room_id": "a b", "user_id": 1, "user_name": "n", "message": "m"}),
        ),
    ];
    for (what, described_by, body) in gaps {
        assert!(
            schema.contains(described_by),
            "{SCHEMA_FILE} does not describe the gap ({what}): no {described_by:?}"
        );
        let errors = schema_errors(&validator, &body);
        assert!(
            errors.is_empty(),
            "schema now rejects {what}; move it to the invalid table\n    {}",
            errors.join("\n    ")
        );
        assert!(
            decode(body.to_string().as_bytes()).is_err(),
            "decoder accepts {what}"
        );
    }
    // JSON Schema counts 1.0 as an integer; the decoder wants it written
    // as one. Raw text, because serde_json would print 1.0 back as written.
    let body = r#"{"type": "notification", "user_id": 1.0, "message": "m"}"#;
    let value: Value = serde_json::from_str(body).expect("the literal is JSON");
    assert!(
        schema.contains("1.0"),
        "{SCHEMA_FILE} does not describe 1.0"
    );
    if !validator.is_valid(&value) {
        panic!("schema now rejects 1.0 as an identifier; move it to the invalid table");
    }
    assert!(decode(body.as_bytes()).is_err(), "decoder accepts 1.0");
}

/// One typed intent of every `NewIntent` variant. The match has no
/// wildcard, so a new variant does not compile until it is added here.
fn one_of_each_typed_intent() -> Vec<NewIntent> {
    let intents = vec![
        NewIntent::Notification {
            user_id: Id::Int(123),
            message: "Your order has been shipped!".into(),
            level: Some("success".into()),
        },
        NewIntent::Notification {
            user_id: Id::Str("u-1".into()),
            message: "hi".into(),
            level: None,
        },
        NewIntent::Announcement {
            message: "maintenance".into(),
            priority: Some("high".into()),
        },
        NewIntent::ChatMessage {
            room_id: Id::Int(42),
            user_id: Id::Int(7),
            user_name: "Ada".into(),
            message: "hello".into(),
        },
        NewIntent::ChatJoined {
            room_id: Id::Str("lobby".into()),
            user_id: Id::Int(7),
            user_name: "Ada".into(),
        },
        NewIntent::ChatLeft {
            room_id: Id::Str("lobby".into()),
            user_id: Id::Str("ada".into()),
            user_name: "Ada".into(),
        },
        NewIntent::OrderStatus {
            order_id: Id::Str("A-17".into()),
            status: "shipped".into(),
            customer_id: Some(Id::Int(9)),
        },
        NewIntent::DashboardMetrics {
            metrics: json!({"users": 10, "load": 0.5})
                .as_object()
                .cloned()
                .expect("the literal is an object"),
        },
        NewIntent::InventoryStock {
            product_id: Id::Int(5),
            quantity: serde_json::Number::from_f64(2.5).expect("2.5 is finite"),
        },
        NewIntent::PresenceActivity {
            user_id: Id::Int(7),
            activity: "typing".into(),
        },
        NewIntent::Event {
            channels: vec!["admin-alerts".into(), "user-updates".into()],
            event: "system-announcement".into(),
            data: json!({"title": "Maintenance"}),
            socket_id: Some("123.456".into()),
        },
    ];
    for intent in &intents {
        match intent {
            NewIntent::Notification { .. }
            | NewIntent::Announcement { .. }
            | NewIntent::ChatMessage { .. }
            | NewIntent::ChatJoined { .. }
            | NewIntent::ChatLeft { .. }
            | NewIntent::OrderStatus { .. }
            | NewIntent::DashboardMetrics { .. }
            | NewIntent::InventoryStock { .. }
            | NewIntent::PresenceActivity { .. }
            | NewIntent::Event { .. } => {}
        }
    }
    intents
}

#[test]
fn typed_publisher_intents_serialise_to_schema_valid_json() {
    let validator = validator();
    let mut types = Vec::new();
    for intent in one_of_each_typed_intent() {
        let value = serde_json::to_value(&intent)
            .unwrap_or_else(|err| panic!("{intent:?} does not serialise: {err}"));
        let errors = schema_errors(&validator, &value);
        assert!(
            errors.is_empty(),
            "{value} does not match {SCHEMA_FILE}:\n    {}",
            errors.join("\n    ")
        );
        if let Err(err) = decode(value.to_string().as_bytes()) {
            panic!("decoder rejects typed intent {value}: {err}");
        }
        let kind = value["type"]
            .as_str()
            .unwrap_or_else(|| panic!("{value} has no string type"))
            .to_owned();
        if !types.contains(&kind) {
            types.push(kind);
        }
    }
    assert_eq!(
        types, KNOWN_TYPES,
        "typed intents and the contract's types differ"
    );
}
