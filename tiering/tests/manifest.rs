#![allow(clippy::unwrap_used)]

//! The manifest and store-wrapper suite, run against every backend: the
//! in-memory store, the local file system, and a real S3-compatible server
//! when `SHALE_TEST_S3_BUCKET` (plus the AWS_* variables) names one —
//! `scripts/test.sh` starts moto and sets them, and sets `SHALE_REQUIRE_S3=1`
//! so that a missing server fails instead of skipping.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path;
use shale_tiering::manifest::read_manifest;
use shale_tiering::{
    FaultStore, Faults, FencedManifest, ObjectStoreUrl, RetryPolicy, RetryStore, SegmentEntry,
    TieringError, open_object_store,
};

fn seg(base: u64, end: u64) -> SegmentEntry {
    SegmentEntry {
        base_offset: base,
        end_offset: end,
        min_store_ms: base as i64,
        max_store_ms: end as i64,
        rows: end - base,
        bytes: 10,
        staged_epoch: None,
    }
}

fn quick_retries(inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
    Arc::new(RetryStore::new(
        inner,
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        },
    ))
}

/// A unique directory per test run, so runs against a shared bucket never collide.
fn fresh_dir(name: &str) -> Path {
    Path::from(format!("tests/{name}-{:016x}/manifest", rand_u64()))
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

async fn suite(store: Arc<dyn ObjectStore>) {
    takeover_raises_the_epoch_and_keeps_segments(store.clone()).await;
    adding_is_idempotent_and_gaps_are_refused(store.clone()).await;
    a_stale_owner_is_fenced(store.clone()).await;
    a_stale_owner_is_fenced_even_after_old_versions_are_deleted(store.clone()).await;
    a_write_that_lands_but_reports_failure_is_not_applied_twice(store.clone()).await;
    racing_writers_lose_nothing_and_list_nothing_twice(store.clone()).await;
}

async fn takeover_raises_the_epoch_and_keeps_segments(store: Arc<dyn ObjectStore>) {
    let dir = fresh_dir("takeover");
    let mut a = FencedManifest::acquire(store.clone(), dir.clone(), "t/0")
        .await
        .unwrap();
    assert_eq!(a.epoch(), 1);
    a.update(|m| m.add_segment(seg(0, 10))).await.unwrap();
    let b = FencedManifest::acquire(store.clone(), dir.clone(), "t/0")
        .await
        .unwrap();
    assert_eq!(b.epoch(), 2);
    assert_eq!(b.manifest().segments, vec![seg(0, 10)]);
    let (m, _) = read_manifest(store.as_ref(), &dir).await.unwrap().unwrap();
    assert_eq!((m.epoch, m.end_offset()), (2, 10));
}

async fn adding_is_idempotent_and_gaps_are_refused(store: Arc<dyn ObjectStore>) {
    let dir = fresh_dir("idempotent");
    let mut a = FencedManifest::acquire(store.clone(), dir.clone(), "t/0")
        .await
        .unwrap();
    a.update(|m| m.add_segment(seg(0, 5))).await.unwrap();
    a.update(|m| m.add_segment(seg(0, 5))).await.unwrap();
    assert!(matches!(
        a.update(|m| m.add_segment(seg(6, 9))).await,
        Err(TieringError::Invalid { .. })
    ));
    let (m, _) = read_manifest(store.as_ref(), &dir).await.unwrap().unwrap();
    assert_eq!(m.segments, vec![seg(0, 5)]);
}

async fn a_stale_owner_is_fenced(store: Arc<dyn ObjectStore>) {
    let dir = fresh_dir("fenced");
    let mut old = FencedManifest::acquire(store.clone(), dir.clone(), "t/0")
        .await
        .unwrap();
    old.update(|m| m.add_segment(seg(0, 5))).await.unwrap();
    let mut new = FencedManifest::acquire(store.clone(), dir.clone(), "t/0")
        .await
        .unwrap();
    let err = old.update(|m| m.add_segment(seg(5, 9))).await.unwrap_err();
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
    new.update(|m| m.add_segment(seg(5, 7))).await.unwrap();
    let (m, _) = read_manifest(store.as_ref(), &dir).await.unwrap().unwrap();
    assert_eq!(m.segments, vec![seg(0, 5), seg(5, 7)]);
}

async fn a_stale_owner_is_fenced_even_after_old_versions_are_deleted(store: Arc<dyn ObjectStore>) {
    let dir = fresh_dir("fenced-gc");
    let mut old = FencedManifest::acquire(store.clone(), dir.clone(), "t/0")
        .await
        .unwrap();
    let mut new = FencedManifest::acquire(store.clone(), dir.clone(), "t/0")
        .await
        .unwrap();
    for i in 0..12 {
        new.update(move |m| m.add_segment(seg(i, i + 1)))
            .await
            .unwrap();
    }
    let err = old
        .update(|m| m.add_segment(seg(0, 100)))
        .await
        .unwrap_err();
    assert!(matches!(err, TieringError::Fenced { .. }), "{err:?}");
    let (m, _) = read_manifest(store.as_ref(), &dir).await.unwrap().unwrap();
    assert_eq!((m.epoch, m.end_offset(), m.segments.len()), (2, 12, 12));
}

async fn a_write_that_lands_but_reports_failure_is_not_applied_twice(store: Arc<dyn ObjectStore>) {
    let dir = fresh_dir("lost-ack");
    let faults = Faults::default();
    let faulty: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(store.clone(), faults.clone()));
    let mut a = FencedManifest::acquire(faulty.clone(), dir.clone(), "t/0")
        .await
        .unwrap();
    faults.lose_next_put_acks(1);
    a.update(|m| m.add_segment(seg(0, 5))).await.unwrap();
    faults.fail_next(1);
    a.update(|m| m.add_segment(seg(5, 8))).await.unwrap();
    let (m, _) = read_manifest(store.as_ref(), &dir).await.unwrap().unwrap();
    assert_eq!(m.segments, vec![seg(0, 5), seg(5, 8)]);
}

