//! Messages: what is produced, what is answered, and reads by offset.
//!
//! Shapes of the OpenAPI document's `ProduceMessage`, `ProduceRequest`,
//! `ProduceResult`, `MessageObject`, `ReadResponse`. Answers tolerate fields
//! this version does not know (a newer node may add some).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::topics::Durability;

/// One message of a produce request. Build it with [`ProduceMessage::text`]
/// or [`ProduceMessage::bytes`] and the `with_*` methods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceMessage {
    /// UTF-8 body (exclusive with `body_base64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Binary body, standard base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// FIFO topics: the ordering group (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_group: Option<String>,
    /// DELAY topics: due this long after the produce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// DELAY topics: due at this Unix time (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<u64>,
    /// DELAY topics: RocketMQ 4 delay level 1–18.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_level: Option<u8>,
    /// Explicit queue (else hash of `message_group`, else round-robin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    /// A second message with this id on the topic within 5 minutes is not
    /// stored again; it also makes a produce safe to retry after a 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
}

impl ProduceMessage {
    /// A message with a UTF-8 body.
    pub fn text(body: impl Into<String>) -> Self {
        ProduceMessage {
            body: Some(body.into()),
            ..ProduceMessage::default()
        }
    }

    /// A message with any body: sent as `body` when it is UTF-8, else as `body_base64`.
    pub fn bytes(body: impl Into<Vec<u8>>) -> Self {
        match String::from_utf8(body.into()) {
            Ok(text) => ProduceMessage::text(text),
            Err(e) => ProduceMessage {
                body_base64: Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
                ..ProduceMessage::default()
            },
        }
    }

    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    pub fn with_message_group(mut self, group: impl Into<String>) -> Self {
        self.message_group = Some(group.into());
        self
    }

    pub fn with_delay_ms(mut self, delay_ms: u64) -> Self {
        self.delay_ms = Some(delay_ms);
        self
    }

    pub fn with_deliver_at_ms(mut self, deliver_at_ms: u64) -> Self {
        self.deliver_at_ms = Some(deliver_at_ms);
        self
    }

    pub fn with_queue(mut self, queue: u32) -> Self {
        self.queue = Some(queue);
        self
    }

    pub fn with_dedup_id(mut self, dedup_id: impl Into<String>) -> Self {
        self.dedup_id = Some(dedup_id.into());
        self
    }
}

/// `transaction` of a produce to a TRANSACTION topic: the messages are half
/// messages until committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionInput {
    pub producer_group: String,
    /// 1000–3600000, default 6000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_after_ms: Option<u32>,
}

/// `POST /v1/topics/{topic}/messages` (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceRequest {
    /// 1–1024 messages, 32 MiB in all.
    pub messages: Vec<ProduceMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionInput>,
    /// A stronger durability than the topic's for this request
    /// (header `Shale-Durability`, not part of the JSON body).
    #[serde(skip)]
    pub durability: Option<Durability>,
}

impl ProduceRequest {
    /// A request of these messages.
    pub fn new(messages: Vec<ProduceMessage>) -> Self {
        ProduceRequest {
            messages,
            ..ProduceRequest::default()
        }
    }
}

/// One result of a produce, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResult {
    pub message_id: String,
    pub queue: u32,
    /// None for delay and half messages (they get one when they enter the queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProduceResponse {
    pub results: Vec<ProduceResult>,
}

/// A single raw message: the request body is the message body, the rest
/// goes in `Shale-*` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawMessage {
    pub body: bytes::Bytes,
    /// Default `application/octet-stream`; anything but `application/json`.
    pub content_type: Option<String>,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: BTreeMap<String, String>,
    pub message_group: Option<String>,
    pub delay_ms: Option<u64>,
    pub deliver_at_ms: Option<u64>,
    pub dedup_id: Option<String>,
    pub durability: Option<Durability>,
}

