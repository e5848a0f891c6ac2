//! `shale send TOPIC [BODY]`: produce messages in batches.
//!
//! Messages come from [`super::send_input`]; the flags (`--tag`, `--key`,
//! `--property`, `--group`, `--delay`/`--deliver-at`, `--queue`) fill what a
//! message does not set itself. Batches of `--batch` messages (at most 1024,
//! and about 8 MiB, within the contract's 32 MiB per request) are sent one
//! after the other, in input order.
//!
//! Every message without a `dedup_id` gets one (`cli-<random>-<n>`, kept
//! by the node as the property `shale.dedup_id`): the client then retries a
//! batch after a 503 (a queue changing owner, the object store down at
//! OBJECT durability) without storing anything twice (see the retry rules
//! of [`shale_client`]). `--no-dedup-id` leaves them out: a 503 is then an
//! error, and sending again may store a message twice.
//!
//! Output: a line per message (`MESSAGE_ID QUEUE OFFSET …`), or with
//! `--json` one JSON result object per line.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use shale_client::{
    Client, Durability, ProduceMessage, ProduceRequest, ProduceResult, TransactionInput,
};

use super::connect::ConnectArgs;
use super::output;
use super::send_input::{Input, estimated_bytes};
use super::time_spec::{parse_duration_ms, parse_time};
use super::topic::parse_durability;
use super::{ToolError, ToolResult};

/// Most bytes of messages put in one request (estimated).
const BATCH_BYTES: usize = 8 << 20;

/// `shale send …`
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The topic
    pub topic: String,
    /// The body of one message (else stdin, --lines, --ndjson or --file)
    pub body: Option<String>,
    /// One message per line of stdin (empty lines skipped)
    #[arg(long, conflicts_with_all = ["body", "ndjson", "files"])]
    pub lines: bool,
    /// One message object per line of stdin ({"body": …, "tag": …, "keys": […], …})
    #[arg(long, conflicts_with_all = ["body", "files"])]
    pub ndjson: bool,
    /// One message per file, the file's bytes as body
    #[arg(long = "file", id = "files", value_name = "FILE", num_args = 1.., conflicts_with = "body")]
    pub files: Vec<PathBuf>,
    /// Tag of the messages
    #[arg(long)]
    pub tag: Option<String>,
    /// A key of the messages (repeatable)
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// A property NAME=VALUE (repeatable)
    #[arg(long = "property", value_name = "NAME=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// FIFO topics: the message group
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// DELAY topics: deliver after this long (5s, 10m, 1h30m)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub delay: Option<u64>,
    /// DELAY topics: deliver at this time (2026-11-30T12:00:00Z, +10m, epoch ms)
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true, conflicts_with = "delay")]
    pub deliver_at: Option<i64>,
    /// Send to this queue
    #[arg(long)]
    pub queue: Option<u32>,
    /// Messages per request, 1-1024
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// A stronger durability than the topic's: ASYNC, SYNC or OBJECT
    #[arg(long, value_parser = parse_durability)]
    pub durability: Option<Durability>,
    /// TRANSACTION topics: send half messages of this producer group (commit them later)
    #[arg(long, value_name = "PRODUCER_GROUP")]
    pub transaction: Option<String>,
    /// Do not give messages a dedup_id (then a 503 is not retried: it may have stored them)
    #[arg(long)]
    pub no_dedup_id: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("{text:?}: empty property name"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Runs `shale send`.
pub async fn run(args: SendArgs) -> ToolResult {
    let client = args.connect.client()?;
    let mut input = if let Some(body) = args.body.clone() {
        Input::body(body)
    } else if args.lines {
        Input::lines()
    } else if args.ndjson {
        Input::ndjson()
    } else if !args.files.is_empty() {
        Input::files(args.files.clone())
    } else {
        if std::io::stdin().is_terminal() {
            eprintln!("shale: reading one message body from stdin (end it with Ctrl-D)");
        }
        Input::stdin()
    };
    let run_id = format!("cli-{:016x}", rand::random::<u64>());
    let mut sent = 0u64;
    if !args.connect.json {
        output::print_text(&format!(
            "{:<32}  {:<5}  {:<10}  {}\n",
            "MESSAGE_ID", "QUEUE", "OFFSET", "DETAIL"
        ))?;
    }
    loop {
        let batch =
            tokio::task::block_in_place(|| next_batch(&mut input, &args, &run_id, &mut sent))?;
        if batch.is_empty() {
            break;
        }
        let request = ProduceRequest {
            messages: batch,
            transaction: args
                .transaction
                .clone()
                .map(|producer_group| TransactionInput {
                    producer_group,
                    check_after_ms: None,
                }),
            durability: args.durability,
        };
        let results = send_batch(&client, &args.topic, &request).await?;
        print_results(&results, args.connect.json)?;
    }
    if sent == 0 {
        return Err(ToolError::usage(
            "nothing to send: the input had no message",
        ));
    }
    if std::io::stderr().is_terminal() {
        eprintln!("sent {sent} message(s) to {}", args.topic);
    }
    Ok(())
}

async fn send_batch(
    client: &Client,
    topic: &str,
    request: &ProduceRequest,
) -> ToolResult<Vec<ProduceResult>> {
    Ok(client.produce(topic, request).await?)
}

/// Up to `--batch` messages (and [`BATCH_BYTES`]) with the flags' defaults.
fn next_batch(
    input: &mut Input,
    args: &SendArgs,
    run_id: &str,
    sent: &mut u64,
) -> ToolResult<Vec<ProduceMessage>> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while batch.len() < args.batch as usize && bytes < BATCH_BYTES {
        let Some(message) = input.next_message()? else {
            break;
        };
        let message = with_defaults(message, args, run_id, *sent);
        *sent += 1;
        bytes += estimated_bytes(&message);
        batch.push(message);
    }
    Ok(batch)
}

