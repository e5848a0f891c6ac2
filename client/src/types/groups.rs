//! Consumer groups: settings, receive, ack, invisibility, offsets and reset.
//!
//! Shapes of `GroupBody`, `GroupConfig`, `GroupSummary`, `ReceiveBody`,
//! `ReceivedMessage`, `AckResponse`, `ChangeInvisibility*`, `QueueOffsets`
//! and `ResetBody` of the OpenAPI document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::messages::Message;

/// CLUSTERING (each message to one member) or BROADCASTING (to every `consumer_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumeMode {
    Clustering,
    Broadcasting,
}

/// `EARLIEST` or `LATEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Position {
    Earliest,
    Latest,
}

/// Where a new group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConsumeFrom {
    Position(Position),
    Timestamp { timestamp_ms: i64 },
}

/// `PUT /v1/groups/{group}`: unset fields keep their defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consume_mode: Option<ConsumeMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delivery_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_ms: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consume_from: Option<ConsumeFrom>,
}

/// A group's settings as answered (`GroupConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub consume_mode: ConsumeMode,
    pub max_delivery_attempts: u32,
    pub retry_backoff_ms: Vec<u64>,
    pub consume_from: ConsumeFrom,
}

/// A group of `GET /v1/groups`, with its total lag (summed over the cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    #[serde(flatten)]
    pub group: Group,
    pub lag: u64,
    /// Part of `lag` on the serving nodes' disks.
    #[serde(default)]
    pub lag_hot: u64,
    /// Part of `lag` only in the object store.
    #[serde(default)]
    pub lag_cold: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GroupList {
    pub groups: Vec<GroupSummary>,
}

/// TAG (`*`, `a`, `a||b`) or SQL92 over properties and `TAGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterType {
    Tag,
    #[serde(rename = "SQL92")]
    Sql92,
}

/// A server-side filter of a receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(rename = "type")]
    pub kind: FilterType,
    pub expression: String,
}

impl Filter {
    pub fn tag(expression: impl Into<String>) -> Self {
        Filter {
            kind: FilterType::Tag,
            expression: expression.into(),
        }
    }

    pub fn sql(expression: impl Into<String>) -> Self {
        Filter {
            kind: FilterType::Sql92,
            expression: expression.into(),
        }
    }
}

/// `POST /v1/groups/{group}/receive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveRequest {
    pub topic: String,
    /// 1–64, default 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u32>,
    /// 1000–43200000, default 30000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invisible_ms: Option<u64>,
    /// ≤ 30000: long poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// BROADCASTING: who receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_id: Option<String>,
    /// `base64` forces `body_base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

impl ReceiveRequest {
    /// A receive from `topic` with the defaults.
    pub fn new(topic: impl Into<String>) -> Self {
        ReceiveRequest {
            topic: topic.into(),
            ..ReceiveRequest::default()
        }
    }
}

/// A message handed to a group member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedMessage {
    #[serde(flatten)]
    pub message: Message,
    pub receipt_handle: String,
    pub delivery_attempt: u32,
    pub invisible_until_ms: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReceiveResponse {
    pub messages: Vec<ReceivedMessage>,
}

/// One handle's outcome of an ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckResult {
    pub receipt_handle: String,
    #[serde(default)]
    pub ok: bool,
    /// Why this handle was not acked (e.g. `RECEIPT_HANDLE_EXPIRED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AckError>,
}

/// The contract's error shape inside an [`AckResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AckResponse {
    pub results: Vec<AckResult>,
}

/// The new handle after a change of invisibility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invisibility {
    pub receipt_handle: String,
    pub invisible_until_ms: i64,
}

