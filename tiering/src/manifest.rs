//! The queue manifest: which cold segments a queue has, fenced by an epoch.
//!
//! Layout: `{prefix}/topics/{topic}/queues/{queue}/manifest/{seq:020}.json`,
//! one immutable JSON object per version, each with a format number. The
//! versioning, compare-and-swap and fencing are those of
//! [`crate::fenced::FencedObject`]: a writer becomes the queue's owner by
//! writing a version with a higher `epoch`, a paused old owner gets
//! [`crate::TieringError::Fenced`] and must stop, and a write whose answer
//! was lost is re-applied to what is there now. Changes are therefore
//! idempotent functions of the current manifest: adding a segment already
//! listed changes nothing. Consequences: no acknowledged segment is lost,
//! none is listed twice, and a paused old owner can never overwrite a newer
//! owner's manifest.
//!
//! Invariants (checked on every read and before every write): the format is
//! [`MANIFEST_FORMAT`]; segments are ordered, contiguous and non-empty.

use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fenced::{FencedObject, Versioned, read_latest};

/// Current manifest format.
pub const MANIFEST_FORMAT: u32 = 1;

/// One cold segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub base_offset: u64,
    /// Offset after the last row.
    pub end_offset: u64,
    pub min_store_ms: i64,
    pub max_store_ms: i64,
    pub rows: u64,
    pub bytes: u64,
    /// The epoch of the owner that uploaded it to its staging key
    /// ([`crate::paths::Layout::staged_segment`]) before listing it; `None`
    /// for a segment written straight to its public key (manifests from
    /// before staging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_epoch: Option<u64>,
}

/// The list of a queue's cold segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueManifest {
    pub format: u32,
    /// Owner generation; raised by every takeover.
    pub epoch: u64,
    /// Lowest offset still readable (moves up with retention).
    pub min_offset: u64,
    /// Ordered by `base_offset`, contiguous, non-overlapping.
    pub segments: Vec<SegmentEntry>,
    /// The node owning the queue since this epoch; `None` when it was
    /// released by a hand-over (or written before nodes named themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<QueueOwner>,
    /// Earlier owners whose OBJECT write-ahead chunks may hold acknowledged
    /// messages beyond the last segment: each takeover from a live-looking
    /// owner adds it; the owner clears the list once it has stored what they
    /// hold as segments (see the broker's `wal::recover`). Only the owners
    /// listed here are ever replayed, so a chunk a fenced owner put after it
    /// lost the queue is never read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovering_from: Vec<QueueOwner>,
}

/// Who owns a queue: a node, during one of its incarnations (a restart is a
/// new incarnation, so ownership from before it is recognisably stale).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueueOwner {
    pub node: String,
    pub incarnation: u64,
}

impl QueueManifest {
    /// Offset after the last cold row (where the next segment must start).
    pub fn end_offset(&self) -> u64 {
        self.segments
            .last()
            .map_or(self.min_offset, |s| s.end_offset)
    }

    /// Adds `seg` unless it is already listed. Errors if it would leave a gap or an overlap.
    pub fn add_segment(&mut self, seg: SegmentEntry) -> std::result::Result<(), String> {
        if self.segments.contains(&seg) {
            return Ok(());
        }
        if seg.base_offset != self.end_offset() || seg.end_offset <= seg.base_offset {
            return Err(format!(
                "segment [{}, {}) does not continue the manifest ending at {}",
                seg.base_offset,
                seg.end_offset,
                self.end_offset()
            ));
        }
        self.segments.push(seg);
        Ok(())
    }
}

impl Versioned for QueueManifest {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.format != MANIFEST_FORMAT {
            return Err(format!("unknown manifest format {}", self.format));
        }
        let mut at = self
            .segments
            .first()
            .map_or(self.min_offset, |s| s.base_offset);
        for s in &self.segments {
            if s.base_offset != at || s.end_offset <= s.base_offset {
                return Err(format!(
                    "segment [{}, {}) breaks the sequence at {at}",
                    s.base_offset, s.end_offset
                ));
            }
            at = s.end_offset;
        }
        Ok(())
    }

    fn empty() -> Self {
        Self {
            format: MANIFEST_FORMAT,
            epoch: 0,
            min_offset: 0,
            segments: Vec::new(),
            owner: None,
            recovering_from: Vec::new(),
        }
    }
}

/// Reads the newest manifest version under `dir` with its sequence number; `None` if there is none.
pub async fn read_manifest(
    store: &dyn ObjectStore,
    dir: &Path,
) -> Result<Option<(QueueManifest, u64)>> {
    read_latest(store, dir).await
}

/// A manifest owned by this writer at a given epoch: `acquire`, `epoch`,
/// `update` and `refresh` are those of [`FencedObject`].
pub type FencedManifest = FencedObject<QueueManifest>;

impl FencedObject<QueueManifest> {
    /// The manifest as this owner last wrote or read it.
    pub fn manifest(&self) -> &QueueManifest {
        self.value()
    }
}
