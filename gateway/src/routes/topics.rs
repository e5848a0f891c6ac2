//! `/v1/topics`: create, list, describe, grow and delete topics (the
//! semantics are `shale_broker::topic_admin`; each handler decodes, calls the
//! broker once, encodes).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::{ApiJson, ApiPath};
use shale_broker::topic_admin::{Created, NewTopic, TopicPatch};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::wire::{DurabilityWire, MessageTypeWire, TopicObject};

/// `POST /v1/topics` body. Unknown fields are rejected (400).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// `[A-Za-z0-9][A-Za-z0-9._-]{0,126}`; names starting `%` are reserved (400).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$")]
    pub name: String,
    /// 1-1024, default 8.
    #[schema(minimum = 1, maximum = 1024)]
    pub queues: Option<u32>,
    /// Default NORMAL. TRANSACTION topics take only half messages (see Transactions).
    pub message_type: Option<MessageTypeWire>,
    /// At least 60000, default 259200000 (3 days).
    #[schema(minimum = 60000, maximum = 9223372036854775807_u64)]
    pub retention_ms: Option<u64>,
    /// Default SYNC. ASYNC answers once written to the node's page cache; SYNC after the local
    /// group-commit fsync; OBJECT after the node's object-store group commit (one PUT per commit
    /// for all its queues) as well, so a lost node loses nothing acknowledged. Readers see a
    /// message once it is durable at its topic's level.
    pub durability: Option<DurabilityWire>,
}

/// `PATCH /v1/topics/{topic}` body. Unknown fields are rejected (400).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTopic {
    /// New number of queues: may only grow (a smaller number is 400), at most 1024.
    #[schema(minimum = 1, maximum = 1024)]
    pub queues: Option<u32>,
    /// New retention, at least 60000.
    #[schema(minimum = 60000, maximum = 9223372036854775807_u64)]
    pub retention_ms: Option<u64>,
}

/// `GET /v1/topics` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicObject>,
}

/// One queue of a topic, as described by `GET /v1/topics/{topic}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueInfo {
    pub queue: u32,
    /// Lowest offset still stored.
    pub min_offset: u64,
    /// The offset the next message will get.
    pub max_offset: u64,
    /// Bytes of the queue's segments on the local disk.
    pub hot_bytes: u64,
    /// Bytes of the queue's sealed segments in the object store (Parquet).
    pub cold_bytes: u64,
    /// Number of the queue's sealed segments in the object store.
    pub cold_segments: u64,
    /// Id of the node that owns the queue (this node).
    pub owner: String,
    /// Delay messages of the queue not yet due (DELAY topics; 0 otherwise).
    pub pending_timers: u64,
    /// Transactions of the queue not decided yet (TRANSACTION topics; 0 otherwise).
    pub pending_transactions: u64,
}

/// `GET /v1/topics/{topic}` answer: the topic object whose `queues` is the
/// per-queue array, plus `queue_count` (the number of queues).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicDetail {
    pub name: String,
    pub queues: Vec<QueueInfo>,
    pub queue_count: u32,
    pub message_type: MessageTypeWire,
    pub retention_ms: u64,
    pub durability: DurabilityWire,
    pub created_ms: i64,
    /// Delay messages not yet due (DELAY topics; 0 for others).
    pub pending_timers: u64,
    /// Transactions not decided yet (TRANSACTION topics; 0 for others).
    pub pending_transactions: u64,
}

/// Create a topic.
#[utoipa::path(post, path = "/v1/topics", tag = "topics", request_body = CreateTopic,
    description = "Creates a topic. 201 with the topic object when new, 200 when it exists with \
        the same settings, 409 ALREADY_EXISTS when it exists with others. Names starting `%` are \
        system names and cannot be created (400). TRANSACTION topics keep half messages out of their \
        queue until committed (see the transactions operations). DELAY topics keep delay messages \
        out of their queue until due, at any durability (at OBJECT a delay message is answered \
        once it is in the object store); their timers are spilled to the object store and move \
        with their queue between nodes. durability OBJECT answers a \
        produce only once its messages are in the object store (see the topic object). Unknown fields are 400; a non-JSON content type is 415.",
    responses(
        (status = 201, body = TopicObject, description = "Created"),
        (status = 200, body = TopicObject, description = "Already exists with the same settings"),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
    ))]
