#![allow(clippy::unwrap_used)]
//! The public `segments/` prefix holds exactly the committed segments: a
//! fenced owner's uploads never reach it (neither as orphans nor over a newer
//! owner's segment), and a crash between a segment's commit and its copy out
//! of `staging/` is served from staging meanwhile and repaired by the next
//! open. Read the way a replay job reads: list `segments/`, decode every file.
//! Each scenario has its own test on the in-memory store; the fencing and
//! crash scenarios also run on every backend (`every_backend!`).

#[macro_use]
mod common;

use std::sync::Arc;

use common::{HotQueue, filled_queue};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use shale_hot::{AppendRequest, Record};
use shale_tiering::cold_reader::ColdReader;
use shale_tiering::manifest::{QueueManifest, read_manifest};
use shale_tiering::parquet_segment::{read_footer, read_range};
use shale_tiering::paths::Layout;
use shale_tiering::retention::apply_retention;
use shale_tiering::uploader::QueueUploader;
use shale_tiering::{FaultStore, Faults};

const ROW_GROUP: usize = 4 * 1024;

/// A message whose body says which owner wrote it (same size for every owner,
/// so two owners' logs seal at the same offsets).
fn msg(owner: char) -> impl Fn(usize) -> AppendRequest {
    move |i| AppendRequest {
        born_ms: 1,
        keys: vec![format!("k{i}")],
        body: Bytes::from(format!("{owner}{i:06}{}", "x".repeat(300))),
        ..Default::default()
    }
}

/// Queue `t`/0 of a bucket under a prefix of its own (runs against a shared
/// S3 bucket never collide), as the tests look at it: directly, no wrapper.
struct Bucket {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
}

impl Bucket {
    fn new(store: Arc<dyn ObjectStore>) -> Self {
        let prefix = format!("tests/staging-{:016x}", rand::random::<u64>());
        Self {
            store,
            layout: Layout::new(Path::from(prefix)),
        }
    }

    fn in_memory() -> Self {
        Self::new(Arc::new(InMemory::new()))
    }

    /// The public prefix a replay job lists.
    fn segments_dir(&self) -> Path {
        let queue_dir = self.layout.topic_dir("t").child("queues").child("0");
        queue_dir.child("segments")
    }

    /// Object names under `dir`, sorted.
    async fn names(&self, dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = self
            .store
            .list(Some(dir))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        out.sort();
        out
    }

    async fn public(&self) -> Vec<String> {
        self.names(&self.segments_dir()).await
    }

    async fn staging(&self) -> Vec<String> {
        self.names(&self.layout.staging_dir("t", 0)).await
    }

    /// What a replay job reads: every file under the public prefix, decoded.
    async fn replay(&self) -> Vec<Record> {
        let mut metas: Vec<_> = self
            .store
            .list(Some(&self.segments_dir()))
            .try_collect()
            .await
            .unwrap();
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut rows = Vec::new();
        for m in metas {
            let footer = read_footer(self.store.clone(), &m.location, m.size)
                .await
                .unwrap();
            rows.extend(
                read_range(self.store.clone(), &m.location, &footer, 0, usize::MAX)
                    .await
                    .unwrap(),
            );
        }
        rows
    }

    async fn manifest(&self) -> QueueManifest {
        read_manifest(self.store.as_ref(), &self.layout.manifest_dir("t", 0))
            .await
            .unwrap()
            .unwrap()
            .0
    }

    /// The public files a manifest lists, by name.
    fn listed(&self, m: &QueueManifest) -> Vec<String> {
        m.segments
            .iter()
            .map(|s| self.layout.segment("t", 0, s.base_offset).to_string())
            .collect()
    }

    /// An uploader of `t`/0 over `store` (this bucket's store or a wrapper of it).
    async fn uploader(&self, store: &Arc<dyn ObjectStore>) -> QueueUploader {
        QueueUploader::open(store.clone(), self.layout.clone(), "t", 0, ROW_GROUP)
            .await
            .unwrap()
    }
}

