//! The uploader of one queue: sealed hot segments → Parquet objects → manifest.
//!
//! Order of effects, so that a crash at any point loses nothing and lists
//! nothing twice, and so that the public `segments/` prefix holds exactly the
//! committed segments (a replay job listing it reads no row that was never
//! committed, and no offset twice):
//! 1. the segment object is written (a plain put, or a multipart upload for
//!    big segments) to its *staging* key,
//!    `staging/{epoch:020}-{base_offset:020}.parquet` (see
//!    [`Layout::staged_segment`]), unique to this owner's epoch — no other
//!    owner ever writes it, and writing it again after a failure writes the
//!    same rows;
//! 2. the manifest gains its entry, recording the staging epoch (a fenced,
//!    idempotent CAS, see [`crate::manifest`]). A stale owner's CAS fails with
//!    [`TieringError::Fenced`]: it deletes its staging object and stops, so
//!    its upload never reaches `segments/`;
//! 3. the entry is *published*: its staging object is copied to the public
//!    key `segments/{base_offset:020}.parquet`, then deleted (best effort);
//! 4. only after the commit (2) may the hot tier evict the local segment:
//!    until it is published, cold reads fall back to the staging key.
//!
//! Invariants:
//! - only a committed segment is ever copied to a public key, and only from
//!   the staging key its entry names, so a public object always holds the
//!   rows the manifest lists for it;
//! - segments are published in manifest order and a segment is committed
//!   only once every listed one before it is public, so the listed segments
//!   missing from `segments/` are a suffix of the manifest — in practice at
//!   most one (committed, then a crash before the copy).
//!
//! Repair, on [`QueueUploader::open`] and before an upload whenever a
//! publication may not have finished: the listed segments are checked from
//! the newest backwards with a HEAD until one is public (or was never staged:
//! manifests from before staging), and the missing ones are copied in order.
//! Then, once per open, one LIST of the queue's `staging/` deletes what
//! owners of lower epochs left there: uploads whose CAS was fenced, crashes
//! before the commit, staging copies whose delete failed. Only lower epochs
//! are swept: their owners are fenced, so whatever of theirs is committed is
//! in the manifest this owner took over (and now public), while a higher
//! epoch's object may belong to a newer owner's upload in flight.
//!
//! Segments are uploaded strictly in offset order: the manifest stays a
//! contiguous run, and a segment is never listed before the one it follows.
//! A segment damaged on local disk is salvaged rather than left blocking the
//! queue: lost offsets go up as marker rows (see [`read_segment`]).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use shale_hot::{QueueLog, Record, SegmentInfo};

use crate::error::{Result, TieringError};
use crate::fenced::Versioned;
use crate::manifest::{FencedManifest, QueueManifest, QueueOwner, SegmentEntry};
use crate::parquet_segment::{encode_segment, lost_marker};
use crate::paths::{Layout, parse_staged};

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
    /// A listed segment may lack its public object (from the open, and from
    /// each commit until its copy is done): publish before the next commit.
    unpublished: bool,
    /// The orphan sweep of `staging/` has run since the open.
    swept: bool,
}

