//! Splitting a streamed body into NDJSON lines, in constant memory.
//!
//! Holds at most one partial line plus one received chunk. A body that ends
//! in the middle of a line was cut (the node aborts a stream on a storage
//! error after the first byte, API.md): that is an error, never a clean end.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

struct Lines<S> {
    chunks: S,
    buffer: BytesMut,
    context: String,
    ended: bool,
}

/// Decodes each line of `chunks` as a `T`; blank lines are skipped.
pub(crate) fn lines<T, S>(
    context: String,
    chunks: S,
) -> futures::stream::BoxStream<'static, Result<T>>
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
{
    let state = Lines {
        chunks,
        buffer: BytesMut::new(),
        context,
        ended: false,
    };
    futures::stream::try_unfold(state, |mut state| async move {
        loop {
            if let Some(end) = state.buffer.iter().position(|&b| b == b'\n') {
                let line = state.buffer.split_to(end + 1);
                if is_blank(&line) {
                    continue;
                }
                let item = decode::<T>(&state.context, &line[..end])?;
                return Ok(Some((item, state)));
            }
            if state.ended {
                if is_blank(&state.buffer) {
                    return Ok(None);
                }
                return Err(Error::Decode {
                    context: state.context,
                    reason: "the stream ended in the middle of a line (cut by the node)".into(),
                });
            }
            match state.chunks.try_next().await {
                Ok(Some(chunk)) => state.buffer.extend_from_slice(&chunk),
                Ok(None) => state.ended = true,
                Err(source) => {
                    return Err(Error::Transport {
                        context: state.context,
                        source,
                    });
                }
            }
        }
    })
    .boxed()
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

fn decode<T: DeserializeOwned>(context: &str, line: &[u8]) -> Result<T> {
    serde_json::from_slice(line).map_err(|e| Error::Decode {
        context: context.to_string(),
        reason: format!("bad NDJSON line: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(chunks: &[&'static str]) -> Vec<Result<serde_json::Value>> {
        let chunks: Vec<reqwest::Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        lines::<serde_json::Value, _>("test".into(), futures::stream::iter(chunks))
            .collect()
            .await
    }

    #[tokio::test]
    async fn lines_split_across_chunks() {
        let items = collect(&["{\"a\":", "1}\n{\"a\":2}\n\n{\"a\"", ":3}\n"]).await;
        let values: Vec<i64> = items
            .into_iter()
            .map(|item| item.expect("line")["a"].as_i64().expect("a"))
            .collect();
        assert_eq!(values, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_cut_stream_is_an_error() {
        let items = collect(&["{\"a\":1}\n{\"a\":"]).await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(
            matches!(items[1], Err(Error::Decode { .. })),
            "{:?}",
            items[1]
        );
        let items = collect(&["{\"a\":1}\nnot json\n"]).await;
        assert!(matches!(items[1], Err(Error::Decode { .. })));
    }
}
