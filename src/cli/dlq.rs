//! `dlq`: the dead letters in DATABASE_URL, listed, shown, replayed, deleted,
//! purged and counted. Destructive commands ask first (or take `--yes`) and
//! draw a progress bar on long runs; [`dlq_print`] writes what a person
//! reads, [`crate::deadletter::view`] what a script reads.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{dlq_print, print_json};
use crate::clock::unix_ms;
use crate::config::Config;
use crate::deadletter::filter::parse_age;
use crate::deadletter::view::{Detail, PageView};
use crate::deadletter::{replay, Cursor, Filter, FilterSpec, ReplayOptions, ReplayReport, Store};

// The variants' docs are the commands' help; the argument structs carry none
// of their own, so that nothing competes with them.
#[derive(Subcommand)]
pub enum DlqCommand {
    /// List dead letters, newest first, one page at a time.
    List(ListArgs),
    /// Show every stored field of one dead letter, its body pretty-printed.
    Show(ShowArgs),
    /// Republish dead letters to the intent exchange (AMQP_EXCHANGE) with
    /// their original body and routing key and a header naming the dead
    /// letter; each is marked replayed once the broker confirms it. Pending
    /// ones only unless --force. Safe to run twice at once.
    Replay(ReplayArgs),
    /// Delete dead letters by id.
    Delete(DeleteArgs),
    /// Delete every dead letter matching the filters (all of them without
    /// filters), after confirmation.
    Purge(PurgeArgs),
    /// Counts by reason, type and day, and the oldest pending dead letter.
    Stats(StatsArgs),
}

pub async fn run(cfg: &Config, command: DlqCommand) -> anyhow::Result<ExitCode> {
    let store = Store::connect(cfg.database_url.expose()).await?;
    let outcome = match command {
        DlqCommand::List(args) => list(&store, &args).await,
        DlqCommand::Show(args) => show(&store, &args).await,
        DlqCommand::Replay(args) => replay(cfg, &store, args).await,
        DlqCommand::Delete(args) => delete(&store, &args.ids).await,
        DlqCommand::Purge(args) => purge(&store, &args).await,
        DlqCommand::Stats(args) => stats(&store, &args).await,
    };
    store.close().await;
    outcome
}

fn parse(spec: &FilterSpec) -> anyhow::Result<Filter> {
    Ok(spec.parse(SystemTime::now())?)
}

#[derive(Args)]
pub struct ListArgs {
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
}

async fn list(store: &Store, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let cursor = args.cursor.as_deref().map(Cursor::decode).transpose()?;
    let page = store
        .list(&parse(&args.filter)?, cursor, args.limit)
        .await?;
    if args.json {
        print_json(&PageView::from(&page))?;
    } else {
        print!("{}", dlq_print::page_table(&page, args.width));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ShowArgs {
    id: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

async fn show(store: &Store, args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let id = args.id;
    let Some(dl) = store.get(id).await? else {
        anyhow::bail!("no dead letter with id {id}");
    };
    if args.json {
        print_json(&Detail::from(&dl))?;
    } else {
        print!("{}", dlq_print::show_text(&dl));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ReplayArgs {
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
}

async fn replay(cfg: &Config, store: &Store, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let mut filter = parse(&args.filter)?;
    filter.ids = args.ids;
    let plan = replay::plan(store, &filter, args.force).await?;
    let report = if args.dry_run || plan.eligible == 0 {
        plan
    } else {
        if !dlq_print::confirm(&replay_question(&plan, &cfg.amqp.exchange), args.yes)? {
            eprintln!("nothing replayed");
            return Ok(ExitCode::FAILURE);
        }
        let opts = ReplayOptions {
            force: args.force,
            batch_size: args.batch_size,
            ..ReplayOptions::default()
        };
        let bar = dlq_print::progress_bar(plan.eligible);
        let report = replay::replay(store, &cfg.amqp, &filter, &opts, |done, _| {
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
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", dlq_print::replay_text(&report));
    }
    Ok(if report.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn replay_question(plan: &ReplayReport, exchange: &str) -> String {
    let skipped = if plan.skipped_replayed > 0 {
        format!(
            " ({} already replayed, skipped; --force includes them)",
            plan.skipped_replayed
        )
    } else {
        String::new()
    };
    format!(
        "{} dead letter(s) match; replay {} to exchange {exchange:?}{skipped}?",
        plan.matched, plan.eligible,
    )
}

#[derive(Args)]
pub struct DeleteArgs {
    #[arg(required = true)]
    ids: Vec<i64>,
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

#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    filter: FilterSpec,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

async fn stats(store: &Store, args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let stats = store.stats(&parse(&args.filter)?).await?;
    if args.json {
        print_json(&stats)?;
    } else {
        print!("{}", dlq_print::stats_text(&stats));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct PurgeArgs {
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

async fn purge(store: &Store, args: &PurgeArgs) -> anyhow::Result<ExitCode> {
    let mut filter = parse(&args.filter)?;
    if let Some(age) = &args.older_than {
        let age = parse_age("older-than", age)?;
        older_than_cutoff(&mut filter, age, SystemTime::now());
    }
    let matched = store.count_matching(&filter).await?;
    let deleted = if args.dry_run || matched == 0 {
        0
    } else {
        let question = format!("delete {matched} dead letter(s) for good?");
        if !dlq_print::confirm(&question, args.yes)? {
            eprintln!("nothing deleted");
            return Ok(ExitCode::FAILURE);
        }
        let bar = dlq_print::progress_bar(u64::try_from(matched).unwrap_or(0));
        let deleted = store
            .purge(&filter, |n| {
                if let Some(bar) = &bar {
                    bar.set_position(n);
                }
            })
            .await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        deleted?
    };
    if args.json {
        print_json(&PurgeOutcome {
            deleted,
            dry_run: args.dry_run,
            matched,
        })?;
    } else if args.dry_run {
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
