//! What the `dlq` commands print and ask, for a person: tables, texts,
//! confirmations and progress bars. Queries live in [`crate::deadletter`],
//! and the JSON views shared with the admin API in
//! [`crate::deadletter::view`]; this module only presents them.

use std::io::{BufRead, IsTerminal, Write};

use crate::clock::rfc3339_ms;
use crate::deadletter::view::Detail;
use crate::deadletter::{DeadLetter, Page, ReplayReport, Stats};

/// Cuts `s` to `width` characters, marking the cut with `…`.
fn fit(s: &str, width: usize) -> String {
    let one_line = s.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= width {
        return format!("{one_line:<width$}");
    }
    let mut out: String = one_line.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A fixed-width table no wider than `width` columns; the error column
/// takes what the others leave. The cursor for the next page follows.
pub fn page_table(page: &Page, width: usize) -> String {
    // id, time, reason, status, type, channel; error gets the rest.
    let fixed = [7, 19, 9, 8, 16, 20];
    let used: usize = fixed.iter().sum::<usize>() + fixed.len();
    let err_w = width.saturating_sub(used).max(10);
    let row = |cells: [&str; 7]| {
        let mut line = String::new();
        for (i, w) in fixed.iter().enumerate() {
            line.push_str(&fit(cells[i], *w));
            line.push(' ');
        }
        line.push_str(&fit(cells[6], err_w));
        line.trim_end().to_owned()
    };
    let mut out = row([
        "ID",
        "DEAD-LETTERED (UTC)",
        "REASON",
        "STATUS",
        "TYPE",
        "CHANNEL",
        "ERROR",
    ]);
    out.push('\n');
    for dl in &page.items {
        let time = rfc3339_ms(dl.dead_lettered_at_ms);
        let time = time.get(..19).unwrap_or(&time).replace('T', " ");
        let channel = match dl.channels.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} +{}", rest.len()),
        };
        out.push_str(&row([
            &dl.id.to_string(),
            &time,
            dl.reason.as_str(),
            dl.status.as_str(),
            dl.intent_type.as_deref().unwrap_or("-"),
            &channel,
            &dl.error,
        ]));
        out.push('\n');
    }
    for bad in &page.unreadable {
        out.push_str(&format!("{}: cannot be shown: {}\n", bad.id, bad.error));
    }
    match &page.next_cursor {
        Some(c) => out.push_str(&format!("more: --cursor {c}\n")),
        None => out.push_str(&format!("{} shown, no more\n", page.items.len())),
    }
    out
}

/// Every field of one dead letter for a person: the body pretty-printed,
/// Pusher's answer, attempts, times and replay history.
pub fn show_text(dl: &DeadLetter) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16} {v}\n"));
    line("id", dl.id.to_string());
    line("status", dl.status.to_string());
    line("reason", dl.reason.to_string());
    line("error", dl.error.clone());
    line(
        "pusher status",
        dl.pusher_status.map_or("-".into(), |s| s.to_string()),
    );
    line(
        "pusher body",
        dl.pusher_body.clone().unwrap_or_else(|| "-".into()),
    );
    line("type", dl.intent_type.clone().unwrap_or_else(|| "-".into()));
    line(
        "intent id",
        dl.intent_id.clone().unwrap_or_else(|| "-".into()),
    );
    line("routing key", dl.routing_key.clone());
    line("channels", dl.channels.join(", "));
    line("attempts", dl.attempts.to_string());
    line("first seen", rfc3339_ms(dl.first_seen_at_ms));
    line("dead-lettered", rfc3339_ms(dl.dead_lettered_at_ms));
    line(
        "replays",
        match dl.last_replayed_at_ms {
            Some(ms) => format!("{} (last {})", dl.replay_count, rfc3339_ms(ms)),
            None => "never replayed".into(),
        },
    );
    let view = Detail::from(dl);
    let headers = serde_json::to_string_pretty(&view.headers).unwrap_or_default();
    out.push_str(&format!("headers\n{headers}\n"));
    let body = match &view.body {
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        None => format!(
            "(not JSON, {} bytes) {}",
            dl.body.len(),
            String::from_utf8_lossy(&dl.body)
        ),
    };
    out.push_str(&format!("body\n{body}\n"));
    out
}

/// `dlq stats` for a person.
pub fn stats_text(stats: &Stats) -> String {
    let mut out = format!("{} dead letters, {} pending\n", stats.total, stats.pending);
    if let Some(o) = &stats.oldest_pending {
        out.push_str(&format!(
            "oldest pending: {} (id {})\n",
            rfc3339_ms(o.dead_lettered_at_ms),
            o.id
        ));
    }
    for (title, counts) in [
        ("by reason", &stats.by_reason),
        ("by type", &stats.by_type),
        ("by day (UTC)", &stats.by_day),
    ] {
        out.push_str(&format!("\n{title:<28} {:>9} {:>9}\n", "total", "pending"));
        for c in counts {
            out.push_str(&format!(
                "  {:<26} {:>9} {:>9}\n",
                fit(&c.key, 26).trim_end(),
                c.total,
                c.pending
            ));
        }
    }
    out
}

/// A replay's outcome for a person.
pub fn replay_text(r: &ReplayReport) -> String {
    let mut out = if r.dry_run {
        format!(
            "{} match; {} would be replayed, {} skipped as already replayed (use --force)\n",
            r.matched, r.eligible, r.skipped_replayed
        )
    } else {
        format!(
            "{} replayed, {} failed, {} skipped as already replayed\n",
            r.replayed, r.failed, r.skipped_replayed
        )
    };
    for e in &r.errors {
        out.push_str(&format!("  {e}\n"));
    }
    out
}

/// Why a confirmation was not given.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    /// Nobody can answer: a script must say `--yes`.
    #[error("standard input is not a terminal, so nobody can confirm {what}; pass --yes to proceed without asking (or --dry-run to only count)")]
    NotATerminal {
        /// What would have been asked.
        what: String,
    },
    /// Reading the answer failed.
    #[error("cannot read the confirmation: {0}")]
    Io(#[from] std::io::Error),
}

/// Asks `question [y/N]` on stderr and reads the answer from stdin. `yes`
/// skips the question. Without a terminal, and without `yes`, refuses
/// rather than guessing.
pub fn confirm(question: &str, yes: bool) -> Result<bool, ConfirmError> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(ConfirmError::NotATerminal {
            what: question.to_owned(),
        });
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// A progress bar on stderr for runs of at least [`PROGRESS_MIN`] rows when
/// stderr is a terminal; otherwise nothing (scripts get the summary only).
pub fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if total < PROGRESS_MIN || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} ({per_sec}, {eta} left)")
    {
        bar.set_style(style);
    }
    Some(bar)
}

/// Rows below which a run is quick enough to need no progress bar.
pub const PROGRESS_MIN: u64 = 2000;
