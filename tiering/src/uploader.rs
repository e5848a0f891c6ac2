//! The uploader of one queue: sealed hot segments → Parquet objects → manifest.
//!
//! Order of effects, so that a crash at any point loses nothing and lists
//! nothing twice:
//! 1. the segment object is written (a plain put, or a multipart upload for
//!    big segments) at its deterministic path — writing it again after a crash
//!    writes the same rows;
//! 2. the manifest gains its entry (a fenced, idempotent CAS, see
//!    [`crate::manifest`]);
//! 3. only then may the hot tier evict the local segment.
//!
//! Segments are uploaded strictly in offset order: the manifest stays a
//! contiguous run, and a segment is never listed before the one it follows.
//! A segment damaged on local disk is salvaged rather than left blocking the
//! queue: lost offsets go up as marker rows (see [`read_segment`]).

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use shale_hot::{QueueLog, Record, SegmentInfo};

use crate::error::{Result, TieringError};
use crate::fenced::Versioned;
use crate::manifest::{FencedManifest, QueueManifest, QueueOwner, SegmentEntry};
use crate::parquet_segment::{encode_segment, lost_marker};
use crate::paths::Layout;

/// Segments at least this big go up as multipart uploads.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Size of one multipart part.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Records read from the hot tier per call while collecting a segment.
const READ_BATCH: usize = 4096;

/// Uploads one queue's sealed segments while it owns the queue's manifest.
#[derive(Debug)]
pub struct QueueUploader {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    topic: String,
    queue: u32,
    manifest: FencedManifest,
    row_group_bytes: usize,
}

impl QueueUploader {
    /// Takes ownership of the queue's manifest (raising its epoch).
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        topic: &str,
        queue: u32,
        row_group_bytes: usize,
    ) -> Result<Self> {
        let dir = layout.manifest_dir(topic, queue);
        let manifest =
            FencedManifest::acquire(store.clone(), dir, format!("{topic}/{queue}")).await?;
        Ok(Self {
            store,
            layout,
            topic: topic.to_string(),
            queue,
            manifest,
            row_group_bytes,
        })
    }

    /// Takes the queue's manifest for `me` if `may_take` agrees with the
    /// owner named now (see [`crate::Tier::acquire`]). Also returns the
    /// manifest it replaced. `Ok(None)` when refused.
    pub async fn acquire(
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        topic: &str,
        queue: u32,
        row_group_bytes: usize,
        me: &QueueOwner,
        may_take: impl Fn(Option<&QueueOwner>) -> bool,
    ) -> Result<Option<(Self, Option<QueueManifest>)>> {
        let dir = layout.manifest_dir(topic, queue);
        let taken = FencedManifest::acquire_if(
            store.clone(),
            dir,
            format!("{topic}/{queue}"),
            QueueManifest::empty(),
            |current, next| {
                if !may_take(current.and_then(|m| m.owner.as_ref())) {
                    return false;
                }
                next.owner = Some(me.clone());
                true
            },
        )
        .await?;
        Ok(taken.map(|(manifest, previous)| {
            let up = Self {
                store,
                layout,
                topic: topic.to_string(),
                queue,
                manifest,
                row_group_bytes,
            };
            (up, previous)
        }))
    }

    pub fn manifest(&self) -> &FencedManifest {
        &self.manifest
    }

    /// The owned manifest, for other fenced changes (retention).
    pub fn manifest_mut(&mut self) -> &mut FencedManifest {
        &mut self.manifest
    }

    /// Uploads every local sealed segment the manifest does not list yet,
    /// oldest first. Returns the entries added. Stops at the first failure
    /// (what was added before it stays added).
    pub async fn upload_sealed(&mut self, log: &Arc<QueueLog>) -> Result<Vec<SegmentEntry>> {
        let mut added = Vec::new();
        for info in log.sealed_segments() {
            let listed_end = self.manifest.manifest().end_offset();
            if info.end_offset <= listed_end {
                continue;
            }
            if info.base_offset != listed_end
                && !(self.manifest.manifest().segments.is_empty() && listed_end == 0)
            {
                return Err(TieringError::Invalid {
                    path: self
                        .layout
                        .manifest_dir(&self.topic, self.queue)
                        .to_string(),
                    reason: format!(
                        "local segment starts at {} but the manifest ends at {listed_end}",
                        info.base_offset
                    ),
                });
            }
            let entry = self.upload_one(log, &info).await?;
            let e = entry.clone();
            self.manifest
                .update(move |m| {
                    if m.segments.is_empty() {
                        m.min_offset = e.base_offset;
                    }
                    m.add_segment(e.clone())
                })
                .await?;
            added.push(entry);
        }
        Ok(added)
    }

    async fn upload_one(&self, log: &Arc<QueueLog>, info: &SegmentInfo) -> Result<SegmentEntry> {
        // Reading and encoding a segment is seconds of CPU for a big one:
        // keep it off the async workers.
        let (log, info_copy, row_group_bytes) = (log.clone(), *info, self.row_group_bytes);
        let (bytes, entry, lost) = tokio::task::spawn_blocking(move || {
            let (records, lost) = read_segment(&log, &info_copy)?;
            let (bytes, entry) = encode_segment(&records, row_group_bytes)?;
            Ok::<_, TieringError>((bytes, entry, lost))
        })
        .await
        .map_err(|e| TieringError::Invalid {
            path: format!("{}/{}", self.topic, self.queue),
            reason: format!("encoding a segment: {e}"),
        })??;
        let path = self
            .layout
            .segment(&self.topic, self.queue, info.base_offset);
        put_object(self.store.as_ref(), &path, bytes).await?;
        if lost > 0 {
            metrics::counter!("shale_lost_messages_total", "topic" => self.topic.clone())
                .increment(lost);
        }
        Ok(entry)
    }
}

