//! Consumer group endpoints (API.md "Consumer groups"): settings, receive,
//! ack, change-invisibility, offsets and reset (backtracking). The semantics
//! and the limits decided where the contract is silent are
//! `shale_broker::groups::api` (also in the OpenAPI text below).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shale_broker::groups::api::{ReceiveOptions, ResetSpec};
use shale_broker::groups::deliver::AckOutcome;
use shale_broker::topic_admin::Created;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::message::{BodyEncoding, MessageObject};
use crate::state::AppState;
use crate::wire::{FilterBody, GroupBody, GroupObject, OffsetsTotalObject, QueueOffsetsObject};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupSummary {
    #[serde(flatten)]
    pub config: GroupObject,
    /// Sum over the queues the group has consumed from of `max_offset -
    /// committed_offset` (in a cluster: summed over the nodes serving them).
    pub lag: u64,
    /// Part of `lag` still on the serving nodes' local disks (see
    /// `QueueOffsets.lag_hot`).
    pub lag_hot: u64,
    /// Part of `lag` only in the object store (see `QueueOffsets.lag_cold`).
    pub lag_cold: u64,
}

/// Create or update a group.
#[utoipa::path(put, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path)), request_body = GroupBody,
    description = "Creates (201) or replaces (200) a group's settings: `consume_mode` CLUSTERING | \
        BROADCASTING, `max_delivery_attempts` 1-1000 (default 16), `retry_backoff_ms` (1-64 delays, \
        each at most a day; default RocketMQ's 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h, \
        the last repeating), `consume_from` LATEST | EARLIEST | {\"timestamp_ms\": T}. Omitted fields \
        take their defaults; a `name` in the body must equal the path.",
    responses((status = 200, body = GroupObject), (status = 201, body = GroupObject), (status = 400, body = ErrorBody)))]
pub async fn put_group(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<GroupBody>,
) -> ApiResult<(StatusCode, Json<GroupObject>)> {
    let (created, cfg) = state.broker.put_group(&name, body.into()).await?;
    let status = match created {
        Created::New => StatusCode::CREATED,
        Created::Existing => StatusCode::OK,
    };
    Ok((status, Json(cfg.into())))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
}

/// List groups with their total lag.
#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    description = "Every group, with its lag summed over the cluster and split by tier (`lag_hot` \
        on the serving nodes' disks, `lag_cold` only in the object store); with auth, only those \
        the token may SUBSCRIBE or ADMIN.",
    responses((status = 200, body = GroupList)))]
pub async fn list_groups(
    State(state): State<Arc<AppState>>,
    request: axum::http::request::Parts,
) -> ApiResult<Json<Value>> {
    let caller = request.extensions.get::<crate::auth::Caller>();
    let groups = state
        .broker
        .list_groups()
        .await?
        .into_iter()
        .filter(|(config, _)| caller.is_none_or(|c| c.sees_group(&config.name)))
        .map(|(config, lag)| GroupSummary {
            config: config.into(),
            lag: lag.lag,
            lag_hot: lag.lag_hot,
            lag_cold: lag.lag_cold,
        })
        .collect();
    let local = serde_json::to_value(GroupList { groups })
        .map_err(|e| ApiError::internal("encoding groups", e))?;
    if crate::cluster::is_forwarded(&request.headers) {
        return Ok(Json(local));
    }
    Ok(Json(
        crate::cluster::gather::sum_lag(&state, &request, local).await?,
    ))
}

#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups", params(("group" = String, Path)),
    responses((status = 200, body = GroupObject), (status = 404, body = ErrorBody)))]
