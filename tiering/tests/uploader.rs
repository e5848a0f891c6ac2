#![allow(clippy::unwrap_used)]
//! The uploader against a real hot tier: sealed segments reach the object
//! store as Parquet and the manifest, survive injected faults without loss or
//! duplicates, and can then be evicted locally.

mod common;

use std::sync::Arc;

use common::{HotQueue, filled_queue};

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use shale_hot::{AppendRequest, Record};
use shale_tiering::manifest::read_manifest;
use shale_tiering::parquet_segment::{read_footer, read_range};
use shale_tiering::paths::Layout;
use shale_tiering::uploader::QueueUploader;
use shale_tiering::{FaultStore, Faults, ObjectStoreUrl, open_object_store};

fn msg(i: usize) -> AppendRequest {
    AppendRequest {
        born_ms: 1,
        keys: vec![format!("k{i}")],
        body: Bytes::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "y".repeat(300))),
        ..Default::default()
    }
}

async fn cold_rows(store: Arc<dyn ObjectStore>, layout: &Layout) -> Vec<Record> {
    let (m, _) = read_manifest(store.as_ref(), &layout.manifest_dir("t", 0))
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    for s in &m.segments {
        let path = layout.segment("t", 0, s.base_offset);
        let footer = read_footer(store.clone(), &path, s.bytes).await.unwrap();
        out.extend(
            read_range(store.clone(), &path, &footer, s.base_offset, usize::MAX)
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn sealed_segments_reach_the_bucket_once_despite_faults() {
    let HotQueue {
        dir: _dir,
        clock,
        hot,
        q,
    } = filled_queue("t", 0, 16 * 1024, 300, 1, msg);
    let sealed = q.sealed_segments();
    assert!(sealed.len() >= 5);

    let faults = Faults::default();
    let (mem, _) = open_object_store(&ObjectStoreUrl::Memory).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(mem.clone(), faults.clone()));
    let layout = Layout::new(Path::from("p"));
    let mut up = QueueUploader::open(store.clone(), layout.clone(), "t", 0, 8 * 1024)
        .await
        .unwrap();

    // The store is down: nothing is listed, the error says so.
    faults.set_down(true);
    let err = up.upload_sealed(&q).await.unwrap_err();
    assert!(err.is_store_failure() && !err.is_fenced(), "{err:?}");
    faults.set_down(false);
    // A segment upload fails, then puts land but report failure (segment
    // objects and manifest versions alike); the background loop calls again.
    faults.fail_next(1);
    let err = up.upload_sealed(&q).await.unwrap_err();
    assert!(err.is_store_failure() && !err.is_fenced(), "{err:?}");
    faults.lose_next_put_acks(3);
    let mut attempts = 0;
    while up.upload_sealed(&q).await.is_err() {
        attempts += 1;
        assert!(attempts < 10, "the uploader never recovered");
    }
    let m = up.manifest().manifest().clone();
    assert_eq!(m.segments.len(), sealed.len(), "{m:?}");
    assert_eq!(m.end_offset(), sealed.last().unwrap().end_offset);

    let hot_rows = q.read(0, 10_000, usize::MAX).unwrap();
    let cold = cold_rows(mem.clone(), &layout).await;
    assert_eq!(cold[..], hot_rows[..cold.len()]);

    // Uploading again changes nothing; evicting frees the local copies.
    assert!(up.upload_sealed(&q).await.unwrap().is_empty());
    let freed = q.evict_through(m.end_offset()).unwrap();
    assert!(freed > 0);
    assert!(q.sealed_segments().is_empty());
    assert_eq!(q.min_offset(), m.end_offset());

    // A new owner takes over from the manifest alone; the old one is fenced.
    let mut next = QueueUploader::open(store.clone(), layout.clone(), "t", 0, 8 * 1024)
        .await
        .unwrap();
    assert_eq!(next.manifest().manifest().segments, m.segments);
    clock.advance(3_600_000);
    hot.seal_expired().unwrap();
    assert!(matches!(
        up.upload_sealed(&q).await,
        Err(shale_tiering::TieringError::Fenced { .. })
    ));
    assert_eq!(next.upload_sealed(&q).await.unwrap().len(), 1);
    assert_eq!(cold_rows(mem, &layout).await, hot_rows);
}

#[tokio::test]
async fn retention_removes_expired_segments_from_the_manifest_then_the_bucket() {
    use shale_tiering::retention::apply_retention;
    let HotQueue {
        dir: _dir,
        clock,
        hot,
        q,
    } = filled_queue("t", 0, 8 * 1024, 120, 1000, msg);
    let (store, _) = open_object_store(&ObjectStoreUrl::Memory).unwrap();
    let layout = Layout::new(Path::from("p"));
    let mut up = QueueUploader::open(store.clone(), layout.clone(), "t", 0, 4096)
        .await
        .unwrap();
    up.upload_sealed(&q).await.unwrap();
    let before = up.manifest().manifest().clone();
    assert!(before.segments.len() >= 4);
    let cutoff = before.segments[2].max_store_ms + 1;

    let mut owner =
        shale_tiering::FencedManifest::acquire(store.clone(), layout.manifest_dir("t", 0), "t/0")
            .await
            .unwrap();
    let removed = apply_retention(&mut owner, store.as_ref(), &layout, "t", 0, cutoff)
        .await
        .unwrap();
    assert_eq!(removed, before.segments[..3].to_vec());
    let (after, _) = read_manifest(store.as_ref(), &layout.manifest_dir("t", 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.segments, before.segments[3..].to_vec());
    assert_eq!(after.min_offset, before.segments[3].base_offset);
    for s in &removed {
        assert!(matches!(
            store.head(&layout.segment("t", 0, s.base_offset)).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }
    for s in &after.segments {
        store
            .head(&layout.segment("t", 0, s.base_offset))
            .await
            .unwrap();
    }
    assert!(
        apply_retention(&mut owner, store.as_ref(), &layout, "t", 0, cutoff)
            .await
            .unwrap()
            .is_empty()
    );
    // The uploader that lost ownership to the retention pass is fenced at its next write.
    clock.advance(3_600_000);
    hot.seal_expired().unwrap();
    assert!(matches!(
        up.upload_sealed(&q).await,
        Err(shale_tiering::TieringError::Fenced { .. })
    ));
}
