//! One queue seen through both tiers, so that no route can tell which one
//! answered.
//!
//! Offsets `[min_offset, cold_end)` live in the object store (the manifest is
//! authoritative for `min_offset`: retention moves it), `[hot_min, max_offset)`
//! on local disk; the hot tier keeps uploaded segments as a cache, so the two
//! usually overlap and a read prefers the local copy.
//!
//! Read committed: `max_offset` is the queue's *visible end* — on the hot
//! tier the watermark of the topic's durability ([`crate::visible_end`]:
//! the written end for ASYNC, the fsynced end for SYNC), or where the cold
//! data ends when that is further or the queue is not on this node. Nothing
//! here hands out an offset at or past it: [`TieredQueue::read_blocking`]
//! stops there, [`TieredQueue::read_slot`] answers [`Slot::Absent`] and
//! [`TieredQueue::offset_for_timestamp`] answers it for a message beyond it
//! — so every read path built on this view (reads, replays, queries,
//! receives, offsets and lag) sees the same prefix of the queue. Messages
//! written but not yet visible are still on disk; they become visible when
//! the watermark passes them.
//!
//! When the object store cannot be read, a queue with local data still
//! serves it: reads inside the local range answer as usual, reads below it
//! get 503 UNAVAILABLE (not 416, since the cold range is unknown).
//!
//! Damage: a local record that fails its checksum is read from the object
//! store instead when its segment was uploaded. Otherwise the message is
//! *lost* (damaged before upload; the segment went up with a `shale.lost`
//! marker in its place): a read that reaches it stops just before it, a read
//! that starts at it fails (500 INTERNAL), and [`TieredQueue::read_slot`]
//! tells consumer groups so, so they can step over it.

use std::sync::Arc;

use shale_hot::{HotError, QueueLog, Record};
use shale_tiering::cold_reader::ColdReader;
use shale_tiering::manifest::QueueManifest;

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};
use crate::visible_end::Watermark;

/// A queue across the hot and the cold tier.
#[derive(Debug, Clone)]
pub struct TieredQueue {
    pub topic: String,
    pub queue: u32,
    pub hot: Option<Arc<QueueLog>>,
    pub cold: Option<Arc<QueueManifest>>,
    /// The manifest could not be read (object store down): only local data is known.
    cold_unknown: bool,
    /// How far readers see into the hot tier (by the topic's durability).
    watermark: Watermark,
    reader: ColdReader,
    runtime: tokio::runtime::Handle,
}

