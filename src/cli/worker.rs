//! `run`: the worker, until a signal drains and stops it.

use std::process::ExitCode;

use crate::config::Config;

pub async fn run(cfg: Config) -> anyhow::Result<ExitCode> {
    crate::app::run(cfg).await?;
    Ok(ExitCode::SUCCESS)
}
