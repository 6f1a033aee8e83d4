//! `publish`: intents into RabbitMQ with publisher confirms, one from the
//! arguments or many from a JSONL file with a progress bar.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{one_shot, print_json};
use crate::config::Config;
use crate::publish::{publish_lines, Publisher};

#[derive(Args)]
pub struct PublishArgs {
    /// One intent as JSON, e.g. '{"type":"notification","user_id":42,"message":"hi"}'.
    #[arg(conflicts_with_all = ["file", "kind"])]
    intent: Option<String>,
    /// A JSONL file of intents, one per line; `-` reads standard input.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Build the intent from flags: its type (notification, chat.message, ...).
    #[arg(long = "type", conflicts_with = "file")]
    kind: Option<String>,
    /// A field of the intent built with --type, as key=value; the value is
    /// read as JSON when it parses (42, true, {"a":1}), else as a string.
    #[arg(long = "set", requires = "kind", value_name = "KEY=VALUE")]
    fields: Vec<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let publisher = Publisher::connect(cfg).await?;
    let outcome = publish(&publisher, args).await;
    publisher.close().await;
    outcome
}

async fn publish(publisher: &Publisher, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let body = match (args.intent, args.kind) {
        (Some(intent), _) => Some(intent),
        (None, Some(kind)) => {
            Some(one_shot::intent_from_flags(&kind, &args.fields).map_err(anyhow::Error::msg)?)
        }
        (None, None) => None,
    };
    if let Some(body) = body {
        println!("{}", publisher.publish_json(body.as_bytes()).await?);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(file) = args.file else {
        anyhow::bail!(
            "nothing to publish: give an intent as JSON, --type with --set, or --file (see --help)"
        );
    };
    let summary = if file.as_os_str() == "-" {
        publish_lines(publisher, std::io::stdin().lock(), |_| {}).await?
    } else {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let bar = indicatif::ProgressBar::new(text.lines().count() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} lines {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let summary =
            publish_lines(publisher, text.as_bytes(), |n| bar.set_position(n as u64)).await;
        bar.finish_and_clear();
        summary?
    };
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "published {}, rejected {}",
            summary.published,
            summary.rejected.len()
        );
        for r in &summary.rejected {
            println!("  line {}: {}", r.line, r.reason);
        }
    }
    Ok(if summary.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
