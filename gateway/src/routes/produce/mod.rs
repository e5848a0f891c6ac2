//! `POST /v1/topics/{topic}/messages`: produce, JSON or raw.
//!
//! Steps, each in its own module: parse and check limits ([`input`]), apply
//! the topic's type rules and choose queues ([`plan`]), then store with
//! dedup and durability ([`write`]). Nothing is stored unless the whole
//! request passed the first two steps.

pub mod input;
pub mod plan;
pub mod queue_choice;
pub mod write;

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use bytes::Bytes;
use serde::Serialize;

use super::extract::ApiPath;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::topics::{Durability, check_supported};
use write::ProduceResult;

/// Header asking for a stronger durability than the topic's.
pub const DURABILITY_HEADER: &str = "shale-durability";

/// Produce answer: one result per message, in request order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProduceResponse {
    pub results: Vec<ProduceResult>,
}

/// Produce messages.
#[utoipa::path(post, path = "/v1/topics/{topic}/messages", tag = "messages",
    params(
        ("topic" = String, Path, description = "Topic name"),
        ("Shale-Durability" = Option<String>, Header, description = "ASYNC | SYNC | OBJECT: a stronger \
            durability than the topic's (a weaker one is ignored). OBJECT is 400 INVALID_ARGUMENT: this \
            node has no object-store tier yet. Another value is 400."),
        ("Shale-Tag" = Option<String>, Header, description = "Raw produce: the tag"),
        ("Shale-Keys" = Option<String>, Header, description = "Raw produce: comma-separated keys (trimmed)"),
        ("Shale-Message-Group" = Option<String>, Header, description = "Raw produce: FIFO message group"),
        ("Shale-Delay-Ms" = Option<i64>, Header, description = "Raw produce: delay"),
        ("Shale-Deliver-At-Ms" = Option<i64>, Header, description = "Raw produce: delivery time"),
        ("Shale-Dedup-Id" = Option<String>, Header, description = "Raw produce: dedup id"),
        ("Shale-Property-{name}" = Option<String>, Header, description = "Raw produce: property `name`. \
            HTTP header names are case-insensitive and arrive lowercased, so property names given this \
            way are lowercase."),
    ),
    request_body(content(
        (input::ProduceRequest = "application/json"),
        (Vec<u8> = "application/octet-stream"),
    ), description = "JSON (`application/json`): `{\"messages\": [...]}`. Any other content type (or \
        none) is a raw produce: the request body is the single message's body and its metadata comes \
        from the `Shale-*` headers; an unknown `Shale-*` header is 400."),
    description = "Validates the whole request before storing anything: one invalid message is a 400 \
        and nothing is stored. Limits: 1-1024 messages; bodies 0-4 MiB (413); 32 MiB of messages per \
        request and an HTTP body of at most 48 MiB (413, to leave room for JSON and base64); unknown \
        fields 400. Type rules (400 MESSAGE_TYPE_MISMATCH): FIFO topics require `message_group` and \
        only they accept it; only DELAY topics accept, and require, one of `delay_ms`, \
        `deliver_at_ms`, `delay_level` (1-18, RocketMQ 4 table), at most 40 days ahead of the \
        request's arrival; `transaction` is always a mismatch (TRANSACTION topics are not supported \
        yet). Queue: explicit `queue` (must be below the topic's queues, else 400), else FNV-1a hash \
        of `message_group`, else one round-robin queue per request shared by all its un-pinned \
        messages. Each queue's messages are appended atomically; a request spanning queues is atomic \
        per queue. `born_ms` is the request's arrival time. `dedup_id`: a repeat on the same topic \
        within 5 minutes of the first one's store time (also within one request, also across \
        restarts) is not stored again and gets the first one's result; the id is kept in the \
        message as the reserved property `shale.dedup_id`. SYNC answers after the group-commit fsync. \
        While the node drains, or while its hot tier is over `--hot-bytes` with nothing it may \
        evict (the object store is down or behind): 503 UNAVAILABLE with Retry-After.",
    responses(
        (status = 200, body = ProduceResponse),
        (status = 400, body = ErrorBody, description = "INVALID_ARGUMENT or MESSAGE_TYPE_MISMATCH"),
        (status = 404, body = ErrorBody, description = "TOPIC_NOT_FOUND"),
        (status = 413, body = ErrorBody, description = "PAYLOAD_TOO_LARGE"),
        (status = 503, body = ErrorBody, description = "UNAVAILABLE (draining, or the hot tier over budget while the object store catches up), with Retry-After"),
        (status = 507, body = ErrorBody, description = "INSUFFICIENT_STORAGE: local disk full"),
    ))]
pub async fn produce(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ProduceResponse>> {
    let started = Instant::now();
    let born_ms = state.clock.now_ms();
    if state.is_draining() {
        return Err(ApiError::unavailable(
            "the node is shutting down; retry on another node or later",
        ));
    }
    if state.over_hot_budget() {
        // The object store has not taken the backlog (down or slow) and the
        // local budget is spent: refuse rather than fill the disk.
        return Err(ApiError::unavailable(
            "the local hot tier is over its budget while the object store catches up; retry later",
        ));
    }
    let topic = state.topics.require(&name)?;
    let config = topic.config();
    let durability = requested_durability(&headers)?.max(config.durability);
    let body = body?;
    let (inputs, has_transaction) = if input::is_json(&headers) {
        input::from_json(&body)?
    } else {
        (vec![input::from_raw(&headers, body)?], false)
    };
    let planned = plan::plan(&config, inputs, has_transaction, born_ms, || {
        topic.next_round_robin()
    })?;
    let results = write::store(&state, &topic, planned, durability).await?;
    crate::metrics::produce_duration(durability.as_str(), started);
    Ok(Json(ProduceResponse { results }))
}

/// The `Shale-Durability` header, or ASYNC (the weakest) when absent.
fn requested_durability(headers: &HeaderMap) -> Result<Durability, ApiError> {
    let Some(value) = headers.get(DURABILITY_HEADER) else {
        return Ok(Durability::Async);
    };
    let d = value
        .to_str()
        .ok()
        .and_then(Durability::parse)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Shale-Durability must be ASYNC, SYNC or OBJECT, got {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })?;
    check_supported(crate::topics::MessageType::Normal, d)?;
    Ok(d)
}
