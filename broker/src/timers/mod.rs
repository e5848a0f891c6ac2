//! Delay messages: kept out of their queue until due, then appended to it once.
//!
//! Local layout under `data_dir`:
//! ```text
//! timers/journal/{topic}/{queue}/...   the timer journal of each queue (a shale-hot log)
//! timers/fired/{topic}/{queue}.json    the last saved FireState and the checkpoint
//!                                      epoch it belongs to (framed, CRC, crash-safe)
//! ```
//! and in the object store, per queue, a fenced checkpoint and immutable
//! sorted runs of spilled timers ([`store`]): memory holds the timers due in
//! the next [`store::LOAD_HORIZON_MS`] and those not spilled yet, so the
//! number pending is bounded by the object store, not by memory, and a new
//! owner (after a hand-over, with an empty disk) finds every timer there.
//!
//! Life of a delay message: produce appends it to its queue's journal (at
//! the topic's durability: the answer waits for the journal's fsync at
//! SYNC) with an id from [`shale_hot::MessageId::scheduled`] (delivery time,
//! queue, journal offset) and puts its key in the queue's [`TimerIndex`].
//! The `timers` job ([`fire`]) appends due ones to the queue, in delivery
//! order, keeping their id and adding the property [`TIMER_PROPERTY`] (the
//! journal offset), waits for the queue's durability, then marks them fired.
//! A recall ([`lookup`]) appends a recall record to the journal.
//!
//! Invariants:
//! - a journal append and the index insert happen under the index lock, so
//!   a saved [`index::FireState`] never names a journal offset the index
//!   has not seen;
//! - a timer is fired only by the queue's owner, holding a write permit;
//! - the journal keeps every record from the lowest pending one on (older
//!   segments are deleted by the job): retention does not apply to timers;
//! - the timers of a queue are opened only by the queue's owner, which
//!   takes the queue's timer checkpoint (a new epoch) first, so a former
//!   owner can no longer list a run or move the watermark;
//! - after a restart or takeover, [`recover`] rebuilds each index from the
//!   checkpoint, the journal beyond what was spilled (when this node wrote
//!   the checkpoint last), the saved state and the fires found in the queue
//!   beyond it, so no timer is lost and none fires twice (see [`index`]).

pub mod entries;
pub mod fire;
pub mod index;
#[cfg(test)]
mod index_tests;
pub mod journal;
pub mod lookup;
pub mod recover;
pub mod spill;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shale_hot::{Clock, HotConfig, HotStore, QueueLog};

use crate::dedup::DEDUP_PROPERTY;
use crate::error::BrokerResult;
pub use index::{FireState, Key, TimerIndex};

/// Prefix of the name a timer journal's write-ahead sections carry.
const WAL_PREFIX: &str = "%TIMERS%";

/// The name the write-ahead sections of `topic`'s timer journals carry (no
/// topic can be named so: `%` starts system names).
pub fn wal_topic(topic: &str) -> String {
    format!("{WAL_PREFIX}{topic}")
}

/// The topic whose timer journal a write-ahead section name stands for.
pub fn topic_of_wal(name: &str) -> Option<&str> {
    name.strip_prefix(WAL_PREFIX)
}

/// Property a fired message carries: its timer journal offset.
pub const TIMER_PROPERTY: &str = "shale.timer";
/// Property of a recall record in the journal: the offset of the recalled timer.
pub const RECALL_PROPERTY: &str = "shale.recall";

