//! `/v1/topics`: create, list, describe, grow and delete topics.
//!
//! Invariants: metadata writes are serialized by the registry's admin lock;
//! a delete flips the topic's `deleted` flag under its write lock (waiting
//! for in-flight appends), removes the metadata, then the hot data, so no
//! message can be stored into a topic being deleted.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::{ApiJson, ApiPath};
use crate::error::{ApiError, ApiResult, ErrorBody, error_chain};
use crate::state::AppState;
use crate::topics::{DEFAULT_QUEUES, DEFAULT_RETENTION_MS, Durability, MessageType, TopicConfig};
use crate::validate;

/// `POST /v1/topics` body. Unknown fields are rejected (400).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// `[A-Za-z0-9][A-Za-z0-9._-]{0,126}`; names starting `%` are reserved (400).
    pub name: String,
    /// 1-1024, default 8.
    pub queues: Option<u32>,
    /// Default NORMAL. TRANSACTION is rejected (400): this node has no half-message store yet.
    pub message_type: Option<MessageType>,
    /// At least 60000, default 259200000 (3 days).
    pub retention_ms: Option<u64>,
    /// Default SYNC. OBJECT is rejected (400): this node has no object-store tier yet.
    pub durability: Option<Durability>,
}

/// `PATCH /v1/topics/{topic}` body. Unknown fields are rejected (400).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTopic {
    /// New number of queues: may only grow (a smaller number is 400).
    pub queues: Option<u32>,
    /// New retention, at least 60000.
    pub retention_ms: Option<u64>,
}

/// `GET /v1/topics` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicConfig>,
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
    /// Always 0 on this node (no object-store tier yet).
    pub cold_bytes: u64,
    /// Always 0 on this node (no object-store tier yet).
    pub cold_segments: u64,
    /// Id of the node that owns the queue (this node).
    pub owner: String,
}

/// `GET /v1/topics/{topic}` answer: the topic object whose `queues` is the
/// per-queue array, plus `queue_count` (the number of queues).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicDetail {
    pub name: String,
    pub queues: Vec<QueueInfo>,
    pub queue_count: u32,
    pub message_type: MessageType,
    pub retention_ms: u64,
    pub durability: Durability,
    pub created_ms: i64,
}

/// Create a topic.
#[utoipa::path(post, path = "/v1/topics", tag = "topics", request_body = CreateTopic,
    description = "Creates a topic. 201 with the topic object when new, 200 when it exists with \
        the same settings, 409 ALREADY_EXISTS when it exists with others. Names starting `%` are \
        system names and cannot be created (400). message_type TRANSACTION and durability OBJECT \
        are rejected with 400 INVALID_ARGUMENT: this node has no half-message store and no \
        object-store tier yet. Unknown fields are 400; a non-JSON content type is 415.",
    responses(
        (status = 201, body = TopicConfig, description = "Created"),
        (status = 200, body = TopicConfig, description = "Already exists with the same settings"),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
    ))]
pub async fn create_topic(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<CreateTopic>,
) -> ApiResult<(StatusCode, Json<TopicConfig>)> {
    validate::user_topic_name(&req.name)?;
    let wanted = TopicConfig {
        name: req.name,
        queues: req.queues.unwrap_or(DEFAULT_QUEUES),
        message_type: req.message_type.unwrap_or(MessageType::Normal),
        retention_ms: req.retention_ms.unwrap_or(DEFAULT_RETENTION_MS),
        durability: req.durability.unwrap_or(Durability::Sync),
        created_ms: state.clock.now_ms(),
    };
    wanted.validate()?;
    let _admin = state.topics.admin.lock().await;
    if let Some(existing) = state.topics.get(&wanted.name) {
        let existing = existing.config();
        if existing.same_settings(&wanted) {
            return Ok((StatusCode::OK, Json(existing)));
        }
        return Err(ApiError::new(
            crate::error::ErrorCode::AlreadyExists,
            format!(
                "topic {:?} already exists with different settings",
                wanted.name
            ),
        ));
    }
    // The object store's copy first: a topic exists only once a fresh node would find it.
    state
        .tier
        .put_topic_meta(&wanted.name, crate::topics::encode_topic(&wanted).into())
        .await?;
    let st = state.clone();
    let config = wanted.clone();
    tokio::task::spawn_blocking(move || st.topics.put_blocking(config))
        .await?
        .map_err(|e| ApiError::internal("writing topic metadata", e))?;
    tracing::info!(topic = %wanted.name, "topic created");
    Ok((StatusCode::CREATED, Json(wanted)))
}

/// List topics.
#[utoipa::path(get, path = "/v1/topics", tag = "topics",
    description = "All topics (including system `%DLQ%` topics), sorted by name.",
    responses((status = 200, body = TopicList)))]
