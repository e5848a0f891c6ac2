//! `shale group reset`: move a group's offsets on a topic, after a preview.
//!
//! The preview shows, per queue, the committed offset now → the offset after
//! the reset and how many messages that replays (moving back) or skips
//! (moving forward). It is computed from the topic's queues (`min_offset`,
//! `max_offset`), the group's offsets and, for a time, `GET
//! …/queues/{q}/offset?timestamp_ms=` — the same rules the node applies.
//!
//! Nothing is applied unless `--yes` is given or the user confirms at a
//! terminal; without a terminal and without `--yes` the preview is printed
//! and the command exits 2 (a script must say `--yes`). `--dry-run` prints
//! the preview and exits 0. A declined prompt exits 1.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use clap::Args;
use serde::Serialize;
use shale_client::{Client, QueueOffsets, ResetTo};

use super::group::offsets_table;
use super::output::{self, Table};
use super::time_spec::{TimeSpec, parse_spec};
use super::{ToolError, ToolResult};

/// `shale group reset GROUP --topic T (--to WHERE | --offset Q=O…)`
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The consumer group
    pub group: String,
    /// The topic whose offsets move
    #[arg(long)]
    pub topic: String,
    /// A time (2026-11-30T12:00:00Z, -1h, -30m, epoch ms), EARLIEST or LATEST
    #[arg(long, value_name = "WHERE", value_parser = parse_spec, allow_hyphen_values = true,
        required_unless_present = "offsets", conflicts_with = "offsets")]
    pub to: Option<TimeSpec>,
    /// An explicit offset of one queue, QUEUE=OFFSET (repeatable; other queues keep theirs)
    #[arg(long = "offset", id = "offsets", value_name = "QUEUE=OFFSET", value_parser = parse_queue_offset)]
    pub offsets: Vec<(u32, u64)>,
    /// BROADCASTING groups: reset this consumer's offsets
    #[arg(long)]
    pub consumer_id: Option<String>,
    /// Apply without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the preview only
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
}

/// `3=120` → (3, 120).
fn parse_queue_offset(text: &str) -> Result<(u32, u64), String> {
    let (queue, offset) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected QUEUE=OFFSET, e.g. 0=120"))?;
    let queue = queue
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: bad queue number"))?;
    let offset = offset
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: bad offset"))?;
    Ok((queue, offset))
}

/// One queue of the preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewRow {
    pub queue: u32,
    pub current_offset: u64,
    pub new_offset: u64,
    /// Messages delivered again (moving back).
    pub replays: u64,
    /// Messages never delivered (moving forward).
    pub skips: u64,
}

impl PreviewRow {
    fn new(queue: u32, current_offset: u64, new_offset: u64) -> Self {
        PreviewRow {
            queue,
            current_offset,
            new_offset,
            replays: current_offset.saturating_sub(new_offset),
            skips: new_offset.saturating_sub(current_offset),
        }
    }
}

/// Runs `shale group reset`.
pub async fn run(client: &Client, args: ResetArgs, json: bool) -> ToolResult {
    let to = match args.to {
        Some(TimeSpec::At(ms)) => ResetTo::Timestamp(ms),
        Some(TimeSpec::Earliest) => ResetTo::Earliest,
        Some(TimeSpec::Latest) => ResetTo::Latest,
        None => ResetTo::Offsets(args.offsets.iter().copied().collect()),
    };
    let consumer = args.consumer_id.as_deref();
    let preview = preview(client, &args.group, &args.topic, &to, consumer).await?;
    if !json {
        output::print_text(&format!(
            "reset of group {} on topic {}:\n{}",
            args.group,
            args.topic,
            preview_table(&preview).render()
        ))?;
    }
    let confirmed = if args.dry_run {
        false
    } else if args.yes {
        true
    } else if std::io::stdin().is_terminal() {
        confirm(&args.group, &args.topic)?
    } else {
        if json {
            print_outcome(&args, &preview, None)?;
        }
        return Err(ToolError::usage(
            "not applied: stdin is not a terminal to confirm on; run again with --yes to apply (or --dry-run to only preview)",
        ));
    };
    if !confirmed {
        if json {
            print_outcome(&args, &preview, None)?;
        }
        if args.dry_run {
            return Ok(());
        }
        return Err(ToolError::Failed("not applied: not confirmed".into()));
    }
    let applied = client
        .reset_offsets(&args.group, &args.topic, &to, consumer)
        .await?;
    if json {
        return print_outcome(&args, &preview, Some(&applied.queues));
    }
    output::print_text(&format!(
        "applied; offsets now:\n{}",
        offsets_table(&applied.queues).render()
    ))
}

