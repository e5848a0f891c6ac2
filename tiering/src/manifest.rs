//! The queue manifest: which cold segments a queue has, fenced by an epoch.
//!
//! Layout: `{prefix}/topics/{topic}/queues/{queue}/manifest/{seq:020}.json`,
//! one immutable JSON object per version, each with a format number. A new
//! version is written with `PutMode::Create` under the next sequence number,
//! so exactly one of two racing writers can create version N+1 (S3
//! `If-None-Match: *`, a hard link on a local file system, the in-memory
//! store's own check) — this works on every store, including the local file
//! system that has no `PutMode::Update`. The newest version is found by
//! listing the directory; older versions are deleted after a successful write,
//! keeping a few for readers in flight. Because old versions disappear, a
//! stale writer could re-create a deleted sequence number; so every write is
//! followed by a listing, and a writer that sees a version newer than its own
//! is fenced (its orphan version is older than the newest, so no reader ever
//! picks it, and it is deleted).
//!
//! Fencing: a writer becomes the queue's owner by writing a version with a
//! higher `epoch`. All its later writes create the version after the one it
//! knows. When that fails, it re-reads the newest: if the epoch moved, another
//! owner took over and this writer gets [`TieringError::Fenced`] and must stop;
//! if the epoch is still its own, the write that "failed" may have landed (an
//! answer lost in transit), so the change is re-applied to what is there now.
//! Changes are therefore idempotent functions of the current manifest: adding
//! a segment already listed changes nothing. Consequences: no acknowledged
//! segment is lost, none is listed twice, and a paused old owner can never
//! overwrite a newer owner's manifest.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TieringError};

/// Current manifest format.
pub const MANIFEST_FORMAT: u32 = 1;
/// CAS conflicts tolerated for one change before giving up (with our epoch unchanged).
const MAX_CAS_ATTEMPTS: u32 = 32;
/// Versions kept behind the newest one.
const KEEP_VERSIONS: u64 = 4;

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
}

impl QueueManifest {
    fn empty() -> Self {
        Self {
            format: MANIFEST_FORMAT,
            epoch: 0,
            min_offset: 0,
            segments: Vec::new(),
        }
    }

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
}

fn version_path(dir: &Path, seq: u64) -> Path {
    dir.child(format!("{seq:020}.json"))
}

fn parse_seq(p: &Path) -> Option<u64> {
    let name = p.filename()?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// Sequence numbers of the versions stored under `dir`, ascending.
async fn list_versions(store: &dyn ObjectStore, dir: &Path) -> Result<Vec<u64>> {
    let metas: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| TieringError::store(format!("listing {dir}"), e))?;
    let mut seqs: Vec<u64> = metas
        .iter()
        .filter_map(|m| parse_seq(&m.location))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Reads the newest manifest version under `dir` with its sequence number; `None` if there is none.
pub async fn read_manifest(
    store: &dyn ObjectStore,
    dir: &Path,
) -> Result<Option<(QueueManifest, u64)>> {
    let Some(seq) = list_versions(store, dir).await?.pop() else {
        return Ok(None);
    };
    let path = version_path(dir, seq);
    let got = store
        .get(&path)
        .await
        .map_err(|e| TieringError::store(format!("reading {path}"), e))?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| TieringError::store(format!("reading {path}"), e))?;
    let invalid = |reason: String| TieringError::Invalid {
        path: path.to_string(),
        reason,
    };
    let manifest: QueueManifest =
        serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    manifest.check().map_err(invalid)?;
    Ok(Some((manifest, seq)))
}

/// A manifest owned by this writer at a given epoch.
#[derive(Debug)]
pub struct FencedManifest {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    queue: String,
    current: QueueManifest,
    seq: u64,
}

