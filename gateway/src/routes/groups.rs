//! Consumer group endpoints (API.md "Consumer groups"): settings, receive,
//! ack, change-invisibility, offsets and reset (backtracking).
//!
//! Decisions where the contract is silent (also in the OpenAPI text):
//! `max_messages` of a receive is 1-64 (default 16); `invisible_ms`
//! 1000-43200000 (default 30000); `wait_ms` at most 30000 (default 0); an ack
//! takes at most 1024 handles; a nack (`invisible_ms` 0) makes the message
//! deliverable again after the group's backoff for its attempt, like a
//! timeout; `GET .../offsets` of a group that does not exist is 404
//! GROUP_NOT_FOUND, while receive and reset create it with defaults.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::groups::config::GroupConfig;
use crate::groups::deliver::{self, AckOutcome, QueueOffsets, ReceiveRequest, ResetTo};
use crate::groups::filter::{Filter, FilterSpec};
use crate::message::{BodyEncoding, MessageObject};
use crate::state::AppState;

const DEFAULT_RECEIVE: u64 = 16;
const MAX_RECEIVE: u64 = 64;
const DEFAULT_INVISIBLE_MS: i64 = 30_000;
const MIN_INVISIBLE_MS: i64 = 1_000;
const MAX_INVISIBLE_MS: i64 = 43_200_000;
const MAX_WAIT_MS: u64 = 30_000;
const MAX_ACK_HANDLES: usize = 1024;

fn group_not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::GroupNotFound,
        format!("group {name:?} does not exist"),
    )
}

/// A group with its total lag.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupSummary {
    #[serde(flatten)]
    pub config: GroupConfig,
    /// Sum over the queues this node has delivered from of `max_offset - committed_offset`.
    pub lag: u64,
}

/// Create or update a group.
#[utoipa::path(put, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path)), request_body = GroupConfig,
    description = "Creates (201) or replaces (200) a group's settings: `consume_mode` CLUSTERING | \
        BROADCASTING, `max_delivery_attempts` 1-1000 (default 16), `retry_backoff_ms` (1-64 delays, \
        each at most a day; default RocketMQ's 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h, \
        the last repeating), `consume_from` LATEST | EARLIEST | {\"timestamp_ms\": T}. Omitted fields \
        take their defaults; a `name` in the body must equal the path.",
    responses((status = 200, body = GroupConfig), (status = 201, body = GroupConfig), (status = 400, body = ErrorBody)))]
pub async fn put_group(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(mut cfg): ApiJson<GroupConfig>,
) -> ApiResult<(StatusCode, Json<GroupConfig>)> {
    if !cfg.name.is_empty() && cfg.name != name {
        return Err(ApiError::invalid(format!(
            "the body names group {:?}, the path {name:?}",
            cfg.name
        )));
    }
    cfg.name = name;
    cfg.validate()?;
    let _admin = state.groups.admin.lock().await;
    let existed = state.groups.get(&cfg.name).is_some();
    let cfg = deliver::put_group(&state, cfg).await?;
    Ok((
        if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(cfg),
    ))
}

/// `GET /v1/groups` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
}

/// List groups with their total lag.
#[utoipa::path(get, path = "/v1/groups", tag = "groups", responses((status = 200, body = GroupList)))]
pub async fn list_groups(State(state): State<Arc<AppState>>) -> ApiResult<Json<GroupList>> {
    let mut groups = Vec::new();
    for config in state.groups.list() {
        let mut lag = 0;
        let keys: Vec<_> = state
            .groups
            .cursors
            .lock()
            .await
            .iter()
            .filter(|(k, _)| k.group == config.name)
            .map(|(k, c)| (k.clone(), c.committed))
            .collect();
        for (k, committed) in keys {
            if state.topics.get(&k.topic).is_none() {
                continue;
            }
            let tq = crate::tiered::TieredQueue::open(&state, &k.topic, k.queue).await?;
            lag += tq.max_offset().saturating_sub(committed);
        }
        groups.push(GroupSummary { config, lag });
    }
    Ok(Json(GroupList { groups }))
}

