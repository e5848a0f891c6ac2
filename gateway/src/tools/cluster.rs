//! `shale cluster`: the nodes, and which node owns each queue.
//!
//! Nodes from `GET /v1/cluster` (the answering node marked `*`); owners from
//! the describe of every topic (`GET /v1/topics/{t}`: each queue's `owner`).

use clap::Args;
use serde::Serialize;

use super::ToolResult;
use super::connect::ConnectArgs;
use super::output::{self, Table};

/// `shale cluster`
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Only the owners of this topic's queues (default: every topic)
    #[arg(long)]
    pub topic: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Serialize)]
struct QueueOwner {
    topic: String,
    queue: u32,
    owner: String,
}

/// Runs `shale cluster`.
pub async fn run(args: ClusterArgs) -> ToolResult {
    let client = args.connect.client()?;
    let view = client.cluster().await?;
    let names = match &args.topic {
        Some(topic) => vec![topic.clone()],
        None => client
            .list_topics()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect(),
    };
    let mut owners = Vec::new();
    for name in names {
        let topic = client.get_topic(&name).await?;
        for q in topic.queues {
            owners.push(QueueOwner {
                topic: name.clone(),
                queue: q.queue,
                owner: q.owner,
            });
        }
    }
    if args.connect.json {
        return output::print_json(&serde_json::json!({
            "self": view.self_id, "nodes": view.nodes, "queues": owners
        }));
    }
    let mut nodes = Table::new(&[
        "NODE",
        "ADDRESS",
        "STATE",
        "LIVE",
        "QUEUES",
        "STARTED",
        "HEARTBEAT",
    ]);
    for node in &view.nodes {
        let marker = if node.id == view.self_id { " *" } else { "" };
        nodes.row(vec![
            format!("{}{marker}", node.id),
            node.address.clone(),
            node.state.clone(),
            if node.live { "yes" } else { "no" }.into(),
            node.queues_owned.to_string(),
            output::time(node.started_ms),
            output::time(node.last_heartbeat_ms),
        ]);
    }
    let mut queues = Table::new(&["TOPIC", "QUEUE", "OWNER"]);
    for q in &owners {
        queues.row(vec![q.topic.clone(), q.queue.to_string(), q.owner.clone()]);
    }
    output::print_text(&format!("{}\n{}", nodes.render(), queues.render()))
}
