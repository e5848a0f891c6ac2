//! shale-client: a typed async client of Shale's HTTP API.
//!
//! Every call of the contract (`../shared/API.md`, and precisely the OpenAPI
//! document a node serves at `/openapi.json`) is a method of [`Client`]:
//! topics, produce (JSON batches, transactions, delay fields, raw single
//! messages), reads by offset (a JSON page or an NDJSON [`Stream`] in constant
//! memory), offsets by time, queries by id and key, timers and recall,
//! consumer groups (and sending dead letters back), transactions, the
//! cluster view and health.
//!
//! ```no_run
//! use shale_client::{Client, CreateTopic, ProduceMessage, ProduceRequest, ReceiveRequest};
//!
//! # async fn demo() -> Result<(), shale_client::Error> {
//! let client = Client::new("http://127.0.0.1:8080")?;
//! client.create_topic(&CreateTopic { queues: Some(4), ..CreateTopic::new("orders") }).await?;
//! let batch = ProduceRequest::new(vec![
//!     ProduceMessage::text("hello").with_tag("created").with_key("order-42"),
//! ]);
//! let results = client.produce("orders", &batch).await?;
//! println!("stored at queue {} offset {:?}", results[0].queue, results[0].offset);
//!
//! let received = client
//!     .receive("billing", &ReceiveRequest { wait_ms: Some(5_000), ..ReceiveRequest::new("orders") })
//!     .await?;
//! let handles: Vec<String> = received.iter().map(|m| m.receipt_handle.clone()).collect();
//! client.ack("billing", "orders", &handles).await?;
//! # Ok(()) }
//! ```
//!
//! Replaying a queue as a stream (memory stays constant however long):
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use shale_client::{Client, ReadOptions};
//!
//! # async fn demo(client: Client) -> Result<(), shale_client::Error> {
//! let mut messages = client.read_stream("orders", 0, &ReadOptions::default()).await?;
//! while let Some(message) = messages.try_next().await? {
//!     println!("{:?} {:?}", message.offset, message.body);
//! }
//! # Ok(()) }
//! ```
//!
//! Settings: a bearer token, an extra root CA for a private HTTPS CA, the
//! retry policy and timeouts go through [`ClientBuilder`]:
//!
//! ```
//! use std::time::Duration;
//! use shale_client::{ClientBuilder, RetryPolicy};
//!
//! let client = ClientBuilder::new("https://shale.internal:8443/")
//!     .token("shale_…")
//!     .retry(RetryPolicy { max_attempts: 3, max_elapsed: Duration::from_secs(10), ..RetryPolicy::default() })
//!     .build()?;
//! assert_eq!(client.base_url(), "https://shale.internal:8443");
//! # Ok::<(), shale_client::Error>(())
//! ```
//!
//! # Errors
//!
//! A non-2xx answer is [`Error::Api`] with the contract's `code`
//! (`TOPIC_NOT_FOUND`), its `message` and the HTTP status:
//!
//! ```no_run
//! # async fn demo(client: shale_client::Client) {
//! match client.get_topic("nope").await {
//!     Err(e) if e.is_code("TOPIC_NOT_FOUND") => println!("no such topic: {e}"),
//!     other => println!("{other:?}"),
//! }
//! # }
//! ```
//!
//! # Retries
//!
//! One `reqwest` connection pool per client (clones share it). A call is
//! sent again, with exponential backoff and jitter, at least the
//! `Retry-After` the node asked for, at most [`RetryPolicy::max_attempts`]
//! times and not after [`RetryPolicy::max_elapsed`], only when that cannot
//! apply it twice:
//!
//! | answer | reads (GET) | other calls | produce without `dedup_id` on every message |
//! | --- | --- | --- | --- |
//! | 429 `THROTTLED` | retried | retried | retried |
//! | 503 `UNAVAILABLE` | retried | retried | **not retried** |
//! | connection refused / failed to connect | retried | retried | retried |
//! | timeout, connection cut after sending | retried | not retried | not retried |
//! | TLS failure (e.g. an untrusted certificate) | not retried | not retried | not retried |
//! | any other status | returned | returned | returned |
//!
//! Why: a 429 is answered before any work is done, and a failed connect
//! never reached the node. A 503 usually means the same (a queue changing
//! owner, a node draining), but a produce at durability `OBJECT` whose
//! messages reached the node's disk and not the object store answers 503
//! too ("stored on this node but could not be written to the object store"),
//! and so can a produce whose forward to the queue's owner failed after it
//! was sent. Sending those again could store the messages twice, unless each
//! has a `dedup_id` (the node then stores only what is missing within its
//! 5-minute window): so give every message a `dedup_id` to have produces
//! retried after a 503. The other writes are safe to repeat: creating a
//! topic or group with the same settings answers the existing one, acks and
//! decisions (commit/rollback) repeat as 200 or per-handle results, resets
//! and patches set absolute values, a retried receive at worst leaves a
//! delivery invisible until `invisible_ms` (then it comes again).
//! [`Client::change_invisibility`] is the exception: applied once, its old
//! handle is spent, so it is not retried after a 503 either. A retried
//! delete or recall that had been applied answers 404 / `MESSAGE_NOT_FOUND`.
//! [`RetryPolicy::none`] turns retries off.

mod api;
mod client;
mod error;
mod ndjson;
mod request;
mod retry;
pub mod types;

pub use api::{KeyQuery, TimerQuery};
pub use client::{Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use error::{Error, Result};
pub use futures::Stream;
pub use retry::RetryPolicy;
pub use types::groups::{
    AckError, AckResult, ConsumeFrom, ConsumeMode, Filter, FilterType, Group, GroupOffsets,
    GroupSettings, GroupSummary, Invisibility, OffsetsTotal, Position, QueueOffsets,
    ReceiveRequest, ReceivedMessage, ResetTo,
};
pub use types::messages::{
    Message, ProduceMessage, ProduceRequest, ProduceResult, RawMessage, ReadOptions, ReadPage,
    TransactionInput,
};
pub use types::ops::{
    ClusterNode, ClusterView, Decision, ProducerGroup, SentBack, Status, Timer, TimerPage,
    TransactionCheck,
};
pub use types::topics::{
    CreateTopic, Durability, MessageType, PatchTopic, QueueInfo, Topic, TopicDetail,
};
