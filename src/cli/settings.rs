//! `config` and `check`: the settings in effect, and whether Pusher accepts
//! them and each link's TLS certificate is one its client accepts.

use std::process::ExitCode;

use clap::Args;

use super::{one_shot, print_json};
use crate::config::Config;

#[derive(Args)]
pub struct ConfigArgs {
    /// Print the pusher-js client options instead (key, cluster, wsHost, ...).
    #[arg(long)]
    client: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn config(cfg: &Config, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    if args.client {
        print_json(&cfg.pusher.client_config())?;
    } else if args.json {
        print_json(&cfg.redacted())?;
    } else {
        let origins = Config::origins();
        for (name, value) in cfg.redacted() {
            match origins.get(name) {
                Some(origin) => println!("{name:<36} {value:<40} ({origin})"),
                None => println!("{name:<36} {value}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct CheckArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn check(cfg: &Config, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let report = one_shot::check(cfg).await;
    if args.json {
        print_json(&report)?;
    } else {
        println!("{}", report.summary());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
