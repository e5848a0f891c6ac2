//! The two wire forms of a produce request, turned into [`MessageInput`]s
//! whose fields all pass the contract's limits (`validate`).
//!
//! - JSON (`Content-Type: application/json` or `*/*+json`): `{"messages": [...]}`
//!   with unknown fields rejected;
//! - raw (any other content type, or none): the request body is one message's
//!   body; metadata comes from `Shale-*` headers. Header names arrive
//!   lowercased, so `Shale-Property-Region: eu` is the property `region`.
//!   An unknown `Shale-*` header is rejected like an unknown JSON field.
//!
//! Nothing here knows the topic: type rules and queue choice are the broker's
//! (`shale_broker::produce`), which also defines [`MessageInput`] and its limits.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Deserialize;

use shale_broker::produce::{DelayInput, MessageInput};
use shale_broker::txn::TxnSettings;
use shale_broker::validate;

use crate::error::ApiError;

/// Header prefix of raw-produce properties.
const PROPERTY_HEADER_PREFIX: &str = "shale-property-";

/// `POST /v1/topics/{topic}/messages` JSON body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    /// 1-1024 messages, at most 32 MiB of bodies and metadata in total.
    #[schema(min_items = 1, max_items = 1024)]
    pub messages: Vec<ProduceMessage>,
    /// TRANSACTION topics only, and required there: the messages are one
    /// transaction's half messages (see Transactions).
    pub transaction: Option<TransactionInput>,
}

/// The transaction of a produce request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionInput {
    /// Who is asked to decide (check-back): `[A-Za-z0-9][A-Za-z0-9._-]{0,126}`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$")]
    pub producer_group: String,
    /// 1000-3600000, default 6000: first check this long after the produce,
    /// then again each time this long after.
    #[schema(minimum = 1000, maximum = 3_600_000)]
    pub check_after_ms: Option<u32>,
}

/// One message of a JSON produce request. Unknown fields are rejected (400).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceMessage {
    /// UTF-8 body. Exactly one of `body` and `body_base64` (0 B - 4 MiB).
    pub body: Option<String>,
    /// Standard base64 body.
    pub body_base64: Option<String>,
    /// 1-128 bytes, no `|`, `*`, whitespace or control characters.
    #[schema(pattern = "^[^|*\\s\\x00-\\x1f\\x7f-\\x9f]{1,128}$")]
    pub tag: Option<String>,
    /// Up to 32 keys of 1-128 bytes.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub keys: Vec<String>,
    /// Up to 64 properties, names `[A-Za-z0-9._-]{1,64}` not starting `shale.`, 16 KiB in total.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// FIFO topics only (required there), 1-128 bytes.
    #[schema(min_length = 1, max_length = 128)]
    pub message_group: Option<String>,
    /// DELAY topics only: deliver this many ms after the request arrived (at most the node's
    /// `max_delay_ms`, default 40 days).
    #[schema(minimum = 0)]
    pub delay_ms: Option<i64>,
    /// DELAY topics only: deliver at this Unix ms (at most `max_delay_ms` ahead).
    #[schema(minimum = 0)]
    pub deliver_at_ms: Option<i64>,
    /// DELAY topics only: RocketMQ 4 level 1-18 (1s 5s 10s 30s 1m 2m ... 30m 1h 2h).
    #[schema(minimum = 1, maximum = 18)]
    pub delay_level: Option<u32>,
    /// Explicit queue, below the topic's number of queues.
    #[schema(minimum = 0, maximum = 1023)]
    pub queue: Option<u32>,
    /// 1-128 bytes: a repeat on the same topic within 5 minutes is not stored again.
    #[schema(min_length = 1, max_length = 128)]
    pub dedup_id: Option<String>,
}

