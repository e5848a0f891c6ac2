//! `shale group create|list|describe|reset`.
//!
//! `reset` is in [`super::group_reset`]: it previews what moves before
//! applying anything.

use clap::{Args, Subcommand};
use shale_client::{ConsumeFrom, ConsumeMode, Group, GroupSettings, Position, QueueOffsets};

use super::ToolResult;
use super::connect::ConnectArgs;
use super::group_reset::{self, ResetArgs};
use super::output::{self, Table};
use super::time_spec::{TimeSpec, parse_duration_ms, parse_spec};

/// `shale group …`
#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub command: GroupCommand,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// What to do with consumer groups.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group or change its settings (groups are also created on first receive, from LATEST).
    Create {
        name: String,
        /// Where a new group starts: EARLIEST, LATEST or a time (2026-11-30T12:00:00Z, -1h)
        #[arg(long, value_name = "WHERE", value_parser = parse_spec, allow_hyphen_values = true)]
        from: Option<TimeSpec>,
        /// clustering (each message to one member) or broadcasting (to every consumer id)
        #[arg(long, value_parser = parse_mode)]
        mode: Option<ConsumeMode>,
        /// Deliveries before a message goes to %DLQ%{group}
        #[arg(long, value_name = "N")]
        max_attempts: Option<u32>,
        /// Waits before the redeliveries, comma-separated: 10s,30s,1m
        #[arg(long, value_name = "DURATIONS", value_delimiter = ',', value_parser = parse_duration_ms)]
        retry_backoff: Vec<u64>,
    },
    /// List groups with their total lag.
    List,
    /// A group's settings, and with --topic its offsets per queue.
    Describe {
        name: String,
        /// Also show committed offset, end, lag and in-flight messages per queue of this topic
        #[arg(long)]
        topic: Option<String>,
        /// BROADCASTING groups: the offsets of this consumer
        #[arg(long)]
        consumer_id: Option<String>,
    },
    /// Move a group's offsets on a topic (to a time, EARLIEST, LATEST or given offsets), after a preview.
    Reset(ResetArgs),
}

/// `clustering` or `broadcasting` (any case).
pub fn parse_mode(text: &str) -> Result<ConsumeMode, String> {
    serde_json::from_value(serde_json::Value::String(text.to_ascii_uppercase()))
        .map_err(|_| format!("{text:?}: expected CLUSTERING or BROADCASTING"))
}

/// Runs `shale group …`.
pub async fn run(args: GroupArgs) -> ToolResult {
    let client = args.connect.client()?;
    let json = args.connect.json;
    match args.command {
        GroupCommand::Create {
            name,
            from,
            mode,
            max_attempts,
            retry_backoff,
        } => {
            let settings = GroupSettings {
                consume_mode: mode,
                max_delivery_attempts: max_attempts,
                retry_backoff_ms: (!retry_backoff.is_empty()).then_some(retry_backoff),
                consume_from: from.map(|from| match from {
                    TimeSpec::Earliest => ConsumeFrom::Position(Position::Earliest),
                    TimeSpec::Latest => ConsumeFrom::Position(Position::Latest),
                    TimeSpec::At(ms) => ConsumeFrom::Timestamp { timestamp_ms: ms },
                }),
            };
            let group = client.put_group(&name, &settings).await?;
            print_groups(&[(group, None)], json)
        }
        GroupCommand::List => {
            let groups = client.list_groups().await?;
            if json {
                return output::print_json(&groups);
            }
            let rows: Vec<(Group, Option<(u64, u64)>)> = groups
                .into_iter()
                .map(|g| (g.group, Some((g.lag, g.lag_cold))))
                .collect();
            print_groups(&rows, false)
        }
        GroupCommand::Describe {
            name,
            topic,
            consumer_id,
        } => {
            let group = client.get_group(&name).await?;
            let offsets = match &topic {
                Some(topic) => Some(
                    client
                        .group_offsets(&name, topic, consumer_id.as_deref())
                        .await?,
                ),
                None => None,
            };
            if json {
                let (queues, total) = match offsets {
                    Some(o) => (Some(o.queues), o.total),
                    None => (None, None),
                };
                return output::print_json(&serde_json::json!({
                    "group": group, "topic": topic, "offsets": queues, "total": total
                }));
            }
            let mut text = print_settings(&group);
            if let Some(offsets) = offsets {
                text.push('\n');
                text.push_str(&offsets_table(&offsets.queues).render());
            }
            output::print_text(&text)
        }
        GroupCommand::Reset(reset) => group_reset::run(&client, reset, json).await,
    }
}

fn consume_from(from: &ConsumeFrom) -> String {
    match from {
        ConsumeFrom::Position(Position::Earliest) => "EARLIEST".into(),
        ConsumeFrom::Position(Position::Latest) => "LATEST".into(),
        ConsumeFrom::Timestamp { timestamp_ms } => output::time(*timestamp_ms),
    }
}

fn mode(mode: ConsumeMode) -> &'static str {
    match mode {
        ConsumeMode::Clustering => "CLUSTERING",
        ConsumeMode::Broadcasting => "BROADCASTING",
    }
}

/// Groups with (lag, the part of it only in the object store) when known.
fn print_groups(groups: &[(Group, Option<(u64, u64)>)], json: bool) -> ToolResult {
    if json {
        let only: Vec<&Group> = groups.iter().map(|(g, _)| g).collect();
        return output::print_json(&only);
    }
    let mut table = Table::new(&["NAME", "MODE", "FROM", "MAX_ATTEMPTS", "LAG", "LAG_COLD"]);
    for (g, lag) in groups {
        table.row(vec![
            g.name.clone(),
            mode(g.consume_mode).into(),
            consume_from(&g.consume_from),
            g.max_delivery_attempts.to_string(),
            lag.map_or_else(|| "-".into(), |(l, _)| l.to_string()),
            lag.map_or_else(|| "-".into(), |(_, c)| c.to_string()),
        ]);
    }
    table.print()
}

fn print_settings(g: &Group) -> String {
    let backoff: Vec<String> = g
        .retry_backoff_ms
        .iter()
        .map(|ms| output::duration(*ms))
        .collect();
    format!(
        "group          {}\nmode           {}\nconsume from   {}\nmax attempts   {}\nretry backoff  {}\n",
        g.name,
        mode(g.consume_mode),
        consume_from(&g.consume_from),
        g.max_delivery_attempts,
        backoff.join(" ")
    )
}

/// Committed offset, end, lag (and its cold part), in flight and retrying per queue.
pub fn offsets_table(offsets: &[QueueOffsets]) -> Table {
    let mut table = Table::new(&[
        "QUEUE",
        "COMMITTED",
        "MAX",
        "LAG",
        "LAG_COLD",
        "INFLIGHT",
        "RETRYING",
    ]);
    for q in offsets {
        table.row(vec![
            q.queue.to_string(),
            q.committed_offset.to_string(),
            q.max_offset.to_string(),
            q.lag.to_string(),
            q.lag_cold.to_string(),
            q.inflight.to_string(),
            q.retrying.to_string(),
        ]);
    }
    table
}