impl QueueUploader {
    /// Takes ownership of the queue's manifest (raising its epoch), then
    /// repairs what earlier owners left (see the module docs). A failed
    /// repair does not fail the open: it is retried before the next upload.
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
        Ok(Self::taken(store, layout, topic, queue, row_group_bytes, manifest).await)
    }

    /// The uploader of a manifest just taken: repairs what earlier owners
    /// left (a failed repair is retried before the next upload).
    async fn taken(
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        topic: &str,
        queue: u32,
        row_group_bytes: usize,
        manifest: FencedManifest,
    ) -> Self {
        let mut me = Self {
            store,
            layout,
            topic: topic.to_string(),
            queue,
            manifest,
            row_group_bytes,
            unpublished: true,
            swept: false,
        };
        if let Err(e) = me.settle().await {
            tracing::warn!(
                topic,
                queue,
                error = %e,
                "could not publish committed segments on open; retrying before the next upload"
            );
        }
        me
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
                let previous = current.and_then(|m| m.owner.as_ref());
                if !may_take(previous) {
                    return false;
                }
                if let Some(p) = previous.filter(|p| *p != me && !next.recovering_from.contains(p))
                {
                    next.recovering_from.push(p.clone());
                }
                next.owner = Some(me.clone());
                true
            },
        )
        .await?;
        let Some((manifest, previous)) = taken else {
            return Ok(None);
        };
        let up = Self::taken(store, layout, topic, queue, row_group_bytes, manifest).await;
        Ok(Some((up, previous)))
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
        self.settle().await?;
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
            self.commit(&entry).await?;
            self.publish(&entry).await?;
            self.unpublished = false;
            added.push(entry);
        }
        Ok(added)
    }

    /// Lists a staged segment in the manifest. A fenced owner deletes its
    /// staging object (best effort): nothing will ever list it.
    async fn commit(&mut self, entry: &SegmentEntry) -> Result<()> {
        // From here until the copy is done, a listed segment may lack its
        // public object (even when the CAS reports failure: it may have landed).
        self.unpublished = true;
        let e = entry.clone();
        let res = self
            .manifest
            .update(move |m| {
                if m.segments.is_empty() {
                    m.min_offset = e.base_offset;
                }
                m.add_segment(e.clone())
            })
            .await;
        if res.as_ref().is_err_and(TieringError::is_fenced) {
            let staged = self.staged_path(entry);
            if let Err(e) = self.store.delete(&staged).await {
                tracing::debug!(%staged, error = %e, "could not delete a fenced upload; the next owner's sweep will");
            }
        }
        res
    }

    /// Publishes what earlier owners or attempts committed but did not copy,
    /// then (once per open) sweeps orphans out of `staging/`.
    async fn settle(&mut self) -> Result<()> {
        if self.unpublished {
            self.publish_missing().await?;
            self.unpublished = false;
        }
        if !self.swept {
            self.swept = true;
            self.sweep_staging().await;
        }
        Ok(())
    }

    /// Copies the listed segments missing from `segments/` from their staging
    /// keys, oldest first. They are a suffix of the manifest (see the module
    /// docs), found from the newest backwards: one HEAD when all is published.
    async fn publish_missing(&mut self) -> Result<()> {
        let segments = &self.manifest.manifest().segments;
        let mut first_missing = segments.len();
        for (i, entry) in segments.iter().enumerate().rev() {
            if entry.staged_epoch.is_none() || self.is_public(entry).await? {
                break;
            }
            first_missing = i;
        }
        let missing = segments[first_missing..].to_vec();
        if !missing.is_empty() {
            tracing::info!(
                topic = self.topic,
                queue = self.queue,
                segments = missing.len(),
                "publishing committed segments a crash left in staging"
            );
        }
        for entry in &missing {
            self.publish(entry).await?;
        }
        Ok(())
    }

    /// Copies a committed segment from its staging key to its public key,
    /// then deletes the staging object (best effort: the sweep of the next
    /// open deletes a leftover).
    async fn publish(&mut self, entry: &SegmentEntry) -> Result<()> {
        if entry.staged_epoch.is_none() {
            return Ok(());
        }
        let (staged, public) = (self.staged_path(entry), self.public_path(entry));
        match self.store.copy(&staged, &public).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => {
                // Published by a newer owner (who deleted the staging copy),
                // or dropped by its retention: then this owner is fenced.
                if !self.is_public(entry).await? {
                    self.manifest.refresh().await?;
                    return Err(TieringError::Invalid {
                        path: public.to_string(),
                        reason: format!("the committed segment is missing, and so is {staged}"),
                    });
                }
            }
            Err(e) => return Err(TieringError::store(format!("publishing {public}"), e)),
        }
        if let Err(e) = self.store.delete(&staged).await {
            tracing::debug!(%staged, error = %e, "could not delete a published staging object");
        }
        Ok(())
    }

    /// Deletes the staging objects of lower epochs (see the module docs).
    /// Best effort, one LIST: what fails now is tried at the next open.
    async fn sweep_staging(&self) {
        let dir = self.layout.staging_dir(&self.topic, self.queue);
        let ours = self.manifest.epoch();
        let listed = self.store.list(Some(&dir)).try_collect::<Vec<_>>().await;
        let objects = match listed {
            Ok(objects) => objects,
            Err(e) => {
                tracing::debug!(%dir, error = %e, "could not list staging; sweeping at the next open");
                return;
            }
        };
        for meta in objects {
            let stale = parse_staged(&meta.location).is_some_and(|(epoch, _)| epoch < ours);
            if !stale {
                continue;
            }
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::debug!(path = %meta.location, error = %e, "could not delete an orphan upload")
                }
            }
        }
    }

    /// Whether a listed segment's public object exists.
    async fn is_public(&self, entry: &SegmentEntry) -> Result<bool> {
        let public = self.public_path(entry);
        match self.store.head(&public).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(TieringError::store(format!("checking {public}"), e)),
        }
    }

    fn public_path(&self, entry: &SegmentEntry) -> Path {
        self.layout
            .segment(&self.topic, self.queue, entry.base_offset)
    }

    /// The staging key of a listed entry; for one never staged, that of this
    /// owner's epoch.
    fn staged_path(&self, entry: &SegmentEntry) -> Path {
        let epoch = entry.staged_epoch.unwrap_or(self.manifest.epoch());
        self.layout
            .staged_segment(&self.topic, self.queue, epoch, entry.base_offset)
    }

    /// Encodes a sealed segment and writes it to this owner's staging key;
    /// the entry returned names that key's epoch.
    async fn upload_one(&self, log: &Arc<QueueLog>, info: &SegmentInfo) -> Result<SegmentEntry> {
        // Reading and encoding a segment is seconds of CPU for a big one:
        // keep it off the async workers.
        let (log, info_copy, row_group_bytes) = (log.clone(), *info, self.row_group_bytes);
        let (bytes, mut entry, lost) = tokio::task::spawn_blocking(move || {
            let (records, lost) = read_segment(&log, &info_copy)?;
            let (bytes, entry) = encode_segment(&records, row_group_bytes)?;
            Ok::<_, TieringError>((bytes, entry, lost))
        })
        .await
        .map_err(|e| TieringError::Invalid {
            path: format!("{}/{}", self.topic, self.queue),
            reason: format!("encoding a segment: {e}"),
        })??;
        entry.staged_epoch = Some(self.manifest.epoch());
        let path = self.staged_path(&entry);
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
