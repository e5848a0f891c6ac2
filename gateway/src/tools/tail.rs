//! `shale tail TOPIC`: follow the new messages of a topic.
//!
//! Starts at the end (`max_offset`) of every queue (or `--queue`) and
//! long-polls each with a read by offset (`wait_ms`), one task per queue,
//! printing messages as they arrive (queues interleave; each queue in
//! offset order). Stops on Ctrl-C, after `--max` messages, or after
//! `--idle-exit` without one; exit 0 in all three cases. Queues added to
//! the topic after the start are not followed; an error of any queue (the
//! topic deleted, retention passing a slow reader) ends the command.

use std::time::Duration;

use clap::Args;
use shale_client::{Client, Message, ReadOptions};
use tokio::sync::mpsc;

use super::connect::ConnectArgs;
use super::output;
use super::time_spec::parse_duration_ms;
use super::{ToolError, ToolResult};

/// Wait of one long poll.
const POLL_WAIT_MS: u64 = 20_000;
/// Messages per read.
const PAGE: u64 = 256;

/// `shale tail …`
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The topic
    pub topic: String,
    /// Follow only this queue (repeatable; default: all)
    #[arg(long = "queue", id = "queues", value_name = "QUEUE")]
    pub queues: Vec<u32>,
    /// Only messages with this tag (a||b for either), filtered on the node
    #[arg(long)]
    pub tag: Option<String>,
    /// Exit after this many messages
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// Exit after this long without a message (5s, 1m)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub idle_exit: Option<u64>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Runs `shale tail`.
pub async fn run(args: TailArgs) -> ToolResult {
    let client = args.connect.client()?;
    let topic = client.get_topic(&args.topic).await?;
    if let Some(queue) = args.queues.iter().find(|q| **q >= topic.queue_count) {
        return Err(ToolError::usage(format!(
            "--queue {queue}: topic {} has queues 0..{}",
            topic.name, topic.queue_count
        )));
    }
    let (sender, mut receiver) = mpsc::channel::<ToolResult<Vec<Message>>>(16);
    let mut followers = Vec::new();
    for info in &topic.queues {
        if !args.queues.is_empty() && !args.queues.contains(&info.queue) {
            continue;
        }
        followers.push(tokio::spawn(follow(
            client.clone(),
            args.topic.clone(),
            info.queue,
            info.max_offset,
            args.tag.clone(),
            sender.clone(),
        )));
    }
    drop(sender);
    let outcome = print_until_done(&args, &mut receiver).await;
    for follower in followers {
        follower.abort();
    }
    outcome
}

async fn print_until_done(
    args: &TailArgs,
    receiver: &mut mpsc::Receiver<ToolResult<Vec<Message>>>,
) -> ToolResult {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut printed = 0u64;
    loop {
        if args.max.is_some_and(|max| printed >= max) {
            return Ok(());
        }
        let page = tokio::select! {
            page = receiver.recv() => page,
            _ = &mut interrupted => return Ok(()),
            _ = idle_timeout(args.idle_exit) => return Ok(()),
        };
        let Some(page) = page else {
            return Ok(());
        };
        let mut text = String::new();
        for message in page? {
            if args.max.is_some_and(|max| printed >= max) {
                break;
            }
            printed += 1;
            if args.connect.json {
                text.push_str(
                    &serde_json::to_string(&message)
                        .map_err(|e| ToolError::failed("encoding JSON", e))?,
                );
                text.push('\n');
            } else {
                text.push_str(&output::message_line(&message));
            }
        }
        output::print_text(&text)?;
    }
}

/// Ends after `idle_ms`, never without it.
async fn idle_timeout(idle_ms: Option<u64>) {
    match idle_ms {
        Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        None => std::future::pending().await,
    }
}

/// Long-polls one queue from `offset`, sending each non-empty page.
async fn follow(
    client: Client,
    topic: String,
    queue: u32,
    mut offset: u64,
    tag: Option<String>,
    pages: mpsc::Sender<ToolResult<Vec<Message>>>,
) {
    loop {
        let options = ReadOptions {
            offset,
            max_messages: Some(PAGE),
            wait_ms: Some(POLL_WAIT_MS),
            tag: tag.clone(),
            ..ReadOptions::default()
        };
        match client.read(&topic, queue, &options).await {
            Ok(page) => {
                // A filtered page may carry no message but still move on.
                let moved = page.next_offset != offset;
                offset = page.next_offset;
                if !page.messages.is_empty() && pages.send(Ok(page.messages)).await.is_err() {
                    return;
                }
                if !moved {
                    // An empty long poll that returned early (node draining) must not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Err(error) => {
                let _ = pages.send(Err(error.into())).await;
                return;
            }
        }
    }
}
