//! `dlq`: the dead letters in DATABASE_URL, listed, shown, replayed, deleted,
//! purged and counted. Destructive commands ask first (or take `--yes`) and
//! draw a progress bar on long runs; [`crate::dlq`] writes what a person
//! reads, [`crate::deadletter::view`] what a script reads.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Subcommand;
use serde::Serialize;

use super::print_json;
use crate::clock::unix_ms;
use crate::config::Config;
use crate::deadletter::filter::parse_age;
use crate::deadletter::view::{Detail, PageView};
use crate::deadletter::{replay, Cursor, Filter, FilterSpec, ReplayOptions, Store};
use crate::dlq;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List dead letters, newest first, one page at a time.
    List {
        #[command(flatten)]
        filter: FilterSpec,
        /// Rows per page (at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this cursor (printed under the previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Table width; the terminal's when COLUMNS is exported.
        #[arg(long, env = "COLUMNS", default_value_t = 100, hide = true)]
        width: usize,
    },
    /// Show every stored field of one dead letter, its body pretty-printed.
    Show {
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Republish dead letters to the intent exchange (AMQP_EXCHANGE) with
    /// their original body and routing key and a header naming the dead
    /// letter; each is marked replayed once the broker confirms it. Pending
    /// ones only unless --force. Safe to run twice at once.
    Replay {
        /// Only these ids (combined with the filters).
        ids: Vec<i64>,
        #[command(flatten)]
        filter: FilterSpec,
        /// Replay dead letters already replayed too.
        #[arg(long)]
        force: bool,
        /// Only count what would be replayed.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Rows claimed and published per batch.
        #[arg(long, default_value_t = 500)]
        batch_size: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete dead letters by id.
    Delete {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Delete every dead letter matching the filters (all of them without
    /// filters), after confirmation.
    Purge {
        #[command(flatten)]
        filter: FilterSpec,
        /// Only dead letters older than this, like 30d or 12h.
        #[arg(long)]
        older_than: Option<String>,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Counts by reason, type and day, and the oldest pending dead letter.
    Stats {
        #[command(flatten)]
        filter: FilterSpec,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cfg: &Config, command: DlqCommand) -> anyhow::Result<ExitCode> {
    let store = Store::connect(cfg.database_url.expose()).await?;
    let outcome = match command {
        DlqCommand::List {
            filter,
            limit,
            cursor,
            json,
            width,
        } => list(&store, &filter, limit, cursor.as_deref(), json, width).await,
        DlqCommand::Show { id, json } => show(&store, id, json).await,
        DlqCommand::Replay {
            ids,
            filter,
            force,
            dry_run,
            yes,
            batch_size,
            json,
        } => {
            let mut filter = parse(&filter)?;
            filter.ids = ids;
            let opts = ReplayOptions {
                force,
                batch_size,
                ..ReplayOptions::default()
            };
            replay(cfg, &store, &filter, &opts, dry_run, yes, json).await
        }
        DlqCommand::Delete { ids } => delete(&store, &ids).await,
        DlqCommand::Purge {
            filter,
            older_than,
            dry_run,
            yes,
            json,
        } => {
            let mut filter = parse(&filter)?;
            if let Some(age) = older_than {
                older_than_cutoff(
                    &mut filter,
                    parse_age("older-than", &age)?,
                    SystemTime::now(),
                );
            }
            purge(&store, &filter, dry_run, yes, json).await
        }
        DlqCommand::Stats { filter, json } => {
            let stats = store.stats(&parse(&filter)?).await?;
            if json {
                print_json(&stats)?;
            } else {
                print!("{}", dlq::stats_text(&stats));
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    store.close().await;
    outcome
}

fn parse(spec: &FilterSpec) -> anyhow::Result<Filter> {
    Ok(spec.parse(SystemTime::now())?)
}

async fn list(
    store: &Store,
    filter: &FilterSpec,
    limit: u32,
    cursor: Option<&str>,
    json: bool,
    width: usize,
) -> anyhow::Result<ExitCode> {
    let cursor = cursor.map(Cursor::decode).transpose()?;
    let page = store.list(&parse(filter)?, cursor, limit).await?;
    if json {
        print_json(&PageView::from(&page))?;
    } else {
        print!("{}", dlq::page_table(&page, width));
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(store: &Store, id: i64, json: bool) -> anyhow::Result<ExitCode> {
    let Some(dl) = store.get(id).await? else {
        anyhow::bail!("no dead letter with id {id}");
    };
    if json {
        print_json(&Detail::from(&dl))?;
    } else {
        print!("{}", dlq::show_text(&dl));
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(
    cfg: &Config,
    store: &Store,
    filter: &Filter,
    opts: &ReplayOptions,
    dry_run: bool,
    yes: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let plan = replay::plan(store, filter, opts.force).await?;
    let report = if dry_run || plan.eligible == 0 {
        plan
    } else {
        let skipped = if plan.skipped_replayed > 0 {
            format!(
                " ({} already replayed, skipped; --force includes them)",
                plan.skipped_replayed
            )
        } else {
            String::new()
        };
        let question = format!(
            "{} dead letter(s) match; replay {} to exchange {:?}{skipped}?",
            plan.matched, plan.eligible, cfg.amqp.exchange,
        );
        if !dlq::confirm(&question, yes)? {
            eprintln!("nothing replayed");
            return Ok(ExitCode::FAILURE);
        }
        let bar = dlq::progress_bar(plan.eligible);
        let report = replay::replay(store, &cfg.amqp, filter, opts, |done, _| {
            if let Some(bar) = &bar {
                bar.set_position(done);
            }
        })
        .await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        report?
    };
    if json {
        print_json(&report)?;
    } else {
        print!("{}", dlq::replay_text(&report));
    }
    Ok(if report.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn delete(store: &Store, ids: &[i64]) -> anyhow::Result<ExitCode> {
    let n = store.delete(ids).await?;
    println!("{n} deleted");
    if n < ids.len() as u64 {
        eprintln!("{} id(s) did not exist", ids.len() as u64 - n);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Narrows `filter` to dead letters older than `age` at `now`: `--until`
/// still applies when it is earlier.
fn older_than_cutoff(filter: &mut Filter, age: Duration, now: SystemTime) {
    let cutoff = now.checked_sub(age).map_or(0, unix_ms);
    filter.until_ms = Some(filter.until_ms.map_or(cutoff, |u| u.min(cutoff)));
}

/// What `dlq purge --json` prints.
#[derive(Serialize)]
struct PurgeOutcome {
    deleted: u64,
    dry_run: bool,
    matched: i64,
}

async fn purge(
    store: &Store,
    filter: &Filter,
    dry_run: bool,
    yes: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let matched = store.count_matching(filter).await?;
    let deleted = if dry_run || matched == 0 {
        0
    } else {
        let question = format!("delete {matched} dead letter(s) for good?");
        if !dlq::confirm(&question, yes)? {
            eprintln!("nothing deleted");
            return Ok(ExitCode::FAILURE);
        }
        let bar = dlq::progress_bar(u64::try_from(matched).unwrap_or(0));
        let n = store
            .purge(filter, |n| {
                if let Some(bar) = &bar {
                    bar.set_position(n);
                }
            })
            .await?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        n
    };
    if json {
        print_json(&PurgeOutcome {
            deleted,
            dry_run,
            matched,
        })?;
    } else if dry_run {
        println!("{matched} would be deleted");
    } else {
        println!("{deleted} deleted");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_than_keeps_an_earlier_until() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let hour_ago = unix_ms(now) - 3_600_000;
        let mut filter = Filter::default();
        older_than_cutoff(&mut filter, Duration::from_secs(3600), now);
        assert_eq!(filter.until_ms, Some(hour_ago));
        let mut earlier = Filter {
            until_ms: Some(1),
            ..Filter::default()
        };
        older_than_cutoff(&mut earlier, Duration::from_secs(3600), now);
        assert_eq!(earlier.until_ms, Some(1));
    }
}