pub async fn create_topic(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<CreateTopic>,
) -> ApiResult<(StatusCode, Json<TopicObject>)> {
    let new = NewTopic {
        name: req.name,
        queues: req.queues,
        message_type: req.message_type.map(Into::into),
        retention_ms: req.retention_ms,
        durability: req.durability.map(Into::into),
    };
    let (created, config) = state.broker.create_topic(new).await?;
    let status = match created {
        Created::New => StatusCode::CREATED,
        Created::Existing => StatusCode::OK,
    };
    Ok((status, Json(config.into())))
}

#[utoipa::path(get, path = "/v1/topics", tag = "topics",
    description = "All topics (including system `%DLQ%` topics), sorted by name; with auth, only \
        those the token has some action on.",
    responses((status = 200, body = TopicList)))]
pub async fn list_topics(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
) -> Json<TopicList> {
    let sees = |name: &str| {
        caller
            .as_ref()
            .is_none_or(|Extension(c)| c.sees_topic(name))
    };
    Json(TopicList {
        topics: state
            .broker
            .list_topics()
            .into_iter()
            .filter(|t| sees(&t.name))
            .map(Into::into)
            .collect(),
    })
}

#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name (percent-encode `%`)")),
    description = "The topic object where `queues` is the per-queue array (`queue`, `min_offset`, \
        `max_offset` = next offset readers will see (durable at the topic's level), `hot_bytes` \
        on this node's disk, `cold_bytes` and `cold_segments` in the object store, `owner` = the \
        node serving the queue; for queues served by another node the offsets are those of the \
        object store and of this node's disk) and `queue_count` is the \
        number of queues. A queue never written has min_offset = max_offset = 0.",
    responses((status = 200, body = TopicDetail), (status = 404, body = ErrorBody)))]
pub async fn get_topic(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    request: axum::http::request::Parts,
) -> ApiResult<Json<serde_json::Value>> {
    let described = state.broker.describe_topic(&name).await?;
    let config = described.config;
    let queues = described
        .queues
        .into_iter()
        .map(|q| QueueInfo {
            queue: q.queue,
            min_offset: q.min_offset,
            max_offset: q.max_offset,
            hot_bytes: q.hot_bytes,
            cold_bytes: q.cold_bytes,
            cold_segments: q.cold_segments,
            owner: q.owner,
            pending_timers: q.pending_timers,
            pending_transactions: q.pending_transactions,
        })
        .collect::<Vec<QueueInfo>>();
    let pending_timers = queues.iter().map(|q| q.pending_timers).sum();
    let pending_transactions = queues.iter().map(|q| q.pending_transactions).sum();
    let detail = TopicDetail {
        name: config.name,
        queues,
        queue_count: config.queues,
        message_type: config.message_type.into(),
        retention_ms: config.retention_ms,
        durability: config.durability.into(),
        created_ms: config.created_ms,
        pending_timers,
        pending_transactions,
    };
    let local =
        serde_json::to_value(detail).map_err(|e| ApiError::internal("encoding a topic", e))?;
    if crate::cluster::is_forwarded(&request.headers) {
        return Ok(Json(local));
    }
    let name = local["name"].as_str().unwrap_or_default().to_string();
    let mut gathered =
        crate::cluster::gather::overlay_queues(&state, &name, &request, None, local).await?;
    // Each queue's counts come from the node serving it.
    for field in ["pending_timers", "pending_transactions"] {
        let pending: u64 = gathered["queues"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| q[field].as_u64())
            .sum();
        gathered[field] = pending.into();
    }
    Ok(Json(gathered))
}

#[utoipa::path(patch, path = "/v1/topics/{topic}", tag = "topics", request_body = PatchTopic,
    params(("topic" = String, Path, description = "Topic name")),
    description = "Changes `queues` (may only grow: fewer is 400 INVALID_ARGUMENT) and/or \
        `retention_ms` (at least 60000). Other fields are 400. Returns the topic object.",
    responses((status = 200, body = TopicObject), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn patch_topic(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PatchTopic>,
) -> ApiResult<Json<TopicObject>> {
    let patch = TopicPatch {
        queues: req.queues,
        retention_ms: req.retention_ms,
    };
    Ok(Json(state.broker.patch_topic(&name, patch).await?.into()))
}

#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name")),
    description = "Removes the topic's metadata, then its hot data; 204. In-flight produce calls \
        finish first; later ones get 404 TOPIC_NOT_FOUND. If the data cannot be removed the \
        answer is 500 and the node removes it at its next start.",
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_topic(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.broker.delete_topic(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
