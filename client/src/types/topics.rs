//! Topics: `TopicConfig`, `TopicDetail`, `QueueInfo`, `CreateTopic`, `PatchTopic`.

use serde::{Deserialize, Serialize};

/// What a topic accepts (RocketMQ 5: a topic accepts only its own type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    Normal,
    Fifo,
    Delay,
    Transaction,
}

impl MessageType {
    /// The contract's spelling (`NORMAL`).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Normal => "NORMAL",
            MessageType::Fifo => "FIFO",
            MessageType::Delay => "DELAY",
            MessageType::Transaction => "TRANSACTION",
        }
    }
}

/// When a produce answers 200 (API.md "Durability").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Durability {
    /// Written to the hot tier (page cache).
    Async,
    /// Fsynced on the node's disk.
    Sync,
    /// Stored in the object store.
    Object,
}

impl Durability {
    /// The contract's spelling (`SYNC`).
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Async => "ASYNC",
            Durability::Sync => "SYNC",
            Durability::Object => "OBJECT",
        }
    }
}

/// `POST /v1/topics`. Unset fields take the node's defaults
/// (8 queues, NORMAL, 3 days, SYNC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopic {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<MessageType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
}

impl CreateTopic {
    /// A topic named `name` with the defaults.
    pub fn new(name: impl Into<String>) -> Self {
        CreateTopic {
            name: name.into(),
            ..CreateTopic::default()
        }
    }
}

/// `PATCH /v1/topics/{topic}`: queues may only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchTopic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
}

/// A topic's settings (`TopicConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    pub queues: u32,
    pub message_type: MessageType,
    pub retention_ms: u64,
    pub durability: Durability,
    pub created_ms: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TopicList {
    pub topics: Vec<Topic>,
}

/// `GET /v1/topics/{topic}` (`TopicDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDetail {
    pub name: String,
    /// Number of queues (the topic object's `queues`, which here is the list).
    pub queue_count: u32,
    pub queues: Vec<QueueInfo>,
    pub message_type: MessageType,
    pub retention_ms: u64,
    pub durability: Durability,
    pub created_ms: i64,
    #[serde(default)]
    pub pending_timers: u64,
    #[serde(default)]
    pub pending_transactions: u64,
}

/// One queue of a [`TopicDetail`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub queue: u32,
    pub min_offset: u64,
    /// The offset the next message will get.
    pub max_offset: u64,
    pub hot_bytes: u64,
    pub cold_bytes: u64,
    pub cold_segments: u64,
    /// Id of the node owning the queue.
    pub owner: String,
    #[serde(default)]
    pub pending_timers: u64,
    #[serde(default)]
    pub pending_transactions: u64,
}
