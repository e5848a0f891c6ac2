//! `shale consume GROUP TOPIC`: receive as a member of a consumer group.
//!
//! Long-polls `receive` (`--wait`, at most 30 s a call), prints each message
//! (text: `QUEUE:OFFSET TAG KEYS BODY`; `--json`: the received message
//! object, one per line) and then acks what it printed, unless `--no-ack`
//! (the messages come back after `--invisible`). Stops after `--max`
//! messages, after `--idle-exit` without a message, or on Ctrl-C (exit 0);
//! without either it runs until interrupted. It never receives more than
//! `--max` leaves to print, so nothing is received and left unacked.

use std::time::{Duration, Instant};

use clap::Args;
use shale_client::{Client, Filter, ReceiveRequest, ReceivedMessage};

use super::connect::ConnectArgs;
use super::output;
use super::time_spec::parse_duration_ms;
use super::{ToolError, ToolResult};

/// Longest wait of one receive (the contract's bound).
const MAX_WAIT_MS: u64 = 30_000;

/// `shale consume …`
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The consumer group (created on first use, from LATEST, if it does not exist)
    pub group: String,
    /// The topic
    pub topic: String,
    /// Exit after this many messages
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// Longest wait of one receive for a message (≤ 30s)
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration_ms)]
    pub wait: u64,
    /// Exit (status 0) after this long without a message (5s, 1m)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub idle_exit: Option<u64>,
    /// Server-side tag filter: a, a||b, *
    #[arg(long, value_name = "EXPR", conflicts_with = "filter_sql")]
    pub filter_tag: Option<String>,
    /// Server-side SQL92 filter over properties and TAGS: "region = 'eu' AND amount > 100"
    #[arg(long, value_name = "EXPR")]
    pub filter_sql: Option<String>,
    /// Do not ack: the messages are delivered again after --invisible
    #[arg(long)]
    pub no_ack: bool,
    /// How long received messages stay invisible to the group (1s-12h)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration_ms)]
    pub invisible: u64,
    /// Messages per receive, 1-64
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub batch: u32,
    /// BROADCASTING groups: who is receiving
    #[arg(long)]
    pub consumer_id: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Runs `shale consume`.
pub async fn run(args: ConsumeArgs) -> ToolResult {
    if args.wait > MAX_WAIT_MS {
        return Err(ToolError::usage("--wait is at most 30s"));
    }
    let client = args.connect.client()?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut printed = 0u64;
    let mut last_message = Instant::now();
    loop {
        let left = args.max.map(|max| max.saturating_sub(printed));
        if left == Some(0) {
            return Ok(());
        }
        let mut wait = args.wait;
        if let Some(idle) = args.idle_exit {
            let idle_left = idle.saturating_sub(last_message.elapsed().as_millis() as u64);
            if idle_left == 0 {
                return Ok(());
            }
            wait = wait.min(idle_left);
        }
        let request = receive_request(&args, wait, left);
        let messages = tokio::select! {
            received = receive(&client, &args.group, &request) => received?,
            _ = &mut interrupted => return Ok(()),
        };
        if messages.is_empty() {
            continue;
        }
        last_message = Instant::now();
        printed += messages.len() as u64;
        print_messages(&messages, args.connect.json)?;
        if !args.no_ack {
            ack(&client, &args, &messages).await?;
        }
    }
}

fn receive_request(args: &ConsumeArgs, wait_ms: u64, left: Option<u64>) -> ReceiveRequest {
    let batch = left.map_or(args.batch, |left| left.min(u64::from(args.batch)) as u32);
    let filter = match (&args.filter_tag, &args.filter_sql) {
        (Some(tag), _) => Some(Filter::tag(tag)),
        (None, Some(sql)) => Some(Filter::sql(sql)),
        (None, None) => None,
    };
    ReceiveRequest {
        topic: args.topic.clone(),
        max_messages: Some(batch),
        invisible_ms: Some(args.invisible),
        wait_ms: Some(wait_ms),
        filter,
        consumer_id: args.consumer_id.clone(),
        encoding: None,
    }
}

async fn receive(
    client: &Client,
    group: &str,
    request: &ReceiveRequest,
) -> ToolResult<Vec<ReceivedMessage>> {
    let started = Instant::now();
    let messages = client.receive(group, request).await?;
    // A node answering an empty long poll at once (draining) must not make this spin.
    if messages.is_empty() && started.elapsed() < Duration::from_millis(50) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(messages)
}

fn print_messages(messages: &[ReceivedMessage], json: bool) -> ToolResult {
    let mut text = String::new();
    for m in messages {
        if json {
            text.push_str(
                &serde_json::to_string(m).map_err(|e| ToolError::failed("encoding JSON", e))?,
            );
            text.push('\n');
        } else {
            text.push_str(&output::message_line(&m.message));
        }
    }
    output::print_text(&text)
}

async fn ack(client: &Client, args: &ConsumeArgs, messages: &[ReceivedMessage]) -> ToolResult {
    let handles: Vec<String> = messages.iter().map(|m| m.receipt_handle.clone()).collect();
    let results = client.ack(&args.group, &args.topic, &handles).await?;
    for result in results.iter().filter(|r| !r.ok) {
        let why = result.error.as_ref().map_or_else(
            || "not acked".to_string(),
            |e| format!("{}: {}", e.code, e.message),
        );
        eprintln!("shale: ack failed ({why}); the message will be delivered again");
    }
    Ok(())
}
