//! The message object as returned by every read (API.md "Message object").
//!
//! Invariants: `keys` and `properties` are always present (possibly empty);
//! `tag`, `message_group` and `deliver_at_ms` are omitted when the message has
//! none; exactly one of `body` (valid UTF-8 and not forced to base64) and
//! `body_base64` is present. Reserved properties (`shale.*`, e.g.
//! `shale.dedup_id`) are returned like any other property.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize, Serializer};
use shale_hot::{HexId, Record};

/// How bodies are returned (`?encoding=`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// `body` when the body is valid UTF-8, else `body_base64`.
    #[default]
    Auto,
    /// Always `body_base64`.
    Base64,
}

/// A stored message as returned by the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageObject {
    /// 32 hex digits, unique and time-ordered.
    pub message_id: String,
    pub topic: String,
    pub queue: u32,
    /// The message's offset in its queue; absent while it is not in its
    /// queue yet (a `SCHEDULED` delay message, a half message offered for a
    /// transaction check).
    #[schema(required = false)]
    pub offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub keys: Vec<String>,
    #[serde(serialize_with = "pairs_as_map")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub properties: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_group: Option<String>,
    /// When the gateway received the produce request.
    pub born_ms: i64,
    /// When the message was stored in its queue; absent while it is not in
    /// its queue yet (as `offset`).
    #[schema(required = false)]
    pub store_ms: i64,
    /// Delay messages only: when the message becomes visible to consumers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<i64>,
    /// The body as text, when it is valid UTF-8 and base64 was not asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body in standard base64 otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// `SCHEDULED` for a delay message not yet due (it then has no `offset`
    /// and no `store_ms`: it gets them when it enters its queue); absent for
    /// a message in its queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl MessageObject {
    /// The object of `record`, stored in `topic`/`queue`.
    pub fn from_record(topic: &str, queue: u32, record: Record, encoding: BodyEncoding) -> Self {
        let (body, body_base64) = match encoding {
            BodyEncoding::Base64 => (None, Some(BASE64.encode(&record.body))),
            BodyEncoding::Auto => match std::str::from_utf8(&record.body) {
                Ok(text) => (Some(text.to_string()), None),
                Err(_) => (None, Some(BASE64.encode(&record.body))),
            },
        };
        MessageObject {
            message_id: record.message_id.to_string(),
            topic: topic.to_string(),
            queue,
            offset: record.offset,
            tag: record.tag,
            keys: record.keys,
            properties: record.properties,
            message_group: record.message_group,
            born_ms: record.born_ms,
            store_ms: record.store_ms,
            deliver_at_ms: record.deliver_at_ms,
            body,
            body_base64,
            state: None,
        }
    }
}

/// A record serialized as its [`MessageObject`] without copying it: the same
/// JSON, field for field (a test holds the two together). Streams (NDJSON
/// replay) write every message through this, so a message costs no
/// allocation beyond a base64 body.
#[derive(Debug, Serialize)]
pub struct MessageView<'a> {
    #[serde(serialize_with = "hex_id")]
    message_id: HexId,
    topic: &'a str,
    queue: u32,
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    keys: &'a [String],
    #[serde(serialize_with = "pairs_as_map")]
    properties: &'a [(String, String)],
    #[serde(skip_serializing_if = "Option::is_none")]
    message_group: Option<&'a str>,
    born_ms: i64,
    store_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
}

impl<'a> MessageView<'a> {
    /// The view of `record`, stored in `topic`/`queue`.
    pub fn of(topic: &'a str, queue: u32, record: &'a Record, encoding: BodyEncoding) -> Self {
        let (body, body_base64) = match encoding {
            BodyEncoding::Base64 => (None, Some(BASE64.encode(&record.body))),
            BodyEncoding::Auto => match std::str::from_utf8(&record.body) {
                Ok(text) => (Some(text), None),
                Err(_) => (None, Some(BASE64.encode(&record.body))),
            },
        };
        MessageView {
            message_id: record.message_id.to_hex(),
            topic,
            queue,
            offset: record.offset,
            tag: record.tag.as_deref(),
            keys: &record.keys,
            properties: &record.properties,
            message_group: record.message_group.as_deref(),
            born_ms: record.born_ms,
            store_ms: record.store_ms,
            deliver_at_ms: record.deliver_at_ms,
            body,
            body_base64,
        }
    }
}

fn hex_id<S: Serializer>(id: &HexId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.as_str())
}

fn pairs_as_map<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shale_hot::MessageId;

    fn record(body: &'static [u8]) -> Record {
        Record {
            offset: 17,
            store_ms: 2,
            born_ms: 1,
            deliver_at_ms: None,
            message_id: MessageId::new(2, 3, 17, 0),
            tag: None,
            keys: vec![],
            properties: vec![("region".into(), "eu".into())],
            message_group: None,
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn the_view_serializes_as_the_object() {
        let mut full = record(b"{\"say\": \"caf\xc3\xa9\\n\"}");
        full.tag = Some("t1".into());
        full.keys = vec!["k1".into(), "k\"2".into()];
        full.message_group = Some("g".into());
        full.deliver_at_ms = Some(9);
        for r in [record(b"hello"), record(b"\xff\x00"), record(b""), full] {
            for encoding in [BodyEncoding::Auto, BodyEncoding::Base64] {
                let view = serde_json::to_string(&MessageView::of("t", 3, &r, encoding)).unwrap();
                let object =
                    serde_json::to_string(&MessageObject::from_record("t", 3, r.clone(), encoding))
                        .unwrap();
                assert_eq!(view, object);
            }
        }
    }

    #[test]
    fn omits_absent_fields_and_picks_encoding() {
        let v = serde_json::to_value(MessageObject::from_record(
            "t",
            3,
            record(b"hello"),
            BodyEncoding::Auto,
        ))
        .unwrap();
        assert_eq!(v["body"], "hello");
        assert_eq!(v["keys"], serde_json::json!([]));
        assert_eq!(v["properties"], serde_json::json!({"region": "eu"}));
        for absent in ["tag", "message_group", "deliver_at_ms", "body_base64"] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
        let v = serde_json::to_value(MessageObject::from_record(
            "t",
            3,
            record(b"\xff\x00"),
            BodyEncoding::Auto,
        ))
        .unwrap();
        assert_eq!(v["body_base64"], "/wA=");
        let v = serde_json::to_value(MessageObject::from_record(
            "t",
            3,
            record(b"hi"),
            BodyEncoding::Base64,
        ))
        .unwrap();
        assert_eq!(v["body_base64"], "aGk=");
        assert!(v.get("body").is_none());
    }
}