/// Get a group's settings.
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups", params(("group" = String, Path)),
    responses((status = 200, body = GroupConfig), (status = 404, body = ErrorBody)))]
pub async fn get_group(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<GroupConfig>> {
    state
        .groups
        .get(&name)
        .map(Json)
        .ok_or_else(|| group_not_found(&name))
}

/// A receive.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBody {
    pub topic: String,
    pub max_messages: Option<u64>,
    pub invisible_ms: Option<i64>,
    pub wait_ms: Option<u64>,
    pub filter: Option<FilterSpec>,
    pub consumer_id: Option<String>,
    /// `base64` forces `body_base64`.
    pub encoding: Option<BodyEncoding>,
}

/// A delivered message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReceivedMessage {
    #[serde(flatten)]
    pub message: MessageObject,
    pub receipt_handle: String,
    pub delivery_attempt: u32,
    pub invisible_until_ms: i64,
}

/// `receive` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReceiveResponse {
    pub messages: Vec<ReceivedMessage>,
}

/// Receive messages (POP).
#[utoipa::path(post, path = "/v1/groups/{group}/receive", tag = "groups",
    params(("group" = String, Path)), request_body = ReceiveBody,
    description = "Delivers up to `max_messages` (1-64, default 16) messages of `topic`, each invisible \
        to the group's other receivers for `invisible_ms` (1000-43200000, default 30000). With \
        `wait_ms` (at most 30000) the call waits until at least one message is available. The group is \
        created with defaults on first use. `filter`: {\"type\": \"TAG\", \"expression\": \"a||b\"} or \
        {\"type\": \"SQL92\", \"expression\": \"region = 'eu' AND amount > 100\"}; an invalid one is 400; \
        messages filtered out count as consumed. FIFO topics: within a message_group nothing later \
        is delivered while an earlier message is in flight. BROADCASTING groups need `consumer_id`. \
        A message lost to damage on a node's disk before upload (see the read endpoint) cannot be \
        delivered or dead-lettered: the group steps over it as consumed, logs an error and counts \
        it in `shale_group_lost_skipped_total`.",
    responses((status = 200, body = ReceiveResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn receive(
    State(state): State<Arc<AppState>>,
    ApiPath(group): ApiPath<String>,
    ApiJson(body): ApiJson<ReceiveBody>,
) -> ApiResult<Json<ReceiveResponse>> {
    let topic = state.topics.require(&body.topic)?;
    let max_messages = body.max_messages.unwrap_or(DEFAULT_RECEIVE);
    if max_messages == 0 || max_messages > MAX_RECEIVE {
        return Err(ApiError::invalid(format!(
            "max_messages must be 1-{MAX_RECEIVE}, got {max_messages}"
        )));
    }
    let invisible_ms = body.invisible_ms.unwrap_or(DEFAULT_INVISIBLE_MS);
    if !(MIN_INVISIBLE_MS..=MAX_INVISIBLE_MS).contains(&invisible_ms) {
        return Err(ApiError::invalid(format!(
            "invisible_ms must be {MIN_INVISIBLE_MS}-{MAX_INVISIBLE_MS}, got {invisible_ms}"
        )));
    }
    let wait_ms = body.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid(format!(
            "wait_ms must be at most {MAX_WAIT_MS}, got {wait_ms}"
        )));
    }
    let filter = Filter::compile(body.filter.as_ref())?;
    let cfg = deliver::ensure_group(&state, &group).await?;
    let consumer = deliver::consumer_for(&cfg, body.consumer_id.as_deref())?;
    let req = ReceiveRequest {
        topic: topic.clone(),
        max_messages: max_messages as usize,
        invisible_ms,
        wait: Duration::from_millis(wait_ms),
        filter,
        consumer,
    };
    let got = deliver::receive(&state, &cfg, &req).await?;
    let encoding = body.encoding.unwrap_or_default();
    let bytes: u64 = got.iter().map(|d| d.record.body.len() as u64).sum();
    crate::metrics::read(&topic.name, got.len() as u64, bytes);
    let messages = got
        .into_iter()
        .map(|d| ReceivedMessage {
            message: MessageObject::from_record(&topic.name, d.queue, d.record, encoding),
            receipt_handle: d.receipt_handle,
            delivery_attempt: d.attempt,
            invisible_until_ms: d.invisible_until_ms,
        })
        .collect();
    Ok(Json(ReceiveResponse { messages }))
}

