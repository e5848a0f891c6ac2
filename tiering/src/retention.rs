//! Retention of cold segments: whole segments whose newest message is older
//! than the topic's `retention_ms` leave the manifest, then the bucket.
//!
//! Order matters: the manifest is updated first (fenced, idempotent), so a
//! reader never finds a listed segment whose object is gone; the objects are
//! deleted after. A crash between the two leaves unlisted objects below
//! `min_offset`, which a later pass deletes again (deleting is idempotent).
//! `min_offset` only moves up: reads below it are out of range.
//!
//! A segment has up to two objects: its public key and, if it was staged
//! (see [`crate::uploader`]) and a crash kept it from being published or its
//! staging copy from being deleted, its staging key. Both are deleted, the
//! staging one first: an old owner publishing late copies from the staging
//! key, so once that is gone no copy can bring the public object back.

use object_store::ObjectStore;

use crate::error::{Result, TieringError};
use crate::manifest::{FencedManifest, QueueManifest, SegmentEntry};
use crate::paths::Layout;

impl QueueManifest {
    /// Drops the segments whose newest message is older than `cutoff_ms` and
    /// moves `min_offset` past them. Idempotent; returns what was dropped.
    pub fn drop_expired(&mut self, cutoff_ms: i64) -> Vec<SegmentEntry> {
        let end = self.end_offset();
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.segments)
            .into_iter()
            .partition(|s| s.max_store_ms < cutoff_ms);
        self.segments = kept;
        let new_min = self.segments.first().map_or(end, |s| s.base_offset);
        self.min_offset = self.min_offset.max(new_min);
        expired
    }
}

/// Applies retention to one queue owned by `manifest`; returns the segments removed.
pub async fn apply_retention(
    manifest: &mut FencedManifest,
    store: &dyn ObjectStore,
    layout: &Layout,
    topic: &str,
    queue: u32,
    cutoff_ms: i64,
) -> Result<Vec<SegmentEntry>> {
    let expired = manifest.manifest().clone().drop_expired(cutoff_ms);
    if expired.is_empty() {
        return Ok(expired);
    }
    manifest
        .update(move |m| {
            m.drop_expired(cutoff_ms);
            Ok(())
        })
        .await?;
    for seg in &expired {
        let staged = seg
            .staged_epoch
            .map(|epoch| layout.staged_segment(topic, queue, epoch, seg.base_offset));
        let public = layout.segment(topic, queue, seg.base_offset);
        for path in staged.iter().chain([&public]) {
            match store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(TieringError::store(format!("deleting expired {path}"), e)),
            }
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: u64, end: u64, max_ms: i64) -> SegmentEntry {
        SegmentEntry {
            base_offset: base,
            end_offset: end,
            min_store_ms: max_ms - 10,
            max_store_ms: max_ms,
            rows: end - base,
            bytes: 1,
            staged_epoch: None,
        }
    }

    #[test]
    fn drops_only_whole_expired_segments_and_min_offset_only_rises() {
        let mut m = QueueManifest {
            format: 1,
            epoch: 1,
            min_offset: 0,
            segments: vec![seg(0, 10, 100), seg(10, 20, 200), seg(20, 30, 300)],
            owner: None,
            recovering_from: Vec::new(),
        };
        assert_eq!(m.drop_expired(150), vec![seg(0, 10, 100)]);
        assert_eq!(m.min_offset, 10);
        assert!(m.drop_expired(150).is_empty());
        assert_eq!(m.drop_expired(1000).len(), 2);
        assert_eq!((m.min_offset, m.end_offset()), (30, 30));
        assert!(m.add_segment(seg(30, 31, 2000)).is_ok());
    }
}
