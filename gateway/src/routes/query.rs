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
use shale_broker::read::query::{Found, KeyQuery};

use super::extract::{ApiPath, ApiQuery};
use crate::error::{ApiResult, ErrorBody};
use crate::message::{BodyEncoding, MessageObject};
use crate::state::AppState;

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
    #[param(required = true, min_length = 1, max_length = 128)]
    pub key: Option<String>,
    /// Only messages with `store_ms >= begin_ms` (default 0).
    pub begin_ms: Option<i64>,
    /// Only messages with `store_ms <= end_ms` (default: no bound).
    pub end_ms: Option<i64>,
    /// 1-1024, default 32.
    #[param(minimum = 1, maximum = 1024)]
    pub max_messages: Option<u64>,
    /// `base64` forces `body_base64`.
    pub encoding: Option<BodyEncoding>,
}

/// Answer of a key query.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageObject>,
}

/// Get a message by id.
#[utoipa::path(get, path = "/v1/topics/{topic}/messages/{message_id}", tag = "messages",
    params(("topic" = String, Path), ("message_id" = String, Path, description = "32 hex digits"), GetParams),
    description = "A malformed id is 400 INVALID_ARGUMENT; an id not found in this topic is 404 \
        MESSAGE_NOT_FOUND.",
    responses((status = 200, body = MessageObject, description = "The message; a pending delay \
        message has `state: SCHEDULED` and no `offset` or `store_ms`"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_message(
    State(state): State<Arc<AppState>>,
    ApiPath((topic, id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<GetParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let (topic, found) = state.broker.get_message(&topic, &id).await?;
    let encoding = params.encoding.unwrap_or_default();
    let mut message = MessageObject::from_record(&topic, found.queue, found.record, encoding);
    if !found.scheduled {
        return Ok(Json(
            serde_json::to_value(message).map_err(encoding_failed)?,
        ));
    }
    message.state = Some("SCHEDULED".to_string());
    let mut value = serde_json::to_value(message).map_err(encoding_failed)?;
    if let Some(fields) = value.as_object_mut() {
        // Not in its queue yet: it gets both when it is due.
        fields.remove("offset");
        fields.remove("store_ms");
    }
    Ok(Json(value))
}

fn encoding_failed(e: serde_json::Error) -> crate::error::ApiError {
    crate::error::ApiError::internal("encoding a message", e)
}

/// Recall a pending delay message.
#[utoipa::path(delete, path = "/v1/topics/{topic}/messages/{message_id}", tag = "messages",
    params(("topic" = String, Path), ("message_id" = String, Path, description = "32 hex digits")),
    description = "Recalls a delay message that is not yet due: 204, and it will never enter its \
        queue. 409 MESSAGE_ALREADY_DELIVERED once it is due and in its queue (or for a message that \
        was never delayed); 404 MESSAGE_NOT_FOUND for an unknown id or one recalled before.",
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn recall_message(
    State(state): State<Arc<AppState>>,
    ApiPath((topic, id)): ApiPath<(String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    state.broker.recall_timer(&topic, &id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

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
    request: axum::http::request::Parts,
    ApiQuery(params): ApiQuery<KeyParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let max = params.max_messages.unwrap_or(32) as usize;
    let query = KeyQuery {
        key: params.key,
        begin_ms: params.begin_ms,
        end_ms: params.end_ms,
        max_messages: params.max_messages,
    };
    let (topic, found) = state.broker.find_by_key(&topic, query).await?;
    let encoding = params.encoding.unwrap_or_default();
    let messages = found
        .into_iter()
        .map(|Found { queue, record, .. }| {
            MessageObject::from_record(&topic, queue, record, encoding)
        })
        .collect();
    let local = serde_json::to_value(MessageList { messages })
        .map_err(|e| crate::error::ApiError::internal("encoding messages", e))?;
    if crate::cluster::is_forwarded(&request.headers) {
        return Ok(Json(local));
    }
    Ok(Json(
        crate::cluster::gather::by_key(&state, &topic, &request, max, local).await?,
    ))
}
