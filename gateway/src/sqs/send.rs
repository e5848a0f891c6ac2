//! SendMessage and SendMessageBatch: each message is checked as AWS checks
//! it, then the batch's good ones go to the queue's topic in one `/v1`
//! produce (all of them stored or none).
//!
//! Mapping: the body is the Shale body; `DelaySeconds` (the message's, else
//! the queue's) is `delay_ms` (standard queues are DELAY topics: a delayed
//! message is in no queue until due); `MessageGroupId` is the FIFO topic's
//! `message_group`; the deduplication id (`MessageDeduplicationId`, else the
//! body's SHA-256 when `ContentBasedDeduplication` is on; hashed with the
//! group under `DeduplicationScope=messageGroup`) is the `dedup_id`, whose
//! 5-minute window answers a repeat with the first send's result, as SQS
//! does. A FIFO answer's `SequenceNumber` is `queue * 10^20 + offset`:
//! it grows within a message group (one group, one queue). `MessageId` is
//! the Shale message id written as a UUID.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::Ctx;
use super::batch;
use super::inner::seg;
use super::md5::{md5_hex, md5_of_attributes};
use super::message_attrs::{self, Attributes};
use super::naming::{self, is_fifo, topic_of};
use super::protocol::SqsError;
use super::queue_attrs::QueueDoc;

