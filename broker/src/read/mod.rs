//! Reading a queue by offset (replay), the offset of a timestamp, and
//! message queries by id and key ([`query`]).
//!
//! Invariants: `max_offset` is the queue's visible end (read committed, see
//! [`crate::visible_end`]): no read, replay or query returns a message at or
//! past it, so a SYNC message is seen only once fsynced; a queue number at
//! or above the topic's queues is NOT_FOUND; a queue never written has
//! `min_offset = max_offset = 0`; an offset outside `[min_offset,
//! max_offset]` is OFFSET_OUT_OF_RANGE; a long poll waits on the watch of
//! the visible end (no polling loop), not on appends, bounded by `wait_ms`
//! and cut short when the node starts draining. [`Replay`] reads a range in
//! bounded chunks for streaming front-ends (constant memory).

pub mod query;
pub mod replay;
pub mod scan;
pub mod tag_filter;

use std::sync::Arc;
use std::time::Duration;

use shale_hot::{QueueLog, Record};

pub use replay::Replay;
pub use tag_filter::TagFilter;

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};
use crate::queue_view::TieredQueue;
use crate::topics::Topic;
use scan::ScanLimits;

pub const DEFAULT_MAX_MESSAGES: u64 = 100;
pub const MAX_MAX_MESSAGES: u64 = 1024;
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
pub const MAX_MAX_BYTES: u64 = 32 * 1024 * 1024;
pub const MAX_WAIT_MS: u64 = 30_000;

/// A read by offset, as the client asked (absent fields take their defaults).
#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    /// Default `min_offset`.
    pub offset: Option<u64>,
    /// 1-1024, default 100.
    pub max_messages: Option<u64>,
    /// 1-32 MiB of encoded records, default 1 MiB.
    pub max_bytes: Option<u64>,
    /// At most 30000: long-poll when `offset == max_offset`.
    pub wait_ms: Option<u64>,
    /// `*`, `a` or `a||b`.
    pub tag: Option<String>,
}

/// What a read by offset returns.
#[derive(Debug)]
pub struct ReadResult {
    /// The topic's canonical name.
    pub topic: String,
    pub records: Vec<Record>,
    pub next_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
}

impl Broker {
    /// The topic and one of its queues over both tiers.
    pub async fn locate(&self, topic: &str, queue: u32) -> BrokerResult<(Arc<Topic>, TieredQueue)> {
        let t = self.topics.require(topic)?;
        if queue >= t.queues() {
            return Err(BrokerError::not_found(format!(
                "queue {queue} does not exist: topic {topic:?} has {} queues",
                t.queues()
            )));
        }
        self.serve_queue(&t.name, queue).await?;
        let log = TieredQueue::open(self, &t.name, queue).await?;
        Ok((t, log))
    }

    /// Reads `queue` of `topic` by offset, long-polling as asked.
    pub async fn read_queue(
        self: &Arc<Self>,
        topic: &str,
        queue: u32,
        req: ReadRequest,
    ) -> BrokerResult<ReadResult> {
        let (topic, mut log) = self.locate(topic, queue).await?;
        let filter = TagFilter::parse(req.tag.as_deref())?;
        let offset = start_offset(&log, req.offset)?;
        let max_messages = in_range(
            "max_messages",
            req.max_messages,
            DEFAULT_MAX_MESSAGES,
            MAX_MAX_MESSAGES,
        )?;
        let max_bytes = in_range("max_bytes", req.max_bytes, DEFAULT_MAX_BYTES, MAX_MAX_BYTES)?;
        let wait_ms = req.wait_ms.unwrap_or(0);
        if wait_ms > MAX_WAIT_MS {
            return Err(BrokerError::invalid(format!(
                "wait_ms must be at most {MAX_WAIT_MS}, got {wait_ms}"
            )));
        }
        if wait_ms > 0 && offset == log.max_offset() {
            if log.hot.is_none() {
                log.hot = Some(self.open_for_wait(&topic, queue).await?);
            }
            self.wait_for_data(&log, offset, Duration::from_millis(wait_ms))
                .await;
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
        Ok(ReadResult {
            topic: topic.name.clone(),
            records: scanned.records,
            next_offset: scanned.next_offset,
            min_offset: log.min_offset(),
            max_offset: log.max_offset(),
        })
    }

    /// A replay of `queue` from `offset` (default `min_offset`) to the
    /// `max_offset` of now, or `max_messages` (default: no limit) messages.
    pub async fn replay(
        &self,
        topic: &str,
        queue: u32,
        offset: Option<u64>,
        max_messages: Option<u64>,
        tag: Option<&str>,
    ) -> BrokerResult<Replay> {
        let (topic, log) = self.locate(topic, queue).await?;
        let filter = TagFilter::parse(tag)?;
        let offset = start_offset(&log, offset)?;
        let max_messages = max_messages.unwrap_or(u64::MAX);
        if max_messages == 0 {
            return Err(BrokerError::invalid("max_messages must be at least 1"));
        }
        let end = log.max_offset();
        Ok(Replay::new(
            topic.name.clone(),
            queue,
            log,
            offset,
            end,
            max_messages,
            filter,
        ))
    }

    /// The first offset of `queue` whose message has `store_ms >= timestamp_ms`
    /// (`max_offset` when there is none).
    pub async fn offset_for_timestamp(
        &self,
        topic: &str,
        queue: u32,
        timestamp_ms: i64,
    ) -> BrokerResult<u64> {
        let (_, log) = self.locate(topic, queue).await?;
        log.offset_for_timestamp(timestamp_ms).await
    }

    async fn open_for_wait(&self, topic: &Arc<Topic>, queue: u32) -> BrokerResult<Arc<QueueLog>> {
        let deleted = topic.deleted.read().await;
        if *deleted {
            return Err(BrokerError::topic_not_found(&topic.name));
        }
        let log = self.queue_to_watch(&topic.name, queue).await?;
        drop(deleted);
        Ok(log)
    }

    /// Waits until the visible end passes `offset`, `wait` runs out or the
    /// node drains.
    async fn wait_for_data(&self, log: &TieredQueue, offset: u64, wait: Duration) {
        let Some(mut rx) = log.watch_visible_end() else {
            return;
        };
        tokio::select! {
            _ = rx.wait_for(|max| *max > offset) => {}
            _ = tokio::time::sleep(wait) => {}
            _ = self.drained() => {}
        }
    }
}

/// The offset a read starts at: `offset`, or `min_offset` when absent; 416
/// outside `[min_offset, max_offset]`.
fn start_offset(log: &TieredQueue, offset: Option<u64>) -> BrokerResult<u64> {
    let (min_offset, max_offset) = (log.min_offset(), log.max_offset());
    let offset = offset.unwrap_or(min_offset);
    if offset < min_offset || offset > max_offset {
        return Err(BrokerError::new(
            ErrorCode::OffsetOutOfRange,
            format!(
                "offset {offset} is outside the queue's range [{min_offset}, {max_offset}] (min_offset, max_offset)"
            ),
        ));
    }
    Ok(offset)
}

fn in_range(name: &str, value: Option<u64>, default: u64, max: u64) -> BrokerResult<u64> {
    let v = value.unwrap_or(default);
    if v == 0 || v > max {
        return Err(BrokerError::invalid(format!(
            "{name} must be 1-{max}, got {v}"
        )));
    }
    Ok(v)
}
