//! Message query: by id and by key (API.md "Message query").
//!
//! An id names its queue and offset, so a lookup reads one record and
//! compares the whole id: a malformed id is 400, any miss (queue beyond the
//! topic, offset gone, random bits differ) is 404 MESSAGE_NOT_FOUND. A key
//! query asks every queue's key index and merges by `store_ms`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shale_hot::MessageId;

use super::extract::{ApiPath, ApiQuery};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::message::{BodyEncoding, MessageObject};
use crate::state::AppState;

/// Default and largest `max_messages` of a key query.
pub const DEFAULT_KEY_RESULTS: u64 = 32;
pub const MAX_KEY_RESULTS: u64 = 1024;

/// Query of `GET /v1/topics/{topic}/messages/{message_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// `base64` forces `body_base64`.
    pub encoding: Option<BodyEncoding>,
}

/// Query of `GET /v1/topics/{topic}/messages?key=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyParams {
    /// Required, 1-128 bytes.
    pub key: Option<String>,
    /// Only messages with `store_ms >= begin_ms` (default 0).
    pub begin_ms: Option<i64>,
    /// Only messages with `store_ms <= end_ms` (default: no bound).
    pub end_ms: Option<i64>,
    /// 1-1024, default 32.
    pub max_messages: Option<u64>,
    /// `base64` forces `body_base64`.
    pub encoding: Option<BodyEncoding>,
}

/// Answer of a key query.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageObject>,
}

fn message_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MessageNotFound,
        format!("message {id} not found"),
    )
}

/// Get a message by id.
#[utoipa::path(get, path = "/v1/topics/{topic}/messages/{message_id}", tag = "messages",
    params(("topic" = String, Path), ("message_id" = String, Path, description = "32 hex digits"), GetParams),
    description = "A malformed id is 400 INVALID_ARGUMENT; an id not found in this topic is 404 \
        MESSAGE_NOT_FOUND.",
    responses((status = 200, body = MessageObject), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_message(
    State(state): State<Arc<AppState>>,
    ApiPath((topic, id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<GetParams>,
) -> ApiResult<Json<MessageObject>> {
    let t = state.topics.require(&topic)?;
    let message_id: MessageId = id
        .parse()
        .map_err(|e| ApiError::invalid(format!("message id {id:?}: {e}")).with_source(e))?;
    let queue = message_id.queue();
    if queue >= t.queues() {
        return Err(message_not_found(&id));
    }
    let log = crate::tiered::TieredQueue::open(&state, &t.name, queue).await?;
    let record = log
        .read_one(message_id.offset())
        .await?
        .filter(|r| r.message_id == message_id)
        .ok_or_else(|| message_not_found(&id))?;
    crate::metrics::read(&t.name, 1, record.body.len() as u64);
    Ok(Json(MessageObject::from_record(
        &t.name,
        queue,
        record,
        params.encoding.unwrap_or_default(),
    )))
}

/// Find messages by key.
#[utoipa::path(get, path = "/v1/topics/{topic}/messages", tag = "messages",
    params(("topic" = String, Path), KeyParams),
    description = "Messages carrying `key` (required) stored in `[begin_ms, end_ms]`, over all \
        queues and both tiers (in the object store, only segments overlapping the window and row \
        groups whose bloom filter may hold the key are read), sorted by `store_ms` (then queue, \
        offset), at most `max_messages` (1-1024, default 32): when more match, the earliest are \
        returned.",
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn find_by_key(
    State(state): State<Arc<AppState>>,
    ApiPath(topic): ApiPath<String>,
    ApiQuery(params): ApiQuery<KeyParams>,
) -> ApiResult<Json<MessageList>> {
    let t = state.topics.require(&topic)?;
    let key = params
        .key
        .ok_or_else(|| ApiError::invalid("key is required"))?;
    crate::validate::keys(std::slice::from_ref(&key))?;
    let begin = params.begin_ms.unwrap_or(0);
    let end = params.end_ms.unwrap_or(i64::MAX);
    if begin > end {
        return Err(ApiError::invalid(format!(
            "begin_ms {begin} is after end_ms {end}"
        )));
    }
    let max = params.max_messages.unwrap_or(DEFAULT_KEY_RESULTS);
    if max == 0 || max > MAX_KEY_RESULTS {
        return Err(ApiError::invalid(format!(
            "max_messages must be 1-{MAX_KEY_RESULTS}, got {max}"
        )));
    }
    let key_for_cold = key.clone();
    let logs: Vec<_> = (0..t.queues())
        .filter_map(|q| state.hot.existing_queue(&t.name, q).map(|l| (q, l)))
        .collect();
    let found = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        for (q, log) in logs {
            for r in log.find_by_key(&key, begin, end, max as usize)? {
                all.push((q, r));
            }
        }
        Ok::<_, shale_hot::HotError>(all)
    })
    .await??;
    let mut found = found;
    // Cold data: messages of each queue below what its local copy still holds.
    for q in 0..t.queues() {
        let local_min = state
            .hot
            .existing_queue(&t.name, q)
            .map_or(u64::MAX, |l| l.min_offset());
        let cold = state
            .tier
            .reader()
            .find_by_key(&t.name, q, &key_for_cold, begin, end, max as usize)
            .await?;
        found.extend(
            cold.into_iter()
                .filter(|r| r.offset < local_min)
                .map(|r| (q, r)),
        );
    }
    found.sort_by_key(|(q, r)| (r.store_ms, *q, r.offset));
    found.truncate(max as usize);
    let encoding = params.encoding.unwrap_or_default();
    let body_bytes: u64 = found.iter().map(|(_, r)| r.body.len() as u64).sum();
    crate::metrics::read(&t.name, found.len() as u64, body_bytes);
    let messages = found
        .into_iter()
        .map(|(q, r)| MessageObject::from_record(&t.name, q, r, encoding))
        .collect();
    Ok(Json(MessageList { messages }))
}
