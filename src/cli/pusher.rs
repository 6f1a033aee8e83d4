//! The commands that call the Pusher HTTP API directly, bypassing the
//! queue: `trigger`, `channels`, `channel-info`, `users` and `auth`.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{one_shot, print_json};
use crate::config::Config;

#[derive(Args)]
pub struct TriggerArgs {
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
}

pub async fn trigger(cfg: &Config, args: TriggerArgs) -> anyhow::Result<ExitCode> {
    let TriggerArgs {
        channels,
        event,
        data,
        socket_id,
        info,
    } = args;
    let answer = one_shot::trigger(cfg, channels, event, data, socket_id, info).await?;
    print_json(&answer)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ChannelsArgs {
    /// Only channels whose name starts with this prefix.
    #[arg(long)]
    prefix: Option<String>,
    /// Attributes to return: only user_count, and only with --prefix presence-.
    #[arg(long, value_delimiter = ',')]
    info: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn channels(cfg: &Config, args: &ChannelsArgs) -> anyhow::Result<ExitCode> {
    let list = one_shot::client(cfg)?
        .channels(args.prefix.as_deref(), &args.info)
        .await?;
    if args.json {
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
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ChannelInfoArgs {
    channel: String,
    /// Attributes: user_count (presence), subscription_count, cache.
    #[arg(long, value_delimiter = ',')]
    info: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn channel_info(cfg: &Config, args: &ChannelInfoArgs) -> anyhow::Result<ExitCode> {
    let state = one_shot::client(cfg)?
        .channel_info(&args.channel, &args.info)
        .await?;
    if args.json {
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
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct UsersArgs {
    channel: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn users(cfg: &Config, args: &UsersArgs) -> anyhow::Result<ExitCode> {
    let users = one_shot::client(cfg)?.users(&args.channel).await?;
    if args.json {
        print_json(&users)?;
    } else {
        for id in &users {
            println!("{id}");
        }
        eprintln!("{} member(s)", users.len());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum AuthCommand {
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

pub fn auth(cfg: &Config, command: &AuthCommand) -> anyhow::Result<ExitCode> {
    let answer = match command {
        AuthCommand::Channel {
            channel,
            socket_id,
            channel_data,
        } => one_shot::auth_channel(cfg, channel, socket_id, channel_data.as_deref())?,
        AuthCommand::User {
            socket_id,
            user_data,
        } => one_shot::client(cfg)?
            .authenticate_user(socket_id, user_data)?
            .to_json(),
    };
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}
