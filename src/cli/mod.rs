//! The command line: what each command accepts (clap's derive), which
//! settings it needs, and what it prints. One file per command group, which
//! only reads arguments and presents results; the work is the library's,
//! or, for the one-shot commands that are a few calls into it, that of
//! [`one_shot`], and [`dlq_print`] lays out what the `dlq` commands print.
//! `main.rs` parses the arguments and calls [`run`], as ripgrep's does.
//!
//! This is the edge of the program, so errors are `anyhow`'s: each command
//! returns its exit code, and [`describe`] turns an error into its one line.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

mod dlq;
mod dlq_print;
mod listen;
mod one_shot;
mod publish;
mod pusher;
mod settings;
mod webhooks;
mod worker;

/// Reliable Pusher Channels delivery from RabbitMQ.
///
/// Settings come from the environment and from `.env` in the current
/// directory (see `.env.example`; `pusher-relay config` shows what is in
/// effect). Secrets are never printed.
#[derive(Parser)]
#[command(name = "pusher-relay", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The variants' docs are the commands' help; the argument structs carry none
// of their own, so that nothing competes with them.
#[derive(Subcommand)]
enum Command {
    /// Run the worker: consume intents from RabbitMQ, deliver them to Pusher
    /// in batches, dead-letter what can never be delivered, and serve
    /// /metrics, /healthz and /readyz on HTTP_ADDR. SIGTERM or Ctrl-C drains
    /// in-flight work (up to RELAY_SHUTDOWN_TIMEOUT) and stops.
    Run,
    /// Print the effective settings (secrets as ***).
    Config(settings::ConfigArgs),
    /// Check the settings and send one signed request Pusher must accept
    /// (GET /channels); prints the latency, then each link's TLS (version,
    /// peer certificate, expiry). Exits 1 with the reason when Pusher
    /// refuses or a certificate would stop the worker.
    Check(settings::CheckArgs),
    /// Send one event to one or more channels now (POST /events), bypassing
    /// the queue.
    Trigger(pusher::TriggerArgs),
    /// List occupied channels (GET /channels).
    Channels(pusher::ChannelsArgs),
    /// Show one channel's state (GET /channels/{channel}).
    ChannelInfo(pusher::ChannelInfoArgs),
    /// List the members of a presence channel.
    Users(pusher::UsersArgs),
    /// Publish intents to RabbitMQ with publisher confirms: one given as JSON
    /// or built with --type/--set, or many from a JSONL file (--file, `-` for
    /// standard input). Each is checked against wire contract v1 exactly as
    /// the worker will check it; invalid lines are reported with their
    /// numbers and skipped.
    Publish(publish::PublishArgs),
    /// Subscribe to channels on the configured Pusher (WebSocket) and print
    /// each event as a JSON line until interrupted. Private, presence and
    /// encrypted channels are authorised with the app's own credentials.
    Listen(listen::ListenArgs),
    /// Print the JSON an auth endpoint returns to pusher-js.
    #[command(subcommand)]
    Auth(pusher::AuthCommand),
    /// Pusher webhooks: verify a signed body, or tail the events the worker
    /// republished to RabbitMQ.
    // `webhook` was the group of `verify` until both met here; scripts may
    // still spell it so.
    #[command(subcommand, alias = "webhook")]
    Webhooks(webhooks::WebhooksCommand),
    /// Dead letters in DATABASE_URL: list, show, replay, delete, purge, stats.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
}

impl Command {
    /// Whether the command talks to Pusher, so it needs the app's
    /// credentials; the others run on a host that has none.
    fn needs_credentials(&self) -> bool {
        match self {
            Command::Dlq(_) | Command::Publish(_) => false,
            Command::Webhooks(group) => group.needs_credentials(),
            _ => true,
        }
    }
}

/// Loads the settings the command needs and runs it.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command;
    let cfg = if command.needs_credentials() {
        Config::from_env()?
    } else {
        Config::from_env_without_credentials()?
    };
    init_tracing(cfg.log_json);
    match command {
        Command::Run => worker::run(cfg).await,
        Command::Config(args) => settings::config(&cfg, &args),
        Command::Check(args) => settings::check(&cfg, &args).await,
        Command::Trigger(args) => pusher::trigger(&cfg, args).await,
        Command::Channels(args) => pusher::channels(&cfg, &args).await,
        Command::ChannelInfo(args) => pusher::channel_info(&cfg, &args).await,
        Command::Users(args) => pusher::users(&cfg, &args).await,
        Command::Publish(args) => publish::run(&cfg, args).await,
        Command::Listen(args) => listen::run(&cfg, &args).await,
        Command::Auth(command) => pusher::auth(&cfg, &command),
        Command::Webhooks(command) => webhooks::run(&cfg, &command).await,
        Command::Dlq(command) => dlq::run(&cfg, command).await,
    }
}

/// The error and its causes on one line, skipping a cause whose text the
/// message already carries (many of ours embed their source for the logs).
pub fn describe(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !msg.contains(&cause) {
            msg = format!("{msg}: {cause}");
        }
    }
    msg
}

/// The most that lapin may log, whatever `RUST_LOG` asks for.
const LAPIN_CAPS: [&str; 2] = ["lapin=warn", "lapin::channel=off"];

/// Logs go to stderr, so that stdout holds only what the command prints.
fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Set after RUST_LOG, so they replace whatever it says of lapin: at
    // debug and trace lapin logs connection.start-ok with its SASL response
    // (the broker password), and its channel module logs every channel the
    // broker closes at error level, which the worker and `check` report
    // themselves with what it means.
    let filter = LAPIN_CAPS
        .iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, EnvFilter::add_directive);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Colour codes only for a person at a terminal: a pipe, journald or a
/// log file would show them as raw escapes. `NO_COLOR` set to anything
/// but empty turns them off there too (no-color.org).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.map_or(true, |v| v.is_empty())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(!colour(false, None), "a pipe or a file gets no escapes");
        assert!(!colour(true, Some("1".into())));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR is unset");
    }
}
