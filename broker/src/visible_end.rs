//! Read committed: how far readers may see into a queue.
//!
//! A queue's *visible end* is the offset below which reads by offset,
//! replays, offsets by timestamp, queries by id and key, group receives, and
//! every `max_offset` and lag a client is told, see messages. It is the end
//! of what is stored at the topic's durability level — the [`Watermark`] of
//! that level:
//!
//! | durability | watermark | hot tier source |
//! | --- | --- | --- |
//! | ASYNC | [`Watermark::Written`]: everything appended | `QueueLog::max_offset`, `watch_max_offset` |
//! | SYNC | [`Watermark::Fsynced`]: everything fsynced (group commit, flush, seal) | `QueueLog::durable_offset`, `watch_durable_offset` |
//! | OBJECT | [`Watermark::Replicated`]: everything in the object store (group commit, uploads, a takeover's recovery) | `QueueLog::replicated_offset`, `watch_replicated_offset` (moved by [`crate::wal`]) |
//!
//! Why: a reader that sees a message before it is durable at its level can
//! act on a message a crash then takes back, and after a crash (or in a
//! cluster, a new owner) the offset it saw goes to a different message. So
//! nothing reads past the visible end, and long polls wake when it moves, not
//! when a message is merely written. The produce answer is unaffected: a SYNC
//! produce still answers after its fsync (by then its messages are visible).
//! The level is the topic's: a message produced with a stronger
//! `Shale-Durability` than its topic's is visible at the topic's level.
//!
//! Invariants:
//! - the visible end never decreases and never passes the written end;
//! - cold data (sealed segments in the object store) lies below it at every
//!   level: a segment is sealed (fsynced) before it is uploaded;
//! - this module is the only place that maps a durability to a watermark:
//!   readers go through [`crate::queue_view::TieredQueue`] (which caps every
//!   read at [`Watermark::end`]) and long polls through [`Watermark::watch`].
//!
//! Cost: `end` is one atomic load for SYNC (the segments' read lock for
//! ASYNC, as `max_offset` always took); `watch` is a `tokio::sync::watch`
//! subscription. Nothing here locks across I/O.

use shale_hot::QueueLog;
use tokio::sync::watch;

use crate::topics::Durability;

/// Which end of a queue's log readers may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// Everything appended (in the page cache).
    Written,
    /// Everything fsynced on the node's disk.
    Fsynced,
    /// Everything in the object store.
    Replicated,
}

impl Watermark {
    /// The watermark readers of a topic with this durability see up to.
    pub fn of(durability: Durability) -> Watermark {
        match durability {
            Durability::Async => Watermark::Written,
            Durability::Sync => Watermark::Fsynced,
            Durability::Object => Watermark::Replicated,
        }
    }

    /// The offset below which `log`'s messages are visible.
    pub fn end(self, log: &QueueLog) -> u64 {
        match self {
            Watermark::Written => log.max_offset(),
            Watermark::Fsynced => log.durable_offset(),
            Watermark::Replicated => log.replicated_offset(),
        }
    }

    /// Watches [`Self::end`] of `log` (for long polls): it changes when the
    /// visible end moves.
    pub fn watch(self, log: &QueueLog) -> watch::Receiver<u64> {
        match self {
            Watermark::Written => log.watch_max_offset(),
            Watermark::Fsynced => log.watch_durable_offset(),
            Watermark::Replicated => log.watch_replicated_offset(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_durability_reads_up_to_its_own_watermark() {
        assert_eq!(Watermark::of(Durability::Async), Watermark::Written);
        assert_eq!(Watermark::of(Durability::Sync), Watermark::Fsynced);
        assert_eq!(Watermark::of(Durability::Object), Watermark::Replicated);
    }

    #[test]
    fn sync_sees_only_what_is_fsynced_and_async_everything_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = shale_hot::HotStore::open(
            dir.path(),
            shale_hot::HotConfig::default(),
            std::sync::Arc::new(shale_hot::ManualClock::new(0)),
        )
        .unwrap();
        let log = store.queue("t", 0).unwrap();
        let sync_watch = Watermark::Fsynced.watch(&log);
        log.append(&[shale_hot::AppendRequest::default()]).unwrap();
        assert_eq!(Watermark::Written.end(&log), 1);
        assert_eq!(Watermark::Fsynced.end(&log), 0);
        assert!(!sync_watch.has_changed().unwrap());
        log.flush().unwrap();
        assert_eq!(Watermark::Fsynced.end(&log), 1);
        assert!(sync_watch.has_changed().unwrap());
        assert_eq!(Watermark::Replicated.end(&log), 0);
        log.mark_replicated(1);
        assert_eq!(Watermark::Replicated.end(&log), 1);
    }
}
