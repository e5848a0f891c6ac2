//! Queue operations: CreateQueue, GetQueueUrl, ListQueues, DeleteQueue,
//! Get/SetQueueAttributes, PurgeQueue and the tag operations.
//!
//! A queue is made in this order, each step repeatable, so a create cut
//! short is finished by the next one: the topic (`POST /v1/topics`, create-
//! only across the cluster), the group's settings (`PUT /v1/groups`), on a
//! new topic the group's offsets moved to EARLIEST (a group may remember
//! offsets of an older topic of the same name), then the document.
//! `PurgeQueue` moves the group to LATEST: what is in the queue is skipped
//! (and stays readable by offset until retention removes it).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Ctx;
use super::inner::seg;
use super::naming::{self, check_queue_name, is_fifo, topic_of};
use super::protocol::SqsError;
use super::queue_attrs::{self, QueueDoc, Redrive};
use crate::auth::Action;

/// Queues of each new topic (receives spread over them; FIFO message groups hash to them).
pub const TOPIC_QUEUES: u32 = 8;
/// Most tags on a queue (AWS's limit).
const MAX_TAGS: usize = 50;

#[derive(Debug, Deserialize)]
pub struct CreateQueueIn {
    #[serde(rename = "QueueName", default)]
    queue_name: String,
    #[serde(rename = "Attributes", default)]
    attributes: BTreeMap<String, String>,
    #[serde(rename = "tags", default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueNameIn {
    #[serde(default)]
    queue_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueUrlIn {
    #[serde(default)]
    queue_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueuesIn {
    queue_name_prefix: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetAttributesIn {
    #[serde(default)]
    queue_url: String,
    #[serde(default)]
    attribute_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SetAttributesIn {
    #[serde(default)]
    queue_url: String,
    attributes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagIn {
    #[serde(default)]
    queue_url: String,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagIn {
    #[serde(default)]
    queue_url: String,
    tag_keys: Option<Vec<String>>,
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), SqsError> {
    if tags.len() > MAX_TAGS {
        return Err(SqsError::invalid_parameter(format!(
            "A queue has at most {MAX_TAGS} tags."
        )));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(SqsError::invalid_parameter(format!(
                "Tag {k:?}: keys are 1-128 characters, values at most 256"
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(SqsError::invalid_parameter(
                "Tag keys starting with aws: are reserved.",
            ));
        }
    }
    Ok(())
}

/// The group settings that make a queue behave as SQS: every receiver
/// shares the queue, no retry backoff (a message is visible again when its
/// visibility timeout ends), attempts up to the redrive's `maxReceiveCount`
/// (else Shale's most, 1000), dead letters to the redrive's queue.
pub fn group_body(doc: &QueueDoc) -> Value {
    json!({
        "consume_mode": "CLUSTERING",
        "max_delivery_attempts": doc.redrive.as_ref().map_or(1000, |r| r.max_receive_count),
        "retry_backoff_ms": [0],
        "consume_from": "EARLIEST",
        "dead_letter_topic": doc.redrive.as_ref().map(|r| topic_of(&r.target)).unwrap_or_default(),
    })
}

/// Checks a redrive policy's dead-letter queue: it exists, has the source's
/// type, and its RedriveAllowPolicy lets the source in.
async fn check_redrive(ctx: &Ctx, source: &str, redrive: &Redrive) -> Result<(), SqsError> {
    let front = ctx.front();
    let missing = || {
        SqsError::invalid_parameter(format!(
            "Value for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist: {}",
            front.naming.arn(&redrive.target)
        ))
    };
    let (_, target) = front
        .doc(&ctx.state.broker, &redrive.target)
        .await
        .map_err(|_| missing())?;
    if is_fifo(&redrive.target) != is_fifo(source) {
        return Err(SqsError::invalid_parameter(
            "Value for parameter RedrivePolicy is invalid. Reason: The dead-letter queue of a FIFO queue must also be a FIFO queue, and of a standard queue a standard queue.",
        ));
    }
    if redrive.target == source {
        return Err(SqsError::invalid_parameter(
            "Value for parameter RedrivePolicy is invalid. Reason: a queue cannot be its own dead-letter queue.",
        ));
    }
    if !queue_attrs::redrive_allowed(&target, &front.naming.arn(source)) {
        return Err(SqsError::invalid_parameter(format!(
            "Value for parameter RedrivePolicy is invalid. Reason: the RedriveAllowPolicy of {} does not allow this queue.",
            redrive.target
        )));
    }
    Ok(())
}

pub async fn create(ctx: &Ctx, input: CreateQueueIn) -> Result<Value, SqsError> {
    let name = input.queue_name;
    if name.is_empty() {
        return Err(SqsError::missing("QueueName"));
    }
    check_queue_name(&name)?;
    let fifo = is_fifo(&name);
    let fifo_asked = input
        .attributes
        .get("FifoQueue")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if fifo && !fifo_asked {
        // As AWS: a queue without FifoQueue=true is standard, and a standard
        // queue's name cannot end with .fifo.
        return Err(SqsError::invalid_parameter(
            "The name of a standard queue cannot end with .fifo: set the attribute FifoQueue to true for a FIFO queue",
        ));
    }
    let mut wanted = QueueDoc::defaults(0);
    let changes = queue_attrs::apply(&mut wanted, &input.attributes, fifo, true)?;
    check_tags(&input.tags)?;
    if let Some(r) = &wanted.redrive {
        check_redrive(ctx, &name, r).await?;
    }
    let topic = topic_of(&name);
    let url = json!({ "QueueUrl": ctx.front().naming.url(&name) });
    // An existing queue: the same URL when the given attributes match.
    let existing = match ctx.v1.get(&format!("/v1/topics/{}", seg(&topic))).await {
        Ok(t) => Some(t),
        Err(e) if e.is("TOPIC_NOT_FOUND") => None,
        Err(e) => return Err(e.to_sqs(&name)),
    };
    let retention_s = changes
        .retention_s
        .unwrap_or(queue_attrs::DEFAULT_RETENTION_S);
    let created = match existing {
        Some(_) => false,
        None => {
            let body = json!({
                "name": topic,
                "queues": TOPIC_QUEUES,
                "message_type": if fifo { "FIFO" } else { "DELAY" },
                "retention_ms": retention_s * 1000,
            });
            match ctx.v1.post("/v1/topics", body).await {
                Ok(_) => true,
                Err(e) if e.is("ALREADY_EXISTS") => return Err(SqsError::queue_name_exists(&name)),
                Err(e) => return Err(e.to_sqs(&name)),
            }
        }
    };
    let (config, stored) = ctx.front().doc(&ctx.state.broker, &name).await?;
    if !created && stored.stored {
        // A queue made before: the given attributes must match it.
        let same = queue_attrs::same_as_given(
            &stored,
            config.retention_ms / 1000,
            &input.attributes,
            fifo,
        )?;
        return if same {
            Ok(url)
        } else {
            Err(SqsError::queue_name_exists(&name))
        };
    }
    // A topic without a document: a create cut short (or a topic made
    // through /v1) is finished, if its retention is the one asked for.
    if !created
        && changes
            .retention_s
            .is_some_and(|r| r * 1000 != config.retention_ms)
    {
        return Err(SqsError::queue_name_exists(&name));
    }
    let mut doc = wanted;
    doc.topic_created_ms = config.created_ms;
    doc.last_modified_s = ctx.state.broker.clock.now_ms() / 1000;
    doc.tags = input.tags;
    let group = format!("/v1/groups/{}", seg(&topic));
    ctx.v1
        .put(&group, group_body(&doc))
        .await
        .map_err(|e| e.to_sqs(&name))?;
    if created {
        ctx.v1
            .post(
                &format!("{group}/offsets/reset"),
                json!({"topic": topic, "to": "EARLIEST"}),
            )
            .await
            .map_err(|e| e.to_sqs(&name))?;
    }
    ctx.front().store(&ctx.state.broker, &name, doc).await?;
    Ok(url)
}

pub async fn get_url(ctx: &Ctx, input: QueueNameIn) -> Result<Value, SqsError> {
    if input.queue_name.is_empty() {
        return Err(SqsError::missing("QueueName"));
    }
    let name = input.queue_name;
    check_queue_name(&name).map_err(|_| SqsError::queue_does_not_exist(&name))?;
    ctx.front().topic(&ctx.state.broker, &name).await?;
    if !ctx.caller.sees_topic(&topic_of(&name)) {
        return Err(SqsError::access_denied(format!(
            "{} may not use queue {name}",
            ctx.caller.principal()
        )));
    }
    Ok(json!({ "QueueUrl": ctx.front().naming.url(&name) }))
}

pub async fn list(ctx: &Ctx, input: ListQueuesIn) -> Result<Value, SqsError> {
    let limit = match input.max_results {
        None => None,
        Some(n) if (1..=1000).contains(&n) => Some(n as usize),
        Some(n) => {
            return Err(SqsError::invalid_parameter(format!(
                "Value {n} for parameter MaxResults is invalid. Reason: must be between 1 and 1000."
            )));
        }
    };
    let after = match input.next_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| SqsError::invalid_parameter("Invalid NextToken."))?,
        ),
        None => None,
    };
    let prefix = input.queue_name_prefix.unwrap_or_default();
    let listed = ctx.v1.get("/v1/topics").await.map_err(|e| e.to_sqs("*"))?;
    let mut names: Vec<String> = listed["topics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .filter_map(naming::queue_of_topic)
        .filter(|q| q.starts_with(&prefix))
        .filter(|q| after.as_deref().is_none_or(|a| *q > a))
        .map(str::to_string)
        .collect();
    names.sort();
    let cap = limit.unwrap_or(1000);
    let more = names.len() > cap;
    names.truncate(cap);
    let urls: Vec<String> = names.iter().map(|n| ctx.front().naming.url(n)).collect();
    let mut out = json!({ "QueueUrls": urls });
    if more
        && limit.is_some()
        && let Some(last) = names.last()
    {
        out["NextToken"] = Value::String(URL_SAFE_NO_PAD.encode(last));
    }
    Ok(out)
}

pub async fn delete(ctx: &Ctx, input: QueueUrlIn) -> Result<Value, SqsError> {
    let name = naming::queue_from_url(&input.queue_url)?;
    ctx.v1
        .delete(&format!("/v1/topics/{}", seg(&topic_of(&name))))
        .await
        .map_err(|e| e.to_sqs(&input.queue_url))?;
    ctx.front().forget(&name).await;
    Ok(json!({}))
}

/// The group's totals on the queue: (visible, in flight, delayed).
async fn counts(ctx: &Ctx, name: &str) -> Result<(u64, u64, u64), SqsError> {
    let topic = topic_of(name);
    let got = ctx
        .v1
        .get(&format!(
            "/v1/groups/{}/offsets?topic={}",
            seg(&topic),
            seg(&topic)
        ))
        .await
        .map_err(|e| e.to_sqs(name))?;
    let total = &got["total"];
    let n = |k: &str| total[k].as_u64().unwrap_or(0);
    Ok((
        n("lag").saturating_sub(n("inflight")),
        n("inflight"),
        n("pending_timers"),
    ))
}

pub async fn get_attributes(ctx: &Ctx, input: GetAttributesIn) -> Result<Value, SqsError> {
    let name = naming::queue_from_url(&input.queue_url)?;
    let wanted = queue_attrs::requested(&input.attribute_names)?;
    let (config, doc) = ctx.front().doc(&ctx.state.broker, &name).await?;
    if !ctx.caller.sees_topic(&config.name) {
        return Err(SqsError::access_denied(format!(
            "{} may not use queue {name}",
            ctx.caller.principal()
        )));
    }
    let fifo = is_fifo(&name);
    let needs_counts = wanted.iter().any(|w| w.starts_with("Approximate"));
    let (visible, inflight, delayed) = if needs_counts {
        counts(ctx, &name).await?
    } else {
        (0, 0, 0)
    };
    let naming = &ctx.front().naming;
    let mut out = serde_json::Map::new();
    for key in wanted {
        let value = match key {
            "VisibilityTimeout" => doc.visibility_timeout_s.to_string(),
            "MaximumMessageSize" => doc.maximum_message_size.to_string(),
            "MessageRetentionPeriod" => (config.retention_ms / 1000).to_string(),
            "ApproximateNumberOfMessages" => visible.to_string(),
            "ApproximateNumberOfMessagesNotVisible" => inflight.to_string(),
            "ApproximateNumberOfMessagesDelayed" => delayed.to_string(),
            "CreatedTimestamp" => (config.created_ms / 1000).to_string(),
            "LastModifiedTimestamp" => doc.last_modified_s.to_string(),
            "QueueArn" => naming.arn(&name),
            "DelaySeconds" => doc.delay_s.to_string(),
            "ReceiveMessageWaitTimeSeconds" => doc.receive_wait_s.to_string(),
            "RedrivePolicy" => match &doc.redrive {
                Some(r) => json!({"deadLetterTargetArn": naming.arn(&r.target), "maxReceiveCount": r.max_receive_count}).to_string(),
                None => continue,
            },
            "RedriveAllowPolicy" => match &doc.redrive_allow {
                Some(p) => p.clone(),
                None => continue,
            },
            "FifoQueue" if fifo => "true".into(),
            "ContentBasedDeduplication" if fifo => doc.content_based_dedup.to_string(),
            "DeduplicationScope" if fifo => if doc.dedup_per_group { "messageGroup" } else { "queue" }.into(),
            "FifoThroughputLimit" if fifo => if doc.throughput_per_group { "perMessageGroupId" } else { "perQueue" }.into(),
            "SqsManagedSseEnabled" => "false".into(),
            _ => continue,
        };
        out.insert(key.to_string(), Value::String(value));
    }
    Ok(json!({ "Attributes": out }))
}

pub async fn set_attributes(ctx: &Ctx, input: SetAttributesIn) -> Result<Value, SqsError> {
    let name = naming::queue_from_url(&input.queue_url)?;
    let attributes = input
        .attributes
        .ok_or_else(|| SqsError::missing("Attributes"))?;
    let (config, stored) = ctx.front().doc(&ctx.state.broker, &name).await?;
    let mut doc = (*stored).clone();
    let changes = queue_attrs::apply(&mut doc, &attributes, is_fifo(&name), false)?;
    if let Some(r) = &doc.redrive
        && changes.redrive_given
    {
        check_redrive(ctx, &name, r).await?;
    }
    // The PATCH is also the permission check (ADMIN on the topic).
    let retention_ms = changes
        .retention_s
        .map_or(config.retention_ms, |s| s * 1000);
    ctx.v1
        .patch(
            &format!("/v1/topics/{}", seg(&config.name)),
            json!({ "retention_ms": retention_ms }),
        )
        .await
        .map_err(|e| e.to_sqs(&name))?;
    if changes.redrive_given {
        ctx.v1
            .put(
                &format!("/v1/groups/{}", seg(&config.name)),
                group_body(&doc),
            )
            .await
            .map_err(|e| e.to_sqs(&name))?;
    }
    doc.last_modified_s = ctx.state.broker.clock.now_ms() / 1000;
    ctx.front().store(&ctx.state.broker, &name, doc).await?;
    Ok(json!({}))
}

pub async fn purge(ctx: &Ctx, input: QueueUrlIn) -> Result<Value, SqsError> {
    let name = naming::queue_from_url(&input.queue_url)?;
    let topic = topic_of(&name);
    ctx.front().topic(&ctx.state.broker, &name).await?;
    ctx.v1
        .post(
            &format!("/v1/groups/{}/offsets/reset", seg(&topic)),
            json!({ "topic": topic, "to": "LATEST" }),
        )
        .await
        .map_err(|e| e.to_sqs(&name))?;
    Ok(json!({}))
}

pub async fn list_tags(ctx: &Ctx, input: QueueUrlIn) -> Result<Value, SqsError> {
    let name = naming::queue_from_url(&input.queue_url)?;
    let (config, doc) = ctx.front().doc(&ctx.state.broker, &name).await?;
    if !ctx.caller.sees_topic(&config.name) {
        return Err(SqsError::access_denied(format!(
            "{} may not use queue {name}",
            ctx.caller.principal()
        )));
    }
    Ok(json!({ "Tags": doc.tags }))
}

async fn retag(
    ctx: &Ctx,
    url: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>),
) -> Result<Value, SqsError> {
    let name = naming::queue_from_url(url)?;
    ctx.require(&[Action::Admin], &name)?;
    let (_, stored) = ctx.front().doc(&ctx.state.broker, &name).await?;
    let mut doc = (*stored).clone();
    change(&mut doc.tags);
    check_tags(&doc.tags)?;
    ctx.front().store(&ctx.state.broker, &name, doc).await?;
    Ok(json!({}))
}

pub async fn tag(ctx: &Ctx, input: TagIn) -> Result<Value, SqsError> {
    let tags = input.tags.ok_or_else(|| SqsError::missing("Tags"))?;
    retag(ctx, &input.queue_url, |t| t.extend(tags)).await
}

pub async fn untag(ctx: &Ctx, input: UntagIn) -> Result<Value, SqsError> {
    let keys = input.tag_keys.ok_or_else(|| SqsError::missing("TagKeys"))?;
    retag(ctx, &input.queue_url, |t| {
        for k in &keys {
            t.remove(k);
        }
    })
    .await
}
