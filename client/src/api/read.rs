//! Reads by offset: a JSON page, an NDJSON stream, the offset of a time
//! (API.md "Reading by offset").

use futures::stream::BoxStream;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderValue};
use std::time::Duration;

use crate::client::Client;
use crate::error::Result;
use crate::request::{Request, segment};
use crate::retry::RetryClass;
use crate::types::messages::{Message, OffsetResponse, ReadOptions, ReadPage};

const NDJSON: &str = "application/x-ndjson";

fn read_request(topic: &str, queue: u32, options: &ReadOptions) -> Request {
    let path = format!("/v1/topics/{}/queues/{queue}/messages", segment(topic));
    let mut request = Request::new(Method::GET, path, RetryClass::Safe)
        .query("offset", options.offset)
        .query_opt("max_messages", options.max_messages)
        .query_opt("max_bytes", options.max_bytes)
        .query_opt("wait_ms", options.wait_ms)
        .query_opt("tag", options.tag.as_ref());
    if options.base64 {
        request = request.query("encoding", "base64");
    }
    request.wait = Duration::from_millis(options.wait_ms.unwrap_or(0));
    request
}

impl Client {
    /// One page of a queue from `options.offset`; long-polls `wait_ms` at the end.
    pub async fn read(&self, topic: &str, queue: u32, options: &ReadOptions) -> Result<ReadPage> {
        self.call(read_request(topic, queue, options)).await
    }

    /// The queue from `options.offset` to its end when the call starts (or
    /// `max_messages`), as a stream of messages in offset order, in constant
    /// memory (`Accept: application/x-ndjson`). Errors before the first
    /// message are [`crate::Error::Api`]; a stream cut by the node ends with an error.
    pub async fn read_stream(
        &self,
        topic: &str,
        queue: u32,
        options: &ReadOptions,
    ) -> Result<BoxStream<'static, Result<Message>>> {
        let mut request = read_request(topic, queue, options);
        request.streamed = true;
        request
            .headers
            .insert(ACCEPT, HeaderValue::from_static(NDJSON));
        let context = format!("GET {} (NDJSON)", request.path);
        let response = self.execute(request).await?;
        Ok(crate::ndjson::lines(
            context,
            Box::pin(response.bytes_stream()),
        ))
    }

    /// The offset of the first message of `queue` stored at or after
    /// `timestamp_ms` (`max_offset` if none).
    pub async fn offset_for_timestamp(
        &self,
        topic: &str,
        queue: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        let path = format!("/v1/topics/{}/queues/{queue}/offset", segment(topic));
        let request =
            Request::new(Method::GET, path, RetryClass::Safe).query("timestamp_ms", timestamp_ms);
        Ok(self.call::<OffsetResponse>(request).await?.offset)
    }
}
