//! [`HotStore`]: all queues of a node's hot tier under one root directory.
//!
//! Layout: `{root}/{topic}/{queue}/…` (see the crate docs for a queue's files).
//! Opening the store recovers every queue found on disk; queues are created
//! on first use. Removing a topic deletes its directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::clock::Clock;
use crate::error::{HotError, Result};
use crate::queue::QueueLog;

/// Settings of the hot tier.
#[derive(Debug, Clone)]
pub struct HotConfig {
    /// Seal the active segment once it holds this many bytes (default 64 MiB).
    /// Larger segments mean fewer objects later; smaller ones reach the object store sooner.
    pub segment_bytes: u64,
    /// Seal the active segment once its first record is this old (default 10 min).
    pub segment_ms: i64,
    /// One sparse index entry per this many bytes of records (default 4 KiB):
    /// a smaller interval means shorter scans on read and a bigger index.
    pub index_interval_bytes: u64,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self { segment_bytes: 64 * 1024 * 1024, segment_ms: 10 * 60 * 1000, index_interval_bytes: 4096 }
    }
}

/// The hot tier of one node.
#[derive(Debug)]
pub struct HotStore {
    root: PathBuf,
    config: HotConfig,
    clock: Arc<dyn Clock>,
    queues: RwLock<HashMap<(String, u32), Arc<QueueLog>>>,
}

impl HotStore {
    /// Opens (creating if needed) the hot tier at `root` and recovers every queue in it.
    pub fn open(root: &Path, config: HotConfig, clock: Arc<dyn Clock>) -> Result<Arc<HotStore>> {
        let _ = (root, config, clock);
        todo!()
    }

    /// The queue, opened or created on first use.
    pub fn queue(&self, topic: &str, queue: u32) -> Result<Arc<QueueLog>> {
        let _ = (topic, queue);
        todo!()
    }

    /// The queue if it exists on this node, without creating it.
    pub fn existing_queue(&self, topic: &str, queue: u32) -> Option<Arc<QueueLog>> {
        self.queues.read().get(&(topic.to_string(), queue)).cloned()
    }

    /// Topics that have at least one queue directory (as found at open or created since).
    pub fn topics(&self) -> Vec<String> {
        todo!()
    }

    /// Deletes every queue of `topic` from disk. Handles still held keep
    /// working on the unlinked files until dropped; new calls see no data.
    pub fn remove_topic(&self, topic: &str) -> Result<()> {
        let _ = topic;
        todo!()
    }

    /// fsyncs every queue with data not yet durable (the ASYNC background flush
    /// and the final flush on shutdown). Blocking.
    pub fn flush_all(&self) -> Result<()> {
        todo!()
    }

    /// Seals active segments older than `segment_ms`. Blocking; call periodically.
    pub fn seal_expired(&self) -> Result<()> {
        todo!()
    }

    /// Total bytes of segments on local disk.
    pub fn disk_bytes(&self) -> u64 {
        todo!()
    }

    #[allow(dead_code)]
    fn unused(&self) -> (&Path, &HotConfig, &Arc<dyn Clock>, HotError) {
        todo!()
    }
}
