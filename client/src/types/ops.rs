//! Timers, transactions, cluster and health: `TimerList`, `DecisionResponse`,
//! `CheckList`, `ProducerGroupObject`, `ClusterView`, `Status`.

use serde::{Deserialize, Serialize};

use super::messages::Message;

/// A pending delay message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub message_id: String,
    pub queue: u32,
    pub deliver_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
}

/// A page of pending delay messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerPage {
    pub timers: Vec<Timer>,
    /// Cursor of the next page (`after`), None at the end.
    #[serde(default)]
    pub next: Option<String>,
}

/// The state of a transaction after a commit or rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub transaction_id: String,
    pub topic: String,
    pub queue: u32,
    pub state: String,
}

/// A half message offered to its producer group for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionCheck {
    pub transaction_id: String,
    pub topic: String,
    pub message: Message,
    pub check_count: u32,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CheckList {
    pub checks: Vec<TransactionCheck>,
}

/// `GET /v1/producer-groups/{pg}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerGroup {
    pub name: String,
    pub pending_transactions: u64,
    pub checks_waiting: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age_ms: Option<i64>,
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Id of the node that answered.
    #[serde(rename = "self")]
    pub self_id: String,
    pub nodes: Vec<ClusterNode>,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    pub id: String,
    pub address: String,
    pub started_ms: i64,
    pub last_heartbeat_ms: i64,
    pub state: String,
    pub live: bool,
    pub queues_owned: u64,
}

/// A dead-letter message sent back to its origin topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentBack {
    /// The dead-letter message (it stays in its `%DLQ%` topic).
    pub dlq_message_id: String,
    /// The origin topic it was produced to again.
    pub topic: String,
    /// The new message in the origin topic.
    pub message_id: String,
    pub queue: u32,
    pub offset: u64,
    /// When it was sent back (the first time).
    pub sent_back_ms: i64,
}

/// `{"status": "ok"}` of `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub status: String,
}
