//! Group commit: many concurrent SYNC appends share one fsync.
//!
//! `durable` is the offset below which everything is on stable storage. A
//! caller that needs offset N durable takes the leader lock; if a previous
//! leader's fsync already covered N it returns at once, otherwise it snapshots
//! *everything written so far* and fsyncs it. While that fsync runs, new
//! writers queue on the lock, and the next leader's single fsync covers all of
//! them. So under load the number of fsyncs is bounded by the disk's fsync
//! latency, not by the number of producers.
//!
//! `durable` is also published on a watch ([`GroupCommit::watch`]), so
//! readers that may only see durable data (SYNC topics, see the broker's
//! `visible_end`) long-poll on it. Every advance goes through
//! [`GroupCommit::mark_durable`] — a leader's fsync, a blocking flush, a
//! roll's seal — and the watch only moves forward, after the atomic: a
//! waiter woken by the watch finds `durable()` at least as far.
//!
//! An fsync failure poisons the queue: after a failed fsync the kernel may
//! have dropped the dirty pages, so a later "successful" fsync proves nothing.
//! Appends then fail until the node restarts and recovery re-reads the disk.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::watch;

use crate::error::{HotError, Result};

/// What one fsync round covers.
#[derive(Debug)]
pub(crate) struct SyncTarget {
    pub files: Vec<Arc<File>>,
    /// Every offset below this is written to the files above (or to sealed, synced segments).
    pub through: u64,
    pub path: std::path::PathBuf,
}

/// Durable position and fsync leadership of one queue.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    durable: AtomicU64,
    /// `durable`, for long polls; never behind the atomic once `mark_durable` returns.
    durable_tx: watch::Sender<u64>,
    leader: tokio::sync::Mutex<()>,
    poisoned: AtomicBool,
}

impl GroupCommit {
    pub(crate) fn new(durable: u64) -> Self {
        Self {
            durable: AtomicU64::new(durable),
            durable_tx: watch::Sender::new(durable),
            leader: tokio::sync::Mutex::new(()),
            poisoned: AtomicBool::new(false),
        }
    }

    pub(crate) fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Records that everything below `offset` is durable (e.g. after a seal's
    /// fsync) and wakes the watchers of the durable offset.
    pub(crate) fn mark_durable(&self, offset: u64) {
        self.durable.fetch_max(offset, Ordering::AcqRel);
        // Concurrent callers (a group commit and a roll's publish) may come in
        // any order: the watch keeps the larger value.
        self.durable_tx.send_if_modified(|d| {
            let moved = offset > *d;
            *d = (*d).max(offset);
            moved
        });
    }

    /// Watches the durable offset; it changes when [`Self::mark_durable`] moves it.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.durable_tx.subscribe()
    }

    /// Watches held right now.
    pub(crate) fn watchers(&self) -> usize {
        self.durable_tx.receiver_count()
    }

    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Waits until every offset below `through` is durable, leading an fsync if needed.
    pub(crate) async fn sync_to(
        &self,
        through: u64,
        snapshot: impl Fn() -> SyncTarget,
    ) -> Result<()> {
        loop {
            if self.durable() >= through {
                return Ok(());
            }
            let _leader = self.leader.lock().await;
            if self.durable() >= through {
                return Ok(());
            }
            let target = snapshot();
            let covered = target.through;
            let path = target.path.clone();
            let res = tokio::task::spawn_blocking(move || fsync_all(&target)).await;
            self.finish(
                res.unwrap_or_else(|e| Err(std::io::Error::other(e))),
                covered,
                &path,
            )?;
            if covered < through {
                // Only possible if the caller asked beyond what was written; don't spin.
                return Ok(());
            }
        }
    }

    /// Blocking variant for background flushes and shutdown (not for async contexts).
    pub(crate) fn sync_blocking(&self, snapshot: impl Fn() -> SyncTarget) -> Result<()> {
        let _leader = self.leader.blocking_lock();
        let target = snapshot();
        if self.durable() >= target.through && target.files.len() <= 1 {
            return Ok(());
        }
        let covered = target.through;
        let path = target.path.clone();
        self.finish(fsync_all(&target), covered, &path)
    }

    fn finish(&self, res: std::io::Result<()>, covered: u64, path: &std::path::Path) -> Result<()> {
        match res {
            Ok(()) => {
                self.mark_durable(covered);
                Ok(())
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "fsync failed; the queue stops taking writes until restart");
                self.poison();
                Err(HotError::io("fsync", path, e))
            }
        }
    }
}

fn fsync_all(target: &SyncTarget) -> std::io::Result<()> {
    for f in &target.files {
        f.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(through: u64) -> SyncTarget {
        SyncTarget {
            files: Vec::new(),
            through,
            path: std::path::PathBuf::from("/nowhere"),
        }
    }

    #[test]
    fn the_watch_follows_the_durable_offset_and_never_goes_back() {
        let commit = GroupCommit::new(5);
        let mut rx = commit.watch();
        assert_eq!(*rx.borrow_and_update(), 5);
        commit.mark_durable(9);
        assert!(rx.has_changed().unwrap());
        assert_eq!((*rx.borrow_and_update(), commit.durable()), (9, 9));
        // A late, smaller mark (a roll publishing behind a group commit) changes nothing.
        commit.mark_durable(7);
        assert!(!rx.has_changed().unwrap());
        assert_eq!((*rx.borrow(), commit.durable()), (9, 9));
    }

    #[tokio::test]
    async fn a_group_commit_wakes_the_watchers() {
        let commit = GroupCommit::new(0);
        let mut rx = commit.watch();
        let waiter =
            tokio::time::timeout(std::time::Duration::from_secs(10), rx.wait_for(|d| *d >= 3));
        let (synced, seen) = tokio::join!(commit.sync_to(3, || target(4)), waiter);
        synced.unwrap();
        let seen = *seen.unwrap().unwrap();
        assert_eq!(seen, 4, "the watch holds what the fsync covered");
    }

    #[test]
    fn a_blocking_flush_moves_the_watch() {
        let commit = GroupCommit::new(4);
        let rx = commit.watch();
        commit.sync_blocking(|| target(6)).unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow(), 6);
    }
}
