//! One queue seen through both tiers, so that no route can tell which one
//! answered.
//!
//! Offsets `[min_offset, cold_end)` live in the object store (the manifest is
//! authoritative for `min_offset`: retention moves it), `[hot_min, max_offset)`
//! on local disk; the hot tier keeps uploaded segments as a cache, so the two
//! usually overlap and a read prefers the local copy. `max_offset` is the hot
//! tier's when the queue exists on this node, else where the cold data ends.
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
use crate::error::{BrokerError, BrokerResult};

/// A queue across the hot and the cold tier.
#[derive(Debug, Clone)]
pub struct TieredQueue {
    pub topic: String,
    pub queue: u32,
    pub hot: Option<Arc<QueueLog>>,
    pub cold: Option<Arc<QueueManifest>>,
    /// The manifest could not be read (object store down): only local data is known.
    cold_unknown: bool,
    reader: ColdReader,
    runtime: tokio::runtime::Handle,
}

impl TieredQueue {
    /// Looks the queue up in both tiers (reads the manifest through the cache).
    pub async fn open(state: &Broker, topic: &str, queue: u32) -> BrokerResult<TieredQueue> {
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

    /// The offset the next message will get.
    pub fn max_offset(&self) -> u64 {
        let hot = self.hot.as_ref().map_or(0, |h| h.max_offset());
        hot.max(self.cold_end())
    }

    /// Reads from `offset`: locally when the hot tier still holds it, else from
    /// one cold row group. Blocking (cold reads wait on the runtime): call it
    /// inside `spawn_blocking`.
    pub fn read_blocking(
        &self,
        offset: u64,
        want: usize,
        budget: usize,
    ) -> BrokerResult<Vec<Record>> {
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
    /// (object store down: an error, to retry later).
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

    /// The first offset with `store_ms >= ts`, or `max_offset` when there is none.
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
        Ok(o.max(self.min_offset()))
    }
}

/// What one offset of a queue holds.
#[derive(Debug)]
pub enum Slot {
    Message(Record),
    /// Damaged on a node's disk before upload: gone for good. The error is
    /// what a read of it answers.
    Lost(BrokerError),
    /// Outside `[min_offset, max_offset)`.
    Absent,
}

fn cold_unavailable() -> BrokerError {
    BrokerError::unavailable(
        "this offset is in the object store, which cannot be read right now; retry later",
    )
}