fn with_defaults(mut m: ProduceMessage, args: &SendArgs, run_id: &str, n: u64) -> ProduceMessage {
    if m.tag.is_none() {
        m.tag = args.tag.clone();
    }
    if m.keys.is_empty() {
        m.keys = args.keys.clone();
    }
    let flags: BTreeMap<String, String> = args.properties.iter().cloned().collect();
    for (name, value) in flags {
        m.properties.entry(name).or_insert(value);
    }
    if m.message_group.is_none() {
        m.message_group = args.group.clone();
    }
    if m.delay_ms.is_none() && m.deliver_at_ms.is_none() && m.delay_level.is_none() {
        m.delay_ms = args.delay;
        m.deliver_at_ms = args.deliver_at.map(|ms| ms.max(0) as u64);
    }
    if m.queue.is_none() {
        m.queue = args.queue;
    }
    if m.dedup_id.is_none() && !args.no_dedup_id {
        m.dedup_id = Some(format!("{run_id}-{n}"));
    }
    m
}

fn print_results(results: &[ProduceResult], json: bool) -> ToolResult {
    let mut text = String::new();
    for r in results {
        if json {
            text.push_str(
                &serde_json::to_string(r).map_err(|e| ToolError::failed("encoding JSON", e))?,
            );
            text.push('\n');
            continue;
        }
        let detail = match (&r.deliver_at_ms, &r.transaction_id) {
            (_, Some(txn)) => format!("transaction {txn}"),
            (Some(at), None) => format!("due {}", output::time(*at)),
            (None, None) => String::new(),
        };
        let offset = r.offset.map_or_else(|| "-".to_string(), |o| o.to_string());
        let line = format!(
            "{:<32}  {:<5}  {:<10}  {}",
            r.message_id, r.queue, offset, detail
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    output::print_text(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse() {
        assert_eq!(
            parse_property("region=eu"),
            Ok(("region".into(), "eu".into()))
        );
        assert_eq!(parse_property("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_property("=x").is_err());
        assert!(parse_property("x").is_err());
    }
}