/// One queue's timers.
#[derive(Debug)]
pub struct TimerQueue {
    pub topic: String,
    pub queue: u32,
    pub journal: Arc<QueueLog>,
    pub index: parking_lot::Mutex<TimerIndex>,
    /// One fire batch at a time.
    pub(crate) firing: tokio::sync::Mutex<()>,
    /// The index version last saved.
    pub(crate) saved_version: parking_lot::Mutex<u64>,
    state_path: PathBuf,
    /// The object-store side: one operation at a time.
    pub(crate) runs: tokio::sync::Mutex<store::RunSet>,
    /// The timer checkpoint epoch this node holds for the queue.
    pub(crate) epoch: u64,
    /// The queue's transactions (TRANSACTION topics; empty otherwise).
    /// Changed only under the index lock, with the journal record stating
    /// the change (lock order: index, then txns).
    pub txns: parking_lot::Mutex<crate::txn::table::TxnTable>,
    /// Transactions being committed (appended, not yet noted): first half's
    /// journal offset → the queue's end after their messages.
    pub(crate) committing: parking_lot::Mutex<std::collections::BTreeMap<u64, u64>>,
    /// Where those commits' messages start in the queue, until their notes
    /// are durable: restart scans must not start past the lowest.
    pub(crate) committing_starts: parking_lot::Mutex<std::collections::BTreeSet<u64>>,
}

/// Every queue's timers on this node.
#[derive(Debug)]
pub struct Timers {
    journals: Arc<HotStore>,
    dir: PathBuf,
    queues: parking_lot::Mutex<HashMap<(String, u32), Arc<TimerQueue>>>,
    /// Serializes recoveries (a queue is recovered once).
    opening: tokio::sync::Mutex<()>,
}

impl Timers {
    /// Opens the journals under `{data_dir}/timers`.
    pub fn open(
        data_dir: &Path,
        segment_bytes: u64,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Timers> {
        let dir = data_dir.join("timers");
        let config = HotConfig {
            segment_bytes,
            indexed_properties: vec![DEDUP_PROPERTY.to_string()],
            ..Default::default()
        };
        let root = dir.join("journal");
        let journals = HotStore::open(&root, config, clock).map_err(|e| {
            anyhow::Error::new(e)
                .context(format!("opening the timer journals at {}", root.display()))
        })?;
        Ok(Timers {
            journals,
            dir,
            queues: parking_lot::Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
        })
    }

    /// The timers of `topic`/`queue` if already open.
    pub fn get(&self, topic: &str, queue: u32) -> Option<Arc<TimerQueue>> {
        self.queues.lock().get(&(topic.to_string(), queue)).cloned()
    }

    /// Every open timer queue.
    pub fn all(&self) -> Vec<Arc<TimerQueue>> {
        self.queues.lock().values().cloned().collect()
    }

    /// Journals on disk (found at start), as `(topic, queue)`.
    pub fn journals_on_disk(&self) -> Vec<(String, u32)> {
        self.journals
            .queues()
            .iter()
            .map(|q| (q.topic().to_string(), q.queue()))
            .collect()
    }

    /// Whether `topic`/`queue` has a journal on this node.
    pub fn has_journal(&self, topic: &str, queue: u32) -> bool {
        self.journals.existing_queue(topic, queue).is_some()
    }

    /// Pending timers of `topic`, over its open queues.
    pub fn pending_of(&self, topic: &str) -> u64 {
        self.queues
            .lock()
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|(_, q)| q.index.lock().pending_count() as u64)
            .sum()
    }

    /// Deletes the journals of topics `keep` does not know (an interrupted delete).
    pub fn remove_orphans(&self, keep: impl Fn(&str) -> bool) {
        for topic in self.journals.topics() {
            if keep(&topic) {
                continue;
            }
            tracing::warn!(
                topic,
                "removing the timers of a topic without metadata (interrupted delete)"
            );
            if let Err(e) = self.remove_topic(&topic) {
                tracing::error!(topic, error = %e, "cannot remove orphan timers");
            }
        }
    }

    /// Forgets the timers of `topic`/`queue` (handed over, or fenced).
    pub fn forget(&self, topic: &str, queue: u32) -> Option<Arc<TimerQueue>> {
        self.queues.lock().remove(&(topic.to_string(), queue))
    }

