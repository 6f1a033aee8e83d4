//! `pusher-relay`: parses arguments and hands them to
//! [`pusher_relay::cli`]. Nothing else.

use std::process::ExitCode;

use clap::Parser;
use pusher_relay::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    match cli::run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", cli::describe(&e));
            ExitCode::FAILURE
        }
    }
}