fn bodies(rows: &[Record]) -> Vec<Bytes> {
    rows.iter().map(|r| r.body.clone()).collect()
}

async fn suite(store: Arc<dyn ObjectStore>) {
    fenced_owner_leaves_no_orphan(Bucket::new(store.clone())).await;
    fenced_owner_cannot_overwrite(Bucket::new(store.clone())).await;
    crash_between_commit_and_publish(Bucket::new(store)).await;
}

every_backend!(suite);

/// Issue: a paused owner resumed after a takeover uploaded its next segment
/// to `segments/` before its CAS failed, leaving a file no manifest lists.
#[tokio::test]
async fn a_fenced_owner_leaves_no_orphan_in_segments() {
    fenced_owner_leaves_no_orphan(Bucket::in_memory()).await;
}

async fn fenced_owner_leaves_no_orphan(bucket: Bucket) {
    let HotQueue {
        dir: _dir,
        clock,
        hot,
        q,
    } = filled_queue("t", 0, 16 * 1024, 120, 1, msg('a'));
    let store = bucket.store.clone();
    let mut old = bucket.uploader(&store).await;
    let committed = old.upload_sealed(&q).await.unwrap();
    assert!(committed.len() >= 2, "{committed:?}");

    // A new owner takes over; the old one, unaware, seals and uploads more.
    let new = bucket.uploader(&store).await;
    assert!(new.manifest().epoch() > old.manifest().epoch());
    clock.advance(3_600_000);
    hot.seal_expired().unwrap();
    assert!(q.sealed_segments().len() > committed.len());
    let err = old.upload_sealed(&q).await.unwrap_err();
    assert!(err.is_fenced(), "{err:?}");

    let m = bucket.manifest().await;
    assert_eq!(m.segments, committed);
    assert_eq!(
        bucket.public().await,
        bucket.listed(&m),
        "segments/ lists exactly the committed segments"
    );
    let end = m.end_offset() as usize;
    let hot_rows = q.read(0, 10_000, usize::MAX).unwrap();
    assert_eq!(bucket.replay().await, hot_rows[..end]);
    assert!(
        bucket.staging().await.is_empty(),
        "the fenced upload was deleted, the committed ones published"
    );
}

/// Issue: a stale owner overwrote the new owner's committed segment at the
/// same base offset with its own rows.
#[tokio::test]
async fn a_fenced_owner_cannot_overwrite_a_committed_segment() {
    fenced_owner_cannot_overwrite(Bucket::in_memory()).await;
}

async fn fenced_owner_cannot_overwrite(bucket: Bucket) {
    let a = filled_queue("t", 0, 16 * 1024, 200, 1, msg('a'));
    let b = filled_queue("t", 0, 16 * 1024, 200, 1, msg('b'));
    let bases = |q: &shale_hot::QueueLog| {
        q.sealed_segments()
            .iter()
            .map(|s| s.base_offset)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        bases(&a.q),
        bases(&b.q),
        "both logs seal at the same offsets"
    );
    let store = bucket.store.clone();
    let mut stale = bucket.uploader(&store).await;
    let mut owner = bucket.uploader(&store).await;
    let committed = owner.upload_sealed(&b.q).await.unwrap();
    assert_eq!(committed.len(), bases(&a.q).len());

    // The stale owner still thinks the manifest is empty: it uploads its
    // own rows for the same base offsets, then loses the CAS.
    let err = stale.upload_sealed(&a.q).await.unwrap_err();
    assert!(err.is_fenced(), "{err:?}");

    let m = bucket.manifest().await;
    assert_eq!(m.segments, committed);
    let epoch = owner.manifest().epoch();
    assert!(m.segments.iter().all(|s| s.staged_epoch == Some(epoch)));
    assert_eq!(bucket.public().await, bucket.listed(&m));
    let b_rows = b.q.read(0, 10_000, usize::MAX).unwrap();
    let end = m.end_offset() as usize;
    let replayed = bucket.replay().await;
    assert_eq!(
        bodies(&replayed),
        bodies(&b_rows[..end]),
        "the owner's rows only"
    );
    assert_eq!(replayed, b_rows[..end]);
    let offsets: Vec<u64> = replayed.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (0..end as u64).collect::<Vec<_>>(),
        "no duplicates"
    );
    let cold = ColdReader::new(store.clone(), bucket.layout.clone(), 1 << 20);
    assert_eq!(cold.read("t", 0, 0, 1).await.unwrap(), b_rows[..1]);
    assert!(bucket.staging().await.is_empty());
}

