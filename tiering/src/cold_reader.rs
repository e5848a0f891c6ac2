//! Cold reads: offsets no longer on local disk, served from Parquet segments.
//!
//! A read finds the segment in the queue's manifest, the row group in the
//! segment's footer (by offset statistics), and fetches that row group with
//! one ranged read. Three moka caches keep this cheap:
//! - manifests, for a short TTL (and invalidated when this node changes one);
//! - footers, so a point read after the first costs one ranged GET;
//! - decoded row groups, bounded in bytes, so sequential replay reads each
//!   row group once. When a read reaches the end of a row group, the next one
//!   (or the first of the next segment) is fetched in the background, so
//!   replay overlaps network time with sending; point reads fetch nothing extra.
//!
//! Callers cannot tell a cold read from a hot one: records come back exactly
//! as they were stored.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use object_store::ObjectStore;
use object_store::path::Path;
use shale_hot::Record;

use crate::error::{Result, TieringError};
use crate::manifest::{QueueManifest, SegmentEntry, read_manifest};
use crate::parquet_segment::{SegmentFooter, read_footer, read_range, row_groups_maybe_with_key};
use crate::paths::Layout;

/// How long a manifest read from the store is trusted before it is read again.
const MANIFEST_TTL: Duration = Duration::from_secs(2);
/// Footers kept.
const FOOTER_ENTRIES: u64 = 4096;

type RowGroup = Arc<Vec<Record>>;

/// Reads cold data of any queue.
#[derive(Clone)]
pub struct ColdReader {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    manifests: Cache<(String, u32), Option<Arc<QueueManifest>>>,
    footers: Cache<Path, Arc<SegmentFooter>>,
    row_groups: Cache<(Path, usize), RowGroup>,
}

impl std::fmt::Debug for ColdReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdReader")
            .field("store", &self.store.to_string())
            .field("layout", &self.layout)
            .finish()
    }
}

fn shared(e: Arc<TieringError>) -> TieringError {
    TieringError::Shared(e)
}

