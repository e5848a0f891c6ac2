//! Shared set-up of the tiering tests: a hot queue filled with messages, one
//! per clock step, on a manual clock.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use shale_hot::{AppendRequest, HotConfig, HotStore, ManualClock, QueueLog};

pub const T0: i64 = 1_700_000_000_000;

/// A hot tier in a temp dir with one filled queue.
pub struct HotQueue {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub hot: Arc<HotStore>,
    pub q: Arc<QueueLog>,
}

/// `n` messages `message(i)` appended one by one to `topic`/`queue`, the clock
/// moving `step_ms` before each, in segments of `segment_bytes`.
pub fn filled_queue(
    topic: &str,
    queue: u32,
    segment_bytes: u64,
    n: usize,
    step_ms: i64,
    message: impl Fn(usize) -> AppendRequest,
) -> HotQueue {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = HotConfig {
        segment_bytes,
        ..HotConfig::default()
    };
    let hot = HotStore::open(dir.path(), config, Arc::new(clock.clone())).unwrap();
    let q = hot.queue(topic, queue).unwrap();
    for i in 0..n {
        clock.advance(step_ms);
        q.append(&[message(i)]).unwrap();
    }
    HotQueue { dir, clock, hot, q }
}

/// The S3-compatible store `scripts/test.sh` started (moto), or `None` when
/// there is none — which is a failure if `SHALE_REQUIRE_S3` is set.
pub fn s3_store() -> Option<std::sync::Arc<dyn object_store::ObjectStore>> {
    let Ok(bucket) = std::env::var("SHALE_TEST_S3_BUCKET") else {
        assert!(
            std::env::var("SHALE_REQUIRE_S3").is_err(),
            "SHALE_REQUIRE_S3 is set but SHALE_TEST_S3_BUCKET is not"
        );
        eprintln!("SKIPPED: no S3 server (run scripts/test.sh, which starts moto)");
        return None;
    };
    let url = shale_tiering::ObjectStoreUrl::S3 {
        bucket,
        prefix: String::new(),
    };
    Some(shale_tiering::open_object_store(&url).unwrap().0)
}

/// Runs `suite(store)` against the in-memory store, a local directory and
/// S3: one `#[tokio::test]` per backend (Quickwit's storage test suite idea).
#[allow(unused_macros)]
macro_rules! every_backend {
    ($suite:ident) => {
        #[tokio::test]
        async fn memory_backend() {
            let url = shale_tiering::ObjectStoreUrl::Memory;
            $suite(shale_tiering::open_object_store(&url).unwrap().0).await;
        }

        #[tokio::test]
        async fn file_backend() {
            let dir = tempfile::tempdir().unwrap();
            let url = shale_tiering::ObjectStoreUrl::File(dir.path().to_path_buf());
            $suite(shale_tiering::open_object_store(&url).unwrap().0).await;
        }

        #[tokio::test]
        async fn s3_backend() {
            if let Some(store) = common::s3_store() {
                $suite(store).await;
            }
        }
    };
}
