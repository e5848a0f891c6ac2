//! The JSON shapes of the broker's types (API.md), with their OpenAPI schemas.
//!
//! The broker's types carry no protocol; these mirror them field for field
//! (same names, same JSON) and convert both ways, so the on-disk formats of
//! the broker and the wire format of this API can change independently.

use serde::{Deserialize, Serialize};
use shale_broker::groups::config::{ConsumeFrom, ConsumeMode, GroupConfig, Position};
use shale_broker::groups::deliver::QueueOffsets;
use shale_broker::groups::filter::FilterSpec;
use shale_broker::{Durability, MessageType, TopicConfig};

/// What kind of messages a topic holds (RocketMQ 5: a topic accepts only its own type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = MessageType)]
pub enum MessageTypeWire {
    Normal,
    Fifo,
    Delay,
    /// Not supported by this node yet: creating such a topic is 400 INVALID_ARGUMENT.
    Transaction,
}

impl From<MessageTypeWire> for MessageType {
    fn from(t: MessageTypeWire) -> Self {
        match t {
            MessageTypeWire::Normal => MessageType::Normal,
            MessageTypeWire::Fifo => MessageType::Fifo,
            MessageTypeWire::Delay => MessageType::Delay,
            MessageTypeWire::Transaction => MessageType::Transaction,
        }
    }
}

impl From<MessageType> for MessageTypeWire {
    fn from(t: MessageType) -> Self {
        match t {
            MessageType::Normal => MessageTypeWire::Normal,
            MessageType::Fifo => MessageTypeWire::Fifo,
            MessageType::Delay => MessageTypeWire::Delay,
            MessageType::Transaction => MessageTypeWire::Transaction,
        }
    }
}

/// How durable a message is when its produce call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = Durability)]
pub enum DurabilityWire {
    /// Written to the hot tier (page cache); fsynced by the background flush.
    Async,
    /// fsynced on the node's disk (group commit) before the answer.
    Sync,
    /// Stored in the object store. Not supported by this node yet: 400 INVALID_ARGUMENT.
    Object,
}

impl From<DurabilityWire> for Durability {
    fn from(d: DurabilityWire) -> Self {
        match d {
            DurabilityWire::Async => Durability::Async,
            DurabilityWire::Sync => Durability::Sync,
            DurabilityWire::Object => Durability::Object,
        }
    }
}

impl From<Durability> for DurabilityWire {
    fn from(d: Durability) -> Self {
        match d {
            Durability::Async => DurabilityWire::Async,
            Durability::Sync => DurabilityWire::Sync,
            Durability::Object => DurabilityWire::Object,
        }
    }
}

/// The topic object.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = TopicConfig)]
pub struct TopicObject {
    pub name: String,
    /// Number of queues, 1-1024.
    pub queues: u32,
    pub message_type: MessageTypeWire,
    /// How long messages are kept, at least 60000.
    pub retention_ms: u64,
    pub durability: DurabilityWire,
    pub created_ms: i64,
}

impl From<TopicConfig> for TopicObject {
    fn from(c: TopicConfig) -> Self {
        TopicObject {
            name: c.name,
            queues: c.queues,
            message_type: c.message_type.into(),
            retention_ms: c.retention_ms,
            durability: c.durability.into(),
            created_ms: c.created_ms,
        }
    }
}

/// CLUSTERING (each message to one consumer of the group) or BROADCASTING
/// (every `consumer_id` gets every message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = ConsumeMode)]
pub enum ConsumeModeWire {
    Clustering,
    Broadcasting,
}

impl From<ConsumeModeWire> for ConsumeMode {
    fn from(m: ConsumeModeWire) -> Self {
        match m {
            ConsumeModeWire::Clustering => ConsumeMode::Clustering,
            ConsumeModeWire::Broadcasting => ConsumeMode::Broadcasting,
        }
    }
}

impl From<ConsumeMode> for ConsumeModeWire {
    fn from(m: ConsumeMode) -> Self {
        match m {
            ConsumeMode::Clustering => ConsumeModeWire::Clustering,
            ConsumeMode::Broadcasting => ConsumeModeWire::Broadcasting,
        }
    }
}

/// `LATEST` or `EARLIEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = Position)]
pub enum PositionWire {
    Latest,
    Earliest,
}

/// Where a group starts on a queue it never consumed: `"LATEST"`,
/// `"EARLIEST"` or `{"timestamp_ms": T}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = ConsumeFrom)]
pub enum ConsumeFromWire {
    Position(PositionWire),
    Timestamp { timestamp_ms: i64 },
}

impl From<ConsumeFromWire> for ConsumeFrom {
    fn from(c: ConsumeFromWire) -> Self {
        match c {
            ConsumeFromWire::Position(PositionWire::Latest) => {
                ConsumeFrom::Position(Position::Latest)
            }
            ConsumeFromWire::Position(PositionWire::Earliest) => {
                ConsumeFrom::Position(Position::Earliest)
            }
            ConsumeFromWire::Timestamp { timestamp_ms } => ConsumeFrom::Timestamp { timestamp_ms },
        }
    }
}