impl ColdReader {
    /// A reader whose row-group cache holds about `cache_bytes` of records.
    pub fn new(store: Arc<dyn ObjectStore>, layout: Layout, cache_bytes: u64) -> Self {
        let row_groups = Cache::builder()
            .weigher(|_k: &(Path, usize), v: &RowGroup| {
                let bytes: usize = v.iter().map(|r| r.body.len() + 128).sum();
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .max_capacity(cache_bytes)
            .build();
        Self {
            store,
            layout,
            manifests: Cache::builder()
                .time_to_live(MANIFEST_TTL)
                .max_capacity(100_000)
                .build(),
            footers: Cache::builder().max_capacity(FOOTER_ENTRIES).build(),
            row_groups,
        }
    }

    /// The queue's manifest (`None`: the queue has no cold data).
    pub async fn manifest(&self, topic: &str, queue: u32) -> Result<Option<Arc<QueueManifest>>> {
        let dir = self.layout.manifest_dir(topic, queue);
        let store = self.store.clone();
        self.manifests
            .try_get_with((topic.to_string(), queue), async move {
                Ok::<_, TieringError>(
                    read_manifest(store.as_ref(), &dir)
                        .await?
                        .map(|(m, _)| Arc::new(m)),
                )
            })
            .await
            .map_err(shared)
    }

    /// Forgets the cached manifest (after this node changed it).
    pub async fn invalidate(&self, topic: &str, queue: u32) {
        self.manifests.invalidate(&(topic.to_string(), queue)).await;
    }

    /// Seeds the manifest cache with one this node just wrote.
    pub async fn remember(&self, topic: &str, queue: u32, manifest: QueueManifest) {
        self.manifests
            .insert((topic.to_string(), queue), Some(Arc::new(manifest)))
            .await;
    }

    async fn footer(&self, path: &Path, size: u64) -> Result<Arc<SegmentFooter>> {
        let store = self.store.clone();
        let p = path.clone();
        self.footers
            .try_get_with(path.clone(), async move {
                read_footer(store, &p, size).await.map(Arc::new)
            })
            .await
            .map_err(shared)
    }

    async fn row_group(
        &self,
        path: &Path,
        size: u64,
        footer: &Arc<SegmentFooter>,
        index: usize,
    ) -> Result<RowGroup> {
        let store = self.store.clone();
        let (p, f) = (path.clone(), footer.clone());
        self.row_groups
            .try_get_with((path.clone(), index), async move {
                let g = f.row_groups[index];
                read_range(store, &p, size, &f, g.first_offset, g.rows as usize)
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(shared)
    }

    /// Fetches the row group after `(seg, index)` into the cache in the background.
    fn prefetch_next(
        &self,
        manifest: Arc<QueueManifest>,
        topic: &str,
        queue: u32,
        seg: usize,
        index: usize,
        rows_in_seg: usize,
    ) {
        let (next_seg, next_index) = if index + 1 < rows_in_seg {
            (seg, index + 1)
        } else {
            (seg + 1, 0)
        };
        let Some(entry) = manifest.segments.get(next_seg).cloned() else {
            return;
        };
        let path = self.layout.segment(topic, queue, entry.base_offset);
        if self.row_groups.contains_key(&(path.clone(), next_index)) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(footer) = me.footer(&path, entry.bytes).await else {
                return;
            };
            if next_index < footer.row_groups.len() {
                let _ = me.row_group(&path, entry.bytes, &footer, next_index).await;
            }
        });
    }

    /// Up to `max` records from `offset` on, all from one row group. Empty
    /// when `offset` is not in the cold range `[min_offset, end_offset)`.
    pub async fn read(
        &self,
        topic: &str,
        queue: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<Record>> {
        let Some(manifest) = self.manifest(topic, queue).await? else {
            return Ok(Vec::new());
        };
        if offset < manifest.min_offset {
            return Ok(Vec::new());
        }
        let Some(seg_index) = segment_of(&manifest.segments, offset) else {
            return Ok(Vec::new());
        };
        let entry = &manifest.segments[seg_index];
        let path = self.layout.segment(topic, queue, entry.base_offset);
        let footer = self.footer(&path, entry.bytes).await?;
        let Some(rg) = footer.row_group_of(offset) else {
            return Err(TieringError::Invalid {
                path: path.to_string(),
                reason: format!("no row group holds offset {offset}"),
            });
        };
        let rows = self.row_group(&path, entry.bytes, &footer, rg).await?;
        let start = (offset - footer.row_groups[rg].first_offset) as usize;
        // A reader that reaches the end of a row group is replaying: fetch the
        // next one now. A point read does not trigger any extra request.
        if start.saturating_add(max) >= rows.len() {
            self.prefetch_next(
                manifest.clone(),
                topic,
                queue,
                seg_index,
                rg,
                footer.row_groups.len(),
            );
        }
        Ok(rows.iter().skip(start).take(max).cloned().collect())
    }

    /// The first cold offset with `store_ms >= ts`, or `None` when every cold
    /// message is older (the answer is then in the hot tier, or `max_offset`).
    /// Reads: the manifest (cached), one footer, one row group.
    pub async fn offset_for_timestamp(
        &self,
        topic: &str,
        queue: u32,
        ts: i64,
    ) -> Result<Option<u64>> {
        let Some(manifest) = self.manifest(topic, queue).await? else {
            return Ok(None);
        };
        let i = manifest.segments.partition_point(|s| s.max_store_ms < ts);
        let Some(entry) = manifest.segments.get(i) else {
            return Ok(None);
        };
        let path = self.layout.segment(topic, queue, entry.base_offset);
        let footer = self.footer(&path, entry.bytes).await?;
        let Some(rg) = footer.first_row_group_at_or_after(ts) else {
            return Ok(None);
        };
        let rows = self.row_group(&path, entry.bytes, &footer, rg).await?;
        Ok(rows.iter().find(|r| r.store_ms >= ts).map(|r| r.offset))
    }
}

impl ColdReader {
    /// Cold messages carrying `key` with `begin_ms <= store_ms <= end_ms`,
    /// oldest first, at most `max`. Only segments whose time range overlaps the
    /// window are considered, and in them only the row groups whose bloom
    /// filter may hold the key are read.
    pub async fn find_by_key(
        &self,
        topic: &str,
        queue: u32,
        key: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<Record>> {
        let Some(manifest) = self.manifest(topic, queue).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in manifest
            .segments
            .iter()
            .filter(|s| s.max_store_ms >= begin_ms && s.min_store_ms <= end_ms)
        {
            let path = self.layout.segment(topic, queue, entry.base_offset);
            let footer = self.footer(&path, entry.bytes).await?;
            for rg in
                row_groups_maybe_with_key(self.store.clone(), &path, entry.bytes, &footer, key)
                    .await?
            {
                let rows = self.row_group(&path, entry.bytes, &footer, rg).await?;
                let hits = rows.iter().filter(|r| {
                    r.offset >= manifest.min_offset
                        && r.store_ms >= begin_ms
                        && r.store_ms <= end_ms
                        && r.keys.iter().any(|k| k == key)
                });
                for r in hits {
                    out.push(r.clone());
                    if out.len() >= max {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Index of the segment holding `offset`.
fn segment_of(segments: &[SegmentEntry], offset: u64) -> Option<usize> {
    let i = segments
        .partition_point(|s| s.base_offset <= offset)
        .checked_sub(1)?;
    (offset < segments[i].end_offset).then_some(i)
}
