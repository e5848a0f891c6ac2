//! ReceiveMessage: a `/v1` group receive of the queue's group, answered in
//! SQS's shape.
//!
//! `VisibilityTimeout` (the call's, else the queue's) is `invisible_ms` —
//! at least 1 s, Shale's shortest; with 0 the messages are given back at
//! once after the receive (visible again, the receive counted); `WaitTimeSeconds`
//! (else the queue's `ReceiveMessageWaitTimeSeconds`) is `wait_ms`;
//! `ApproximateReceiveCount` is the delivery attempt. On FIFO queues a
//! `ReceiveRequestAttemptId` repeated within 5 minutes gets the same
//! answer again while its handles are good — remembered by the node that
//! answered (a retry that lands on another node receives anew).

use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::inner::seg;
use super::md5::{md5_hex, md5_of_attributes};
use super::message_attrs::{self, Attributes};
use super::naming::{self, is_fifo, topic_of};
use super::protocol::SqsError;
use super::send::{message_id_to_sqs, sequence_number};

/// How long a FIFO `ReceiveRequestAttemptId`'s answer is kept.
const ATTEMPT_TTL: Duration = Duration::from_secs(300);

/// The system attributes a receive may ask for.
const SYSTEM_NAMES: &[&str] = &[
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiveIn {
    #[serde(default)]
    queue_url: String,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
    receive_request_attempt_id: Option<String>,
}

/// Answers of FIFO receives by (queue, attempt id, caller).
/// The value is the answer and when its handles' visibility ends.
type AttemptCache = moka::sync::Cache<(String, String, String), (Value, i64)>;

fn attempts() -> &'static AttemptCache {
    static CACHE: OnceLock<AttemptCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(ATTEMPT_TTL)
            .build()
    })
}

fn range(name: &str, value: i64, min: i64, max: i64) -> Result<i64, SqsError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(SqsError::invalid_parameter(format!(
            "Value {value} for parameter {name} is invalid. Reason: Must be between {min} and {max}, if provided."
        )))
    }
}

/// The system attributes asked for (`All` = every one); unknown names are
/// ignored, as AWS does.
fn wanted_system(input: &ReceiveIn) -> Vec<&'static str> {
    let asked = input
        .attribute_names
        .iter()
        .chain(&input.message_system_attribute_names);
    let mut out = Vec::new();
    for name in asked {
        if name == "All" {
            return SYSTEM_NAMES.to_vec();
        }
        if let Some(n) = SYSTEM_NAMES.iter().find(|n| **n == name.as_str())
            && !out.contains(n)
        {
            out.push(*n);
        }
    }
    out
}

/// One delivered `/v1` message in SQS's shape.
fn to_sqs(
    ctx: &Ctx,
    queue: &str,
    m: &Value,
    system: &[&str],
    wanted_attrs: &[String],
    now: i64,
) -> Value {
    let props = m["properties"].as_object();
    let prop = |k: &str| props.and_then(|p| p.get(k)).and_then(Value::as_str);
    let body = m["body"]
        .as_str()
        .or_else(|| m["body_base64"].as_str())
        .unwrap_or("");
    // A dead letter keeps its message id, as SQS moves messages.
    let id = prop("shale.origin_message_id")
        .or_else(|| m["message_id"].as_str())
        .unwrap_or("");
    let attempt = m["delivery_attempt"].as_u64().unwrap_or(1);
    let group = m["message_group"]
        .as_str()
        .or_else(|| prop(message_attrs::PROP_GROUP_ID));
    let mut attributes = Map::new();
    for name in system {
        let value: Option<String> = match *name {
            "SenderId" => Some(
                prop(message_attrs::PROP_SENDER_ID)
                    .unwrap_or(naming::ACCOUNT)
                    .to_string(),
            ),
            "SentTimestamp" => m["born_ms"].as_i64().map(|t| t.to_string()),
            "ApproximateReceiveCount" => Some(attempt.to_string()),
            // Known only at the first receive (Shale does not keep it).
            "ApproximateFirstReceiveTimestamp" => (attempt == 1).then(|| now.to_string()),
            "SequenceNumber" if is_fifo(queue) => match (m["queue"].as_u64(), m["offset"].as_u64())
            {
                (Some(q), Some(o)) => Some(sequence_number(q, o)),
                _ => None,
            },
            "MessageDeduplicationId" => prop(message_attrs::PROP_DEDUP_ID).map(str::to_string),
            "MessageGroupId" => group.map(str::to_string),
            "AWSTraceHeader" => prop(message_attrs::PROP_TRACE_HEADER).map(str::to_string),
            "DeadLetterQueueSourceArn" => prop("shale.origin_topic")
                .and_then(naming::queue_of_topic)
                .map(|q| ctx.front().naming.arn(q)),
            _ => None,
        };
        if let Some(v) = value {
            attributes.insert((*name).to_string(), Value::String(v));
        }
    }
    let chosen: Attributes = message_attrs::select(
        message_attrs::decode(prop(message_attrs::PROP_ATTRIBUTES)),
        wanted_attrs,
    );
    let mut out = json!({
        "MessageId": message_id_to_sqs(id),
        "ReceiptHandle": m["receipt_handle"],
        "MD5OfBody": md5_hex(body.as_bytes()),
        "Body": body,
    });
    if !attributes.is_empty() {
        out["Attributes"] = Value::Object(attributes);
    }
    if let Some(md5) = md5_of_attributes(&chosen) {
        out["MD5OfMessageAttributes"] = md5.into();
        out["MessageAttributes"] = serde_json::to_value(&chosen).unwrap_or_default();
    }
    out
}

