//! [`QueueLog`]: one queue's log — the sealed segments plus the active one.
use std::sync::Arc;

use crate::error::Result;
use crate::message_id::MessageId;
use crate::record::{AppendRequest, Record};

/// Where an appended message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub offset: u64,
    pub message_id: MessageId,
    pub store_ms: i64,
}

/// A queue's extent and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Lowest offset stored locally.
    pub min_offset: u64,
    /// The offset the next message will get.
    pub max_offset: u64,
    /// Bytes of segment files on disk (allocated size of the active one included).
    pub disk_bytes: u64,
    /// Sealed segments plus the active one.
    pub segments: usize,
}

/// One queue's log.
#[derive(Debug)]
pub struct QueueLog {
    _x: Arc<()>,
}

impl QueueLog {
    pub fn topic(&self) -> &str { todo!() }
    pub fn queue(&self) -> u32 { todo!() }
    /// Appends the whole batch with contiguous offsets, or nothing. Blocking (may seal or create a segment).
    pub fn append(&self, batch: &[AppendRequest]) -> Result<Vec<Appended>> { let _ = batch; todo!() }
    /// Returns once every offset below `through_offset` is fsynced (group commit).
    pub async fn sync(&self, through_offset: u64) -> Result<()> { let _ = through_offset; todo!() }
    /// Blocking fsync of everything written so far.
    pub fn flush(&self) -> Result<()> { todo!() }
    /// Reads from `offset`: at most `max_messages`, stopping before `max_bytes` of encoded records
    /// are exceeded (but always at least one record when one exists).
    pub fn read(&self, offset: u64, max_messages: usize, max_bytes: usize) -> Result<Vec<Record>> { let _ = (offset, max_messages, max_bytes); todo!() }
    pub fn get_by_id(&self, id: &MessageId) -> Result<Option<Record>> { let _ = id; todo!() }
    pub fn find_by_key(&self, key: &str, begin_ms: i64, end_ms: i64, max: usize) -> Result<Vec<Record>> { let _ = (key, begin_ms, end_ms, max); todo!() }
    /// The first offset whose `store_ms >= ts_ms`, or `max_offset` when there is none.
    pub fn offset_for_timestamp(&self, ts_ms: i64) -> Result<u64> { let _ = ts_ms; todo!() }
    pub fn min_offset(&self) -> u64 { todo!() }
    pub fn max_offset(&self) -> u64 { todo!() }
    pub fn stats(&self) -> QueueStats { todo!() }
    /// Watches `max_offset`; changes after every append (for long polls).
    pub fn watch_max_offset(&self) -> tokio::sync::watch::Receiver<u64> { todo!() }
}
