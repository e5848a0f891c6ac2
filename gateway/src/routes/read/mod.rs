//! Reading a queue by offset (replay), its NDJSON stream, and the offset of
//! a timestamp.
//!
//! Invariants: a queue number at or above the topic's queues is 404
//! NOT_FOUND; a queue never written has `min_offset = max_offset = 0`; an
//! offset outside `[min_offset, max_offset]` is 416; a long poll waits on the
//! queue's `max_offset` watch (no polling loop), bounded by `wait_ms` and cut
//! short when the node starts draining.

pub mod filter;
pub mod ndjson;
pub mod scan;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shale_hot::QueueLog;

use super::extract::{ApiPath, ApiQuery};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::message::{BodyEncoding, MessageObject};
use crate::state::AppState;
use crate::tiered::TieredQueue;
use crate::topics::Topic;
use filter::TagFilter;
use scan::ScanLimits;

/// Default and largest `max_messages` of a JSON read.
pub const DEFAULT_MAX_MESSAGES: u64 = 100;
pub const MAX_MAX_MESSAGES: u64 = 1024;
/// Default and largest `max_bytes` (1 MiB, 32 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
pub const MAX_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Longest long poll.
pub const MAX_WAIT_MS: u64 = 30_000;

/// Query of `GET .../queues/{queue}/messages`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// First offset to read; default `min_offset`.
    pub offset: Option<u64>,
    /// 1-1024, default 100 (NDJSON: any number ≥ 1, default all up to the `max_offset` at the request's start).
    pub max_messages: Option<u64>,
    /// 1-33554432, default 1048576: stop before returning more encoded bytes (at least one message is returned). Ignored by NDJSON.
    pub max_bytes: Option<u64>,
    /// 0-30000: when `offset == max_offset`, wait up to this long for a message. Ignored by NDJSON.
    pub wait_ms: Option<u64>,
    /// `*`, `a` or `a||b`: return only messages with one of these tags; skipped messages still advance `next_offset`.
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
pub(crate) async fn locate(
    state: &AppState,
    topic: &str,
    queue: u32,
) -> ApiResult<(Arc<Topic>, TieredQueue)> {
    let t = state.topics.require(topic)?;
    if queue >= t.queues() {
        return Err(ApiError::not_found(format!(
            "queue {queue} does not exist: topic {topic:?} has {} queues",
            t.queues()
        )));
    }
    let log = TieredQueue::open(state, &t.name, queue).await?;
    Ok((t, log))
}

/// The checked start offset of a read.
pub(crate) fn start_offset(log: &TieredQueue, offset: Option<u64>) -> ApiResult<u64> {
    let (min_offset, max_offset) = (log.min_offset(), log.max_offset());
    let offset = offset.unwrap_or(min_offset);
    if offset < min_offset || offset > max_offset {
        return Err(ApiError::new(
            ErrorCode::OffsetOutOfRange,
            format!(
                "offset {offset} is outside the queue's range [{}, {}] (min_offset, max_offset)",
                min_offset, max_offset
            ),
        ));
    }
    Ok(offset)
}

fn in_range(name: &str, value: Option<u64>, default: u64, max: u64) -> ApiResult<u64> {
    let v = value.unwrap_or(default);
    if v == 0 || v > max {
        return Err(ApiError::invalid(format!(
            "{name} must be 1-{max}, got {v}"
        )));
    }
    Ok(v)
}

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
        a queue never written has min_offset = max_offset = 0. `max_bytes` counts encoded records; \
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
    let (topic, mut log) = locate(&state, &topic, queue).await?;
    let filter = TagFilter::parse(params.tag.as_deref())?;
    let encoding = params.encoding.unwrap_or_default();
    let offset = start_offset(&log, params.offset)?;
    if wants_ndjson(&headers) {
        let max_messages = params.max_messages.unwrap_or(u64::MAX);
        if max_messages == 0 {
            return Err(ApiError::invalid("max_messages must be at least 1"));
        }
        return Ok(ndjson::stream(
            topic.name.clone(),
            queue,
            log.clone(),
            offset,
            log.max_offset(),
            max_messages,
            filter,
            encoding,
        ));
    }
    let max_messages = in_range(
        "max_messages",
        params.max_messages,
        DEFAULT_MAX_MESSAGES,
        MAX_MAX_MESSAGES,
    )?;
    let max_bytes = in_range(
        "max_bytes",
        params.max_bytes,
        DEFAULT_MAX_BYTES,
        MAX_MAX_BYTES,
    )?;
    let wait_ms = params.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid(format!(
            "wait_ms must be at most {MAX_WAIT_MS}, got {wait_ms}"
        )));
    }
    if wait_ms > 0 && offset == log.max_offset() {
        let hot = match log.hot.clone() {
            Some(hot) => hot,
            None => open_for_wait(&state, &topic, queue).await?,
        };
        wait_for_data(&state, &hot, offset, Duration::from_millis(wait_ms)).await;
        log.hot = Some(hot);
    }
    let limits = ScanLimits {
        max_messages: max_messages as usize,
        max_bytes: max_bytes as usize,
        end_offset: u64::MAX,
    };
    let scan_log = log.clone();
    let scanned =
        tokio::task::spawn_blocking(move || scan::scan(&scan_log, offset, &filter, limits))
            .await??;
    let body_bytes: u64 = scanned.records.iter().map(|r| r.body.len() as u64).sum();
    crate::metrics::read(&topic.name, scanned.records.len() as u64, body_bytes);
    let messages = scanned
        .records
        .into_iter()
        .map(|r| MessageObject::from_record(&topic.name, queue, r, encoding))
        .collect();
    Ok(Json(ReadResponse {
        messages,
        next_offset: scanned.next_offset,
        min_offset: log.min_offset(),
        max_offset: log.max_offset(),
    })
    .into_response())
}

/// Creates the (empty) queue so a long poll can watch it; refused once the
/// topic is deleted so no queue directory outlives its topic.
async fn open_for_wait(
    state: &Arc<AppState>,
    topic: &Arc<Topic>,
    queue: u32,
) -> ApiResult<Arc<QueueLog>> {
    let deleted = topic.deleted.read().await;
    if *deleted {
        return Err(ApiError::topic_not_found(&topic.name));
    }
    let log = state.queue_for_write(&topic.name, queue).await?;
    drop(deleted);
    Ok(log)
}

/// Returns once `max_offset` passes `offset`, after `wait`, or when draining starts.
async fn wait_for_data(state: &AppState, log: &QueueLog, offset: u64, wait: Duration) {
    let mut rx = log.watch_max_offset();
    tokio::select! {
        _ = rx.wait_for(|max| *max > offset) => {}
        _ = tokio::time::sleep(wait) => {}
        _ = state.drained() => {}
    }
}

/// The offset of a timestamp.
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
    let (_, log) = locate(&state, &topic, queue).await?;
    let offset = log.offset_for_timestamp(params.timestamp_ms).await?;
    Ok(Json(OffsetResponse { offset }))
}
