//! `webhooks`: Pusher's webhooks, checked by hand (`verify`) or watched as
//! the worker republishes them to RabbitMQ (`tail`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{one_shot, print_json};
use crate::config::Config;

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Verify a webhook body against X-Pusher-Key and X-Pusher-Signature;
    /// exit 0 and print its events when valid, exit 1 with the reason when not.
    Verify(VerifyArgs),
    /// Print webhook events as they arrive on the webhook exchange (from a
    /// temporary queue that disappears when this command stops).
    Tail {
        /// One JSON object per line instead of `name channel details`.
        #[arg(long)]
        json: bool,
    },
}

impl WebhooksCommand {
    /// `verify` checks a signature with the app's secret; `tail` only reads
    /// RabbitMQ.
    pub fn needs_credentials(&self) -> bool {
        matches!(self, WebhooksCommand::Verify(_))
    }
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The X-Pusher-Key header.
    #[arg(long)]
    key: String,
    /// The X-Pusher-Signature header.
    #[arg(long)]
    signature: String,
    /// File with the raw body; standard input when omitted.
    file: Option<PathBuf>,
}

pub async fn run(cfg: &Config, command: &WebhooksCommand) -> anyhow::Result<ExitCode> {
    match command {
        WebhooksCommand::Verify(args) => verify(cfg, args),
        WebhooksCommand::Tail { json } => {
            crate::webhooks::tail(&cfg.amqp, |name, event| {
                if *json {
                    println!("{event}");
                } else {
                    let channel = event.get("channel").and_then(|c| c.as_str()).unwrap_or("-");
                    let user = event.get("user_id").and_then(|u| u.as_str()).unwrap_or("");
                    println!("{name}\t{channel}\t{user}");
                }
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(cfg: &Config, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let body = match &args.file {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("cannot read webhook body from {}", path.display()))?,
        None => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .context("cannot read webhook body from standard input")?;
            buf
        }
    };
    match one_shot::verify_webhook(cfg, &args.key, &args.signature, &body) {
        Ok(hook) => {
            print_json(&hook)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("invalid webhook: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