    /// Deletes the local journal and saved state of `topic`/`queue` (blocking).
    pub async fn remove_local(&self, topic: &str, queue: u32) -> anyhow::Result<()> {
        let (journals, t, state) = (
            self.journals.clone(),
            topic.to_string(),
            self.state_path(topic, queue),
        );
        tokio::task::spawn_blocking(move || {
            journals.detach_queue(&t, queue, None)?;
            match std::fs::remove_file(&state) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await?
    }

    /// Forgets and deletes every timer of `topic` (the topic is being deleted).
    pub fn remove_topic(&self, topic: &str) -> anyhow::Result<()> {
        self.queues.lock().retain(|(t, _), _| t != topic);
        self.journals.remove_topic(topic)?;
        let dir = self.dir.join("fired").join(topic);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("removing {}", dir.display()))),
        }
    }

    fn state_path(&self, topic: &str, queue: u32) -> PathBuf {
        self.dir
            .join("fired")
            .join(topic)
            .join(format!("{queue}.json"))
    }
}

impl crate::broker::Broker {
    /// The timers of `topic`/`queue`, which this node serves (taking the
    /// queue if placement gives it here), opened on first use.
    pub async fn timer_queue(&self, topic: &str, queue: u32) -> BrokerResult<Arc<TimerQueue>> {
        if let Some(q) = self.timers.get(topic, queue) {
            return Ok(q);
        }
        self.serve_queue(topic, queue).await?;
        self.open_held_timers(topic, queue, &[]).await
    }

    /// Opens the timers of `topic`/`queue`, a queue this node holds (its
    /// gate may still be closed: a takeover or hand-over in progress),
    /// replaying the timer journal sections of the write-ahead chunks of
    /// `owners` (earlier owners that did not hand over).
    pub(crate) async fn open_held_timers(
        &self,
        topic: &str,
        queue: u32,
        owners: &[shale_tiering::QueueOwner],
    ) -> BrokerResult<Arc<TimerQueue>> {
        let _one = self.timers.opening.lock().await;
        if let Some(q) = self.timers.get(topic, queue) {
            return Ok(q);
        }
        let q = Arc::new(recover::recover(self, topic, queue, owners).await?);
        self.timers
            .queues
            .lock()
            .insert((topic.to_string(), queue), q.clone());
        Ok(q)
    }

    /// Spills every unspilled timer of `topic`'s open queues to the object
    /// store now (benchmarks and operators; the job does it on its own
    /// every [`store::SPILL_AGE`]).
    pub async fn spill_timers(&self, topic: &str) -> BrokerResult<()> {
        let now = self.clock.now_ms();
        for q in self.timers.all().into_iter().filter(|q| q.topic == topic) {
            let mut set = q.runs.lock().await;
            q.spill_all(&self.tier, &mut set, now).await?;
            while q.merge(&self.tier, &mut set).await? {}
            q.checkpoint(&mut set, true).await?;
        }
        Ok(())
    }

    /// A hand-over of `topic`/`queue`: every unspilled timer goes up in a
    /// run, the checkpoint gets the last fire state, and the local copy is
    /// deleted. The gate is closed (nothing fires or is scheduled meanwhile).
    pub(crate) async fn hand_over_timers(&self, topic: &str, queue: u32) -> BrokerResult<()> {
        let open = self.timers.get(topic, queue);
        let q = match open {
            Some(q) => q,
            None if self.timers.has_journal(topic, queue) => {
                self.open_held_timers(topic, queue, &[]).await?
            }
            None => return Ok(()),
        };
        let _firing = q.firing.lock().await;
        {
            let mut set = q.runs.lock().await;
            q.spill_all(&self.tier, &mut set, self.clock.now_ms())
                .await?;
            q.checkpoint(&mut set, true).await?;
        }
        // Its write-ahead sections are all in runs now.
        let spilled = q.index.lock().spilled_end();
        self.wal.handed_over(&wal_topic(topic), queue, spilled);
        self.timers.forget(topic, queue);
        if let Err(e) = self.timers.remove_local(topic, queue).await {
            tracing::warn!(topic, queue, error = %e, "timers handed over, but their local copy could not be deleted");
        }
        Ok(())
    }
}
