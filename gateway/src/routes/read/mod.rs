//! Reading a queue by offset (replay), its NDJSON stream, and the offset of
//! a timestamp. The semantics (ranges, limits, long polls) are
//! `shale_broker::read`; handlers decode, call the broker once, encode.

pub mod ndjson;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shale_broker::read::ReadRequest;

use super::extract::{ApiPath, ApiQuery};
use crate::error::{ApiResult, ErrorBody};
use crate::message::{BodyEncoding, MessageObject};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// First offset to read; default `min_offset`.
    pub offset: Option<u64>,
    /// 1-1024, default 100 (NDJSON: any number ≥ 1, default all up to the `max_offset` at the request's start).
    #[param(minimum = 1, maximum = 1024)]
    pub max_messages: Option<u64>,
    /// 1-33554432, default 1048576: stop before returning more encoded bytes (at least one message is returned). Ignored by NDJSON.
    #[param(minimum = 1, maximum = 33554432)]
    pub max_bytes: Option<u64>,
    /// 0-30000: when `offset == max_offset`, wait up to this long for a message. Ignored by NDJSON.
    #[param(minimum = 0, maximum = 30000)]
    pub wait_ms: Option<u64>,
    /// `*`, `a` or `a||b`: return only messages with one of these tags; skipped messages still advance `next_offset`.
    #[param(
        pattern = "^\\s*(?:\\*|[^|*\\s\\x00-\\x1f\\x7f-\\x9f]{1,128}(?:\\s*\\|\\|\\s*[^|*\\s\\x00-\\x1f\\x7f-\\x9f]{1,128})*)\\s*$"
    )]
    pub tag: Option<String>,
    /// `base64` forces `body_base64`.
    pub encoding: Option<BodyEncoding>,
}

/// Answer of a JSON read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadResponse {
    pub messages: Vec<MessageObject>,
    /// Where to continue reading.
    pub next_offset: u64,
    pub min_offset: u64,
    /// The offset the next stored message will get.
    pub max_offset: u64,
}

/// Query of `GET .../queues/{queue}/offset`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OffsetParams {
    /// Required: Unix ms.
    pub timestamp_ms: i64,
}

/// Answer of `GET .../queues/{queue}/offset`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OffsetResponse {
    pub offset: u64,
}

/// The topic and the queue's log (if it was ever written), or 404.
fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|m| m.split(';').next().unwrap_or("").trim() == ndjson::NDJSON)
        })
}

/// Read a queue by offset.
#[utoipa::path(get, path = "/v1/topics/{topic}/queues/{queue}/messages", tag = "messages",
    params(("topic" = String, Path), ("queue" = u32, Path), ReadParams),
    description = "Reads from `offset` (default `min_offset`). An offset below `min_offset` or above \
        `max_offset` is 416 OFFSET_OUT_OF_RANGE; a queue number ≥ the topic's queues is 404 NOT_FOUND; \
        a queue never written has min_offset = max_offset = 0. Read committed: `max_offset` is the \
        end of what is durable at the topic's level (ASYNC: written; SYNC: fsynced), no message at \
        or past it is returned, and a long poll wakes when it moves. `max_bytes` counts encoded records; \
        the first message is returned even if larger. With `wait_ms` and `offset == max_offset` the \
        call returns as soon as a message arrives (or after `wait_ms`, or at once when the node \
        starts draining). A tag filter examines at most 65536 messages / 64 MiB per call; continue \
        from `next_offset`. With `Accept: application/x-ndjson` the answer is a chunked stream of \
        one message object per line from `offset` to the `max_offset` at the request's start (or \
        `max_messages`, uncapped), honouring `tag` and `encoding`; errors found before the first \
        byte are normal JSON errors, a storage error mid-stream aborts the stream. A local copy \
        that fails its checksum is read from the object store instead when its segment was \
        uploaded. A message damaged on a node's disk before upload is lost: reading its offset is \
        500 INTERNAL naming it (a read starting before it stops just before it); read on from the \
        next offset. In the Parquet objects such an offset is a row with property `shale.lost`; \
        consumer groups step over it.",
    responses(
        (status = 200, body = ReadResponse, content_type = "application/json"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody, description = "OFFSET_OUT_OF_RANGE"),
    ))]
pub async fn read_queue(
    State(state): State<Arc<AppState>>,
    ApiPath((topic, queue)): ApiPath<(String, u32)>,
    ApiQuery(params): ApiQuery<ReadParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let encoding = params.encoding.unwrap_or_default();
    if wants_ndjson(&headers) {
        let replay = state
            .broker
            .replay(
                &topic,
                queue,
                params.offset,
                params.max_messages,
                params.tag.as_deref(),
            )
            .await?;
        return Ok(ndjson::stream(replay, encoding));
    }
    let req = ReadRequest {
        offset: params.offset,
        max_messages: params.max_messages,
        max_bytes: params.max_bytes,
        wait_ms: params.wait_ms,
        tag: params.tag,
    };
    let read = state.broker.read_queue(&topic, queue, req).await?;
    let messages = read
        .records
        .into_iter()
        .map(|r| MessageObject::from_record(&read.topic, queue, r, encoding))
        .collect();
    Ok(Json(ReadResponse {
        messages,
        next_offset: read.next_offset,
        min_offset: read.min_offset,
        max_offset: read.max_offset,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/topics/{topic}/queues/{queue}/offset", tag = "messages",
    params(("topic" = String, Path), ("queue" = u32, Path), OffsetParams),
    description = "The first offset whose message has `store_ms >= timestamp_ms`, or `max_offset` \
        when there is none (0 for a queue never written). `timestamp_ms` is required (400 without).",
    responses((status = 200, body = OffsetResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn offset_for_timestamp(
    State(state): State<Arc<AppState>>,
    ApiPath((topic, queue)): ApiPath<(String, u32)>,
    ApiQuery(params): ApiQuery<OffsetParams>,
) -> ApiResult<Json<OffsetResponse>> {
    let offset = state
        .broker
        .offset_for_timestamp(&topic, queue, params.timestamp_ms)
        .await?;
    Ok(Json(OffsetResponse { offset }))
}