/// Most bytes of all messages of one batch: the larger of AWS's 1 MiB and
/// the queue's `MaximumMessageSize`.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    #[serde(default)]
    id: String,
    message_body: Option<String>,
    delay_seconds: Option<i64>,
    #[serde(default)]
    message_attributes: Attributes,
    #[serde(default)]
    message_system_attributes: Attributes,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendIn {
    #[serde(default)]
    queue_url: String,
    #[serde(flatten)]
    entry: Entry,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendBatchIn {
    #[serde(default)]
    queue_url: String,
    #[serde(default)]
    entries: Vec<Entry>,
}

/// A checked message: its `/v1` form, its size, and the digests answered.
struct Prepared {
    message: Value,
    size: usize,
    md5_body: String,
    md5_attributes: Option<String>,
    md5_system: Option<String>,
}

/// `MessageGroupId` and `MessageDeduplicationId`: 1-128 of alphanumerics and punctuation.
fn check_token(name: &str, value: &str) -> Result<(), SqsError> {
    let ok = !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(SqsError::invalid_parameter(format!(
            "Value {value} for parameter {name} is invalid. Reason: 1-128 alphanumeric or punctuation characters."
        )))
    }
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn prepare(ctx: &Ctx, queue: &str, doc: &QueueDoc, e: Entry) -> Result<Prepared, SqsError> {
    let fifo = is_fifo(queue);
    let body = e
        .message_body
        .filter(|b| !b.is_empty())
        .ok_or_else(|| SqsError::missing("MessageBody"))?;
    if let Some(bad) = body.chars().find(|c| !message_attrs::allowed_char(*c)) {
        return Err(SqsError::invalid_contents(format!(
            "Invalid binary character '#x{:X}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
            bad as u32
        )));
    }
    let attr_size = message_attrs::check(&e.message_attributes)?;
    let size = body.len() + attr_size;
    if size as u64 > doc.maximum_message_size {
        return Err(SqsError::invalid_parameter(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
            doc.maximum_message_size
        )));
    }
    let mut properties = Map::new();
    if let Some(json) = message_attrs::encode(&e.message_attributes)? {
        properties.insert(message_attrs::PROP_ATTRIBUTES.into(), json.into());
    }
    for name in e.message_system_attributes.keys() {
        if name != "AWSTraceHeader" {
            return Err(SqsError::invalid_parameter(format!(
                "Message system attribute name '{name}' is invalid: only AWSTraceHeader can be sent."
            )));
        }
    }
    let system: Attributes = e.message_system_attributes;
    if let Some(trace) = system.get("AWSTraceHeader") {
        let value = trace
            .string_value
            .as_deref()
            .filter(|v| trace.data_type == "String" && !v.is_empty())
            .ok_or_else(|| SqsError::invalid_parameter("AWSTraceHeader is a non-empty String."))?;
        properties.insert(message_attrs::PROP_TRACE_HEADER.into(), value.into());
    }
    properties.insert(
        message_attrs::PROP_SENDER_ID.into(),
        ctx.sender_id.clone().into(),
    );
    let mut message = json!({ "body": body });
    if fifo {
        let group = e
            .message_group_id
            .ok_or_else(|| SqsError::missing("MessageGroupId"))?;
        check_token("MessageGroupId", &group)?;
        if e.delay_seconds.is_some_and(|d| d != 0) {
            return Err(SqsError::invalid_parameter(
                "Value for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.",
            ));
        }
        let dedup = match e.message_deduplication_id {
            Some(id) => {
                check_token("MessageDeduplicationId", &id)?;
                id
            }
            None if doc.content_based_dedup => sha256_hex(&[&body]),
            None => {
                return Err(SqsError::invalid_parameter(
                    "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                ));
            }
        };
        message["dedup_id"] = if doc.dedup_per_group {
            sha256_hex(&[&group, &dedup]).into()
        } else {
            dedup.clone().into()
        };
        properties.insert(message_attrs::PROP_DEDUP_ID.into(), dedup.into());
        message["message_group"] = group.into();
    } else {
        if e.message_deduplication_id.is_some() {
            return Err(SqsError::invalid_parameter(
                "Value for parameter MessageDeduplicationId is invalid. Reason: The request includes a parameter that is not valid for this queue type.",
            ));
        }
        if let Some(group) = e.message_group_id {
            check_token("MessageGroupId", &group)?;
            properties.insert(message_attrs::PROP_GROUP_ID.into(), group.into());
        }
        let delay = e.delay_seconds.unwrap_or(i64::from(doc.delay_s));
        if !(0..=900).contains(&delay) {
            return Err(SqsError::invalid_parameter(format!(
                "Value {delay} for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided."
            )));
        }
        if delay > 0 {
            message["delay_ms"] = (delay * 1000).into();
        }
    }
    message["properties"] = Value::Object(properties);
    Ok(Prepared {
        message,
        size,
        md5_body: md5_hex(body.as_bytes()),
        md5_attributes: md5_of_attributes(&e.message_attributes),
        md5_system: md5_of_attributes(&system),
    })
}

/// A Shale message id (32 hex digits) written as a UUID, as SQS ids look.
pub fn message_id_to_sqs(id: &str) -> String {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!(
            "{}-{}-{}-{}-{}",
            &id[..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..]
        )
    } else {
        id.to_string()
    }
}

/// A FIFO message's `SequenceNumber`.
pub fn sequence_number(queue: u64, offset: u64) -> String {
    (u128::from(queue) * 100_000_000_000_000_000_000 + u128::from(offset)).to_string()
}

fn answer(p: &Prepared, result: &Value, fifo: bool) -> Value {
    let mut out = json!({
        "MessageId": message_id_to_sqs(result["message_id"].as_str().unwrap_or("")),
        "MD5OfMessageBody": p.md5_body,
    });
    if let Some(m) = &p.md5_attributes {
        out["MD5OfMessageAttributes"] = m.clone().into();
    }
    if let Some(m) = &p.md5_system {
        out["MD5OfMessageSystemAttributes"] = m.clone().into();
    }
    if fifo && let (Some(q), Some(o)) = (result["queue"].as_u64(), result["offset"].as_u64()) {
        out["SequenceNumber"] = sequence_number(q, o).into();
    }
    out
}

/// Produces `prepared` to `queue`'s topic; one result per message.
async fn produce(ctx: &Ctx, queue: &str, prepared: &[&Prepared]) -> Result<Vec<Value>, SqsError> {
    let messages: Vec<Value> = prepared.iter().map(|p| p.message.clone()).collect();
    let got = ctx
        .v1
        .post(
            &format!("/v1/topics/{}/messages", seg(&topic_of(queue))),
            json!({ "messages": messages }),
        )
        .await
        .map_err(|e| e.to_sqs(queue))?;
    let results = got["results"].as_array().cloned().unwrap_or_default();
    if results.len() != prepared.len() {
        return Err(SqsError::internal(
            "the produce answered another number of results",
        ));
    }
    Ok(results)
}

pub async fn send(ctx: &Ctx, input: SendIn) -> Result<Value, SqsError> {
    let queue = naming::queue_from_url(&input.queue_url)?;
    let (_, doc) = ctx.front().doc(&ctx.state.broker, &queue).await?;
    let p = prepare(ctx, &queue, &doc, input.entry)?;
    let results = produce(ctx, &queue, &[&p]).await?;
    Ok(answer(&p, &results[0], is_fifo(&queue)))
}

pub async fn send_batch(ctx: &Ctx, input: SendBatchIn) -> Result<Value, SqsError> {
    let queue = naming::queue_from_url(&input.queue_url)?;
    batch::check_ids(input.entries.iter().map(|e| e.id.as_str()))?;
    let (_, doc) = ctx.front().doc(&ctx.state.broker, &queue).await?;
    let mut outcomes: Vec<(String, Result<Prepared, SqsError>)> = input
        .entries
        .into_iter()
        .map(|e| (e.id.clone(), prepare(ctx, &queue, &doc, e)))
        .collect();
    let total: usize = outcomes
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok())
        .map(|p| p.size)
        .sum();
    let cap = MAX_BATCH_BYTES.max(doc.maximum_message_size as usize);
    if total > cap {
        return Err(SqsError::batch_too_long(cap));
    }
    let good: Vec<&Prepared> = outcomes
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok())
        .collect();
    let fifo = is_fifo(&queue);
    let mut answers = if good.is_empty() {
        Vec::new()
    } else {
        produce(ctx, &queue, &good).await?
    }
    .into_iter();
    let outcomes = outcomes
        .drain(..)
        .map(|(id, p)| {
            let outcome = p.map(|p| answer(&p, &answers.next().unwrap_or_default(), fifo));
            (id, outcome)
        })
        .collect();
    Ok(batch::answer(outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sequence_numbers_look_like_sqs_ones() {
        assert_eq!(
            message_id_to_sqs("0190c7aa0000000000000000000000ff"),
            "0190c7aa-0000-0000-0000-0000000000ff"
        );
        assert_eq!(message_id_to_sqs("short"), "short");
        assert_eq!(sequence_number(0, 17), "17");
        assert_eq!(sequence_number(3, 17), "300000000000000000017");
        assert!(sequence_number(1, 5) < sequence_number(1, 6));
    }

    #[test]
    fn dedup_hashes_keep_their_parts_apart() {
        assert_ne!(sha256_hex(&["ab", "c"]), sha256_hex(&["a", "bc"]));
        assert_eq!(sha256_hex(&["x"]).len(), 64);
    }
}
