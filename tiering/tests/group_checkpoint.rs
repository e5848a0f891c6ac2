#![allow(clippy::unwrap_used)]

//! The group-checkpoint suite, run against every backend like
//! `tests/manifest.rs`: the in-memory store, the local file system, and a
//! real S3-compatible server when `SHALE_TEST_S3_BUCKET` names one
//! (`scripts/test.sh` starts moto and sets `SHALE_REQUIRE_S3=1`, so that a
//! missing server fails instead of skipping). Each case works under its own
//! random prefix, so runs against a shared bucket never collide.

#[macro_use]
mod common;

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use shale_tiering::paths::Layout;
use shale_tiering::{
    CheckpointKey, FaultStore, Faults, GroupCheckpoints, InflightEntry, QueueCheckpoint,
    TieringError,
};

fn fresh_layout(name: &str) -> Layout {
    Layout::new(Path::from(format!("tests/{name}-{:016x}", rand_u64())))
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A checkpoint at `committed` with `delivered` messages in flight after it.
fn progress(committed: u64, delivered: u64) -> QueueCheckpoint {
    let mut c = QueueCheckpoint::starting_at(committed);
    c.next = committed + delivered;
    c.filtered_through = c.next;
    c.inflight = (committed..c.next)
        .map(|offset| InflightEntry {
            offset,
            attempt: 1,
            visible_at_ms: 1_000 + offset as i64,
            nonce: offset * 31,
            fifo_group: None,
        })
        .collect();
    c
}

/// `c` as stored by an owner at `epoch`.
fn at_epoch(mut c: QueueCheckpoint, epoch: u64) -> QueueCheckpoint {
    c.epoch = epoch;
    c
}

/// A node's checkpoints over `store` behind its own fault injector.
fn node(store: &Arc<dyn ObjectStore>, layout: &Layout) -> (GroupCheckpoints, Faults) {
    let faults = Faults::default();
    let faulty: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(store.clone(), faults.clone()));
    (GroupCheckpoints::new(faulty, layout.clone()), faults)
}

async fn objects_under(store: &Arc<dyn ObjectStore>, dir: &Path) -> Vec<Path> {
    let metas: Vec<_> = store.list(Some(dir)).try_collect().await.unwrap();
    metas.into_iter().map(|m| m.location).collect()
}

async fn suite(store: Arc<dyn ObjectStore>) {
    saves_round_trip_and_any_node_can_load_them(store.clone()).await;
    an_unchanged_save_writes_nothing(store.clone()).await;
    a_second_owner_fences_the_first(store.clone()).await;
    acquire_fences_the_previous_owner_and_keeps_its_progress(store.clone()).await;
    a_save_whose_answer_is_lost_is_not_applied_twice(store.clone()).await;
    checkpoints_breaking_their_invariants_are_refused(store.clone()).await;
    delete_group_removes_everything_of_the_group_only(store.clone()).await;
}

async fn saves_round_trip_and_any_node_can_load_them(store: Arc<dyn ObjectStore>) {
    let layout = fresh_layout("round-trip");
    let (a, _) = node(&store, &layout);
    let (b, _) = node(&store, &layout);
    let key = CheckpointKey::clustering("g", "t", 0);
    let consumer = CheckpointKey::broadcasting("g", "t", 0, "10.0.0.1@7");
    assert_eq!(b.load(&key).await.unwrap(), None);

    a.save(&key, progress(5, 3)).await.unwrap();
    a.save(&consumer, progress(2, 1)).await.unwrap();
    assert_eq!(a.owned_epoch(&key).await, Some(1));
    assert_eq!(
        b.load(&key).await.unwrap(),
        Some(at_epoch(progress(5, 3), 1))
    );
    assert_eq!(
        b.load(&consumer).await.unwrap(),
        Some(at_epoch(progress(2, 1), 1))
    );

    // Later saves replace the value and keep the owner's epoch, whatever the caller put there.
    a.save(&key, at_epoch(progress(8, 0), 99)).await.unwrap();
    assert_eq!(
        b.load(&key).await.unwrap(),
        Some(at_epoch(progress(8, 0), 1))
    );
    assert_eq!(
        b.owned_epoch(&key).await,
        None,
        "loading takes no ownership"
    );
    let versions = objects_under(
        &store,
        &layout.group_checkpoint_dir("g", "t", 0, Some("10.0.0.1@7")),
    )
    .await;
    assert_eq!(versions.len(), 1, "{versions:?}");
}