async fn racing_writers_lose_nothing_and_list_nothing_twice(store: Arc<dyn ObjectStore>) {
    let dir = fresh_dir("race");
    let faults = Faults::default();
    let faulty = quick_retries(Arc::new(FaultStore::new(store.clone(), faults.clone())));
    let mut tasks = Vec::new();
    for writer in 0..2u64 {
        let (s, d, f) = (faulty.clone(), dir.clone(), faults.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for round in 0..6 {
                let Ok(mut owner) = FencedManifest::acquire(s.clone(), d.clone(), "t/0").await
                else {
                    continue;
                };
                for _ in 0..4 {
                    if (round + writer) % 3 == 0 {
                        f.lose_next_put_acks(1);
                    }
                    let next = owner.manifest().end_offset();
                    let entry = seg(next, next + 1 + writer);
                    let e2 = entry.clone();
                    match owner.update(move |m| m.add_segment(e2.clone())).await {
                        Ok(()) => acked.push(entry),
                        Err(TieringError::Fenced { .. }) => break,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let (m, _) = read_manifest(store.as_ref(), &dir).await.unwrap().unwrap();
    for a in &acked {
        assert_eq!(
            m.segments.iter().filter(|s| *s == a).count(),
            1,
            "acknowledged {a:?} lost or listed twice in {m:?}"
        );
    }
    let mut at = 0;
    for s in &m.segments {
        assert_eq!(s.base_offset, at, "gap or overlap in {m:?}");
        at = s.end_offset;
    }
    assert!(!acked.is_empty());
}

every_backend!(suite);

#[tokio::test]
async fn retries_stop_at_meaningful_answers_and_at_the_limit() {
    let faults = Faults::default();
    let inner: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(
        open_object_store(&ObjectStoreUrl::Memory).unwrap().0,
        faults.clone(),
    ));
    let store = quick_retries(inner.clone());
    let p = Path::from("x");
    store.put(&p, "v".into()).await.unwrap();
    faults.reset_counts();
    faults.fail_next(3);
    assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), "v");
    assert_eq!(faults.counts().gets, 4);
    faults.reset_counts();
    faults.fail_next(10);
    assert!(store.get(&p).await.is_err());
    assert_eq!(faults.counts().gets, 4);
    faults.fail_next(0);
    faults.reset_counts();
    assert!(matches!(
        store.get(&Path::from("missing")).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert_eq!(faults.counts().gets, 1);
}

/// `staged_epoch` is additive: a manifest written before staging (no field)
/// reads as `None`, an entry without it is written exactly as before, and a
/// staged entry keeps its epoch through a round trip.
#[test]
fn staged_epoch_is_an_additive_field() {
    let old =
        r#"{"base_offset":0,"end_offset":5,"min_store_ms":0,"max_store_ms":5,"rows":5,"bytes":10}"#;
    let parsed: SegmentEntry = serde_json::from_str(old).unwrap();
    assert_eq!(parsed, seg(0, 5));
    assert_eq!(serde_json::to_string(&parsed).unwrap(), old);
    let staged = SegmentEntry {
        staged_epoch: Some(7),
        ..seg(0, 5)
    };
    let json = serde_json::to_string(&staged).unwrap();
    assert!(json.ends_with(r#","staged_epoch":7}"#), "{json}");
    assert_eq!(serde_json::from_str::<SegmentEntry>(&json).unwrap(), staged);
}
