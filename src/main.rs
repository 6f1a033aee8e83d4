//! `pusher-relay`: parses arguments and calls the library. Nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pusher_relay::commands;
use pusher_relay::config::Config;

/// Reliable Pusher Channels delivery from RabbitMQ.
///
/// Settings come from the environment and from `.env` in the current
/// directory (see `.env.example`; `pusher-relay config` shows what is in
/// effect). Secrets are never printed.
#[derive(Parser)]
#[command(name = "pusher-relay", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker: consume intents from RabbitMQ, deliver them to Pusher
    /// in batches, dead-letter what can never be delivered, and serve
    /// /metrics, /healthz and /readyz on HTTP_ADDR. SIGTERM or Ctrl-C drains
    /// in-flight work (up to RELAY_SHUTDOWN_TIMEOUT) and stops.
    Run,
    /// Print the effective settings (secrets as ***).
    Config {
        /// Print the pusher-js client options instead (key, cluster, wsHost, ...).
        #[arg(long)]
        client: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the settings and send one signed request Pusher must accept
    /// (GET /channels); prints the latency. Exits 1 with the reason otherwise.
    Check {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send one event to one or more channels now (POST /events), bypassing
    /// the queue.
    Trigger {
        /// Channels (1 to 100).
        #[arg(required = true)]
        channels: Vec<String>,
        /// Event name.
        #[arg(long)]
        event: String,
        /// Event data: JSON text, sent as Pusher's `data` string.
        #[arg(long)]
        data: String,
        /// Exclude this connection (the sender's own), like `123.456`.
        #[arg(long)]
        socket_id: Option<String>,
        /// Channel attributes to return, comma separated (user_count, subscription_count).
        #[arg(long)]
        info: Option<String>,
    },
    /// List occupied channels (GET /channels).
    Channels {
        /// Only channels whose name starts with this prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Attributes to return: only user_count, and only with --prefix presence-.
        #[arg(long, value_delimiter = ',')]
        info: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one channel's state (GET /channels/{channel}).
    ChannelInfo {
        channel: String,
        /// Attributes: user_count (presence), subscription_count, cache.
        #[arg(long, value_delimiter = ',')]
        info: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the members of a presence channel.
    Users {
        channel: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish intents to RabbitMQ with publisher confirms: one given as JSON
    /// or built with --type/--set, or many from a JSONL file (--file, `-` for
    /// standard input). Each is checked against wire contract v1 exactly as
    /// the worker will check it; invalid lines are reported with their
    /// numbers and skipped.
    Publish {
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
    },
    /// Subscribe to channels on the configured Pusher (WebSocket) and print
    /// each event as a JSON line until interrupted. Private, presence and
    /// encrypted channels are authorised with the app's own credentials.
    Listen {
        #[arg(required = true)]
        channels: Vec<String>,
    },
    /// Print the JSON an auth endpoint returns to pusher-js.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Pusher webhook tools.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Webhook events the worker republished to RabbitMQ.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Dead letters in DATABASE_URL: list, show, replay, delete, purge, stats.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters, newest first, one page at a time.
    List {
        #[command(flatten)]
        filter: DlqFilter,
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
        filter: DlqFilter,
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
        filter: DlqFilter,
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
        filter: DlqFilter,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Filters shared by the dlq commands.
#[derive(Args)]
struct DlqFilter {
    /// Reasons, comma separated: invalid, too_large, rejected, exhausted, expired.
    #[arg(long)]
    reason: Option<String>,
    /// Intent type, e.g. chat.message.
    #[arg(long = "type")]
    intent_type: Option<String>,
    /// A channel the intent addressed.
    #[arg(long)]
    channel: Option<String>,
    /// Dead-lettered at or after: RFC 3339 (2024-05-01T12:00:00Z), a date, or an age like 2h.
    #[arg(long)]
    since: Option<String>,
    /// Dead-lettered before: RFC 3339, a date, or an age like 7d.
    #[arg(long)]
    until: Option<String>,
    /// pending or replayed.
    #[arg(long)]
    status: Option<String>,
}

impl DlqFilter {
    fn parse(self) -> anyhow::Result<pusher_relay::deadletter::Filter> {
        let spec = pusher_relay::deadletter::FilterSpec {
            reason: self.reason,
            intent_type: self.intent_type,
            channel: self.channel,
            since: self.since,
            until: self.until,
            status: self.status,
        };
        Ok(spec.parse(std::time::SystemTime::now())?)
    }
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Authorise a socket for a private, presence or private-encrypted channel.
    Channel {
        channel: String,
        #[arg(long)]
        socket_id: String,
        /// Presence channel data, e.g. '{"user_id":"42","user_info":{"name":"Ada"}}'.
        #[arg(long)]
        channel_data: Option<String>,
    },
    /// Authenticate a user for pusher:signin.
    User {
        #[arg(long)]
        socket_id: String,
        /// User data, e.g. '{"id":"42","user_info":{"name":"Ada"}}'.
        #[arg(long)]
        user_data: String,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Print webhook events as they arrive on the webhook exchange (from a
    /// temporary queue that disappears when this command stops).
    Tail {
        /// One JSON object per line instead of `name channel details`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// Verify a webhook body against X-Pusher-Key and X-Pusher-Signature;
    /// exit 0 and print its events when valid, exit 1 with the reason when not.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    /// The X-Pusher-Key header.
    #[arg(long)]
    key: String,
    /// The X-Pusher-Signature header.
    #[arg(long)]
    signature: String,
    /// File with the raw body; standard input when omitted.
    file: Option<PathBuf>,
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn publish(
    publisher: &pusher_relay::publish::Publisher,
    intent: Option<String>,
    file: Option<PathBuf>,
    kind: Option<String>,
    fields: Vec<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let body = match (intent, kind) {
        (Some(intent), _) => Some(intent),
        (None, Some(kind)) => {
            Some(commands::intent_from_flags(&kind, &fields).map_err(anyhow::Error::msg)?)
        }
        (None, None) => None,
    };
    if let Some(body) = body {
        println!("{}", publisher.publish_json(body.as_bytes()).await?);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(file) = file else {
        anyhow::bail!(
            "nothing to publish: give an intent as JSON, --type with --set, or --file (see --help)"
        );
    };
    let summary = if file.as_os_str() == "-" {
        pusher_relay::publish::publish_lines(publisher, std::io::stdin().lock(), |_| {}).await?
    } else {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let lines = text.lines().count() as u64;
        let bar = indicatif::ProgressBar::new(lines).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} lines {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let summary = pusher_relay::publish::publish_lines(publisher, text.as_bytes(), |n| {
            bar.set_position(n as u64)
        })
        .await;
        bar.finish_and_clear();
        summary?
    };
    if json {
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

/// The error and its causes on one line, skipping a cause whose text the
/// message already carries (many of ours embed their source for the logs).
fn describe(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !msg.contains(&cause) {
            msg = format!("{msg}: {cause}");
        }
    }
    msg
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let cfg = match command {
        Command::Dlq(_) | Command::Publish { .. } | Command::Webhooks(_) => {
            Config::from_env_without_credentials()?
        }
        _ => Config::from_env()?,
    };
    init_tracing(cfg.log_json);
    match command {
        Command::Dlq(dlq) => return run_dlq(&cfg, dlq).await,
        Command::Run => pusher_relay::app::run(cfg).await?,
        Command::Publish {
            intent,
            file,
            kind,
            fields,
            json,
        } => {
            let publisher = pusher_relay::publish::Publisher::connect(&cfg).await?;
            let outcome = publish(&publisher, intent, file, kind, fields, json).await;
            publisher.close().await;
            return outcome;
        }
        Command::Listen { channels } => {
            pusher_relay::listen::listen(&cfg.pusher, &channels, |event| println!("{event}"))
                .await?;
        }
        Command::Config { client, json } => {
            if client {
                print_json(&cfg.pusher.client_config())?;
            } else if json {
                print_json(&cfg.redacted())?;
            } else {
                for (name, value) in cfg.redacted() {
                    println!("{name:<36} {value}");
                }
            }
        }
        Command::Check { json } => {
            let report = commands::check(&cfg).await;
            if json {
                print_json(&report)?;
            } else {
                println!("{}", report.summary());
            }
            if !report.ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Trigger {
            channels,
            event,
            data,
            socket_id,
            info,
        } => {
            let answer = commands::trigger(&cfg, channels, event, data, socket_id, info).await?;
            print_json(&answer)?;
        }
        Command::Channels { prefix, info, json } => {
            let list = commands::client(&cfg)?
                .channels(prefix.as_deref(), &info)
                .await?;
            if json {
                print_json(&list)?;
            } else {
                for (name, attrs) in &list.channels {
                    match attrs.user_count {
                        Some(n) => println!("{name}\tusers={n}"),
                        None => println!("{name}"),
                    }
                }
                eprintln!("{} occupied channel(s)", list.channels.len());
            }
        }
        Command::ChannelInfo {
            channel,
            info,
            json,
        } => {
            let state = commands::client(&cfg)?
                .channel_info(&channel, &info)
                .await?;
            if json {
                print_json(&state)?;
            } else {
                println!("occupied: {}", state.occupied);
                if let Some(n) = state.user_count {
                    println!("user_count: {n}");
                }
                if let Some(n) = state.subscription_count {
                    println!("subscription_count: {n}");
                }
            }
        }
        Command::Users { channel, json } => {
            let users = commands::client(&cfg)?.users(&channel).await?;
            if json {
                print_json(&users)?;
            } else {
                for id in &users {
                    println!("{id}");
                }
                eprintln!("{} member(s)", users.len());
            }
        }
        Command::Auth(AuthCommand::Channel {
            channel,
            socket_id,
            channel_data,
        }) => {
            println!(
                "{}",
                commands::auth_channel(&cfg, &channel, &socket_id, channel_data.as_deref())?
            );
        }
        Command::Auth(AuthCommand::User {
            socket_id,
            user_data,
        }) => {
            let client = commands::client(&cfg)?;
            println!(
                "{}",
                client.authenticate_user(&socket_id, &user_data)?.to_json()
            );
        }
        Command::Webhooks(WebhooksCommand::Tail { json }) => {
            pusher_relay::webhooks::tail(&cfg.amqp, |name, event| {
                if json {
                    println!("{event}");
                } else {
                    let channel = event.get("channel").and_then(|c| c.as_str()).unwrap_or("-");
                    let user = event.get("user_id").and_then(|u| u.as_str()).unwrap_or("");
                    println!("{name}\t{channel}\t{user}");
                }
            })
            .await?;
        }
        Command::Webhook(WebhookCommand::Verify(args)) => {
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
            match commands::verify_webhook(&cfg, &args.key, &args.signature, &body) {
                Ok(hook) => print_json(&hook)?,
                Err(e) => {
                    eprintln!("invalid webhook: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_dlq(cfg: &Config, command: DlqCommand) -> anyhow::Result<ExitCode> {
    use pusher_relay::deadletter::{replay, Cursor, ReplayOptions, Store};
    use pusher_relay::dlq;
    let store = Store::connect(cfg.database_url.expose()).await?;
    match command {
        DlqCommand::List {
            filter,
            limit,
            cursor,
            json,
            width,
        } => {
            let cursor = cursor.as_deref().map(Cursor::decode).transpose()?;
            let page = store.list(&filter.parse()?, cursor, limit).await?;
            if json {
                print_json(&dlq::page_json(&page))?;
            } else {
                print!("{}", dlq::page_table(&page, width));
            }
        }
        DlqCommand::Show { id, json } => {
            let Some(dl) = store.get(id).await? else {
                anyhow::bail!("no dead letter with id {id}");
            };
            if json {
                print_json(&dlq::detail_json(&dl))?;
            } else {
                print!("{}", dlq::show_text(&dl));
            }
        }
        DlqCommand::Replay {
            ids,
            filter,
            force,
            dry_run,
            yes,
            batch_size,
            json,
        } => {
            let mut filter = filter.parse()?;
            filter.ids = ids;
            let plan = replay::plan(&store, &filter, force).await?;
            let report = if dry_run || plan.eligible == 0 {
                plan
            } else {
                let question = format!(
                    "{} dead letter(s) match; replay {} to exchange {:?}{}?",
                    plan.matched,
                    plan.eligible,
                    cfg.amqp.exchange,
                    if plan.skipped_replayed > 0 {
                        format!(
                            " ({} already replayed, skipped; --force includes them)",
                            plan.skipped_replayed
                        )
                    } else {
                        String::new()
                    }
                );
                if !dlq::confirm(&question, yes)? {
                    eprintln!("nothing replayed");
                    return Ok(ExitCode::FAILURE);
                }
                let bar = dlq::progress_bar(plan.eligible);
                let opts = ReplayOptions {
                    force,
                    batch_size,
                    ..ReplayOptions::default()
                };
                let report = replay::replay(&store, &cfg.amqp, &filter, &opts, |done, _| {
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
            if report.failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        DlqCommand::Delete { ids } => {
            let n = store.delete(&ids).await?;
            println!("{n} deleted");
            if n < ids.len() as u64 {
                eprintln!("{} id(s) did not exist", ids.len() as u64 - n);
                return Ok(ExitCode::FAILURE);
            }
        }
        DlqCommand::Purge {
            filter,
            older_than,
            dry_run,
            yes,
            json,
        } => {
            let mut filter = filter.parse()?;
            if let Some(age) = older_than {
                let age = pusher_relay::deadletter::filter::parse_age("older-than", &age)?;
                let cutoff = std::time::SystemTime::now()
                    .checked_sub(age)
                    .map_or(0, pusher_relay::deadletter::filter::unix_ms);
                filter.until_ms = Some(filter.until_ms.map_or(cutoff, |u| u.min(cutoff)));
            }
            let matched = store.count_matching(&filter).await?;
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
                    .purge(&filter, |n| {
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
                print_json(
                    &serde_json::json!({"matched": matched, "deleted": deleted, "dry_run": dry_run}),
                )?;
            } else if dry_run {
                println!("{matched} would be deleted");
            } else {
                println!("{deleted} deleted");
            }
        }
        DlqCommand::Stats { filter, json } => {
            let stats = store.stats(&filter.parse()?).await?;
            if json {
                print_json(&stats)?;
            } else {
                print!("{}", dlq::stats_text(&stats));
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