impl TieredQueue {
    /// Looks the queue up in both tiers (reads the manifest through the cache),
    /// seen at the topic's durability; TOPIC_NOT_FOUND for an unknown topic.
    pub async fn open(state: &Broker, topic: &str, queue: u32) -> BrokerResult<TieredQueue> {
        let watermark = Watermark::of(state.topics.require(topic)?.durability());
        let hot = state.hot.existing_queue(topic, queue);
        let reader = state.tier.reader().clone();
        let (cold, cold_unknown) = match reader.manifest(topic, queue).await {
            Ok(m) => (m, false),
            Err(e) if hot.is_some() && e.is_store_failure() => {
                tracing::warn!(topic, queue, error = %crate::error::error_chain(&e), "object store unreadable; serving local data only");
                (None, true)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(TieredQueue {
            topic: topic.to_string(),
            queue,
            hot,
            cold,
            cold_unknown,
            watermark,
            reader,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    fn cold_end(&self) -> u64 {
        self.cold.as_ref().map_or(0, |m| m.end_offset())
    }

    /// Lowest readable offset.
    pub fn min_offset(&self) -> u64 {
        if self.cold_unknown {
            return 0;
        }
        match (&self.cold, &self.hot) {
            (Some(m), _) => m.min_offset,
            (None, Some(h)) => h.min_offset(),
            (None, None) => 0,
        }
    }

    /// The first offset still in a local segment (`None` when the queue has
    /// no local data on this node); below it, reads go to the object store.
    pub fn hot_min_offset(&self) -> Option<u64> {
        self.hot.as_ref().map(|h| h.min_offset())
    }

    /// The visible end: the offset the next message readers see will get
    /// (the contract's `max_offset`). It only grows.
    pub fn max_offset(&self) -> u64 {
        let hot = self.hot.as_ref().map_or(0, |h| self.watermark.end(h));
        hot.max(self.cold_end())
    }

    /// Watches the hot tier's visible end (for long polls); `None` when the
    /// queue is not on this node.
    pub fn watch_visible_end(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.hot.as_ref().map(|h| self.watermark.watch(h))
    }

    /// Reads from `offset`, up to the visible end: locally when the hot tier
    /// still holds it, else from one cold row group. `offset == max_offset`
    /// is an empty answer, beyond it OFFSET_OUT_OF_RANGE. Blocking (cold reads
    /// wait on the runtime): call it inside `spawn_blocking`.
    pub fn read_blocking(
        &self,
        offset: u64,
        want: usize,
        budget: usize,
    ) -> BrokerResult<Vec<Record>> {
        // Offsets are contiguous: asking for no more than up to the visible end
        // is exactly the cap (the hot tier may hold more, not yet visible).
        let end = self.max_offset();
        if offset >= end {
            return self.past_the_end(offset, end);
        }
        let want = want.min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        if let Some(hot) = &self.hot
            && offset >= hot.min_offset()
        {
            match hot.read(offset, want, budget) {
                Err(e @ HotError::Corrupt { .. }) if self.has_cold_copy(offset) => {
                    self.warn_damaged_local_copy(offset, &e);
                }
                got => return Ok(got?),
            }
        }
        if self.cold_unknown {
            return Err(cold_unavailable());
        }
        if offset >= self.cold_end() {
            return Ok(Vec::new());
        }
        let records =
            self.runtime
                .block_on(self.reader.read(&self.topic, self.queue, offset, want))?;
        if records.is_empty() {
            return Err(BrokerError::internal(
                "reading cold data",
                format!(
                    "the manifest lists offset {offset} of {}/{} but no segment holds it",
                    self.topic, self.queue
                ),
            ));
        }
        Ok(records)
    }

    /// A read at or past the visible end `end`.
    fn past_the_end(&self, offset: u64, end: u64) -> BrokerResult<Vec<Record>> {
        if offset == end {
            return Ok(Vec::new());
        }
        let min = self.min_offset();
        Err(BrokerError::new(
            ErrorCode::OffsetOutOfRange,
            format!(
                "offset {offset} is outside the queue's range [{min}, {end}] (min_offset, max_offset)"
            ),
        ))
    }

    /// The record at `offset`, from whichever tier holds it; a lost message
    /// is an error (500 INTERNAL).
    pub async fn read_one(&self, offset: u64) -> BrokerResult<Option<Record>> {
        match self.read_slot(offset).await? {
            Slot::Message(r) => Ok(Some(r)),
            Slot::Lost(e) => Err(e),
            Slot::Absent => Ok(None),
        }
    }

    /// What `offset` holds, telling a lost message from a failure to read
    /// (object store down: an error, to retry later). At or past the visible
    /// end it holds nothing yet ([`Slot::Absent`]).
    pub async fn read_slot(&self, offset: u64) -> BrokerResult<Slot> {
        if offset < self.min_offset() || offset >= self.max_offset() {
            return Ok(Slot::Absent);
        }
        if let Some(hot) = self.hot.clone()
            && offset >= hot.min_offset()
        {
            match tokio::task::spawn_blocking(move || hot.read_one(offset)).await? {
                Ok(Some(r)) => return Ok(Slot::Message(r)),
                Ok(None) => return Ok(Slot::Absent),
                Err(e @ HotError::Corrupt { .. }) if self.has_cold_copy(offset) => {
                    self.warn_damaged_local_copy(offset, &e);
                }
                Err(e @ HotError::Corrupt { .. }) => return Ok(Slot::Lost(e.into())),
                Err(e) => return Err(e.into()),
            }
        }
        if self.cold_unknown {
            return Err(cold_unavailable());
        }
        match self.reader.read(&self.topic, self.queue, offset, 1).await {
            Ok(records) => Ok(records
                .into_iter()
                .next()
                .map_or(Slot::Absent, Slot::Message)),
            Err(e) if e.is_lost() => Ok(Slot::Lost(e.into())),
            Err(e) => Err(e.into()),
        }
    }

    /// True when the object store holds `offset` (its local copy can be
    /// replaced by the uploaded one).
    fn has_cold_copy(&self, offset: u64) -> bool {
        !self.cold_unknown
            && self
                .cold
                .as_ref()
                .is_some_and(|m| offset >= m.min_offset && offset < m.end_offset())
    }

    fn warn_damaged_local_copy(&self, offset: u64, e: &HotError) {
        tracing::warn!(
            topic = %self.topic,
            queue = self.queue,
            offset,
            error = %crate::error::error_chain(e),
            "local copy damaged; reading the object store's copy"
        );
    }

    /// The first offset with `store_ms >= ts`, or `max_offset` when there is
    /// none: a message beyond the visible end does not count (`store_ms`
    /// never decreases, so no visible one qualifies either).
    pub async fn offset_for_timestamp(&self, ts: i64) -> BrokerResult<u64> {
        if self.cold.is_some()
            && let Some(o) = self
                .reader
                .offset_for_timestamp(&self.topic, self.queue, ts)
                .await?
        {
            return Ok(o.max(self.min_offset()));
        }
        let Some(hot) = self.hot.clone() else {
            return Ok(self.max_offset());
        };
        let o = tokio::task::spawn_blocking(move || hot.offset_for_timestamp(ts)).await??;
        Ok(o.min(self.max_offset()).max(self.min_offset()))
    }
}

/// What one offset of a queue holds.
#[derive(Debug)]
pub enum Slot {
    Message(Record),
    /// Damaged on a node's disk before upload: gone for good. The error is
    /// what a read of it answers.
    Lost(BrokerError),
    /// Outside `[min_offset, max_offset)`: gone, or not visible yet.
    Absent,
}

fn cold_unavailable() -> BrokerError {
    BrokerError::unavailable(
        "this offset is in the object store, which cannot be read right now; retry later",
    )
}
