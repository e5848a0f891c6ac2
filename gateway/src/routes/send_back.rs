//! `/v1/topics/{topic}/messages/{message_id}/send-back`: send a dead-letter
//! message back to its origin topic, and ask whether one was (the
//! semantics are `shale_broker::groups::send_back`).
//!
//! Auth: the route table asks SUBSCRIBE on the dead-letter topic (reading
//! it); sending back also needs PUBLISH on the origin topic, which only the
//! message names, so the handler checks it once it has read the message.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use shale_broker::groups::send_back::SentBack;

use super::extract::ApiPath;
use crate::auth::{Action, Caller};
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::state::AppState;

/// A dead-letter message sent back to its origin topic.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SentBackObject {
    /// The dead-letter message (it stays in its topic).
    pub dlq_message_id: String,
    /// The origin topic it was produced to again.
    pub topic: String,
    /// The new message in the origin topic.
    pub message_id: String,
    pub queue: u32,
    pub offset: u64,
    /// When it was sent back (the first time).
    pub sent_back_ms: i64,
}

impl From<SentBack> for SentBackObject {
    fn from(s: SentBack) -> Self {
        SentBackObject {
            dlq_message_id: s.dlq_message_id,
            topic: s.topic,
            message_id: s.message_id,
            queue: s.queue,
            offset: s.offset,
            sent_back_ms: s.sent_back_ms,
        }
    }
}

/// Send a dead-letter message back to its origin topic.
#[utoipa::path(post, path = "/v1/topics/{topic}/messages/{message_id}/send-back", tag = "groups",
    params(("topic" = String, Path, pattern = "^%DLQ%[A-Za-z0-9][A-Za-z0-9._-]{0,126}$",
            description = "A dead-letter topic `%DLQ%{group}` (percent-encode `%`)"),
        ("message_id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "32 hex digits")),
    description = "Produces the dead-letter message again to the topic named by its \
        `shale.origin_topic`, as a new message (new id and offset) with its body, tag, keys and \
        user properties plus `shale.sent_back_from` = the dead-letter message's id, at that \
        topic's durability, and records that it was sent back (in the object store). 201 with the \
        new message's place; a message already sent back answers 200 with the first record and \
        stores nothing. The dead-letter message stays in its topic. Also needs PUBLISH on the \
        origin topic (403 otherwise). 400 for a topic that is not a `%DLQ%` topic or a message \
        without `shale.origin_topic`; 404 for an unknown message or a deleted origin topic; 400 \
        MESSAGE_TYPE_MISMATCH for a FIFO origin (the copy has no message_group) or a TRANSACTION \
        origin (it takes only half messages).",
    responses((status = 201, body = SentBackObject, description = "Sent back now"),
        (status = 200, body = SentBackObject, description = "Sent back before: the first record"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn send_back(
    State(state): State<Arc<AppState>>,
    ApiPath((topic, id)): ApiPath<(String, String)>,
    request: axum::http::request::Parts,
) -> ApiResult<(StatusCode, Json<SentBackObject>)> {
    if let Some(caller) = request.extensions.get::<Caller>() {
        let origin = state.broker.dead_letter_origin(&topic, &id).await?;
        if !caller.may(&[Action::Publish], Some(&origin), None) {
            return Err(ApiError::new(
                Code::PermissionDenied,
                format!(
                    "{} may not PUBLISH on {origin:?}, the origin topic of this dead-letter message",
                    caller.principal()
                ),
            ));
        }
    }
    let done = state.broker.send_back(&topic, &id).await?;
    let status = if done.repeated {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(done.into())))
}

/// Whether a dead-letter message was sent back.
#[utoipa::path(get, path = "/v1/topics/{topic}/messages/{message_id}/send-back", tag = "groups",
    params(("topic" = String, Path, pattern = "^%DLQ%[A-Za-z0-9][A-Za-z0-9._-]{0,126}$",
            description = "A dead-letter topic `%DLQ%{group}` (percent-encode `%`)"),
        ("message_id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "32 hex digits")),
    description = "The record of the message's send-back; 404 MESSAGE_NOT_FOUND when it was not \
        sent back (or is unknown); 400 for a topic that is not a `%DLQ%` topic.",
    responses((status = 200, body = SentBackObject), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_send_back(
    State(state): State<Arc<AppState>>,
    ApiPath((topic, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<SentBackObject>> {
    Ok(Json(state.broker.sent_back(&topic, &id).await?.into()))
}