/// Every record of a sealed segment. A segment damaged on disk is salvaged:
/// what still passes its checks goes up, and each lost offset becomes a
/// [`lost_marker`] row, so the queue's uploads go on (instead of retrying
/// the same bad bytes forever while the hot tier fills up) and a reader of a
/// lost offset still gets an error, as from the hot tier, never a message.
/// Also returns how many offsets were lost.
fn read_segment(log: &QueueLog, info: &SegmentInfo) -> Result<(Vec<Record>, u64)> {
    let err = match read_checked(log, info) {
        Ok(records) => return Ok((records, 0)),
        Err(e) => e,
    };
    let Some(salvaged) = log.salvage_sealed(info.base_offset) else {
        return Err(err);
    };
    if salvaged.lost.is_empty() {
        return Err(err);
    }
    // Salvage covers [base, end) exactly once, in order: records up to each
    // lost range, then a marker per lost offset (timed like the record before).
    let mut out = Vec::with_capacity((info.end_offset - info.base_offset) as usize);
    let mut records = salvaged.records.into_iter().peekable();
    let mut last_ms = info.first_store_ms;
    let mut lost_count = 0;
    for lost in &salvaged.lost {
        lost_count += lost.offsets.end - lost.offsets.start;
        while let Some(r) = records.next_if(|r| r.offset < lost.offsets.start) {
            last_ms = r.store_ms;
            out.push(r);
        }
        tracing::error!(
            topic = log.topic(),
            queue = log.queue(),
            offsets = ?lost.offsets,
            reason = %lost.reason,
            "messages lost to damage on local disk; uploading the rest of the segment"
        );
        out.extend(
            lost.offsets
                .clone()
                .map(|o| lost_marker(o, last_ms, log.queue(), &lost.reason)),
        );
    }
    out.extend(records);
    Ok((out, lost_count))
}

fn read_checked(log: &QueueLog, info: &SegmentInfo) -> Result<Vec<Record>> {
    let mut records = Vec::with_capacity((info.end_offset - info.base_offset) as usize);
    let mut at = info.base_offset;
    while at < info.end_offset {
        let want = ((info.end_offset - at) as usize).min(READ_BATCH);
        let part = log
            .read(at, want, usize::MAX)
            .map_err(|e| TieringError::Invalid {
                path: format!("{}/{}", log.topic(), log.queue()),
                reason: format!("reading the sealed segment at {}: {e}", info.base_offset),
            })?;
        if part.is_empty() {
            break;
        }
        at += part.len() as u64;
        records.extend(part);
    }
    Ok(records)
}

async fn put_object(store: &dyn ObjectStore, path: &Path, bytes: bytes::Bytes) -> Result<()> {
    let fail = |e| TieringError::store(format!("uploading {path}"), e);
    if bytes.len() < MULTIPART_THRESHOLD {
        store
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(fail)?;
        return Ok(());
    }
    let upload = store.put_multipart(path).await.map_err(fail)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    writer.put(bytes);
    writer.finish().await.map_err(fail)?;
    Ok(())
}