/// True for `application/json` and `application/*+json` content types.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(ct) = ct.to_str() else { return false };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON produce body; returns the messages and the transaction
/// settings if given. `system`: the request is a node's dead-letter copy
/// (see [`MessageInput::validate_as`]).
pub fn from_json(
    body: &[u8],
    system: bool,
) -> Result<(Vec<MessageInput>, Option<TxnSettings>), ApiError> {
    crate::routes::extract::require_object(body)?;
    let body = crate::routes::extract::integral_numbers(body);
    let req: ProduceRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid produce request: {e}")).with_source(e))?;
    if req.messages.is_empty() {
        return Err(ApiError::invalid("messages must hold at least one message"));
    }
    if req.messages.len() > validate::MAX_MESSAGES_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "at most {} messages per request, got {}",
            validate::MAX_MESSAGES_PER_REQUEST,
            req.messages.len()
        )));
    }
    let transaction = req.transaction.map(|t| TxnSettings {
        producer_group: t.producer_group,
        check_after_ms: t
            .check_after_ms
            .unwrap_or(shale_broker::txn::DEFAULT_CHECK_AFTER_MS),
    });
    let inputs = req
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| json_message(m, system).map_err(|e| e.prefixed(&format!("messages[{i}]: "))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((inputs, transaction))
}

fn json_message(m: ProduceMessage, system: bool) -> Result<MessageInput, ApiError> {
    let body = match (m.body, m.body_base64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give either body or body_base64, not both",
            ));
        }
        (None, None) => return Err(ApiError::invalid("a message needs body or body_base64")),
        (Some(text), None) => Bytes::from(text.into_bytes()),
        (None, Some(b64)) => {
            // Reject before decoding: 4 base64 characters make 3 bytes (minus padding).
            validate::body_len((b64.len() / 4 * 3).saturating_sub(2))?;
            Bytes::from(BASE64.decode(b64.as_bytes()).map_err(|e| {
                ApiError::invalid(format!("body_base64 is not valid base64: {e}")).with_source(e)
            })?)
        }
    };
    let input = MessageInput {
        body,
        tag: m.tag,
        keys: m.keys,
        properties: m.properties.into_iter().collect(),
        message_group: m.message_group,
        delay: DelayInput {
            delay_ms: m.delay_ms,
            deliver_at_ms: m.deliver_at_ms,
            delay_level: m.delay_level,
        },
        queue: m.queue,
        dedup_id: m.dedup_id,
    };
    input.validate_as(system)?;
    Ok(input)
}

/// Builds the single message of a raw produce from its body and `Shale-*` headers.
pub fn from_raw(headers: &HeaderMap, body: Bytes) -> Result<MessageInput, ApiError> {
    validate::body_len(body.len())?;
    let mut input = MessageInput {
        body,
        ..Default::default()
    };
    let mut seen = std::collections::HashSet::new();
    for (name, value) in headers {
        let name = name.as_str();
        if !is_message_header(name) {
            continue;
        }
        if !seen.insert(name) {
            return Err(ApiError::invalid(format!(
                "header {name} given more than once"
            )));
        }
        let value = std::str::from_utf8(value.as_bytes()).map_err(|e| {
            ApiError::invalid(format!("header {name} is not valid UTF-8")).with_source(e)
        })?;
        match name {
            "shale-tag" => input.tag = Some(value.to_string()),
            "shale-keys" => input.keys = split_keys(value),
            "shale-message-group" => input.message_group = Some(value.to_string()),
            "shale-delay-ms" => input.delay.delay_ms = Some(parse_int(name, value)?),
            "shale-deliver-at-ms" => input.delay.deliver_at_ms = Some(parse_int(name, value)?),
            "shale-dedup-id" => input.dedup_id = Some(value.to_string()),
            _ => match name.strip_prefix(PROPERTY_HEADER_PREFIX) {
                Some(prop) => input.properties.push((prop.to_string(), value.to_string())),
                None => return Err(ApiError::invalid(format!("unknown header {name}"))),
            },
        }
    }
    input.validate()?;
    Ok(input)
}

/// Whether `name` (lowercase) is one of the raw produce's per-message
/// headers (`Shale-Tag`, `Shale-Property-*`, …), rather than one that applies
/// to any request (`Shale-Durability`, the cluster's forwarding mark).
fn is_message_header(name: &str) -> bool {
    name.starts_with("shale-") && name != "shale-durability" && name != crate::cluster::FORWARDED
}

