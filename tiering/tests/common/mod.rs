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