/// `VisibilityTimeout` 0: the received messages are visible again at once
/// (Shale's receive hides them for at least 1 s, so they are given back).
/// A message that cannot be given back stays hidden for that 1 s.
async fn release(ctx: &Ctx, topic: &str, got: &Value) {
    let path = format!("/v1/groups/{}/change-invisibility", seg(topic));
    let releases = got["messages"].as_array().into_iter().flatten().map(|m| {
        let body = json!({
            "topic": topic,
            "receipt_handle": m["receipt_handle"],
            "invisible_ms": 0,
            "retry_backoff": false,
        });
        let path = path.clone();
        async move {
            if let Err(e) = ctx.v1.post(&path, body).await {
                tracing::debug!(code = %e.code, "a VisibilityTimeout=0 receive could not give a message back");
            }
        }
    });
    futures::future::join_all(releases).await;
}

pub async fn receive(ctx: &Ctx, input: ReceiveIn) -> Result<Value, SqsError> {
    let queue = naming::queue_from_url(&input.queue_url)?;
    let max = range(
        "MaxNumberOfMessages",
        input.max_number_of_messages.unwrap_or(1),
        1,
        10,
    )?;
    let (_, doc) = ctx.front().doc(&ctx.state.broker, &queue).await?;
    let visibility = range(
        "VisibilityTimeout",
        input
            .visibility_timeout
            .unwrap_or(i64::from(doc.visibility_timeout_s)),
        0,
        43_200,
    )?;
    let wait = range(
        "WaitTimeSeconds",
        input
            .wait_time_seconds
            .unwrap_or(i64::from(doc.receive_wait_s)),
        0,
        20,
    )?;
    let attempt_key = match input.receive_request_attempt_id.as_deref() {
        Some(id) if is_fifo(&queue) => {
            if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(SqsError::invalid_parameter(
                    "Value for parameter ReceiveRequestAttemptId is invalid. Reason: 1-128 alphanumeric or punctuation characters.",
                ));
            }
            let key = (queue.clone(), id.to_string(), ctx.sender_id.clone());
            if let Some((answer, until)) = attempts().get(&key)
                && ctx.state.broker.clock.now_ms() < until
            {
                return Ok(answer);
            }
            Some(key)
        }
        _ => None,
    };
    let topic = topic_of(&queue);
    let got = ctx
        .v1
        .post(
            &format!("/v1/groups/{}/receive", seg(&topic)),
            json!({
                "topic": topic,
                "max_messages": max,
                "invisible_ms": (visibility * 1000).max(1000),
                "wait_ms": wait * 1000,
            }),
        )
        .await
        .map_err(|e| e.to_sqs(&queue))?;
    if visibility == 0 {
        release(ctx, &topic, &got).await;
    }
    let system = wanted_system(&input);
    let now = ctx.state.broker.clock.now_ms();
    let messages: Vec<Value> = got["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| to_sqs(ctx, &queue, m, &system, &input.message_attribute_names, now))
        .collect();
    let answer = json!({ "Messages": messages });
    if let Some(key) = attempt_key {
        attempts().insert(key, (answer.clone(), now + (visibility * 1000).max(1000)));
    }
    Ok(answer)
}
