//! The NDJSON replay stream: one message object per line, chunked.
//!
//! Invariants: memory stays constant whatever the range (the queue is read
//! [`CHUNK_MESSAGES`] records at a time and each chunk is sent before the
//! next is read); the stream ends at the `max_offset` seen when the request
//! started, or after `max_messages` messages. A storage error after the
//! first byte cannot change the status any more: it is logged and the
//! stream is aborted, so the client sees a truncated body, never a clean end.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::filter::TagFilter;
use super::scan::{self, CHUNK_MESSAGES, ScanLimits};
use crate::error::error_chain;
use crate::message::{BodyEncoding, MessageObject};
use crate::tiered::TieredQueue;

/// The media type of the stream.
pub const NDJSON: &str = "application/x-ndjson";

/// Bytes read per chunk.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

struct Cursor {
    topic: String,
    queue: u32,
    log: TieredQueue,
    next: u64,
    end: u64,
    remaining: u64,
    filter: Arc<TagFilter>,
    encoding: BodyEncoding,
}

/// The streaming answer for `[offset, end)`.
#[allow(clippy::too_many_arguments)]
pub fn stream(
    topic: String,
    queue: u32,
    log: TieredQueue,
    offset: u64,
    end: u64,
    max_messages: u64,
    filter: TagFilter,
    encoding: BodyEncoding,
) -> Response {
    let cursor = Cursor {
        topic,
        queue,
        log,
        next: offset,
        end,
        remaining: max_messages,
        filter: Arc::new(filter),
        encoding,
    };
    let chunks = futures::stream::unfold(Some(cursor), |cursor| async move {
        let mut cursor = cursor?;
        match next_chunk(&mut cursor).await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(cursor))),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(topic = %cursor.topic, queue = cursor.queue, error = %e, "NDJSON stream aborted");
                Some((Err(std::io::Error::other(e)), None))
            }
        }
    });
    ([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(chunks)).into_response()
}

/// The next non-empty chunk of lines, or `None` at the end.
async fn next_chunk(c: &mut Cursor) -> Result<Option<Bytes>, String> {
    let log = Arc::new(c.log.clone());
    while c.next < c.end && c.remaining > 0 {
        let limits = ScanLimits {
            max_messages: c.remaining.min(CHUNK_MESSAGES as u64) as usize,
            max_bytes: CHUNK_BYTES,
            end_offset: c.end,
        };
        let (from, filter, log) = (c.next, c.filter.clone(), log.clone());
        let scanned = tokio::task::spawn_blocking(move || scan::scan(&log, from, &filter, limits))
            .await
            .map_err(|e| error_chain(&e))?
            .map_err(|e| error_chain(&e))?;
        if scanned.next_offset == c.next {
            // Nothing examined: the queue ends before `end` (e.g. it was deleted).
            return Ok(None);
        }
        c.next = scanned.next_offset;
        if scanned.records.is_empty() {
            continue;
        }
        c.remaining -= scanned.records.len() as u64;
        let body_bytes: u64 = scanned.records.iter().map(|r| r.body.len() as u64).sum();
        crate::metrics::read(&c.topic, scanned.records.len() as u64, body_bytes);
        let mut out = Vec::new();
        for r in scanned.records {
            let object = MessageObject::from_record(&c.topic, c.queue, r, c.encoding);
            serde_json::to_writer(&mut out, &object).map_err(|e| e.to_string())?;
            out.push(b'\n');
        }
        return Ok(Some(Bytes::from(out)));
    }
    Ok(None)
}
