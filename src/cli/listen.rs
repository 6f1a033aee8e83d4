//! `listen`: events as they arrive on Pusher, one JSON line each.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;

#[derive(Args)]
pub struct ListenArgs {
    #[arg(required = true)]
    channels: Vec<String>,
}

pub async fn run(cfg: &Config, args: &ListenArgs) -> anyhow::Result<ExitCode> {
    crate::listen::listen(&cfg.pusher, &args.channels, |event| println!("{event}")).await?;
    Ok(ExitCode::SUCCESS)
}
