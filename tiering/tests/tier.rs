#![allow(clippy::unwrap_used)]
//! The node-level tier: upload and retention through owned manifests, topic
//! metadata objects, and deleting a topic's objects.

mod common;

use common::{HotQueue, filled_queue};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use shale_hot::AppendRequest;
use shale_tiering::{ObjectStoreUrl, QueueOwner, Tier, open_object_store};

fn me(node: &str) -> QueueOwner {
    QueueOwner {
        node: node.to_string(),
        incarnation: 1,
    }
}

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
    assert!(
        tier.upload(&q).await.unwrap_err().is_fenced(),
        "not taken yet"
    );
    tier.acquire("orders", 1, &me("n1"), |_| true)
        .await
        .unwrap()
        .unwrap();
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
/// queue's. Now different queues are taken at once, and one queue still once.
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
    let _ = &a;

    let faults = Faults::default();
    let tier = Tier::in_memory_with_faults(&faults, 1 << 20);
    take_all(&tier, 0).await.unwrap();
    let one_open = faults.counts();
    assert!(one_open.puts >= 1, "{one_open:?}");
    assert_eq!(faults.max_in_flight(), 1);

    // Slow store calls make the opens overlap if nothing serialises them.
    let faults = Faults::default();
    faults.set_latency(Duration::from_millis(20));
    let tier = Tier::in_memory_with_faults(&faults, 1 << 20);
    let (ra, rb) = tokio::join!(take_all(&tier, 0), take_all(&tier, 1));
    assert_eq!((ra.unwrap().epoch, rb.unwrap().epoch), (1, 1));
    assert_eq!(tier.upload(&a).await.unwrap(), vec![]);
    assert_eq!(tier.upload(&b).await.unwrap(), vec![]);
    assert_eq!(faults.max_in_flight(), 2, "both opens in flight at once");
    let both = faults.counts();
    assert_eq!(
        (both.puts, both.gets, both.lists),
        (2 * one_open.puts, 2 * one_open.gets, 2 * one_open.lists)
    );

    let faults = Faults::default();
    faults.set_latency(Duration::from_millis(20));
    let tier = Tier::in_memory_with_faults(&faults, 1 << 20);
    let (r1, r2) = tokio::join!(take_all(&tier, 0), take_all(&tier, 0));
    assert_eq!((r1.unwrap().epoch, r2.unwrap().epoch), (1, 1));
    assert_eq!(faults.counts(), one_open, "the same queue is taken once");
    let manifest = tier.reader().manifest("t", 0).await.unwrap().unwrap();
    assert_eq!(manifest.epoch, 1, "taken once, not taken over by itself");
}

/// Ownership is explicit: a queue is taken only when the caller's rule
/// agrees with the owner the manifest names, a release clears the owner and
/// keeps the epoch, and a takeover raises it and reports what it replaced.
#[tokio::test]
async fn acquire_asks_the_rule_release_clears_the_owner() {
    let (store, _) = open_object_store(&ObjectStoreUrl::Memory).unwrap();
    let a = Tier::new(store.clone(), Path::from("pre"), 1 << 20);
    let b = Tier::new(store.clone(), Path::from("pre"), 1 << 20);
    let first = a
        .acquire("t", 0, &me("a"), |_| true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.epoch, first.previous_epoch, first.previous_owner),
        (1, 0, None)
    );
    assert_eq!(a.held_epoch("t", 0), Some(1));

    // B refuses to take a queue A owns, and nothing is written.
    let refused = b
        .acquire("t", 0, &me("b"), |owner| {
            owner.is_none_or(|o| o.node != "a")
        })
        .await
        .unwrap();
    assert_eq!(refused, None);
    assert_eq!(b.held_epoch("t", 0), None);

    a.release("t", 0).await.unwrap();
    assert_eq!(a.held_epoch("t", 0), None);
    let m = b.reader().manifest("t", 0).await.unwrap().unwrap();
    assert_eq!((m.epoch, m.owner.clone()), (1, None));

    let second = b
        .acquire("t", 0, &me("b"), |owner| owner.is_none())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (second.epoch, second.previous_epoch, second.previous_owner),
        (2, 1, None)
    );
    // A takes it back over B (as for a dead B): B is fenced at its next write.
    let third = a
        .acquire("t", 0, &me("a"), |_| true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.previous_owner, Some(me("b")));
    assert!(b.release("t", 0).await.unwrap_err().is_fenced());
    assert_eq!(b.held_epoch("t", 0), None, "a fenced queue is let go");
}

async fn take_all(tier: &Tier, q: u32) -> shale_tiering::Result<shale_tiering::Acquired> {
    tier.acquire("t", q, &me("n1"), |_| true)
        .await
        .map(|a| a.unwrap())
}

/// A takeover from an owner that did not hand the queue over lists it in
/// `recovering_from` (with any earlier owner still listed) until the new
/// owner says it has stored what their write-ahead chunks held; a clean
/// hand-over adds nobody.
#[tokio::test]
async fn takeovers_list_the_owners_to_recover_from_until_the_recovery_is_done() {
    let (store, _) = open_object_store(&ObjectStoreUrl::Memory).unwrap();
    let tiers: Vec<Tier> = (0..3)
        .map(|_| Tier::new(store.clone(), Path::from("pre"), 1 << 20))
        .collect();
    let take = |i: usize, node: &'static str| {
        let tier = &tiers[i];
        async move {
            tier.acquire("t", 0, &me(node), |_| true)
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert!(take(0, "a").await.recovering_from.is_empty());
    // B takes over from a dead A, then dies before its recovery is done.
    assert_eq!(take(1, "b").await.recovering_from, vec![me("a")]);
    // C must replay both.
    let c = take(2, "c").await;
    assert_eq!(c.recovering_from, vec![me("a"), me("b")]);
    tiers[2].finish_recovery("t", 0).await.unwrap();
    let m = tiers[2].reader().manifest("t", 0).await.unwrap().unwrap();
    assert!(m.recovering_from.is_empty());
    assert_eq!(m.epoch, c.epoch, "the owner's own change keeps the epoch");
    // A clean hand-over leaves nothing to recover.
    tiers[2].release("t", 0).await.unwrap();
    assert!(take(0, "a").await.recovering_from.is_empty());
    assert_eq!(tiers[0].held_end("t", 0).await, Some(0));
    assert_eq!(tiers[2].held_end("t", 0).await, None);
}