async fn preview(
    client: &Client,
    group: &str,
    topic: &str,
    to: &ResetTo,
    consumer: Option<&str>,
) -> ToolResult<Vec<PreviewRow>> {
    let detail = client.get_topic(topic).await?;
    let committed: BTreeMap<u32, u64> = client
        .group_offsets(group, topic, consumer)
        .await?
        .queues
        .into_iter()
        .map(|q| (q.queue, q.committed_offset))
        .collect();
    if let ResetTo::Offsets(offsets) = to
        && let Some(queue) = offsets.keys().find(|q| **q >= detail.queue_count)
    {
        return Err(ToolError::usage(format!(
            "--offset {queue}=…: topic {topic} has queues 0..{}",
            detail.queue_count
        )));
    }
    let mut rows = Vec::with_capacity(detail.queues.len());
    for queue in &detail.queues {
        let current = committed
            .get(&queue.queue)
            .copied()
            .unwrap_or(queue.min_offset);
        let new = match to {
            ResetTo::Earliest => queue.min_offset,
            ResetTo::Latest => queue.max_offset,
            ResetTo::Timestamp(ms) => client.offset_for_timestamp(topic, queue.queue, *ms).await?,
            ResetTo::Offsets(offsets) => offsets.get(&queue.queue).copied().unwrap_or(current),
        };
        rows.push(PreviewRow::new(queue.queue, current, new));
    }
    Ok(rows)
}

fn preview_table(rows: &[PreviewRow]) -> Table {
    let mut table = Table::new(&["QUEUE", "CURRENT", "NEW", "CHANGE"]);
    for row in rows {
        let change = match (row.replays, row.skips) {
            (0, 0) => "unchanged".to_string(),
            (n, 0) => format!("replays {n}"),
            (_, n) => format!("skips {n}"),
        };
        table.row(vec![
            row.queue.to_string(),
            row.current_offset.to_string(),
            row.new_offset.to_string(),
            change,
        ]);
    }
    let replays: u64 = rows.iter().map(|r| r.replays).sum();
    let skips: u64 = rows.iter().map(|r| r.skips).sum();
    table.row(vec![
        "total".into(),
        String::new(),
        String::new(),
        format!("replays {replays}, skips {skips}"),
    ]);
    table
}

fn print_outcome(
    args: &ResetArgs,
    preview: &[PreviewRow],
    applied: Option<&[QueueOffsets]>,
) -> ToolResult {
    output::print_json(&serde_json::json!({
        "group": args.group,
        "topic": args.topic,
        "preview": preview,
        "applied": applied.is_some(),
        "offsets": applied,
    }))
}

/// Asks on the terminal; true on `y` or `yes`.
fn confirm(group: &str, topic: &str) -> ToolResult<bool> {
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "apply this reset of group {group} on topic {topic}? [y/N] "
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| ToolError::failed("reading the answer", e))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_replays_and_skips() {
        assert_eq!(PreviewRow::new(0, 10, 4).replays, 6);
        assert_eq!(PreviewRow::new(0, 10, 4).skips, 0);
        assert_eq!(PreviewRow::new(1, 2, 9).skips, 7);
        let table = preview_table(&[PreviewRow::new(0, 10, 4), PreviewRow::new(1, 3, 3)]).render();
        assert!(table.contains("replays 6"), "{table}");
        assert!(table.contains("unchanged"), "{table}");
        assert!(table.contains("replays 6, skips 0"), "{table}");
    }

    #[test]
    fn queue_offsets_parse() {
        assert_eq!(parse_queue_offset("3=120"), Ok((3, 120)));
        assert!(parse_queue_offset("3").is_err());
        assert!(parse_queue_offset("a=1").is_err());
    }
}