pub async fn get_group(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<GroupObject>> {
    Ok(Json(state.broker.get_group(&name)?.into()))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBody {
    #[schema(pattern = "^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,126}|%[A-Za-z0-9._%-]{0,132})$")]
    pub topic: String,
    /// 1-64, default 16.
    #[schema(minimum = 1, maximum = 64)]
    pub max_messages: Option<u64>,
    /// 1000-43200000, default 30000.
    #[schema(minimum = 1000, maximum = 43200000)]
    pub invisible_ms: Option<i64>,
    /// 0-30000, default 0.
    #[schema(minimum = 0, maximum = 30000)]
    pub wait_ms: Option<u64>,
    pub filter: Option<FilterBody>,
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
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReceiveBody>,
) -> ApiResult<Json<Value>> {
    let raw =
        serde_json::to_value(&body).map_err(|e| ApiError::internal("encoding a receive", e))?;
    if !crate::cluster::is_forwarded(&headers)
        && let Some(topic) = state.broker.topics.get(&body.topic)
    {
        let others = crate::cluster::gather::other_nodes(&state, &topic.name, topic.queues());
        if !others.is_empty() {
            return Ok(Json(
                crate::cluster::gather::receive(
                    &state,
                    &crate::auth::Credentials::of(&headers),
                    &group,
                    raw,
                    others,
                )
                .await?,
            ));
        }
    }
    Ok(Json(receive_here(&state, &group, &raw).await?))
}

/// A receive over the queues this node serves (the JSON answer of [`receive`]).
pub async fn receive_here(state: &Arc<AppState>, group: &str, raw: &Value) -> ApiResult<Value> {
    let body: ReceiveBody = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::invalid(format!("receive body: {e}")))?;
    let opts = ReceiveOptions {
        topic: body.topic,
        max_messages: body.max_messages,
        invisible_ms: body.invisible_ms,
        wait_ms: body.wait_ms,
        filter: body.filter.map(Into::into),
        consumer_id: body.consumer_id,
    };
    let (topic, got) = state.broker.receive(group, opts).await?;
    let encoding = body.encoding.unwrap_or_default();
    let messages = got
        .into_iter()
        .map(|d| ReceivedMessage {
            message: MessageObject::from_record(&topic, d.queue, d.record, encoding),
            receipt_handle: d.receipt_handle,
            delivery_attempt: d.attempt,
            invisible_until_ms: d.invisible_until_ms,
        })
        .collect();
    serde_json::to_value(ReceiveResponse { messages })
        .map_err(|e| ApiError::internal("encoding a receive answer", e))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    #[schema(pattern = "^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,126}|%[A-Za-z0-9._%-]{0,132})$")]
    pub topic: String,
    /// 1-1024 handles.
    #[schema(min_items = 1, max_items = 1024)]
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
    headers: HeaderMap,
    ApiJson(body): ApiJson<AckBody>,
) -> ApiResult<Json<AckResponse>> {
    let outcomes = state
        .broker
        .ack(&group, &body.topic, &body.receipt_handles)
        .await?;
    let mut elsewhere = std::collections::BTreeMap::new();
    let mut results: Vec<Value> = body
        .receipt_handles
        .iter()
        .zip(outcomes)
        .enumerate()
        .map(|(i, (h, o))| match o {
            AckOutcome::Ok => serde_json::json!({"receipt_handle": h, "ok": true}),
            AckOutcome::Err(e) => {
                if let Some(at) = e.elsewhere() {
                    elsewhere.insert(i, at.address.clone());
                }
                serde_json::json!({
                    "receipt_handle": h,
                    "error": {"code": e.code().as_str(), "message": e.message()},
                })
            }
        })
        .collect();
    if !elsewhere.is_empty() && !crate::cluster::is_forwarded(&headers) {
        crate::cluster::gather::forward_acks(
            &state,
            &crate::auth::Credentials::of(&headers),
            &group,
            &body.topic,
            &body.receipt_handles,
            elsewhere,
            &mut results,
        )
        .await;
    }
    Ok(Json(AckResponse { results }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeInvisibilityBody {
    #[schema(pattern = "^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,126}|%[A-Za-z0-9._%-]{0,132})$")]
    pub topic: String,
    pub receipt_handle: String,
    /// 0-43200000 (0: visible again now).
    #[schema(minimum = 0, maximum = 43200000)]
    pub invisible_ms: i64,
    /// `false` with `invisible_ms: 0`: give the message back for delivery at
    /// once, without the group's retry backoff. Default `true`.
    pub retry_backoff: Option<bool>,
    /// `true`: the handle stays the same and good until the message is
    /// delivered again (SQS's rule), instead of a new one replacing it.
    /// Default `false`.
    pub keep_receipt_handle: Option<bool>,
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
        group's backoff for its attempt, exactly as when its invisibility runs out. \
        `\"retry_backoff\": false` with `invisible_ms` 0 gives the message back for delivery at once, \
        without the backoff (a consumer returning messages it will not process, e.g. on shutdown); \
        it still counts as a delivery attempt. `retry_backoff: false` with another `invisible_ms` is 400. \
        `\"keep_receipt_handle\": true` keeps the handle (the answer repeats it): it stays good until the \
        message is delivered again, as SQS handles do.",
    responses((status = 200, body = ChangeInvisibilityResponse), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "RECEIPT_HANDLE_EXPIRED")))]
pub async fn change_invisibility(
    State(state): State<Arc<AppState>>,
    ApiPath(group): ApiPath<String>,
    ApiJson(body): ApiJson<ChangeInvisibilityBody>,
) -> ApiResult<Json<ChangeInvisibilityResponse>> {
    let (receipt_handle, invisible_until_ms) = match body.retry_backoff {
        Some(false) if body.invisible_ms != 0 => {
            return Err(ApiError::invalid(
                "retry_backoff false gives a message back at once: it needs invisible_ms 0",
            ));
        }
        Some(false) => {
            state
                .broker
                .give_back(&group, &body.topic, &body.receipt_handle)
                .await?
        }
        _ => {
            state
                .broker
                .change_invisibility(
                    &group,
                    &body.topic,
                    &body.receipt_handle,
                    body.invisible_ms,
                    body.keep_receipt_handle.unwrap_or(false),
                )
                .await?
        }
    };
    Ok(Json(ChangeInvisibilityResponse {
        receipt_handle,
        invisible_until_ms,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OffsetsParams {
    /// The topic (required).
    #[param(
        required = true,
        pattern = "^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,126}|%[A-Za-z0-9._%-]{0,132})$"
    )]
    pub topic: Option<String>,
    pub consumer_id: Option<String>,
}

/// Offsets of a group on a topic.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OffsetsResponse {
    pub queues: Vec<QueueOffsetsObject>,
    /// The queues' figures summed (after every node's queues are in).
    pub total: OffsetsTotalObject,
}

impl OffsetsResponse {
    fn of(queues: Vec<QueueOffsetsObject>) -> Self {
        let total = OffsetsTotalObject::of(&queues);
        OffsetsResponse { queues, total }
    }
}

/// `answer` (an [`OffsetsResponse`] whose queues other nodes may have
/// replaced) with its `total` recomputed over the queues it now holds.
fn with_total(answer: Value) -> ApiResult<Value> {
    #[derive(Deserialize)]
    struct Queues {
        queues: Vec<QueueOffsetsObject>,
    }
    let Queues { queues } = serde_json::from_value(answer)
        .map_err(|e| ApiError::internal("decoding gathered offsets", e))?;
    serde_json::to_value(OffsetsResponse::of(queues))
        .map_err(|e| ApiError::internal("encoding offsets", e))
}

/// A group's offsets on a topic.
#[utoipa::path(get, path = "/v1/groups/{group}/offsets", tag = "groups",
    params(("group" = String, Path), OffsetsParams),
    description = "Per queue: `committed_offset` (lowest unacked; for a queue the group never \
        consumed, where it would start), `max_offset`, `lag` = max - committed, `inflight`; the \
        lag split by tier (`lag_hot` from the first offset still on the serving node's disk, \
        `lag_cold` below it, only in the object store), `retrying` (delivered, invisibility over, \
        waiting for a redelivery), `pending_timers` (delay messages of the queue not yet due), \
        `consume_rate_per_s` (the group's acks a second over the last minute, null without any) \
        and `catch_up_ms` (lag at that rate, null without a rate). `total` sums the queues.",
    responses((status = 200, body = OffsetsResponse), (status = 404, body = ErrorBody)))]
pub async fn get_offsets(
    State(state): State<Arc<AppState>>,
    ApiPath(group): ApiPath<String>,
    request: axum::http::request::Parts,
    ApiQuery(params): ApiQuery<OffsetsParams>,
) -> ApiResult<Json<Value>> {
    let offsets = state
        .broker
        .group_offsets(
            &group,
            params.topic.as_deref(),
            params.consumer_id.as_deref(),
        )
        .await?;
    let local = encode_offsets(offsets)?;
    match params.topic {
        Some(topic) if !crate::cluster::is_forwarded(&request.headers) => Ok(Json(with_total(
            crate::cluster::gather::overlay_queues(&state, &topic, &request, None, local).await?,
        )?)),
        _ => Ok(Json(local)),
    }
}

fn encode_offsets(offsets: Vec<shale_broker::groups::deliver::QueueOffsets>) -> ApiResult<Value> {
    let queues = offsets.into_iter().map(Into::into).collect();
    serde_json::to_value(OffsetsResponse::of(queues))
        .map_err(|e| ApiError::internal("encoding offsets", e))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    #[schema(pattern = "^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,126}|%[A-Za-z0-9._%-]{0,132})$")]
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
    request: axum::http::request::Parts,
    ApiJson(body): ApiJson<ResetBody>,
) -> ApiResult<Json<Value>> {
    let raw = serde_json::to_value(&body).map_err(|e| ApiError::internal("encoding a reset", e))?;
    let topic = body.topic.clone();
    let spec = ResetSpec {
        timestamp_ms: body.timestamp_ms,
        to: body.to,
        offsets: body.offsets,
    };
    let offsets = state
        .broker
        .reset_offsets(&group, &body.topic, spec, body.consumer_id.as_deref())
        .await?;
    let local = encode_offsets(offsets)?;
    if crate::cluster::is_forwarded(&request.headers) {
        return Ok(Json(local));
    }
    Ok(Json(with_total(
        crate::cluster::gather::overlay_queues(&state, &topic, &request, Some(&raw), local).await?,
    )?))
}