/// An ack.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub topic: String,
    pub receipt_handles: Vec<String>,
}

/// `ack` answer: one result per handle, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AckResponse {
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<Value>,
}

/// Acknowledge messages.
#[utoipa::path(post, path = "/v1/groups/{group}/ack", tag = "groups",
    params(("group" = String, Path)), request_body = AckBody,
    description = "One result per handle, in order: {\"receipt_handle\", \"ok\": true} or \
        {\"receipt_handle\", \"error\": {code, message}} with INVALID_RECEIPT_HANDLE (forged, malformed, \
        another group or topic) or RECEIPT_HANDLE_EXPIRED (the message became visible again or was \
        redelivered). At most 1024 handles.",
    responses((status = 200, body = AckResponse), (status = 400, body = ErrorBody)))]
pub async fn ack(
    State(state): State<Arc<AppState>>,
    ApiPath(group): ApiPath<String>,
    ApiJson(body): ApiJson<AckBody>,
) -> ApiResult<Json<AckResponse>> {
    state.topics.require(&body.topic)?;
    if body.receipt_handles.is_empty() || body.receipt_handles.len() > MAX_ACK_HANDLES {
        return Err(ApiError::invalid(format!(
            "receipt_handles must hold 1-{MAX_ACK_HANDLES} handles"
        )));
    }
    let outcomes = deliver::ack(&state, &group, &body.topic, &body.receipt_handles).await?;
    let results = body
        .receipt_handles
        .iter()
        .zip(outcomes)
        .map(|(h, o)| match o {
            AckOutcome::Ok => serde_json::json!({"receipt_handle": h, "ok": true}),
            AckOutcome::Err(e) => {
                serde_json::json!({"receipt_handle": h, "error": {"code": e.code.as_str(), "message": e.message}})
            }
        })
        .collect();
    Ok(Json(AckResponse { results }))
}

/// A change of invisibility.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeInvisibilityBody {
    pub topic: String,
    pub receipt_handle: String,
    pub invisible_ms: i64,
}

/// `change-invisibility` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeInvisibilityResponse {
    pub receipt_handle: String,
    pub invisible_until_ms: i64,
}

/// Extend or end a delivery's invisibility.
#[utoipa::path(post, path = "/v1/groups/{group}/change-invisibility", tag = "groups",
    params(("group" = String, Path)), request_body = ChangeInvisibilityBody,
    description = "Sets the delivery invisible for `invisible_ms` (0-43200000) from now and returns a \
        new handle (the old one expires). 0 = nack now: the message is delivered again after the \
        group's backoff for its attempt, exactly as when its invisibility runs out.",
    responses((status = 200, body = ChangeInvisibilityResponse), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "RECEIPT_HANDLE_EXPIRED")))]
pub async fn change_invisibility(
    State(state): State<Arc<AppState>>,
    ApiPath(group): ApiPath<String>,
    ApiJson(body): ApiJson<ChangeInvisibilityBody>,
) -> ApiResult<Json<ChangeInvisibilityResponse>> {
    state.topics.require(&body.topic)?;
    if !(0..=MAX_INVISIBLE_MS).contains(&body.invisible_ms) {
        return Err(ApiError::invalid(format!(
            "invisible_ms must be 0-{MAX_INVISIBLE_MS}, got {}",
            body.invisible_ms
        )));
    }
    let (receipt_handle, invisible_until_ms) = deliver::change_invisibility(
        &state,
        &group,
        &body.topic,
        &body.receipt_handle,
        body.invisible_ms,
    )
    .await?;
    Ok(Json(ChangeInvisibilityResponse {
        receipt_handle,
        invisible_until_ms,
    }))
}