async fn an_unchanged_save_writes_nothing(store: Arc<dyn ObjectStore>) {
    let layout = fresh_layout("unchanged");
    let (a, faults) = node(&store, &layout);
    let key = CheckpointKey::clustering("g", "t", 1);
    a.save(&key, progress(0, 2)).await.unwrap();
    faults.reset_counts();
    a.save(&key, progress(0, 2)).await.unwrap();
    a.save(&key, at_epoch(progress(0, 2), 7)).await.unwrap();
    assert_eq!(faults.counts(), Default::default(), "no call at all");
    a.save(&key, progress(1, 1)).await.unwrap();
    assert_eq!(faults.counts().puts, 1);
}

async fn a_second_owner_fences_the_first(store: Arc<dyn ObjectStore>) {
    let layout = fresh_layout("fenced");
    let (a, _) = node(&store, &layout);
    let (b, _) = node(&store, &layout);
    let key = CheckpointKey::clustering("g", "t", 2);
    a.save(&key, progress(0, 4)).await.unwrap();
    b.save(&key, progress(4, 0)).await.unwrap();
    assert_eq!(b.owned_epoch(&key).await, Some(2));

    let err = a.save(&key, progress(2, 2)).await.unwrap_err();
    assert!(
        matches!(
            err,
            TieringError::Fenced {
                ours: 1,
                current: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(a.owned_epoch(&key).await, None, "ownership dropped");
    assert_eq!(
        a.load(&key).await.unwrap(),
        Some(at_epoch(progress(4, 0), 2)),
        "the fenced save changed nothing"
    );
    b.save(&key, progress(6, 1)).await.unwrap();
    assert_eq!(
        a.load(&key).await.unwrap(),
        Some(at_epoch(progress(6, 1), 2))
    );
}

async fn acquire_fences_the_previous_owner_and_keeps_its_progress(store: Arc<dyn ObjectStore>) {
    let layout = fresh_layout("acquire");
    let (a, _) = node(&store, &layout);
    let (b, faults_b) = node(&store, &layout);
    let key = CheckpointKey::broadcasting("g", "t", 3, "c1");

    // Never saved: `initial` is stored as is, no placeholder first.
    b.acquire(&CheckpointKey::clustering("g", "t", 9), progress(100, 0))
        .await
        .unwrap();
    assert_eq!(
        a.load(&CheckpointKey::clustering("g", "t", 9))
            .await
            .unwrap(),
        Some(at_epoch(progress(100, 0), 1))
    );

    a.save(&key, progress(3, 2)).await.unwrap();
    let taken = b.acquire(&key, progress(0, 0)).await.unwrap();
    assert_eq!(taken, at_epoch(progress(3, 2), 2));
    faults_b.reset_counts();
    assert_eq!(b.acquire(&key, progress(0, 0)).await.unwrap(), taken);
    assert_eq!(faults_b.counts().puts, 0, "already owned: nothing written");
    assert!(matches!(
        a.save(&key, progress(4, 1)).await,
        Err(TieringError::Fenced { .. })
    ));
}

async fn a_save_whose_answer_is_lost_is_not_applied_twice(store: Arc<dyn ObjectStore>) {
    let layout = fresh_layout("lost-ack");
    let (a, faults) = node(&store, &layout);
    let key = CheckpointKey::clustering("g", "t", 4);
    let dir = layout.group_checkpoint_dir("g", "t", 4, None);
    a.save(&key, progress(0, 1)).await.unwrap();

    faults.reset_counts();
    faults.lose_next_put_acks(1);
    a.save(&key, progress(1, 2)).await.unwrap();
    assert_eq!(faults.counts().puts, 1, "the landed write is not repeated");
    assert_eq!(objects_under(&store, &dir).await.len(), 2);
    assert_eq!(a.owned_epoch(&key).await, Some(1));

    // A put that fails without landing is retried within the save.
    faults.fail_next(1);
    a.save(&key, progress(3, 0)).await.unwrap();
    assert_eq!(
        a.load(&key).await.unwrap(),
        Some(at_epoch(progress(3, 0), 1))
    );
    assert_eq!(objects_under(&store, &dir).await.len(), 3);

    // The first save of a node (the takeover itself) losing its answer.
    let (b, faults_b) = node(&store, &layout);
    faults_b.lose_next_put_acks(1);
    b.save(&key, progress(3, 1)).await.unwrap();
    b.save(&key, progress(4, 0)).await.unwrap();
    assert_eq!(
        a.load(&key).await.unwrap().map(|c| (c.committed, c.next)),
        Some((4, 4))
    );
}

async fn checkpoints_breaking_their_invariants_are_refused(store: Arc<dyn ObjectStore>) {
    let layout = fresh_layout("invalid");
    let (a, faults) = node(&store, &layout);
    let key = CheckpointKey::clustering("g", "t", 5);
    let mut behind = progress(5, 0);
    behind.committed = 6;
    let mut outside = progress(5, 2);
    outside.inflight[1].offset = 7;
    let mut unsorted = progress(5, 3);
    unsorted.inflight.truncate(1);
    unsorted.acked = vec![7, 6];
    let mut both = progress(5, 2);
    both.acked = vec![6];
    let mut format = progress(5, 0);
    format.format = 0;
    for bad in [behind, outside, unsorted, both, format] {
        let err = a.save(&key, bad.clone()).await.unwrap_err();
        assert!(
            matches!(err, TieringError::Invalid { .. }),
            "{bad:?}: {err:?}"
        );
    }
    assert_eq!(
        faults.counts().puts,
        0,
        "nothing written, not even a takeover"
    );
    assert_eq!(a.load(&key).await.unwrap(), None);

    a.save(&key, progress(5, 1)).await.unwrap();
    let mut backwards = progress(5, 1);
    backwards.next = 4;
    assert!(matches!(
        a.save(&key, backwards).await,
        Err(TieringError::Invalid { .. })
    ));
    assert_eq!(
        a.load(&key).await.unwrap(),
        Some(at_epoch(progress(5, 1), 1))
    );
    assert!(matches!(
        a.save(&CheckpointKey::clustering("", "t", 0), progress(0, 0))
            .await,
        Err(TieringError::Invalid { .. })
    ));
}

async fn delete_group_removes_everything_of_the_group_only(store: Arc<dyn ObjectStore>) {
    let layout = fresh_layout("delete");
    let (a, _) = node(&store, &layout);
    let keys = [
        CheckpointKey::clustering("g", "t", 0),
        CheckpointKey::clustering("g", "t", 1),
        CheckpointKey::clustering("g", "u", 0),
        CheckpointKey::broadcasting("g", "t", 0, "c1"),
    ];
    for key in &keys {
        a.save(key, progress(1, 1)).await.unwrap();
        a.save(key, progress(2, 0)).await.unwrap();
    }
    let other = CheckpointKey::clustering("g2", "t", 0);
    a.save(&other, progress(9, 0)).await.unwrap();
    // Objects of the group that are not checkpoints (its settings) go too.
    let settings = layout.group_dir("g").child("group.json");
    store.put(&settings, "{}".into()).await.unwrap();

    a.delete_group("g").await.unwrap();
    assert_eq!(objects_under(&store, &layout.group_dir("g")).await, vec![]);
    for key in &keys {
        assert_eq!(a.load(key).await.unwrap(), None);
        assert_eq!(a.owned_epoch(key).await, None);
    }
    assert_eq!(
        a.load(&other).await.unwrap(),
        Some(at_epoch(progress(9, 0), 1))
    );
    assert_eq!(a.owned_epoch(&other).await, Some(1));

    // A group created again with the same name starts afresh.
    a.save(&keys[0], progress(0, 0)).await.unwrap();
    assert_eq!(
        a.load(&keys[0]).await.unwrap(),
        Some(at_epoch(progress(0, 0), 1))
    );
    assert!(matches!(
        a.delete_group("").await,
        Err(TieringError::Invalid { .. })
    ));
}

every_backend!(suite);
