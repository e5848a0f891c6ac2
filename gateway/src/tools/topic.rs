//! `shale topic create|list|describe|update|delete`.

use clap::{Args, Subcommand};
use shale_client::{CreateTopic, Durability, MessageType, PatchTopic, Topic, TopicDetail};

use super::ToolResult;
use super::connect::ConnectArgs;
use super::output::{self, Table};
use super::time_spec::parse_duration_ms;

/// `shale topic …`
#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub command: TopicCommand,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// What to do with topics.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (answers the existing one if its settings are the same).
    Create {
        name: String,
        /// Number of queues, 1-1024 [node default: 8]
        #[arg(long)]
        queues: Option<u32>,
        /// NORMAL, FIFO, DELAY or TRANSACTION [node default: NORMAL]
        #[arg(long = "type", value_name = "TYPE", value_parser = parse_message_type)]
        message_type: Option<MessageType>,
        /// How long messages are kept, e.g. 3d, 12h [node default: 3d]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
        retention: Option<u64>,
        /// ASYNC, SYNC or OBJECT [node default: SYNC]
        #[arg(long, value_parser = parse_durability)]
        durability: Option<Durability>,
    },
    /// List topics.
    List,
    /// A topic's settings and, per queue, offsets, sizes and owner.
    Describe { name: String },
    /// Add queues (never fewer) or change the retention.
    Update {
        name: String,
        /// New number of queues (only more than now)
        #[arg(long)]
        queues: Option<u32>,
        /// New retention, e.g. 7d
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
        retention: Option<u64>,
    },
    /// Delete a topic and all its data, hot and cold.
    Delete { name: String },
}

/// `NORMAL`, `FIFO`, `DELAY`, `TRANSACTION` (any case).
pub fn parse_message_type(text: &str) -> Result<MessageType, String> {
    serde_json::from_value(serde_json::Value::String(text.to_ascii_uppercase()))
        .map_err(|_| format!("{text:?}: expected NORMAL, FIFO, DELAY or TRANSACTION"))
}

/// `ASYNC`, `SYNC`, `OBJECT` (any case).
pub fn parse_durability(text: &str) -> Result<Durability, String> {
    serde_json::from_value(serde_json::Value::String(text.to_ascii_uppercase()))
        .map_err(|_| format!("{text:?}: expected ASYNC, SYNC or OBJECT"))
}

/// Runs `shale topic …`.
pub async fn run(args: TopicArgs) -> ToolResult {
    let client = args.connect.client()?;
    let json = args.connect.json;
    match args.command {
        TopicCommand::Create {
            name,
            queues,
            message_type,
            retention,
            durability,
        } => {
            let request = CreateTopic {
                name,
                queues,
                message_type,
                retention_ms: retention,
                durability,
            };
            let topic = client.create_topic(&request).await?;
            print_topics(&[topic], json)
        }
        TopicCommand::List => print_topics(&client.list_topics().await?, json),
        TopicCommand::Describe { name } => print_detail(&client.get_topic(&name).await?, json),
        TopicCommand::Update {
            name,
            queues,
            retention,
        } => {
            if queues.is_none() && retention.is_none() {
                return Err(super::ToolError::usage(
                    "topic update needs --queues or --retention",
                ));
            }
            let patch = PatchTopic {
                queues,
                retention_ms: retention,
            };
            let topic = client.patch_topic(&name, &patch).await?;
            print_topics(&[topic], json)
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            if json {
                output::print_json(&serde_json::json!({"deleted": name}))
            } else {
                output::print_text(&format!("deleted topic {name}\n"))
            }
        }
    }
}

fn print_topics(topics: &[Topic], json: bool) -> ToolResult {
    if json {
        return output::print_json(topics);
    }
    let mut table = Table::new(&[
        "NAME",
        "TYPE",
        "QUEUES",
        "RETENTION",
        "DURABILITY",
        "CREATED",
    ]);
    for t in topics {
        table.row(vec![
            t.name.clone(),
            t.message_type.as_str().into(),
            t.queues.to_string(),
            output::duration(t.retention_ms),
            t.durability.as_str().into(),
            output::time(t.created_ms),
        ]);
    }
    table.print()
}

fn print_detail(topic: &TopicDetail, json: bool) -> ToolResult {
    if json {
        return output::print_json(topic);
    }
    let mut text = format!(
        "topic        {}\ntype         {}\nqueues       {}\nretention    {}\ndurability   {}\ncreated      {}\n\
         pending      {} delay message(s), {} half message(s)\n\n",
        topic.name,
        topic.message_type.as_str(),
        topic.queue_count,
        output::duration(topic.retention_ms),
        topic.durability.as_str(),
        output::time(topic.created_ms),
        topic.pending_timers,
        topic.pending_transactions,
    );
    let mut table = Table::new(&[
        "QUEUE", "MIN", "MAX", "MESSAGES", "HOT", "COLD", "SEGMENTS", "OWNER",
    ]);
    for q in &topic.queues {
        table.row(vec![
            q.queue.to_string(),
            q.min_offset.to_string(),
            q.max_offset.to_string(),
            q.max_offset.saturating_sub(q.min_offset).to_string(),
            output::bytes(q.hot_bytes),
            output::bytes(q.cold_bytes),
            q.cold_segments.to_string(),
            q.owner.clone(),
        ]);
    }
    text.push_str(&table.render());
    output::print_text(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_in_any_case() {
        assert_eq!(parse_message_type("fifo"), Ok(MessageType::Fifo));
        assert_eq!(parse_durability("Object"), Ok(Durability::Object));
        assert!(parse_message_type("QUEUE").is_err());
    }
}
