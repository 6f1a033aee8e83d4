//! The console's HTML. maud escapes every `(value)` it renders, so a dead
//! letter's body, headers or Pusher's answer holding markup shows as text.
//! Nothing here renders the admin token or any Pusher credential: the pages
//! are given the dead letters and the worker's state, never the config.

use axum::http::StatusCode;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::replays::Job;
use super::{Fields, Signed};
use crate::clock::rfc3339_ms;
use crate::deadletter::view::Detail;
use crate::deadletter::{Count, DeadLetter, FilterSpec, Page, ReplayReport, Stats};

const REASONS: [&str; 6] = [
    "invalid",
    "too_large",
    "rejected",
    "exhausted",
    "expired",
    "delivery_limit",
];

fn layout(title: &str, signed: Option<&Signed>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · pusher-relay" }
                link rel="stylesheet" href="/ui/assets/uPlot.min.css";
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/uPlot.iife.min.js" defer {}
                script src="/ui/assets/console.js" defer {}
            }
            body {
                header class="top" {
                    span class="brand" { "pusher-relay" }
                    @if let Some(s) = signed {
                        nav aria-label="Main" {
                            a href="/ui" { "Overview" }
                            a href="/ui/dead-letters" { "Dead letters" }
                        }
                        form method="post" action="/ui/logout" class="signout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { h1 { (title) } (body) }
            }
        }
    }
}

pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/ui/login" class="login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Admin token (RELAY_ADMIN_TOKEN)" }
                input id="token" name="token" type="password" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn error(status: StatusCode, msg: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Error"),
        None,
        html! {
            p class="error" role="alert" { (msg) }
            p { a href="/ui" { "Back to the overview" } }
        },
    )
}

pub fn done(signed: &Signed, msg: &str) -> Markup {
    layout(
        "Done",
        Some(signed),
        html! {
            p role="status" { (msg) }
            p { a href="/ui/dead-letters" { "Back to the dead letters" } }
        },
    )
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{f:.0}"),
        Some(f) => format!("{f:.1}"),
        None => "–".into(),
    }
}

/// A figure the page's script keeps current: `data-k` names its path in
/// `/ui/api/overview`.
fn stat(label: &str, key: &str, value: String) -> Markup {
    html! {
        div class="stat" {
            dt { (label) }
            dd data-k=(key) { (value) }
        }
    }
}