/// A crash after a segment's commit and before its copy to `segments/`:
/// cold reads find it in staging meanwhile, a replay job sees only
/// committed rows (a prefix), and the next owner's open publishes it,
/// sweeping orphans of lower epochs but never a newer owner's upload.
#[tokio::test]
async fn a_crash_between_commit_and_publish_is_repaired_on_open() {
    crash_between_commit_and_publish(Bucket::in_memory()).await;
}

async fn crash_between_commit_and_publish(bucket: Bucket) {
    let HotQueue {
        dir: _dir,
        clock,
        hot,
        q,
    } = filled_queue("t", 0, 16 * 1024, 200, 1, msg('a'));
    let faults = Faults::default();
    let store: Arc<dyn ObjectStore> =
        Arc::new(FaultStore::new(bucket.store.clone(), faults.clone()));
    let mut up = bucket.uploader(&store).await;
    let published = up.upload_sealed(&q).await.unwrap();
    clock.advance(3_600_000);
    hot.seal_expired().unwrap();
    faults.fail_next_copies(1);
    let err = up.upload_sealed(&q).await.unwrap_err();
    assert!(err.is_store_failure(), "{err:?}");
    let epoch = up.manifest().epoch();
    drop(up); // the crash

    let m = bucket.manifest().await;
    assert_eq!(m.segments.len(), published.len() + 1, "committed");
    let last = m.segments.last().unwrap().clone();
    assert_eq!(last.staged_epoch, Some(epoch));
    let layout = bucket.layout.clone();
    let staged = layout.staged_segment("t", 0, epoch, last.base_offset);
    assert_eq!(bucket.staging().await, vec![staged.to_string()]);
    let hot_rows = q.read(0, 10_000, usize::MAX).unwrap();
    assert_eq!(
        bucket.replay().await,
        hot_rows[..last.base_offset as usize],
        "segments/ holds a prefix of the committed rows, nothing else"
    );

    // Cold reads in the window: every offset, by time and by key.
    let reader = ColdReader::new(store.clone(), layout.clone(), 1 << 20);
    let end = m.end_offset();
    let mut at = 0;
    while at < end {
        let part = reader.read("t", 0, at, 50).await.unwrap();
        assert!(!part.is_empty(), "nothing at {at}");
        for r in part {
            assert_eq!(r, hot_rows[at as usize]);
            at += 1;
        }
    }
    let probe = &hot_rows[last.base_offset as usize + 3];
    assert_eq!(
        reader
            .offset_for_timestamp("t", 0, probe.store_ms)
            .await
            .unwrap(),
        Some(probe.offset)
    );
    let by_key = ColdReader::new(store.clone(), layout.clone(), 0)
        .find_by_key("t", 0, &probe.keys[0], i64::MIN, i64::MAX, 10)
        .await
        .unwrap();
    assert_eq!(by_key, vec![probe.clone()]);

    // Leftovers: a fenced owner's upload (lower epoch, unlisted) and an
    // upload in flight of a newer owner than the next one (must survive).
    let orphan = layout.staged_segment("t", 0, epoch - 1, end);
    let newer = layout.staged_segment("t", 0, epoch + 100, end);
    for p in [&orphan, &newer] {
        let body = Bytes::from_static(b"PAR1");
        bucket.store.put(p, body.into()).await.unwrap();
    }

    faults.reset_counts();
    let next = bucket.uploader(&store).await;
    assert_eq!(
        faults.counts().heads,
        2,
        "the newest listed segment is missing, the one before is public: {:?}",
        faults.counts()
    );
    assert_eq!(next.manifest().manifest().segments, m.segments);
    assert_eq!(bucket.public().await, bucket.listed(&m));
    assert_eq!(bucket.replay().await, hot_rows[..end as usize]);
    assert_eq!(
        bucket.staging().await,
        vec![newer.to_string()],
        "the repair deleted the published staging copy, the sweep the orphan"
    );
    // The reader that served the window keeps serving from its caches and
    // the public key; a fresh one reads the public key.
    for r in [&reader, &ColdReader::new(store.clone(), layout, 0)] {
        let got = r.read("t", 0, last.base_offset, 5).await.unwrap();
        assert_eq!(got, hot_rows[last.base_offset as usize..][..5]);
    }
}

