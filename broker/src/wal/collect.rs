//! Deleting write-ahead chunks nobody needs any more.
//!
//! A chunk is *covered* when every section in it lies below the end of its
//! queue's segments — for a timer journal's section, below the journal
//! offset its timer checkpoint has spilled to — (or its topic was deleted,
//! or deleted and created again: the section names the generation). A covered chunk can never be needed
//! (recovery only replays beyond the segments' end), so deleting it is safe
//! for anyone at any time.
//!
//! - [`Broker::collect_own_wal`] (job `wal-collect`, frequent, no request but
//!   the deletes): this incarnation's chunks, checked against what this node
//!   knows without asking the store — the manifests of queues it holds, and
//!   the ends of queues it handed over (a hand-over uploads everything first).
//!   A queue it lost without a hand-over is not covered by that: its new
//!   owner may still be recovering from these chunks.
//! - [`Broker::collect_gone_wal`] (job `wal-janitor`, rare): the chunks of
//!   incarnations that are gone (dead nodes, this node before a restart),
//!   checked against the manifests in the store. One LIST per run when there
//!   is nothing to collect.

use shale_tiering::QueueOwner;
use shale_tiering::wal::{ChunkId, delete_chunk, list_all_chunks, read_chunk};

use super::CommittedSection;
use crate::broker::Broker;
use crate::error::error_chain;

impl Broker {
    /// Deletes this incarnation's covered chunks; returns how many.
    pub async fn collect_own_wal(&self) -> usize {
        let mut deleted = 0;
        for (id, sections) in self.wal.committed(&self.node_id) {
            let mut covered = true;
            for s in &sections {
                if !self.covered_here(s).await {
                    covered = false;
                    break;
                }
            }
            if covered && self.delete_wal_chunk(&id).await {
                self.wal.forget_chunk(id.incarnation, id.seq);
                deleted += 1;
            }
        }
        deleted
    }

    async fn covered_here(&self, s: &CommittedSection) -> bool {
        if let Some(topic) = crate::timers::topic_of_wal(&s.topic) {
            // A timer journal's section: covered once spilled into runs.
            if self.generation_gone(topic, s.topic_created_ms).await {
                return true;
            }
            if let Some(q) = self.timers.get(topic, s.queue) {
                return q.index.lock().spilled_end() >= s.end;
            }
            return self
                .wal
                .handed_over_end(&s.topic, s.queue)
                .is_some_and(|end| end >= s.end);
        }
        if self.generation_gone(&s.topic, s.topic_created_ms).await {
            return true;
        }
        if let Some(end) = self.tier.held_end(&s.topic, s.queue).await {
            return end >= s.end;
        }
        self.wal
            .handed_over_end(&s.topic, s.queue)
            .is_some_and(|end| end >= s.end)
    }

    /// Deletes the covered chunks of incarnations that are gone; returns how many.
    pub async fn collect_gone_wal(&self) -> usize {
        let (store, layout) = (self.tier.store().clone(), self.tier.layout().clone());
        let all = match list_all_chunks(store.as_ref(), &layout).await {
            Ok(all) => all,
            Err(e) => {
                tracing::debug!(error = %error_chain(&e), "cannot list write-ahead chunks");
                return 0;
            }
        };
        let me = self.cluster.me();
        let mut deleted = 0;
        for id in all {
            let owner = QueueOwner {
                node: id.node.clone(),
                incarnation: id.incarnation,
            };
            if owner == me {
                continue;
            }
            if !self.cluster.owner_is_gone(Some(&owner)) {
                if id.node != me.node {
                    self.cluster.notice_owner(&owner);
                }
                continue;
            }
            let sections = match read_chunk(store.as_ref(), &layout, &id).await {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(chunk = ?id, error = %error_chain(&e), "an unreadable write-ahead chunk is kept");
                    continue;
                }
            };
            let mut covered = true;
            for s in sections.iter().filter(|s| !s.records.is_empty()) {
                if !self
                    .covered_in_store(&s.topic, s.topic_created_ms, s.queue, s.end_offset())
                    .await
                {
                    covered = false;
                    break;
                }
            }
            if covered && self.delete_wal_chunk(&id).await {
                deleted += 1;
            }
        }
        deleted
    }

    async fn covered_in_store(&self, topic: &str, created_ms: i64, queue: u32, end: u64) -> bool {
        if let Some(t) = crate::timers::topic_of_wal(topic) {
            if self.generation_gone(t, created_ms).await {
                return true;
            }
            let dir = self.tier.layout().timer_checkpoint_dir(t, queue);
            return matches!(
                shale_tiering::timer_checkpoint::read_timer_checkpoint(self.tier.store().as_ref(), &dir).await,
                Ok(Some((c, _))) if c.spilled_end >= end
            );
        }
        if self.generation_gone(topic, created_ms).await {
            return true;
        }
        match self.tier.reader().manifest(topic, queue).await {
            Ok(Some(m)) => m.end_offset() >= end,
            Ok(None) | Err(_) => false,
        }
    }

    /// True when the topic generation created at `created_ms` no longer
    /// exists: the topic is known with a later creation time, or its
    /// metadata is gone from the store (topics are written there before any
    /// message is produced to them).
    async fn generation_gone(&self, topic: &str, created_ms: i64) -> bool {
        if let Some(t) = self.topics.get(topic) {
            return t.config().created_ms > created_ms;
        }
        let path = self.tier.layout().topic_meta(topic);
        matches!(
            self.tier.store().head(&path).await,
            Err(object_store::Error::NotFound { .. })
        )
    }

    async fn delete_wal_chunk(&self, id: &ChunkId) -> bool {
        match delete_chunk(self.tier.store().as_ref(), self.tier.layout(), id).await {
            Ok(()) => {
                crate::metrics::wal_chunk_deleted();
                true
            }
            Err(e) => {
                tracing::debug!(chunk = ?id, error = %error_chain(&e), "cannot delete a write-ahead chunk yet");
                false
            }
        }
    }
}
