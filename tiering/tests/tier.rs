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
