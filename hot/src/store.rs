//! [`HotStore`]: all queues of a node's hot tier under one root directory.
//!
//! Layout: `{root}/{topic}/{queue}/…` (see the crate docs for a queue's files).
//! Opening the store recovers every queue found on disk; queues are created
//! on first use. Topic names are used as directory names, so only names that
//! are safe path components are accepted (the gateway's name rules are stricter).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::clock::Clock;
use crate::error::{HotError, Result};
use crate::fs_util;
use crate::queue::QueueLog;

/// Smallest `segment_bytes` a node is configured with (the gateway's config
/// check uses it): one allocation step of the active file; below it the fixed
/// cost of a segment (its files, its fsyncs at seal, one object upload) dominates.
pub const MIN_SEGMENT_BYTES: u64 = 64 * 1024;

/// Largest accepted `segment_bytes`, for the gateway's check and
/// [`HotConfig::validate`] alike. Index entries hold 32-bit byte positions
/// (a segment may overshoot its limit by one batch), and the tiering uploader
/// holds a whole sealed segment's records and its Parquet encoding in memory,
/// once per concurrent upload: 1 GiB keeps that bounded.
pub const MAX_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;

/// Smallest `segment_bytes` the engine itself works with (one page). Below
/// [`MIN_SEGMENT_BYTES`] only so that tests can roll many segments cheaply;
/// never above it, so every size a node accepts opens the hot tier.
const ENGINE_MIN_SEGMENT_BYTES: u64 = 4096;
const _: () = assert!(ENGINE_MIN_SEGMENT_BYTES <= MIN_SEGMENT_BYTES);

/// Settings of the hot tier.
#[derive(Debug, Clone)]
pub struct HotConfig {
    /// Seal the active segment once it holds this many bytes (default 64 MiB).
    /// Larger segments mean fewer objects later; smaller ones reach the object store sooner.
    pub segment_bytes: u64,
    /// Seal the active segment once its first record is this old, in ms (default 10 min).
    pub segment_ms: i64,
    /// One sparse index entry per this many bytes of records (default 4 KiB):
    /// a smaller interval means shorter scans on read and a bigger index.
    pub index_interval_bytes: u64,
    /// Property names whose presence is indexed (like keys), so that the
    /// records carrying them are found without reading the others (the
    /// gateway indexes `shale.dedup_id` to rebuild its dedup window quickly).
    pub indexed_properties: Vec<String>,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            segment_ms: 10 * 60 * 1000,
            index_interval_bytes: 4096,
            indexed_properties: Vec::new(),
        }
    }
}

impl HotConfig {
    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if !(ENGINE_MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(format!(
                "segment_bytes must be between {ENGINE_MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES} (got {})",
                self.segment_bytes
            ));
        }
        if self.segment_ms <= 0 {
            return Err(format!(
                "segment_ms must be positive (got {})",
                self.segment_ms
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err("index_interval_bytes must be positive".into());
        }
        Ok(())
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

fn valid_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && name.len() <= 255
}

impl HotStore {
    /// Opens (creating if needed) the hot tier at `root` and recovers every queue in it.
    pub fn open(root: &Path, config: HotConfig, clock: Arc<dyn Clock>) -> Result<Arc<HotStore>> {
        config.validate().map_err(HotError::InvalidRecord)?;
        std::fs::create_dir_all(root)
            .map_err(|e| HotError::io("creating the hot tier directory", root, e))?;
        let mut queues = HashMap::new();
        for (topic, queue, dir) in list_queue_dirs(root)? {
            let log = QueueLog::open(&topic, queue, &dir, config.clone(), clock.clone(), 0)?;
            queues.insert((topic, queue), Arc::new(log));
        }
        Ok(Arc::new(HotStore {
            root: root.to_path_buf(),
            config,
            clock,
            queues: RwLock::new(queues),
        }))
    }

    /// The queue, opened or created on first use.
    pub fn queue(&self, topic: &str, queue: u32) -> Result<Arc<QueueLog>> {
        self.queue_from(topic, queue, 0)
    }

    /// The queue; if it does not exist on this node yet, it is created with
    /// its first offset at `base` (where its cold segments end).
    pub fn queue_from(&self, topic: &str, queue: u32, base: u64) -> Result<Arc<QueueLog>> {
        if let Some(q) = self.existing_queue(topic, queue) {
            return Ok(q);
        }
        if !valid_component(topic) {
            return Err(HotError::InvalidRecord(format!(
                "{topic:?} cannot name a topic directory"
            )));
        }
        let mut queues = self.queues.write();
        if let Some(q) = queues.get(&(topic.to_string(), queue)) {
            return Ok(q.clone());
        }
        let topic_dir = self.root.join(topic);
        let dir = topic_dir.join(queue.to_string());
        let created = !dir.exists();
        let log = Arc::new(QueueLog::open(
            topic,
            queue,
            &dir,
            self.config.clone(),
            self.clock.clone(),
            base,
        )?);
        if created {
            // Make the new directories themselves durable.
            fs_util::fsync_dir(&topic_dir)
                .map_err(|e| HotError::io("syncing a topic directory", &topic_dir, e))?;
            fs_util::fsync_dir(&self.root)
                .map_err(|e| HotError::io("syncing the hot tier directory", &self.root, e))?;
        }
        queues.insert((topic.to_string(), queue), log.clone());
        Ok(log)
    }

    /// The queue if it exists on this node, without creating it.
    pub fn existing_queue(&self, topic: &str, queue: u32) -> Option<Arc<QueueLog>> {
        self.queues.read().get(&(topic.to_string(), queue)).cloned()
    }

    /// Topics that have at least one queue on this node.
    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.queues.read().keys().map(|(t, _)| t.clone()).collect();
        t.sort();
        t.dedup();
        t
    }

    /// Deletes every queue of `topic` from disk. Handles still held fail their
    /// next append with [`HotError::Removed`].
    pub fn remove_topic(&self, topic: &str) -> Result<()> {
        if !valid_component(topic) {
            return Ok(());
        }
        let mut queues = self.queues.write();
        queues.retain(|(t, _), q| {
            if t == topic {
                q.mark_removed();
            }
            t != topic
        });
        let dir = self.root.join(topic);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(HotError::io("deleting a topic's hot data", &dir, e)),
        }
        fs_util::fsync_dir(&self.root)
            .map_err(|e| HotError::io("syncing the hot tier directory", &self.root, e))
    }