/// `?topic=&consumer_id=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct OffsetsParams {
    pub topic: Option<String>,
    pub consumer_id: Option<String>,
}

/// Offsets of a group on a topic.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OffsetsResponse {
    pub queues: Vec<QueueOffsets>,
}

/// A group's offsets on a topic.
#[utoipa::path(get, path = "/v1/groups/{group}/offsets", tag = "groups",
    params(("group" = String, Path), OffsetsParams),
    description = "Per queue: `committed_offset` (lowest unacked; for a queue the group never \
        consumed, where it would start), `max_offset`, `lag` = max - committed, `inflight`.",
    responses((status = 200, body = OffsetsResponse), (status = 404, body = ErrorBody)))]
pub async fn get_offsets(
    State(state): State<Arc<AppState>>,
    ApiPath(group): ApiPath<String>,
    ApiQuery(params): ApiQuery<OffsetsParams>,
) -> ApiResult<Json<OffsetsResponse>> {
    let cfg = state
        .groups
        .get(&group)
        .ok_or_else(|| group_not_found(&group))?;
    let topic_name = params
        .topic
        .ok_or_else(|| ApiError::invalid("topic is required"))?;
    let topic = state.topics.require(&topic_name)?;
    let consumer = deliver::consumer_for(&cfg, params.consumer_id.as_deref())?;
    Ok(Json(OffsetsResponse {
        queues: deliver::offsets(&state, &cfg, &topic, &consumer).await?,
    }))
}

/// A reset: exactly one of `timestamp_ms`, `to`, `offsets`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    pub topic: String,
    pub timestamp_ms: Option<i64>,
    /// `EARLIEST` or `LATEST`.
    pub to: Option<String>,
    /// Queue number (as a string key) → offset.
    pub offsets: Option<std::collections::BTreeMap<String, u64>>,
    pub consumer_id: Option<String>,
}

/// Reset a group's offsets (backtracking).
#[utoipa::path(post, path = "/v1/groups/{group}/offsets/reset", tag = "groups",
    params(("group" = String, Path)), request_body = ResetBody,
    description = "Moves the group on `topic` to a time (the first message with store_ms >= T), \
        EARLIEST, LATEST, or explicit per-queue offsets (others unchanged), across the whole retention \
        (hot or cold). Deliveries in flight are forgotten (their handles expire). An explicit offset \
        outside a queue's range is 416. Answers the new offsets.",
    responses((status = 200, body = OffsetsResponse), (status = 400, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn reset_offsets(
    State(state): State<Arc<AppState>>,
    ApiPath(group): ApiPath<String>,
    ApiJson(body): ApiJson<ResetBody>,
) -> ApiResult<Json<OffsetsResponse>> {
    let topic = state.topics.require(&body.topic)?;
    let to = match (body.timestamp_ms, body.to.as_deref(), &body.offsets) {
        (Some(ts), None, None) => ResetTo::Timestamp(ts),
        (None, Some("EARLIEST"), None) => ResetTo::Earliest,
        (None, Some("LATEST"), None) => ResetTo::Latest,
        (None, Some(other), None) => {
            return Err(ApiError::invalid(format!(
                "to must be EARLIEST or LATEST, got {other:?}"
            )));
        }
        (None, None, Some(map)) => {
            let mut list = Vec::new();
            for (q, o) in map {
                let q: u32 = q.parse().map_err(|_| {
                    ApiError::invalid(format!("offsets key {q:?} is not a queue number"))
                })?;
                list.push((q, *o));
            }
            ResetTo::Offsets(list)
        }
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of timestamp_ms, to, offsets",
            ));
        }
    };
    let cfg = deliver::ensure_group(&state, &group).await?;
    let consumer = deliver::consumer_for(&cfg, body.consumer_id.as_deref())?;
    Ok(Json(OffsetsResponse {
        queues: deliver::reset(&state, &cfg, &topic, &consumer, to).await?,
    }))
}