pub async fn list_topics(State(state): State<Arc<AppState>>) -> Json<TopicList> {
    Json(TopicList {
        topics: state.topics.list().iter().map(|t| t.config()).collect(),
    })
}

/// Describe a topic and its queues.
#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name (percent-encode `%`)")),
    description = "The topic object where `queues` is the per-queue array (`queue`, `min_offset`, \
        `max_offset` = next offset, `hot_bytes` on this node's disk, `cold_bytes` and \
        `cold_segments` in the object store, `owner` = this node's id) and `queue_count` is the \
        number of queues. A queue never written has min_offset = max_offset = 0.",
    responses((status = 200, body = TopicDetail), (status = 404, body = ErrorBody)))]
pub async fn get_topic(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<TopicDetail>> {
    let config = state.topics.require(&name)?.config();
    let mut queues = Vec::with_capacity(config.queues as usize);
    for q in 0..config.queues {
        let log = crate::tiered::TieredQueue::open(&state, &config.name, q).await?;
        let hot_bytes = log.hot.as_ref().map_or(0, |h| h.stats().disk_bytes);
        let cold = log.cold.as_deref();
        queues.push(QueueInfo {
            queue: q,
            min_offset: log.min_offset(),
            max_offset: log.max_offset(),
            hot_bytes,
            cold_bytes: cold.map_or(0, |m| m.segments.iter().map(|s| s.bytes).sum()),
            cold_segments: cold.map_or(0, |m| m.segments.len() as u64),
            owner: state.node_id.clone(),
        });
    }
    Ok(Json(TopicDetail {
        name: config.name,
        queues,
        queue_count: config.queues,
        message_type: config.message_type,
        retention_ms: config.retention_ms,
        durability: config.durability,
        created_ms: config.created_ms,
    }))
}

/// Grow a topic or change its retention.
#[utoipa::path(patch, path = "/v1/topics/{topic}", tag = "topics", request_body = PatchTopic,
    params(("topic" = String, Path, description = "Topic name")),
    description = "Changes `queues` (may only grow: fewer is 400 INVALID_ARGUMENT) and/or \
        `retention_ms` (at least 60000). Other fields are 400. Returns the topic object.",
    responses((status = 200, body = TopicConfig), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn patch_topic(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PatchTopic>,
) -> ApiResult<Json<TopicConfig>> {
    let _admin = state.topics.admin.lock().await;
    let mut config = state.topics.require(&name)?.config();
    if let Some(queues) = req.queues {
        if queues < config.queues {
            return Err(ApiError::invalid(format!(
                "queues may only grow: the topic has {}, asked {queues}",
                config.queues
            )));
        }
        config.queues = queues;
    }
    if let Some(retention_ms) = req.retention_ms {
        config.retention_ms = retention_ms;
    }
    config.validate()?;
    state
        .tier
        .put_topic_meta(&config.name, crate::topics::encode_topic(&config).into())
        .await?;
    let st = state.clone();
    let to_write = config.clone();
    tokio::task::spawn_blocking(move || st.topics.put_blocking(to_write))
        .await?
        .map_err(|e| ApiError::internal("writing topic metadata", e))?;
    Ok(Json(config))
}

/// Delete a topic and its data.
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
    let _admin = state.topics.admin.lock().await;
    let topic = state.topics.require(&name)?;
    let mut deleted = topic.deleted.write().await;
    // Objects first (metadata copy, manifests, segments): once they are gone no
    // node can bring the topic back, and a topic created later with the same
    // name starts empty. If the store is down nothing local has changed yet.
    state.tier.delete_topic(&name).await?;
    let st = state.clone();
    let n = name.clone();
    tokio::task::spawn_blocking(move || st.topics.remove_blocking(&n))
        .await?
        .map_err(|e| ApiError::internal("removing topic metadata", e))?;
    *deleted = true;
    state.dedup.forget_topic(&name);
    let st = state.clone();
    let n = name.clone();
    let removed = tokio::task::spawn_blocking(move || st.hot.remove_topic(&n)).await?;
    if let Err(e) = removed {
        tracing::error!(topic = %name, error = %error_chain(&e), "topic deleted but its data remains");
        return Err(ApiError::internal(
            "removing the topic's data (the topic is deleted; its data is removed at the next start)",
            e,
        ));
    }
    // Sweep anything an upload in flight wrote meanwhile.
    if let Err(e) = state.tier.delete_topic(&name).await {
        tracing::warn!(topic = %name, error = %error_chain(&e), "objects uploaded during the delete may remain");
    }
    tracing::info!(topic = %name, "topic deleted");
    Ok(StatusCode::NO_CONTENT)
}