/// The same owner, after a failed copy, publishes that segment before it
/// commits the next: the unpublished listed segments stay a suffix (here,
/// none once it is done).
#[tokio::test]
async fn a_failed_copy_is_published_before_the_next_commit() {
    let HotQueue {
        dir: _dir,
        clock,
        hot,
        q,
    } = filled_queue("t", 0, 16 * 1024, 120, 1, msg('a'));
    let bucket = Bucket::in_memory();
    let faults = Faults::default();
    let store: Arc<dyn ObjectStore> =
        Arc::new(FaultStore::new(bucket.store.clone(), faults.clone()));
    let mut up = bucket.uploader(&store).await;
    faults.fail_next_copies(1);
    assert!(up.upload_sealed(&q).await.unwrap_err().is_store_failure());
    assert_eq!(
        up.manifest().manifest().segments.len(),
        1,
        "stopped after it"
    );
    assert!(bucket.public().await.is_empty());

    clock.advance(3_600_000);
    hot.seal_expired().unwrap();
    let added = up.upload_sealed(&q).await.unwrap();
    assert_eq!(added.len(), q.sealed_segments().len() - 1);
    let m = bucket.manifest().await;
    assert_eq!(bucket.public().await, bucket.listed(&m));
    let hot_rows = q.read(0, 10_000, usize::MAX).unwrap();
    assert_eq!(bucket.replay().await, hot_rows);
    assert!(bucket.staging().await.is_empty());
}

/// Retention of a segment deletes its public key and its staging key.
#[tokio::test]
async fn retention_deletes_a_segments_staging_key_too() {
    let HotQueue { dir: _dir, q, .. } = filled_queue("t", 0, 16 * 1024, 120, 1000, msg('a'));
    let bucket = Bucket::in_memory();
    let faults = Faults::default();
    let store: Arc<dyn ObjectStore> =
        Arc::new(FaultStore::new(bucket.store.clone(), faults.clone()));
    let mut up = bucket.uploader(&store).await;
    // The first segment is committed but its copy fails: only staging has it.
    faults.fail_next_copies(1);
    up.upload_sealed(&q).await.unwrap_err();
    assert_eq!(bucket.staging().await.len(), 1);
    let m = up.manifest().manifest().clone();
    let cutoff = m.segments[0].max_store_ms + 1;
    let layout = bucket.layout.clone();
    let removed = apply_retention(up.manifest_mut(), store.as_ref(), &layout, "t", 0, cutoff)
        .await
        .unwrap();
    assert_eq!(removed, m.segments);
    assert!(bucket.staging().await.is_empty());
    assert!(bucket.public().await.is_empty());
    // Nothing is left to publish: the next uploads go on from min_offset.
    let added = up.upload_sealed(&q).await.unwrap();
    assert!(!added.is_empty());
    let after = bucket.manifest().await;
    assert_eq!(bucket.public().await, bucket.listed(&after));
}