    /// Takes one queue out of the hot tier: handles still held fail their
    /// next append with [`HotError::Removed`], and its directory moves to
    /// `dest` (kept aside, e.g. a quarantine) or is deleted when `dest` is
    /// `None`. Returns the queue's stats as it was, `None` if it did not exist.
    pub fn detach_queue(
        &self,
        topic: &str,
        queue: u32,
        dest: Option<&Path>,
    ) -> Result<Option<crate::QueueStats>> {
        let removed = self.queues.write().remove(&(topic.to_string(), queue));
        let Some(log) = removed else {
            return Ok(None);
        };
        log.mark_removed();
        let stats = log.stats();
        let dir = self.root.join(topic).join(queue.to_string());
        match dest {
            Some(dest) => {
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| HotError::io("creating a quarantine directory", parent, e))?;
                }
                std::fs::rename(&dir, dest)
                    .map_err(|e| HotError::io("moving a queue aside", &dir, e))?;
                if let Some(parent) = dest.parent() {
                    fs_util::fsync_dir(parent)
                        .map_err(|e| HotError::io("syncing a quarantine directory", parent, e))?;
                }
            }
            None => match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(HotError::io("deleting a queue's hot data", &dir, e)),
            },
        }
        let topic_dir = self.root.join(topic);
        fs_util::fsync_dir(&topic_dir)
            .map_err(|e| HotError::io("syncing a topic directory", &topic_dir, e))?;
        Ok(Some(stats))
    }

    fn all(&self) -> Vec<Arc<QueueLog>> {
        self.queues.read().values().cloned().collect()
    }

    /// fsyncs every queue holding data not yet durable (the ASYNC background
    /// flush and the final flush on shutdown). Blocking; not for async contexts.
    /// Flushes every queue even if one fails, and returns the first error.
    pub fn flush_all(&self) -> Result<()> {
        let mut first_err = None;
        for q in self.all() {
            if let Err(e) = q.flush() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Seals active segments older than `segment_ms`. Blocking; call periodically.
    pub fn seal_expired(&self) -> Result<()> {
        let mut first_err = None;
        for q in self.all() {
            if let Err(e) = q.seal_if_expired() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Seals every active segment holding data (see [`QueueLog::seal_active`]).
    /// Blocking. Seals every queue even if one fails; returns the first error.
    pub fn seal_all_active(&self) -> Result<()> {
        let mut first_err = None;
        for q in self.all() {
            if let Err(e) = q.seal_active() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Every queue on this node.
    pub fn queues(&self) -> Vec<Arc<QueueLog>> {
        self.all()
    }

    /// Total bytes of segments on local disk.
    pub fn disk_bytes(&self) -> u64 {
        self.all().iter().map(|q| q.stats().disk_bytes).sum()
    }
}

/// `(topic, queue, dir)` for every queue directory under `root`.
fn list_queue_dirs(root: &Path) -> Result<Vec<(String, u32, PathBuf)>> {
    let mut out = Vec::new();
    let read =
        |p: &Path| std::fs::read_dir(p).map_err(|e| HotError::io("listing the hot tier", p, e));
    for topic in read(root)? {
        let topic = topic.map_err(|e| HotError::io("listing the hot tier", root, e))?;
        if !topic.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some(name) = topic.file_name().to_str().map(str::to_string) else {
            continue;
        };
        for queue in read(&topic.path())? {
            let queue = queue.map_err(|e| HotError::io("listing the hot tier", topic.path(), e))?;
            let Some(n) = queue
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if queue.file_type().is_ok_and(|t| t.is_dir()) {
                out.push((name.clone(), n, queue.path()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_segment_bytes(segment_bytes: u64) -> HotConfig {
        HotConfig {
            segment_bytes,
            ..HotConfig::default()
        }
    }

    #[test]
    fn every_size_a_node_accepts_is_valid_here() {
        for bytes in [MIN_SEGMENT_BYTES, 64 << 20, MAX_SEGMENT_BYTES] {
            assert_eq!(with_segment_bytes(bytes).validate(), Ok(()), "{bytes}");
        }
    }

    #[test]
    fn sizes_outside_the_engine_range_are_refused() {
        for bytes in [
            0,
            ENGINE_MIN_SEGMENT_BYTES - 1,
            MAX_SEGMENT_BYTES + 1,
            1536 << 20,
        ] {
            let err = with_segment_bytes(bytes).validate();
            assert!(
                err.as_ref()
                    .is_err_and(|e| e.contains("segment_bytes must be between")),
                "{bytes}: {err:?}"
            );
        }
    }
}