impl FencedManifest {
    /// Takes ownership of the queue: writes the next version with a raised epoch.
    pub async fn acquire(
        store: Arc<dyn ObjectStore>,
        dir: Path,
        queue: impl Into<String>,
    ) -> Result<Self> {
        let queue = queue.into();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (mut next, seq) = match read_manifest(store.as_ref(), &dir).await? {
                None => (QueueManifest::empty(), 0),
                Some((m, seq)) => (m, seq + 1),
            };
            next.epoch += 1;
            match create(store.as_ref(), &dir, seq, &next).await {
                Ok(()) => {
                    let me = Self {
                        store: store.clone(),
                        dir: dir.clone(),
                        queue: queue.clone(),
                        current: next,
                        seq,
                    };
                    match me.after_write().await {
                        Ok(()) => return Ok(me),
                        // A newer version appeared meanwhile: take over from it.
                        Err(TieringError::Fenced { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                // Someone else wrote that version (or ours landed unanswered): read again.
                Err(e) if is_conflict(&e) || is_transient(&e) => continue,
                Err(e) => return Err(TieringError::store(format!("taking over {}", dir), e)),
            }
        }
        Err(TieringError::Contended {
            path: dir.to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    pub fn epoch(&self) -> u64 {
        self.current.epoch
    }

    /// The manifest as this owner last wrote or read it.
    pub fn manifest(&self) -> &QueueManifest {
        &self.current
    }

    /// Applies `change` and writes the result as the next version, resolving
    /// conflicts as the module docs describe. `change` must be idempotent.
    pub async fn update(
        &mut self,
        change: impl Fn(&mut QueueManifest) -> std::result::Result<(), String>,
    ) -> Result<()> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut next = self.current.clone();
            change(&mut next).map_err(|reason| TieringError::Invalid {
                path: self.dir.to_string(),
                reason,
            })?;
            if next == self.current {
                return Ok(());
            }
            match create(self.store.as_ref(), &self.dir, self.seq + 1, &next).await {
                Ok(()) => {
                    let ours = self.current.epoch;
                    self.current = next;
                    self.seq += 1;
                    return self
                        .after_write()
                        .await
                        .inspect_err(|_| self.current.epoch = ours);
                }
                Err(e) if is_conflict(&e) || is_transient(&e) => self.refresh().await?,
                Err(e) => return Err(TieringError::store(format!("writing {}", self.dir), e)),
            }
        }
        Err(TieringError::Contended {
            path: self.dir.to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// Re-reads the newest version; fails with `Fenced` if another owner took over.
    pub async fn refresh(&mut self) -> Result<()> {
        let Some((m, seq)) = read_manifest(self.store.as_ref(), &self.dir).await? else {
            return Err(TieringError::Invalid {
                path: self.dir.to_string(),
                reason: "manifest disappeared".into(),
            });
        };
        if m.epoch != self.current.epoch {
            return Err(TieringError::Fenced {
                queue: self.queue.clone(),
                ours: self.current.epoch,
                current: m.epoch,
            });
        }
        self.current = m;
        self.seq = seq;
        Ok(())
    }

    /// Checks that no newer version exists (else this writer is stale: fenced),
    /// then deletes versions older than the few kept (best effort).
    async fn after_write(&self) -> Result<()> {
        let seqs = list_versions(self.store.as_ref(), &self.dir).await?;
        if let Some(newest) = seqs.last().copied().filter(|n| *n > self.seq) {
            let _ = self.store.delete(&version_path(&self.dir, self.seq)).await;
            let current = read_manifest(self.store.as_ref(), &self.dir)
                .await?
                .map_or(0, |(m, _)| m.epoch);
            tracing::warn!(dir = %self.dir, ours = self.seq, newest, "a newer manifest version exists; this writer is fenced");
            return Err(TieringError::Fenced {
                queue: self.queue.clone(),
                ours: self.current.epoch,
                current,
            });
        }
        let floor = self.seq.saturating_sub(KEEP_VERSIONS);
        for old in seqs.into_iter().filter(|s| *s < floor) {
            if let Err(e) = self.store.delete(&version_path(&self.dir, old)).await {
                tracing::debug!(error = %e, "could not delete an old manifest version");
            }
        }
        Ok(())
    }
}

fn is_conflict(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }
    )
}

fn is_transient(e: &object_store::Error) -> bool {
    crate::retry_store::is_transient(e)
}

async fn create(
    store: &dyn ObjectStore,
    dir: &Path,
    seq: u64,
    m: &QueueManifest,
) -> object_store::Result<()> {
    let body = serde_json::to_vec(m).map_err(|e| object_store::Error::Generic {
        store: "manifest",
        source: Box::new(e),
    })?;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(&version_path(dir, seq), PutPayload::from(body), opts)
        .await
        .map(|_| ())
}