/// A stored message as answered by reads, queries and receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: String,
    pub topic: String,
    pub queue: u32,
    /// The message's offset in its queue; none for a delay message still
    /// pending (answered by id with `state: SCHEDULED`) or a half message
    /// offered for a transaction check: they are not in their queue yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_group: Option<String>,
    pub born_ms: i64,
    /// When it entered its queue; none while not in it (as `offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<i64>,
    /// `SCHEDULED` for a pending delay message answered by id; else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The body when it is UTF-8 (unless base64 was asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl Message {
    /// The body's bytes (decoding `body_base64`); None if that is not base64.
    pub fn body_bytes(&self) -> Option<Vec<u8>> {
        match (&self.body, &self.body_base64) {
            (Some(text), _) => Some(text.as_bytes().to_vec()),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).ok(),
            (None, None) => Some(Vec::new()),
        }
    }

    /// The body's length in bytes.
    pub fn body_len(&self) -> usize {
        match (&self.body, &self.body_base64) {
            (Some(text), _) => text.len(),
            (None, Some(b64)) => (b64.len() / 4 * 3)
                .saturating_sub(b64.bytes().rev().take_while(|&b| b == b'=').count()),
            (None, None) => 0,
        }
    }
}

/// `{"messages": [...]}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MessageList {
    pub messages: Vec<Message>,
}

/// Options of a read by offset (`GET …/queues/{q}/messages`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// First offset to read (default 0; below `min_offset` is 416).
    pub offset: u64,
    /// At most this many messages (server default when None; a stream
    /// without it goes to the queue's end).
    pub max_messages: Option<u64>,
    /// At most about this many bytes (JSON page only).
    pub max_bytes: Option<u64>,
    /// Long poll when `offset == max_offset`, ≤ 30000.
    pub wait_ms: Option<u64>,
    /// Tag filter, `a||b`.
    pub tag: Option<String>,
    /// Force `body_base64`.
    pub base64: bool,
}

/// A page of a read by offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadPage {
    pub messages: Vec<Message>,
    /// Where the next read starts.
    pub next_offset: u64,
    pub min_offset: u64,
    /// The offset the next message will get.
    pub max_offset: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OffsetResponse {
    pub offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_messages_serialize_only_what_is_set() {
        let m = ProduceMessage::text("hello")
            .with_tag("created")
            .with_key("order-42")
            .with_property("region", "eu")
            .with_queue(3);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"body": "hello", "tag": "created", "keys": ["order-42"],
                "properties": {"region": "eu"}, "queue": 3})
        );
        let binary = ProduceMessage::bytes(vec![0xff, 0x00]);
        assert_eq!(
            serde_json::to_value(&binary).unwrap(),
            serde_json::json!({"body_base64": "/wA="})
        );
        let request = ProduceRequest {
            messages: vec![ProduceMessage::text("x")],
            transaction: Some(TransactionInput {
                producer_group: "checkout".into(),
                check_after_ms: None,
            }),
            durability: Some(Durability::Object),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"messages": [{"body": "x"}],
                "transaction": {"producer_group": "checkout"}})
        );
    }

    #[test]
    fn messages_decode_with_unknown_fields_and_either_body() {
        let m: Message = serde_json::from_value(serde_json::json!({
            "message_id": "0190c7", "topic": "t", "queue": 1, "offset": 2,
            "keys": [], "properties": {}, "born_ms": 1, "store_ms": 2,
            "body_base64": "/wA=", "some_future_field": true
        }))
        .unwrap();
        assert_eq!(m.body_bytes(), Some(vec![0xff, 0]));
        assert_eq!(m.body_len(), 2);
        let m = Message {
            body: Some("héllo".into()),
            body_base64: None,
            ..m
        };
        assert_eq!(m.body_len(), 6);
        let result: ProduceResult =
            serde_json::from_str(r#"{"message_id":"a","queue":0,"deliver_at_ms":5}"#).unwrap();
        assert_eq!(result.offset, None);
        assert_eq!(result.deliver_at_ms, Some(5));
    }
}
