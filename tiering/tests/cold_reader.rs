#![allow(clippy::unwrap_used)]
//! Cold reads give exactly what the hot tier stored: sequential replay,
//! point reads (one ranged GET once the footer is cached), seeks by time with
//! a bounded number of object reads, and nothing outside the cold range.

mod common;

use std::sync::Arc;

use common::{HotQueue, filled_queue};

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use shale_hot::AppendRequest;
use shale_tiering::cold_reader::ColdReader;
use shale_tiering::paths::Layout;
use shale_tiering::uploader::QueueUploader;
use shale_tiering::{FaultStore, Faults, ObjectStoreUrl, open_object_store};

#[tokio::test]
async fn cold_reads_match_the_hot_tier() {
    let HotQueue { dir: _dir, q, .. } =
        filled_queue("t", 3, 32 * 1024, 2000, 10, |i| AppendRequest {
            born_ms: 1,
            keys: vec![format!("k{i}")],
            body: Bytes::from(format!("{{\"i\":{i},\"pad\":\"{}\"}}", "z".repeat(i % 300))),
            ..Default::default()
        });
    let faults = Faults::default();
    let (mem, _) = open_object_store(&ObjectStoreUrl::Memory).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(mem, faults.clone()));
    let layout = Layout::new(Path::from("x"));
    let mut up = QueueUploader::open(store.clone(), layout.clone(), "t", 3, 16 * 1024)
        .await
        .unwrap();
    up.upload_sealed(&q).await.unwrap();
    let end = up.manifest().manifest().end_offset();
    assert!(end > 1000 && up.manifest().manifest().segments.len() > 10);

    let reader = ColdReader::new(store.clone(), layout.clone(), 8 << 20);
    let hot_rows = q.read(0, 5000, usize::MAX).unwrap();
    let mut at = 0;
    while at < end {
        let part = reader.read("t", 3, at, 100).await.unwrap();
        assert!(!part.is_empty(), "nothing at {at}");
        for r in part {
            assert_eq!(r, hot_rows[at as usize]);
            at += 1;
        }
    }
    assert!(reader.read("t", 3, end, 10).await.unwrap().is_empty());
    assert!(reader.read("t", 4, 0, 10).await.unwrap().is_empty());

    // A point read in a segment whose footer is cached but whose row groups are not.
    let fresh = ColdReader::new(store.clone(), layout.clone(), 0);
    fresh.read("t", 3, 700, 1).await.unwrap();
    faults.reset_counts();
    let one = fresh.read("t", 3, 705, 1).await.unwrap();
    assert_eq!(one[0], hot_rows[705]);
    tokio::task::yield_now().await;
    assert_eq!(faults.counts().gets, 1, "{:?}", faults.counts());

    // Seek by time: manifest (cached here) + footer + one row group.
    for probe in [0usize, 1, 555, 999, (end - 1) as usize] {
        let ts = hot_rows[probe].store_ms;
        assert_eq!(
            reader.offset_for_timestamp("t", 3, ts).await.unwrap(),
            Some(probe as u64)
        );
    }
    let cold_reader = ColdReader::new(store.clone(), layout, 0);
    cold_reader.manifest("t", 3).await.unwrap();
    faults.reset_counts();
    let ts = hot_rows[1234.min(end as usize - 1)].store_ms;
    cold_reader.offset_for_timestamp("t", 3, ts).await.unwrap();
    let c = faults.counts();
    assert!(c.gets + c.lists <= 3, "seek by time took {c:?}");
    assert_eq!(
        reader
            .offset_for_timestamp("t", 3, hot_rows[end as usize - 1].store_ms + 1)
            .await
            .unwrap(),
        None
    );

    // Query by key: bloom filters pick the row groups, the window narrows segments.
    let hit = reader
        .find_by_key("t", 3, "k777", i64::MIN, i64::MAX, 10)
        .await
        .unwrap();
    assert_eq!(hit, vec![hot_rows[777].clone()]);
    let ts = hot_rows[777].store_ms;
    assert!(
        reader
            .find_by_key("t", 3, "k777", ts + 1, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        reader
            .find_by_key("t", 3, "k777", ts, ts, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        reader
            .find_by_key("t", 3, "no-such-key", i64::MIN, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
