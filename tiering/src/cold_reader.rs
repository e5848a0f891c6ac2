//! Cold reads: offsets no longer on local disk, served from Parquet segments.
//!
//! A read finds the segment in the queue's manifest, the row group in the
//! segment's footer (by offset statistics), and fetches that row group with
//! one ranged read. Three moka caches keep this cheap:
//! - manifests, for a short TTL (and invalidated when this node changes one);
//! - footers, so a point read after the first costs one ranged GET;
//! - decoded row groups, bounded in bytes, so sequential replay reads each
//!   row group once. When a read reaches the end of a row group, the next
//!   few (crossing into the next segments) are fetched in the background,
//!   several per GET, and decoded in order, so replay overlaps network time
//!   and decoding with sending; point reads fetch nothing extra.
//!
//! Decoding runs on blocking threads (see [`read_row_group`]).
//!
//! Segments are read at their public key. A listed segment whose public
//! object is missing — committed, but its copy out of `staging/` not done
//! yet (a crash window that the next owner repairs, see [`crate::uploader`])
//! — is read at the staging key its entry names instead. Both keys hold the
//! same bytes, so every cache is keyed by the public key and stays valid when
//! the segment is published.
//!
//! Callers cannot tell a cold read from a hot one: records come back exactly
//! as they were stored.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use moka::future::Cache;
use object_store::ObjectStore;
use object_store::path::Path;
use parking_lot::Mutex;
use shale_hot::Record;

use crate::error::{Result, TieringError};
use crate::manifest::{QueueManifest, SegmentEntry, read_manifest};
use crate::parquet_segment::{
    SegmentFooter, decode_row_group, fetch_row_groups, lost_reason, read_footer, read_row_group,
    row_groups_maybe_with_key,
};
use crate::paths::Layout;

/// How long a manifest read from the store is trusted before it is read again.
const MANIFEST_TTL: Duration = Duration::from_secs(2);
/// Footers kept.
const FOOTER_ENTRIES: u64 = 4096;
/// Row groups a sequential reader keeps fetched or in flight ahead of itself.
const READAHEAD_ROW_GROUPS: usize = 8;
/// Row groups of one read-ahead batch decoded at once.
const DECODE_TASKS: usize = 2;
/// Row groups fetched together by one read-ahead GET, at least.
const READAHEAD_BATCH: usize = 4;
/// Segments whose read-ahead position is remembered (then forgotten at once:
/// forgetting costs at most one extra fetch).
const ASKED_ENTRIES: usize = 10_000;

type RowGroup = Arc<Vec<Record>>;

/// Where a listed segment's bytes are: its public key, and the staging key
/// it is published from (read only while the public object is missing).
#[derive(Debug, Clone)]
struct SegmentKeys {
    public: Path,
    staged: Option<Path>,
}

/// Runs `read` at the segment's public key; when that fails because the
/// public object is missing and the segment was staged, at its staging key
/// (and at the public key once more if the staging object is gone too: it is
/// deleted right after the copy). Any other failure is returned as it is.
async fn read_either<T, F, Fut>(store: &dyn ObjectStore, keys: &SegmentKeys, read: F) -> Result<T>
where
    F: Fn(Path) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let err = match read(keys.public.clone()).await {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let Some(staged) = &keys.staged else {
        return Err(err);
    };
    match store.head(&keys.public).await {
        Err(object_store::Error::NotFound { .. }) => {}
        // Published since the first read: read it there.
        Ok(_) => return read(keys.public.clone()).await,
        Err(_) => return Err(err),
    }
    match read(staged.clone()).await {
        Ok(v) => Ok(v),
        Err(_) => read(keys.public.clone()).await,
    }
}

/// Reads cold data of any queue.
#[derive(Clone)]
pub struct ColdReader {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    manifests: Cache<(String, u32), Option<Arc<QueueManifest>>>,
    footers: Cache<Path, Arc<SegmentFooter>>,
    row_groups: Cache<(Path, usize), RowGroup>,
    /// Per segment, the highest row group a read-ahead has asked for.
    asked: Arc<Mutex<HashMap<Path, usize>>>,
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
            asked: Arc::default(),
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

    /// The keys of a listed segment of `topic`/`queue`.
    fn keys(&self, topic: &str, queue: u32, entry: &SegmentEntry) -> SegmentKeys {
        SegmentKeys {
            public: self.layout.segment(topic, queue, entry.base_offset),
            staged: entry.staged_epoch.map(|epoch| {
                self.layout
                    .staged_segment(topic, queue, epoch, entry.base_offset)
            }),
        }
    }

    async fn footer(&self, keys: &SegmentKeys, size: u64) -> Result<Arc<SegmentFooter>> {
        let store = self.store.clone();
        let keys_owned = keys.clone();
        self.footers
            .try_get_with(keys.public.clone(), async move {
                read_either(store.as_ref(), &keys_owned, |p| {
                    let store = store.clone();
                    async move { read_footer(store, &p, size).await }
                })
                .await
                .map(Arc::new)
            })
            .await
            .map_err(shared)
    }

    async fn row_group(
        &self,
        keys: &SegmentKeys,
        footer: &Arc<SegmentFooter>,
        index: usize,
    ) -> Result<RowGroup> {
        let store = self.store.clone();
        let (k, f) = (keys.clone(), footer.clone());
        self.row_groups
            .try_get_with((keys.public.clone(), index), async move {
                read_either(store.as_ref(), &k, |p| {
                    let (store, f) = (store.clone(), f.clone());
                    async move { read_row_group(store, &p, &f, index).await }
                })
                .await
                .map(Arc::new)
            })
            .await
            .map_err(shared)
    }