impl From<ConsumeFrom> for ConsumeFromWire {
    fn from(c: ConsumeFrom) -> Self {
        match c {
            ConsumeFrom::Position(Position::Earliest) => {
                ConsumeFromWire::Position(PositionWire::Earliest)
            }
            ConsumeFrom::Timestamp { timestamp_ms } => ConsumeFromWire::Timestamp { timestamp_ms },
            ConsumeFrom::Position(Position::Latest) | ConsumeFrom::Latest => {
                ConsumeFromWire::Position(PositionWire::Latest)
            }
        }
    }
}

/// A group's settings, as `PUT /v1/groups/{group}` takes them (omitted fields
/// take their defaults).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// When given (and not empty), it must be the name in the path.
    #[schema(pattern = "^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,126})?$")]
    pub name: Option<String>,
    pub consume_mode: Option<ConsumeModeWire>,
    /// 1-1000, default 16.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_delivery_attempts: Option<u32>,
    /// 1-64 delays, each at most a day (86400000); the last one repeats.
    #[schema(min_items = 1, max_items = 64)]
    pub retry_backoff_ms: Option<Vec<u64>>,
    pub consume_from: Option<ConsumeFromWire>,
    /// An existing NORMAL, DELAY or FIFO topic that receives the group's dead
    /// letters instead of `%DLQ%{group}` (a message goes to the queue of its
    /// `message_group` on a FIFO topic, round-robin otherwise). Empty or
    /// absent: `%DLQ%{group}`.
    pub dead_letter_topic: Option<String>,
}

impl From<GroupBody> for shale_broker::groups::api::GroupSettings {
    fn from(b: GroupBody) -> Self {
        shale_broker::groups::api::GroupSettings {
            name: b.name,
            consume_mode: b.consume_mode.map(Into::into),
            max_delivery_attempts: b.max_delivery_attempts,
            retry_backoff_ms: b.retry_backoff_ms,
            consume_from: b.consume_from.map(Into::into),
            dead_letter_topic: b.dead_letter_topic,
        }
    }
}

/// A group's settings, as returned.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = GroupConfig)]
pub struct GroupObject {
    pub name: String,
    pub consume_mode: ConsumeModeWire,
    pub max_delivery_attempts: u32,
    pub retry_backoff_ms: Vec<u64>,
    pub consume_from: ConsumeFromWire,
    /// Set when dead letters go to this topic instead of `%DLQ%{group}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
}

impl From<GroupConfig> for GroupObject {
    fn from(c: GroupConfig) -> Self {
        GroupObject {
            name: c.name,
            consume_mode: c.consume_mode.into(),
            max_delivery_attempts: c.max_delivery_attempts,
            retry_backoff_ms: c.retry_backoff_ms,
            consume_from: c.consume_from.into(),
            dead_letter_topic: c.dead_letter_topic,
        }
    }
}

/// The `filter` of a receive: `{"type": "TAG" | "SQL92", "expression": "..."}`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FilterSpec)]
pub struct FilterBody {
    /// `TAG` or `SQL92`.
    #[serde(rename = "type")]
    #[schema(value_type = FilterType)]
    pub kind: String,
    /// TAG: `*`, `a` or `a||b` (each tag 1-128 bytes, no `|`, `*`, whitespace); SQL92: an
    /// expression over properties and `TAGS` (a syntax error is 400).
    #[schema(min_length = 1)]
    pub expression: String,
}

/// The kind of a receive filter.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "a schema only: the broker parses the string")]
pub enum FilterType {
    #[schema(rename = "TAG")]
    Tag,
    #[schema(rename = "SQL92")]
    Sql92,
}

impl From<FilterBody> for FilterSpec {
    fn from(f: FilterBody) -> Self {
        FilterSpec {
            kind: f.kind,
            expression: f.expression,
        }
    }
}

