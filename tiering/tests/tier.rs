#![allow(clippy::unwrap_used)]
//! The node-level tier: upload and retention through owned manifests, topic
//! metadata objects, and deleting a topic's objects.

mod common;

use common::{HotQueue, filled_queue};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use shale_hot::AppendRequest;
use shale_tiering::{ObjectStoreUrl, Tier, open_object_store};

#[tokio::test]
async fn upload_retain_and_delete_through_the_tier() {
    let HotQueue { dir: _dir, q, .. } =
        filled_queue("orders", 1, 8 * 1024, 200, 1000, |i| AppendRequest {
            body: Bytes::from(vec![b'a' + (i % 26) as u8; 300]),
            ..Default::default()
        });
    let (store, _) = open_object_store(&ObjectStoreUrl::Memory).unwrap();
    let tier = Tier::new(store.clone(), Path::from("pre"), 1 << 20);
    assert_eq!(tier.cold_end("orders", 1).await.unwrap(), 0);
    let added = tier.upload(&q).await.unwrap();
    let end = added.last().unwrap().end_offset;
    assert_eq!(tier.cold_end("orders", 1).await.unwrap(), end);
    assert_eq!(
        tier.reader().read("orders", 1, 0, 1).await.unwrap()[0].offset,
        0
    );

    let cutoff = added[1].max_store_ms + 1;
    let removed = tier.retain(&q, cutoff).await.unwrap();
    assert_eq!(removed, added[..2].to_vec());
    assert_eq!(
        q.min_offset(),
        added[2].base_offset,
        "expired local copies are evicted too"
    );
    let m = tier.reader().manifest("orders", 1).await.unwrap().unwrap();
    assert_eq!(m.min_offset, added[2].base_offset);
    assert!(
        tier.reader()
            .read("orders", 1, 0, 1)
            .await
            .unwrap()
            .is_empty()
    );

    tier.put_topic_meta("orders", Bytes::from_static(b"orders"))
        .await
        .unwrap();
    tier.put_topic_meta("%DLQ%g", Bytes::from_static(b"%DLQ%g"))
        .await
        .unwrap();
    let mut metas = tier.list_topic_metas().await.unwrap();
    metas.sort();
    assert_eq!(
        metas,
        vec![Bytes::from_static(b"%DLQ%g"), Bytes::from_static(b"orders")]
    );

    tier.delete_topic("orders").await.unwrap();
    let left: Vec<_> = store
        .list(Some(&Path::from("pre/topics/orders")))
        .try_collect()
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(tier.list_topic_metas().await.unwrap().len(), 1);
}

/// Review, "Locks and I/O": the `owned` map lock was held across
/// `QueueUploader::open`, so opening one queue's manifest blocked every other
/// queue's. Now different queues open at once, and one queue still opens once.
#[tokio::test]
async fn different_queues_open_concurrently_and_one_queue_opens_once() {
    use std::sync::Arc;
    use std::time::Duration;

    use shale_hot::{HotConfig, HotStore, ManualClock};
    use shale_tiering::Faults;

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(common::T0));
    let hot = HotStore::open(dir.path(), HotConfig::default(), clock).unwrap();
    // No sealed segments: an upload is the open and nothing else.
    let (a, b) = (hot.queue("t", 0).unwrap(), hot.queue("t", 1).unwrap());

    let faults = Faults::default();
    let tier = Tier::in_memory_with_faults(&faults, 1 << 20);
    tier.upload(&a).await.unwrap();
    let one_open = faults.counts();
    assert!(one_open.puts >= 1, "{one_open:?}");
    assert_eq!(faults.max_in_flight(), 1);

    // Slow store calls make the opens overlap if nothing serialises them.
    let faults = Faults::default();
    faults.set_latency(Duration::from_millis(20));
    let tier = Tier::in_memory_with_faults(&faults, 1 << 20);
    let (ra, rb) = tokio::join!(tier.upload(&a), tier.upload(&b));
    assert_eq!((ra.unwrap(), rb.unwrap()), (vec![], vec![]));
    assert_eq!(faults.max_in_flight(), 2, "both opens in flight at once");
    let both = faults.counts();
    assert_eq!(
        (both.puts, both.gets, both.lists),
        (2 * one_open.puts, 2 * one_open.gets, 2 * one_open.lists)
    );

    let faults = Faults::default();
    faults.set_latency(Duration::from_millis(20));
    let tier = Tier::in_memory_with_faults(&faults, 1 << 20);
    let (r1, r2) = tokio::join!(tier.upload(&a), tier.upload(&a));
    assert_eq!((r1.unwrap(), r2.unwrap()), (vec![], vec![]));
    assert_eq!(faults.counts(), one_open, "the same queue opens once");
    let manifest = tier.reader().manifest("t", 0).await.unwrap().unwrap();
    assert_eq!(manifest.epoch, 1, "taken once, not taken over by itself");
}