    /// Keeps the [`READAHEAD_ROW_GROUPS`] row groups after `(seg, index)`
    /// fetched or in flight, crossing into the next segments. Groups not yet
    /// asked for are fetched once at least [`READAHEAD_BATCH`] of them are
    /// due (or the queue's cold data ends), with one ranged GET per segment
    /// for all of them: the store's latency and per-request cost are paid
    /// once per batch, and decoding (on blocking threads) overlaps sending.
    fn read_ahead(
        &self,
        manifest: Arc<QueueManifest>,
        topic: &str,
        queue: u32,
        seg: usize,
        index: usize,
    ) {
        let me = self.clone();
        let topic = topic.to_string();
        tokio::spawn(async move {
            let mut due = Vec::new();
            let (mut seg, mut first, mut left) = (seg, index + 1, READAHEAD_ROW_GROUPS);
            while left > 0 {
                let Some(entry) = manifest.segments.get(seg) else {
                    break;
                };
                let keys = me.keys(&topic, queue, entry);
                let Ok(footer) = me.footer(&keys, entry.bytes).await else {
                    return;
                };
                let end = footer.row_groups.len().min(first + left);
                left -= end.saturating_sub(first);
                let asked = me.asked_through(&keys.public);
                let from = asked.map_or(first, |a| first.max(a + 1));
                if from < end {
                    due.push((keys, footer, from..end));
                }
                (seg, first) = (seg + 1, 0);
            }
            let count: usize = due.iter().map(|(_, _, r)| r.len()).sum();
            if count == 0 || (count < READAHEAD_BATCH && left == 0) {
                return;
            }
            for (keys, footer, groups) in due {
                me.fetch_batch(keys, footer, groups);
            }
        });
    }

    /// The highest row group of `path` a read-ahead has asked for.
    fn asked_through(&self, path: &Path) -> Option<usize> {
        self.asked.lock().get(path).copied()
    }

    /// One GET for `groups` of one segment, then the groups decoded into the
    /// cache one after the other (a reader wanting one of them first decodes
    /// it from the same GET; moka lets only one load of a group run).
    fn fetch_batch(
        &self,
        keys: SegmentKeys,
        footer: Arc<SegmentFooter>,
        groups: std::ops::Range<usize>,
    ) {
        let path = keys.public.clone();
        {
            let mut asked = self.asked.lock();
            if asked.len() >= ASKED_ENTRIES {
                asked.clear();
            }
            asked.insert(path.clone(), groups.end - 1);
        }
        let store = self.store.clone();
        let (f, g) = (footer.clone(), groups.clone());
        let span = async move {
            read_either(store.as_ref(), &keys, |p| {
                let (store, f, g) = (store.clone(), f.clone(), g.clone());
                async move { fetch_row_groups(store.as_ref(), &p, &f, g).await }
            })
            .await
            .map_err(Arc::new)
        }
        .boxed()
        .shared();
        // In order, [`DECODE_TASKS`] at a time: the group the reader needs
        // next is ready first, and decompression (most of a cold replay's
        // CPU) keeps pace with a reader that encodes on another core.
        for task in 0..DECODE_TASKS {
            let (me, span, footer, path) =
                (self.clone(), span.clone(), footer.clone(), path.clone());
            let mine = groups.clone().skip(task).step_by(DECODE_TASKS);
            tokio::spawn(async move {
                for index in mine {
                    let span = span.clone();
                    let load = async {
                        let span = span.await.map_err(shared)?;
                        decode_row_group(span, &footer, &path, index)
                            .await
                            .map(Arc::new)
                    };
                    if me
                        .row_groups
                        .try_get_with((path.clone(), index), load)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
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
        let keys = self.keys(topic, queue, entry);
        let footer = self.footer(&keys, entry.bytes).await?;
        let Some(rg) = footer.row_group_of(offset) else {
            return Err(TieringError::Invalid {
                path: keys.public.to_string(),
                reason: format!("no row group holds offset {offset}"),
            });
        };
        let rows = self.row_group(&keys, &footer, rg).await?;
        let start = (offset - footer.row_groups[rg].first_offset) as usize;
        // A reader that reaches the end of a row group is replaying: fetch the
        // next ones now. A point read does not trigger any extra request.
        if start.saturating_add(max) >= rows.len() {
            self.read_ahead(manifest.clone(), topic, queue, seg_index, rg);
        }
        // A lost message (see `LOST_PROPERTY`) is an error when read, and
        // ends a read that reaches it, exactly as the damaged record did in
        // the hot tier.
        let wanted = rows.iter().skip(start).take(max);
        let mut out = Vec::with_capacity(max.min(rows.len().saturating_sub(start)));
        for r in wanted {
            if let Some(reason) = lost_reason(r) {
                if out.is_empty() {
                    return Err(TieringError::Lost {
                        queue: format!("{topic}/{queue}"),
                        offset: r.offset,
                        reason: reason.to_string(),
                    });
                }
                break;
            }
            out.push(r.clone());
        }
        Ok(out)
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
        let keys = self.keys(topic, queue, entry);
        let footer = self.footer(&keys, entry.bytes).await?;
        let Some(rg) = footer.first_row_group_at_or_after(ts) else {
            return Ok(None);
        };
        let rows = self.row_group(&keys, &footer, rg).await?;
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
            let keys = self.keys(topic, queue, entry);
            let footer = self.footer(&keys, entry.bytes).await?;
            let candidates = read_either(self.store.as_ref(), &keys, |p| {
                let (store, footer) = (self.store.clone(), footer.clone());
                async move { row_groups_maybe_with_key(store, &p, entry.bytes, &footer, key).await }
            })
            .await?;
            for rg in candidates {
                let rows = self.row_group(&keys, &footer, rg).await?;
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
