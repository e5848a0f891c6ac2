//! The NDJSON replay stream: one message object per line, chunked.
//!
//! Invariants: memory stays constant whatever the range (the queue is read
//! in the bounded chunks of a broker [`Replay`], and at
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
use shale_broker::read::Replay;
use tokio::sync::mpsc;

use crate::error::error_chain;
use crate::message::{BodyEncoding, MessageView};

/// The media type of the stream.
pub const NDJSON: &str = "application/x-ndjson";

/// Encoded chunks waiting for the client at most.
const CHUNKS_AHEAD: usize = 2;

/// Aborts the producer task when the response body is dropped (client gone).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The streamed answer of `replay`.
pub fn stream(replay: Replay, encoding: BodyEncoding) -> Response {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_AHEAD);
    let producer = AbortOnDrop(tokio::spawn(produce(replay, encoding, tx)));
    let chunks = futures::stream::poll_fn(move |cx| {
        let _keep = &producer;
        rx.poll_recv(cx)
    });
    ([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(chunks)).into_response()
}

/// Reads and encodes chunks on a blocking thread, one step ahead of the connection.
async fn produce(
    mut replay: Replay,
    encoding: BodyEncoding,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
) {
    let (topic, queue) = (replay.topic().to_string(), replay.queue());
    let abort = async |e: String| {
        tracing::error!(%topic, queue, error = %e, "NDJSON stream aborted");
        let _ = tx.send(Err(std::io::Error::other(e))).await;
    };
    loop {
        let step = tokio::task::spawn_blocking(move || {
            let chunk = next_chunk(&mut replay, encoding);
            (replay, chunk)
        })
        .await;
        let chunk = match step {
            Ok((back, chunk)) => {
                replay = back;
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

/// The next chunk of the replay as NDJSON lines. Blocking.
fn next_chunk(replay: &mut Replay, encoding: BodyEncoding) -> Result<Option<Bytes>, String> {
    let Some(records) = replay.next_chunk().map_err(|e| error_chain(&e))? else {
        return Ok(None);
    };
    let body_bytes: usize = records.iter().map(|r| r.body.len()).sum();
    let mut out = Vec::with_capacity(body_bytes * 2);
    for r in &records {
        let view = MessageView::of(replay.topic(), replay.queue(), r, encoding);
        serde_json::to_writer(&mut out, &view).map_err(|e| e.to_string())?;
        out.push(b'\n');
    }
    Ok(Some(Bytes::from(out)))
}