/// One queue of `GET /v1/groups/{group}/offsets` or of a reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueOffsets {
    pub queue: u32,
    /// Lowest offset the group has not acked (or filtered out, or dead-lettered).
    pub committed_offset: u64,
    pub max_offset: u64,
    /// `max_offset - committed_offset`.
    pub lag: u64,
    /// Delivered messages still invisible.
    pub inflight: u64,
    /// Part of `lag` served from the hot tier.
    #[serde(default)]
    pub lag_hot: u64,
    /// Part of `lag` only in the object store.
    #[serde(default)]
    pub lag_cold: u64,
    /// Delivered, unacked messages waiting out their retry backoff.
    #[serde(default)]
    pub retrying: u64,
    /// Delay messages of this queue not yet due (not in `lag`).
    #[serde(default)]
    pub pending_timers: u64,
    /// Acks a second over the last minute, as seen by the serving node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consume_rate_per_s: Option<f64>,
    /// Estimated time to consume `lag` at that rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_ms: Option<u64>,
}

/// The sums over the queues of a [`GroupOffsets`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OffsetsTotal {
    pub lag: u64,
    #[serde(default)]
    pub lag_hot: u64,
    #[serde(default)]
    pub lag_cold: u64,
    #[serde(default)]
    pub inflight: u64,
    #[serde(default)]
    pub retrying: u64,
    #[serde(default)]
    pub pending_timers: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consume_rate_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_ms: Option<u64>,
}

/// A group's offsets on one topic: per queue and in total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupOffsets {
    pub queues: Vec<QueueOffsets>,
    /// None from a node older than the totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<OffsetsTotal>,
}

/// Where `POST /v1/groups/{group}/offsets/reset` moves a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetTo {
    /// The first message with `store_ms >= T` of each queue.
    Timestamp(i64),
    Earliest,
    Latest,
    /// Explicit offsets of some queues (the others unchanged).
    Offsets(BTreeMap<u32, u64>),
}

#[derive(Debug, Serialize)]
pub(crate) struct ResetBody<'a> {
    pub topic: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_id: Option<&'a str>,
}

impl<'a> ResetBody<'a> {
    pub fn new(topic: &'a str, to: &ResetTo, consumer_id: Option<&'a str>) -> Self {
        let mut body = ResetBody {
            topic,
            timestamp_ms: None,
            to: None,
            offsets: None,
            consumer_id,
        };
        match to {
            ResetTo::Timestamp(t) => body.timestamp_ms = Some(*t),
            ResetTo::Earliest => body.to = Some(Position::Earliest),
            ResetTo::Latest => body.to = Some(Position::Latest),
            ResetTo::Offsets(offsets) => {
                body.offsets = Some(offsets.iter().map(|(q, o)| (q.to_string(), *o)).collect());
            }
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_bodies_are_one_of_the_three_forms() {
        let json = |to: ResetTo| serde_json::to_value(ResetBody::new("t", &to, None)).unwrap();
        assert_eq!(
            json(ResetTo::Timestamp(5)),
            serde_json::json!({"topic": "t", "timestamp_ms": 5})
        );
        assert_eq!(
            json(ResetTo::Earliest),
            serde_json::json!({"topic": "t", "to": "EARLIEST"})
        );
        assert_eq!(
            json(ResetTo::Offsets(BTreeMap::from([(0, 12), (3, 4)]))),
            serde_json::json!({"topic": "t", "offsets": {"0": 12, "3": 4}})
        );
    }

    #[test]
    fn group_answers_decode() {
        let g: GroupSummary = serde_json::from_value(serde_json::json!({
            "name": "billing", "consume_mode": "CLUSTERING", "max_delivery_attempts": 16,
            "retry_backoff_ms": [10000], "consume_from": {"timestamp_ms": 7}, "lag": 3
        }))
        .unwrap();
        assert_eq!(
            g.group.consume_from,
            ConsumeFrom::Timestamp { timestamp_ms: 7 }
        );
        assert_eq!(g.lag, 3);
        let from: ConsumeFrom = serde_json::from_str("\"EARLIEST\"").unwrap();
        assert_eq!(from, ConsumeFrom::Position(Position::Earliest));
        let filter = serde_json::to_value(Filter::sql("a = 1")).unwrap();
        assert_eq!(
            filter,
            serde_json::json!({"type": "SQL92", "expression": "a = 1"})
        );
        let ack: AckResult = serde_json::from_value(serde_json::json!({
            "receipt_handle": "h", "error": {"code": "RECEIPT_HANDLE_EXPIRED", "message": "late"}
        }))
        .unwrap();
        assert!(!ack.ok);
    }
}