pub fn overview(signed: &Signed, d: &Value) -> Markup {
    let r = &d["rates"];
    let c = &d["circuit"];
    let ready = &d["readiness"];
    let yes_no = |v: &Value| {
        if v.as_bool() == Some(true) {
            "up"
        } else {
            "down"
        }
    };
    let since = c["since_ms"].as_i64().map(rfc3339_ms).unwrap_or_default();
    layout(
        "Overview",
        Some(signed),
        html! {
            p class="hint" {
                "Rates over the last " (d["sample_interval_s"]) " s; refreshed every few seconds."
            }
            section aria-labelledby="h-delivery" {
                h2 id="h-delivery" { "Delivery" }
                dl class="stats" {
                    (stat("Intents consumed/s", "rates.consumed_per_s", num(&r["consumed_per_s"])))
                    (stat("Events delivered/s", "rates.delivered_per_s", num(&r["delivered_per_s"])))
                    (stat("Pusher requests/s", "rates.requests_per_s", num(&r["requests_per_s"])))
                    (stat("Retries/s", "rates.retries_per_s", num(&r["retries_per_s"])))
                    (stat("Dead letters/s", "rates.dead_letters_per_s", num(&r["dead_letters_per_s"])))
                    (stat("Latency p50 (ms)", "rates.latency_p50_ms", num(&r["latency_p50_ms"])))
                    (stat("Latency p99 (ms)", "rates.latency_p99_ms", num(&r["latency_p99_ms"])))
                    (stat("Requests in flight", "in_flight", num(&d["in_flight"])))
                    (stat("Concurrency limit", "concurrency_limit", num(&d["concurrency_limit"])))
                }
            }
            section aria-labelledby="h-state" {
                h2 id="h-state" { "State" }
                dl class="stats" {
                    div class="stat" {
                        dt { "Circuit" }
                        dd data-k="circuit.state" data-state=(c["state"].as_str().unwrap_or("")) {
                            (c["state"].as_str().unwrap_or(""))
                        }
                    }
                    (stat("Cause", "circuit.detail", c["detail"].as_str().unwrap_or("–").to_string()))
                    (stat("Open since", "circuit.since", if since.is_empty() { "–".into() } else { since }))
                    (stat("Next probe", "circuit.next_probe", c["next_probe_ms"].as_i64().map(rfc3339_ms).unwrap_or_else(|| "–".into())))
                    (stat("Backlog (ready)", "backlog", num(&d["backlog"])))
                    (stat("Backlog trend", "backlog_trend", d["backlog_trend"].as_str().unwrap_or("").to_string()))
                    (stat("Broker", "readiness.broker", yes_no(&ready["broker"]).into()))
                    (stat("Consumer", "readiness.consumer", yes_no(&ready["consumer"]).into()))
                    (stat("Store", "readiness.store", yes_no(&ready["store"]).into()))
                    (stat("Ready", "readiness.ready", yes_no(&ready["ready"]).into()))
                }
            }
            section aria-labelledby="h-parked" {
                h2 id="h-parked" { "Parked channels" }
                @let parked = d["parked"].as_array().cloned().unwrap_or_default();
                @if parked.is_empty() {
                    p class="hint" data-k="parked.none" { "None: no channel holds more than RELAY_PARK_THRESHOLD intents." }
                } @else {
                    table data-k="parked" {
                        thead { tr { th { "Channels" } th { "Backlog" } th { "Rate (/s)" } th { "Parked since" } } }
                        tbody {
                            @for g in &parked {
                                tr {
                                    td { (g["channels"].as_array().map(|c| c.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                                    td { (num(&g["backlog"])) }
                                    td { (format!("{:.1}", g["rate_per_s"].as_f64().unwrap_or(0.0))) }
                                    td { (g["parked_at_ms"].as_i64().map(rfc3339_ms).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="h-history" {
                h2 id="h-history" { "Last 15 minutes" }
                div class="charts" {
                    figure { figcaption { "Throughput per second" } div class="chart" data-chart="throughput" {} }
                    figure { figcaption { "Retries and dead letters per second" } div class="chart" data-chart="failures" {} }
                    figure { figcaption { "Delivery latency (ms)" } div class="chart" data-chart="latency" {} }
                    figure { figcaption { "In flight and limit" } div class="chart" data-chart="concurrency" {} }
                    figure { figcaption { "Backlog (messages ready)" } div class="chart" data-chart="backlog" {} }
                }
            }
        },
    )
}

/// A filter in words, for confirmations ("reason=rejected, type=chat").
pub fn describe(spec: &FilterSpec) -> String {
    let parts: Vec<String> = spec.pairs().map(|(k, v)| format!("{k}={v}")).collect();
    if parts.is_empty() {
        "no filter (every dead letter)".into()
    } else {
        parts.join(", ")
    }
}

fn filter_hidden(spec: &FilterSpec) -> Markup {
    html! {
        @for (k, v) in spec.pairs() {
            input type="hidden" name=(k) value=(v);
        }
    }
}

fn query_string(spec: &FilterSpec, cursor: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(spec.pairs());
    q.append_pair("cursor", cursor);
    q.finish()
}

fn counts_table(caption: &str, first: &str, rows: &[Count]) -> Markup {
    html! {
        table class="counts" {
            caption { (caption) }
            thead { tr { th scope="col" { (first) } th scope="col" { "Total" } th scope="col" { "Pending" } th scope="col" { "Replayed" } } }
            tbody {
                @for c in rows {
                    tr { th scope="row" { (c.key) } td { (c.total) } td { (c.pending) } td { (c.total - c.pending) } }
                }
            }
        }
    }
}

pub fn dead_letters(
    signed: &Signed,
    spec: &FilterSpec,
    page: &Page,
    matching: i64,
    stats: &Stats,
    jobs: &[Job],
) -> Markup {
    let text = |id: &str, label: &str, name: &str, value: &Option<String>, hint: &str| {
        html! {
            div class="field" {
                label for=(id) { (label) }
                input id=(id) name=(name) type="text" value=(value.as_deref().unwrap_or("")) placeholder=(hint);
            }
        }
    };
    layout(
        "Dead letters",
        Some(signed),
        html! {
            form method="get" action="/ui/dead-letters" class="filters" aria-label="Filter" {
                div class="field" {
                    label for="f-reason" { "Reason" }
                    select id="f-reason" name="reason" {
                        option value="" { "any" }
                        @for r in REASONS {
                            option value=(r) selected[spec.reason.as_deref() == Some(r)] { (r) }
                        }
                    }
                }
                (text("f-type", "Type", "type", &spec.intent_type, "chat.message"))
                (text("f-channel", "Channel", "channel", &spec.channel, "private-user-1"))
                (text("f-since", "Since", "since", &spec.since, "2h, 2024-05-01"))
                (text("f-until", "Until", "until", &spec.until, "7d, RFC 3339"))
                div class="field" {
                    label for="f-status" { "Status" }
                    select id="f-status" name="status" {
                        option value="" { "any" }
                        @for s in ["pending", "replayed"] {
                            option value=(s) selected[spec.status.as_deref() == Some(s)] { (s) }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
             p role="status" { (matching) " matching; " (stats.pending) " pending, " (stats.total - stats.pending) " replayed (from the store: CLI replays count too)." }
            form method="post" action="/ui/dead-letters/replay" id="selection" {
                input type="hidden" name="csrf" value=(signed.csrf);
                (filter_hidden(spec))
                div class="actions" {
                    button type="submit" name="scope" value="selected" { "Replay selected" }
                    button type="submit" name="scope" value="matching" { "Replay all " (matching) " matching" }
                    button type="submit" formaction="/ui/dead-letters/delete" name="scope" value="selected" class="danger" { "Delete selected" }
                }
                div class="scroll" {
                    table class="letters" {
                        caption class="visually-hidden" { "Dead letters, newest first" }
                        thead { tr {
                            th scope="col" { span class="visually-hidden" { "Select" } }
                            th scope="col" { "Id" } th scope="col" { "Dead-lettered" } th scope="col" { "Reason" }
                            th scope="col" { "Type" } th scope="col" { "Channels" } th scope="col" { "Status" }
                            th scope="col" { "Error" }
                        } }
                        tbody {
                            @for dl in &page.items {
                                tr data-id=(dl.id) {
                                    td { input type="checkbox" name="id" value=(dl.id) id={"sel-" (dl.id)} aria-label={"Select dead letter " (dl.id)}; }
                                    td { a href={"/ui/dead-letters/" (dl.id)} { (dl.id) } }
                                    td { (rfc3339_ms(dl.dead_lettered_at_ms)) }
                                    td { (dl.reason.as_str()) }
                                    td { (dl.intent_type.as_deref().unwrap_or("–")) }
                                    td { (dl.channels.join(", ")) }
                                    td class="status" data-status=(dl.status.as_str()) { (dl.status.as_str()) }
                                    td class="err" { (dl.error) }
                                }
                            }
                            @for bad in &page.unreadable {
                                tr data-id=(bad.id) class="unreadable" {
                                    td {}
                                    td { (bad.id) }
                                    td colspan="6" class="err" { "Cannot be shown: " (bad.error) }
                                }
                            }
                            @if page.items.is_empty() && page.unreadable.is_empty() { tr { td colspan="8" { "No dead letters match." } } }
                        }
                    }
                }
            }
            @if let Some(c) = &page.next_cursor {
                p { a href={"/ui/dead-letters?" (query_string(spec, c))} rel="next" { "Older →" } }
            }
            section aria-labelledby="h-counts" {
                h2 id="h-counts" { "Counts" }
                div class="count-tables" {
                    (counts_table("By reason", "Reason", &stats.by_reason))
                    (counts_table("By day (UTC)", "Day", &stats.by_day))
                }
            }
            @if !jobs.is_empty() {
                section aria-labelledby="h-replays" {
                    h2 id="h-replays" { "Replays from this console" }
                    ul { @for j in jobs {
                        li { a href={"/ui/replays/" (j.id)} { "Replay " (j.id) } ": " (j.what) " — " (j.state) ", " (j.done) " of " (j.eligible) }
                    } }
                }
            }
            section aria-labelledby="h-purge" {
                h2 id="h-purge" { "Purge" }
                form method="post" action="/ui/dead-letters/purge" class="purge" {
                    input type="hidden" name="csrf" value=(signed.csrf);
                    label for="older" { "Delete every dead letter older than (days)" }
                    input id="older" name="older_than_days" type="number" min="1" value="30" required;
                    button type="submit" class="danger" { "Purge…" }
                }
            }
        },
    )
}

pub fn dead_letter(signed: &Signed, dl: &DeadLetter) -> Markup {
    let row = |k: &str, v: Markup| html! { div class="stat" { dt { (k) } dd { (v) } } };
    let view = Detail::from(dl);
    let headers = serde_json::to_string_pretty(&view.headers).unwrap_or_default();
    let pretty = view
        .body
        .as_ref()
        .and_then(|v| serde_json::to_string_pretty(v).ok());
    layout(
        &format!("Dead letter {}", dl.id),
        Some(signed),
        html! {
            dl class="fields" {
                (row("Status", html! { span data-status=(dl.status.as_str()) { (dl.status.as_str()) } }))
                (row("Reason", html! { (dl.reason.as_str()) }))
                (row("Error", html! { (dl.error) }))
                (row("Intent type", html! { (dl.intent_type.as_deref().unwrap_or("–")) }))
                (row("Intent id", html! { (dl.intent_id.as_deref().unwrap_or("–")) }))
                (row("Routing key", html! { (dl.routing_key) }))
                (row("Channels", html! { (dl.channels.join(", ")) }))
                (row("Pusher's status", html! { (dl.pusher_status.map(|s| s.to_string()).unwrap_or_else(|| "no answer".into())) }))
                (row("Attempts", html! { (dl.attempts) }))
                (row("First seen", html! { (view.first_seen_at) }))
                (row("Dead-lettered", html! { (view.dead_lettered_at) }))
                (row("Replays", html! { (dl.replay_count) }))
                (row("Last replayed", html! { (view.last_replayed_at.as_deref().unwrap_or("never")) }))
            }
            div class="actions" {
                form method="post" action="/ui/dead-letters/replay" {
                    input type="hidden" name="csrf" value=(signed.csrf);
                    input type="hidden" name="id" value=(dl.id);
                    button type="submit" { "Replay…" }
                }
                form method="post" action="/ui/dead-letters/delete" {
                    input type="hidden" name="csrf" value=(signed.csrf);
                    input type="hidden" name="id" value=(dl.id);
                    button type="submit" class="danger" { "Delete…" }
                }
            }
            h2 { "Pusher's answer" }
            pre class="body" tabindex="0" { (dl.pusher_body.as_deref().unwrap_or("(none)")) }
            h2 { "Body" }
            @if let Some(p) = pretty {
                pre class="body" id="body-pretty" tabindex="0" { (p) }
            }
            details {
                summary { "Raw body (" (dl.body.len()) " bytes)" }
                pre class="body" id="body-raw" tabindex="0" { (String::from_utf8_lossy(&dl.body)) }
            }
            h2 { "Properties and headers" }
            pre class="body" tabindex="0" { (headers) }
            p { a href="/ui/dead-letters" { "Back to the dead letters" } }
        },
    )
}

/// The fields a confirmation posts again, with `confirmed=yes`.
fn repost(fields: &Fields) -> Markup {
    html! {
        @for (k, v) in &fields.0 {
            @if k != "confirmed" { input type="hidden" name=(k) value=(v); }
        }
        input type="hidden" name="confirmed" value="yes";
    }
}

pub fn confirm_replay(signed: &Signed, fields: &Fields, what: &str, plan: &ReplayReport) -> Markup {
    layout(
        "Confirm replay",
        Some(signed),
        html! {
            @if plan.eligible == 0 {
                p role="status" { "Nothing to replay: " (plan.matched) " matched, none pending." }
                p { a href="/ui/dead-letters" { "Back" } }
            } @else {
                p role="alert" class="confirm" {
                    "Replay " strong { (plan.eligible) } " dead letters (" (what) ")?"
                    @if plan.skipped_replayed > 0 { " " (plan.skipped_replayed) " already replayed are skipped." }
                }
                form method="post" action="/ui/dead-letters/replay" {
                    (repost(fields))
                    button type="submit" { "Replay " (plan.eligible) }
                    " " a href="/ui/dead-letters" { "Cancel" }
                }
            }
        },
    )
}

pub fn confirm(
    signed: &Signed,
    fields: &Fields,
    action: &str,
    question: &str,
    n: i64,
    verb: &str,
) -> Markup {
    layout(
        "Confirm",
        Some(signed),
        html! {
            p role="alert" class="confirm" { (question) " " strong { (n) } " dead letters." }
            @if n > 0 {
                form method="post" action=(action) {
                    (repost(fields))
                    button type="submit" class="danger" { (verb) " " (n) }
                    " " a href="/ui/dead-letters" { "Cancel" }
                }
            } @else {
                p { a href="/ui/dead-letters" { "Back" } }
            }
        },
    )
}

pub fn replay_job(signed: &Signed, job: &Job) -> Markup {
    layout(
        &format!("Replay {}", job.id),
        Some(signed),
        html! {
            div data-replay=(job.id) {
                p { (job.what) }
                dl class="stats" {
                    div class="stat" { dt { "State" } dd data-j="state" data-state=(job.state) { (job.state) } }
                    div class="stat" { dt { "Done" } dd data-j="done" { (job.done) } }
                    div class="stat" { dt { "Of" } dd data-j="eligible" { (job.eligible) } }
                    div class="stat" { dt { "Replayed" } dd data-j="replayed" { (job.replayed) } }
                    div class="stat" { dt { "Failed" } dd data-j="failed" { (job.failed) } }
                }
                progress max=(job.eligible.max(1)) value=(job.done) aria-label="Replay progress" {}
                ul class="errors" { @for e in &job.errors { li { (e) } } }
            }
            p { a href="/ui/dead-letters" { "Back to the dead letters" } }
        },
    )
}