/// A JSON batch carries its messages' fields in the body: a per-message
/// header beside it would be ignored, so it is refused (400) instead.
pub fn refuse_message_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.keys().find(|n| is_message_header(n.as_str())) {
        Some(name) => Err(ApiError::invalid(format!(
            "header {name} applies to a raw (non-JSON) produce only; in a JSON batch, \
             give the field in each message"
        ))),
        None => Ok(()),
    }
}

/// `Shale-Keys: a, b` → `["a", "b"]`; an empty entry stays and fails validation.
fn split_keys(value: &str) -> Vec<String> {
    value.split(',').map(|k| k.trim().to_string()).collect()
}

fn parse_int(name: &str, value: &str) -> Result<i64, ApiError> {
    value.trim().parse().map_err(|e| {
        ApiError::invalid(format!("header {name} must be an integer, got {value:?}")).with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_body_forms() {
        let (m, tx) = from_json(
            br#"{"messages":[{"body":"hi"},{"body_base64":"/wA="}]}"#,
            false,
        )
        .unwrap();
        assert!(tx.is_none());
        assert_eq!(&m[0].body[..], b"hi");
        assert_eq!(&m[1].body[..], b"\xff\x00");
        for bad in [
            r#"{"messages":[{}]}"#,
            r#"{"messages":[{"body":"a","body_base64":"YQ=="}]}"#,
            r#"{"messages":[{"body":"a","colour":"red"}]}"#,
            r#"{"messages":[]}"#,
            r#"{"messages":[{"body_base64":"***"}]}"#,
            r#"{"messages":[{"body":"a","properties":{"shale.x":"1"}}]}"#,
            r#"{"messages":[{"body":"a","delay_ms":-1}]}"#,
            r#"{"msgs":[]}"#,
        ] {
            assert!(from_json(bad.as_bytes(), false).is_err(), "{bad}");
        }
        let e = from_json(
            br#"{"messages":[{"body":"a"},{"body":"b","tag":"a b"}]}"#,
            false,
        )
        .unwrap_err();
        assert!(e.message.starts_with("messages[1]"), "{}", e.message);
    }

    #[test]
    fn raw_headers() {
        let mut h = HeaderMap::new();
        h.insert("shale-tag", HeaderValue::from_static("created"));
        h.insert("shale-keys", HeaderValue::from_static("a, b"));
        h.insert("shale-property-region", HeaderValue::from_static("eu"));
        h.insert("shale-delay-ms", HeaderValue::from_static("5000"));
        h.insert("shale-durability", HeaderValue::from_static("SYNC"));
        let m = from_raw(&h, Bytes::from_static(b"x")).unwrap();
        assert_eq!(m.tag.as_deref(), Some("created"));
        assert_eq!(m.keys, vec!["a", "b"]);
        assert_eq!(m.properties, vec![("region".to_string(), "eu".to_string())]);
        assert_eq!(m.delay.delay_ms, Some(5000));
        // The forwarding mark of another node is not a message header.
        h.insert(crate::cluster::FORWARDED, HeaderValue::from_static("n2"));
        assert!(from_raw(&h, Bytes::from_static(b"x")).is_ok());
        h.insert("shale-queue", HeaderValue::from_static("1"));
        assert!(from_raw(&h, Bytes::new()).is_err());
    }

    #[test]
    fn a_json_produce_refuses_message_headers() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("shale-durability", HeaderValue::from_static("SYNC"));
        h.insert(crate::cluster::FORWARDED, HeaderValue::from_static("n2"));
        assert!(refuse_message_headers(&h).is_ok());
        for name in ["shale-deliver-at-ms", "shale-tag", "shale-property-region"] {
            let mut h = h.clone();
            h.insert(name, HeaderValue::from_static("0.5"));
            let e = refuse_message_headers(&h).unwrap_err();
            assert!(e.message.contains(name), "{}", e.message);
        }
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json(&h));
        h.insert(
            "content-type",
            HeaderValue::from_static("application/vnd.x+json"),
        );
        assert!(is_json(&h));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h));
    }
}
