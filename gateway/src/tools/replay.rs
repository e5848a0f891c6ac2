//! `shale replay TOPIC`: read queues by offset, to stdout, a file or Parquet.
//!
//! Per queue (all of them, or `--queue`), from `--offset` or `--from-time`
//! (default: the oldest retained message) up to `--to-time` (exclusive: the
//! first message stored at or after it) or the queue's end when the replay
//! starts. Messages come from the NDJSON stream of the contract (constant
//! memory however long the range), queue after queue, in offset order.
//! `--tag` filters on the node, `--key` here.
//!
//! Output: NDJSON message objects to stdout or `--output FILE`, or Parquet
//! files under `--parquet-dir` ([`super::parquet_out`]). A progress bar
//! (messages, bytes, rate, ETA over the known offset range) is drawn on
//! stderr only when stderr is a terminal.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shale_client::{Client, Message, ReadOptions, TopicDetail};

use super::connect::ConnectArgs;
use super::output;
use super::parquet_out::ParquetDir;
use super::time_spec::{TimeSpec, parse_spec, parse_time};
use super::{ToolError, ToolResult};
use crate::config::units::parse_size;

/// `shale replay …`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The topic
    pub topic: String,
    /// Start at this offset in every queue read (below the oldest retained: from there)
    #[arg(long, conflicts_with = "from_time")]
    pub offset: Option<u64>,
    /// Start at the first message stored at or after this time (2026-11-30T12:00:00Z, -1h), or EARLIEST/LATEST
    #[arg(long, value_name = "TIME", value_parser = parse_spec, allow_hyphen_values = true)]
    pub from_time: Option<TimeSpec>,
    /// Stop before the first message stored at or after this time
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    pub to_time: Option<i64>,
    /// Read only this queue (repeatable; default: all)
    #[arg(long = "queue", id = "queues", value_name = "QUEUE")]
    pub queues: Vec<u32>,
    /// Only messages with this tag (a||b for either), filtered on the node
    #[arg(long)]
    pub tag: Option<String>,
    /// Only messages with this key
    #[arg(long)]
    pub key: Option<String>,
    /// Write NDJSON to this file instead of stdout
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "parquet_dir")]
    pub output: Option<PathBuf>,
    /// Write Parquet files (the object-store layout's columns) under this directory
    #[arg(long, value_name = "DIR")]
    pub parquet_dir: Option<PathBuf>,
    /// Start a new Parquet file after about this many bytes
    #[arg(long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub parquet_file_bytes: u64,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// One queue's range to read, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    queue: u32,
    start: u64,
    end: u64,
}

enum Sink {
    Ndjson(BufWriter<Box<dyn Write + Send>>),
    Parquet(Box<ParquetDir>),
}

impl Sink {
    fn write(&mut self, message: Message) -> ToolResult {
        match self {
            Sink::Ndjson(out) => {
                serde_json::to_writer(&mut *out, &message)
                    .map_err(|e| output::write_error(e.into()))?;
                out.write_all(b"\n").map_err(output::write_error)
            }
            Sink::Parquet(dir) => dir.write(message),
        }
    }

    fn end_of_queue(&mut self) -> ToolResult {
        match self {
            Sink::Ndjson(out) => out.flush().map_err(output::write_error),
            Sink::Parquet(dir) => dir.finish_file(),
        }
    }
}

/// Runs `shale replay`.
pub async fn run(args: ReplayArgs) -> ToolResult {
    let client = args.connect.client()?;
    let topic = client.get_topic(&args.topic).await?;
    let ranges = ranges(&client, &topic, &args).await?;
    let mut sink = match (&args.output, &args.parquet_dir) {
        (Some(path), _) => {
            let file = File::create(path)
                .map_err(|e| ToolError::failed(format!("creating {}", path.display()), e))?;
            Sink::Ndjson(BufWriter::new(Box::new(file)))
        }
        (None, Some(dir)) => Sink::Parquet(Box::new(ParquetDir::new(
            dir,
            &args.topic,
            args.parquet_file_bytes,
        ))),
        (None, None) => Sink::Ndjson(BufWriter::new(Box::new(std::io::stdout()))),
    };
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let bar = progress_bar(total);
    let mut done_before = 0u64;
    let mut written = 0u64;
    let mut bytes = 0u64;
    for range in &ranges {
        let mut next = range.start;
        while next < range.end {
            let options = ReadOptions {
                offset: next,
                max_messages: args.tag.is_none().then_some(range.end - next),
                tag: args.tag.clone(),
                ..ReadOptions::default()
            };
            let mut stream = client
                .read_stream(&args.topic, range.queue, &options)
                .await?;
            let mut progressed = false;
            while let Some(message) = stream.try_next().await? {
                let Some(offset) = message.offset else {
                    return Err(ToolError::Failed(format!(
                        "the node sent message {} without an offset",
                        message.message_id
                    )));
                };
                if offset >= range.end {
                    break;
                }
                next = offset + 1;
                progressed = true;
                bar.set_position(done_before + next - range.start);
                if args.key.as_ref().is_some_and(|k| !message.keys.contains(k)) {
                    continue;
                }
                bytes += message.body_len() as u64;
                written += 1;
                bar.set_message(output::bytes(bytes));
                sink.write(message)?;
            }
            if !progressed {
                break;
            }
        }
        sink.end_of_queue()?;
        done_before += range.end - range.start;
        bar.set_position(done_before);
    }
    bar.finish_and_clear();
    if let Sink::Parquet(dir) = &sink
        && std::io::stderr().is_terminal()
    {
        for file in &dir.files {
            eprintln!("wrote {}", file.display());
        }
    }
    if std::io::stderr().is_terminal() {
        eprintln!(
            "replayed {written} message(s), {} of bodies",
            output::bytes(bytes)
        );
    }
    Ok(())
}

/// The range of each queue read.
async fn ranges(client: &Client, topic: &TopicDetail, args: &ReplayArgs) -> ToolResult<Vec<Range>> {
    if let Some(queue) = args.queues.iter().find(|q| **q >= topic.queue_count) {
        return Err(ToolError::usage(format!(
            "--queue {queue}: topic {} has queues 0..{}",
            topic.name, topic.queue_count
        )));
    }
    let mut ranges = Vec::new();
    for info in &topic.queues {
        if !args.queues.is_empty() && !args.queues.contains(&info.queue) {
            continue;
        }
        let start = match (args.offset, args.from_time) {
            (Some(offset), _) => offset.clamp(info.min_offset, info.max_offset),
            (None, Some(TimeSpec::At(ms))) => {
                client
                    .offset_for_timestamp(&topic.name, info.queue, ms)
                    .await?
            }
            (None, Some(TimeSpec::Latest)) => info.max_offset,
            (None, Some(TimeSpec::Earliest) | None) => info.min_offset,
        };
        let end = match args.to_time {
            Some(ms) => client
                .offset_for_timestamp(&topic.name, info.queue, ms)
                .await?
                .min(info.max_offset),
            None => info.max_offset,
        };
        ranges.push(Range {
            queue: info.queue,
            start,
            end: end.max(start),
        });
    }
    Ok(ranges)
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:30} {human_pos}/{human_len} offsets  {msg}  {per_sec}  ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}