/// A queue's offsets for a group.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = QueueOffsets)]
pub struct QueueOffsetsObject {
    pub queue: u32,
    /// Lowest offset the group has not acked (or filtered out, or
    /// dead-lettered); for a queue the group never consumed, where it would
    /// start.
    pub committed_offset: u64,
    /// The offset the next visible message will get.
    pub max_offset: u64,
    /// `max_offset - committed_offset`.
    pub lag: u64,
    /// Delivered messages still invisible (a receiver holds them).
    pub inflight: u64,
    /// Part of `lag` at or above the first offset still in a segment on the
    /// serving node's local disk (served from the hot tier).
    pub lag_hot: u64,
    /// Part of `lag` below that offset: only in the object store (evicted
    /// from the hot tier, or never local), so consuming it reads Parquet.
    /// `lag_hot + lag_cold = lag`.
    pub lag_cold: u64,
    /// Delivered, unacked messages whose invisibility ran out (timed out or
    /// nacked): waiting out the group's retry backoff, or due again now (or,
    /// attempts used up, for their move to the dead-letter topic). Within `lag`.
    pub retrying: u64,
    /// Delay messages of this queue not yet due (DELAY topics; 0 otherwise).
    /// Not in `lag`: they enter the queue when due.
    pub pending_timers: u64,
    /// The group's successful acks a second on this queue over the last
    /// minute, as seen by the serving node (its memory: empty after a
    /// restart or a move); null when there was none.
    #[schema(nullable, minimum = 0)]
    pub consume_rate_per_s: Option<f64>,
    /// Estimated time to consume the current `lag` at `consume_rate_per_s`
    /// (ceil(lag * 1000 / rate)), not counting messages still to arrive: 0
    /// without lag, null with lag but no recent acks.
    #[schema(nullable, minimum = 0)]
    pub catch_up_ms: Option<u64>,
}

impl From<QueueOffsets> for QueueOffsetsObject {
    fn from(o: QueueOffsets) -> Self {
        QueueOffsetsObject {
            queue: o.queue,
            committed_offset: o.committed_offset,
            max_offset: o.max_offset,
            lag: o.lag,
            inflight: o.inflight,
            lag_hot: o.lag_hot,
            lag_cold: o.lag_cold,
            retrying: o.retrying,
            pending_timers: o.pending_timers,
            consume_rate_per_s: o.consume_rate_per_s,
            catch_up_ms: o.catch_up_ms,
        }
    }
}

/// A group's offsets on a topic summed over its queues.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = OffsetsTotal)]
pub struct OffsetsTotalObject {
    /// Sum of the queues' `lag`.
    pub lag: u64,
    /// Sum of the queues' `lag_hot`.
    pub lag_hot: u64,
    /// Sum of the queues' `lag_cold`.
    pub lag_cold: u64,
    /// Sum of the queues' `inflight`.
    pub inflight: u64,
    /// Sum of the queues' `retrying`.
    pub retrying: u64,
    /// Sum of the queues' `pending_timers`.
    pub pending_timers: u64,
    /// Sum of the queues' rates; null when no queue has one.
    #[schema(nullable, minimum = 0)]
    pub consume_rate_per_s: Option<f64>,
    /// Total `lag` at the summed rate (the queues are consumed in
    /// parallel): 0 without lag, null with lag but no rate.
    #[schema(nullable, minimum = 0)]
    pub catch_up_ms: Option<u64>,
}

impl OffsetsTotalObject {
    /// The sums over `queues`.
    pub fn of(queues: &[QueueOffsetsObject]) -> Self {
        let mut t = OffsetsTotalObject::default();
        for q in queues {
            t.lag += q.lag;
            t.lag_hot += q.lag_hot;
            t.lag_cold += q.lag_cold;
            t.inflight += q.inflight;
            t.retrying += q.retrying;
            t.pending_timers += q.pending_timers;
            if let Some(r) = q.consume_rate_per_s {
                t.consume_rate_per_s = Some(t.consume_rate_per_s.unwrap_or(0.0) + r);
            }
        }
        t.catch_up_ms = shale_broker::groups::ack_rate::catch_up_ms(t.lag, t.consume_rate_per_s);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_of_consume_from() {
        let g: GroupBody = serde_json::from_str(r#"{"consume_from": "EARLIEST"}"#).unwrap();
        assert_eq!(
            g.consume_from.map(ConsumeFrom::from),
            Some(ConsumeFrom::Position(Position::Earliest))
        );
        let g: GroupBody =
            serde_json::from_str(r#"{"consume_from": {"timestamp_ms": 5}}"#).unwrap();
        assert_eq!(
            g.consume_from.map(ConsumeFrom::from),
            Some(ConsumeFrom::Timestamp { timestamp_ms: 5 })
        );
        assert!(serde_json::from_str::<GroupBody>(r#"{"consume_from": "SOMETIME"}"#).is_err());
        assert!(serde_json::from_str::<GroupBody>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn the_objects_serialize_as_the_broker_files_do() {
        // The disk formats and the wire formats start out identical.
        let topic = TopicConfig {
            name: "t".into(),
            queues: 3,
            message_type: MessageType::Fifo,
            retention_ms: 60_000,
            durability: Durability::Async,
            created_ms: 7,
        };
        assert_eq!(
            serde_json::to_value(TopicObject::from(topic.clone())).unwrap(),
            serde_json::to_value(&topic).unwrap()
        );
        let group = GroupConfig::defaults("g");
        assert_eq!(
            serde_json::to_value(GroupObject::from(group.clone())).unwrap(),
            serde_json::to_value(&group).unwrap()
        );
    }
}
