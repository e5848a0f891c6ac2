//! The NDJSON replay stream: one message object per line, chunked.
//!
//! Invariants: memory stays constant whatever the range (the queue is read
//! at most [`CHUNK_MESSAGES`] records and [`CHUNK_BYTES`] at a time, and at
//! most [`CHUNKS_AHEAD`] encoded chunks wait for the client); the stream ends
//! at the `max_offset` seen when the request started, or after
//! `max_messages` messages. A storage error after the first byte cannot
//! change the status any more: it is logged and the stream is aborted, so the
//! client sees a truncated body, never a clean end.
//!
//! Pipelining: a task reads and encodes the next chunks (on a blocking
//! thread: the scan may decode cold row groups, and JSON encoding is most of
//! the CPU of a replay) while the connection sends the previous one, so a
//! replay uses two cores. The task stops when the client goes away.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::filter::TagFilter;
use super::scan::{self, ScanLimits};
use crate::error::error_chain;
use crate::message::{BodyEncoding, MessageView};
use crate::tiered::TieredQueue;

/// The media type of the stream.
pub const NDJSON: &str = "application/x-ndjson";

/// Most messages per chunk.
const CHUNK_MESSAGES: usize = 1024;
/// Most stored bytes read per chunk.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Encoded chunks that may wait for the connection.
const CHUNKS_AHEAD: usize = 2;

struct Cursor {
    topic: String,
    queue: u32,
    log: TieredQueue,
    next: u64,
    end: u64,
    remaining: u64,
    filter: TagFilter,
    encoding: BodyEncoding,
}

/// Aborts the producing task when the response body is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
        filter,
        encoding,
    };
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_AHEAD);
    let producer = AbortOnDrop(tokio::spawn(produce(cursor, tx)));
    let chunks = futures::stream::poll_fn(move |cx| {
        let _keep = &producer;
        rx.poll_recv(cx)
    });
    ([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(chunks)).into_response()
}

/// Sends the encoded chunks of the cursor's range, then ends (dropping `tx`
/// ends the body). An error is sent as the last item, which aborts the body.
async fn produce(mut cursor: Cursor, tx: mpsc::Sender<std::io::Result<Bytes>>) {
    let (topic, queue) = (cursor.topic.clone(), cursor.queue);
    let abort = async |e: String| {
        tracing::error!(%topic, queue, error = %e, "NDJSON stream aborted");
        let _ = tx.send(Err(std::io::Error::other(e))).await;
    };
    loop {
        let step = tokio::task::spawn_blocking(move || {
            let chunk = next_chunk(&mut cursor);
            (cursor, chunk)
        })
        .await;
        let chunk = match step {
            Ok((back, chunk)) => {
                cursor = back;
                chunk
            }
            Err(e) => return abort(error_chain(&e)).await,
        };
        match chunk {
            Ok(Some(bytes)) => {
                if tx.send(Ok(bytes)).await.is_err() {
                    return; // the client went away
                }
            }
            Ok(None) => return,
            Err(e) => return abort(e).await,
        }
    }
}

/// The next non-empty chunk of lines, or `None` at the end. Blocking.
fn next_chunk(c: &mut Cursor) -> Result<Option<Bytes>, String> {
    while c.next < c.end && c.remaining > 0 {
        let limits = ScanLimits {
            max_messages: c.remaining.min(CHUNK_MESSAGES as u64) as usize,
            max_bytes: CHUNK_BYTES,
            end_offset: c.end,
        };
        let scanned = scan::scan(&c.log, c.next, &c.filter, limits).map_err(|e| error_chain(&e))?;
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
        let mut out = Vec::with_capacity(body_bytes as usize * 2);
        for r in &scanned.records {
            let view = MessageView::of(&c.topic, c.queue, r, c.encoding);
            serde_json::to_writer(&mut out, &view).map_err(|e| e.to_string())?;
            out.push(b'\n');
        }
        return Ok(Some(Bytes::from(out)));
    }
    Ok(None)
}
