//! The produce de-duplication window (`dedup_id`, API.md "Produce").
//!
//! A message whose `dedup_id` was stored on the same topic less than
//! [`DEDUP_WINDOW_MS`] earlier (by the stored message's `store_ms`) is not
//! stored again; its result repeats the first one's.
//!
//! Invariants:
//! - check and append happen under the lock stripes of the request's ids
//!   ([`DedupWindow::lock`]), so concurrent requests with the same id store
//!   the message exactly once;
//! - the id is stored in the record as the reserved property
//!   [`DEDUP_PROPERTY`], so the window is rebuilt from the log when the node
//!   opens (see `Broker::open`) and a restart does not forget it;
//! - the window is bounded ([`DEDUP_CAPACITY`] entries): beyond it the oldest
//!   entries are evicted early and counted in `shale_dedup_evictions_total`.

use std::sync::Arc;

use moka::notification::RemovalCause;
use shale_hot::{MessageId, Record};

/// How long a `dedup_id` is remembered after its message was stored (5 minutes).
pub const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Reserved property that carries the `dedup_id` in a stored record.
pub const DEDUP_PROPERTY: &str = "shale.dedup_id";
/// Most ids remembered at once, over all topics.
pub const DEDUP_CAPACITY: u64 = 2_000_000;
/// Lock stripes: requests with different ids rarely wait on each other.
const STRIPES: usize = 64;

/// Where the first message with an id was stored: the result a repeat gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupHit {
    pub queue: u32,
    pub offset: u64,
    pub message_id: MessageId,
    pub store_ms: i64,
    pub deliver_at_ms: Option<i64>,
    /// A delay message not yet due: `offset` is its timer journal's, not shown.
    pub scheduled: bool,
}

impl DedupHit {
    /// The hit for a stored record.
    pub fn of_record(queue: u32, record: &Record) -> DedupHit {
        DedupHit {
            queue,
            offset: record.offset,
            message_id: record.message_id,
            store_ms: record.store_ms,
            deliver_at_ms: record.deliver_at_ms,
            scheduled: false,
        }
    }
}

/// The `dedup_id` a stored record carries, if any.
pub fn dedup_id_of(record: &Record) -> Option<&str> {
    record
        .properties
        .iter()
        .find(|(k, _)| k == DEDUP_PROPERTY)
        .map(|(_, v)| v.as_str())
}

/// The ids seen in the last [`DEDUP_WINDOW_MS`], per topic.
#[derive(Debug)]
pub struct DedupWindow {
    seen: moka::sync::Cache<(String, String), DedupHit>,
    stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
}

/// Held while a request checks and stores its ids.
#[derive(Debug)]
pub struct DedupGuard {
    _guards: Vec<tokio::sync::OwnedMutexGuard<()>>,
}

impl Default for DedupWindow {
    fn default() -> Self {
        Self::new(DEDUP_CAPACITY)
    }
}

impl DedupWindow {
    pub fn new(capacity: u64) -> Self {
        let seen = moka::sync::Cache::builder()
            .max_capacity(capacity)
            // Entries past the window are also rejected by `lookup`; this only frees memory.
            .time_to_live(std::time::Duration::from_millis(
                DEDUP_WINDOW_MS as u64 + 60_000,
            ))
            .support_invalidation_closures()
            .eviction_listener(|_k, _v, cause| {
                if cause == RemovalCause::Size {
                    metrics::counter!("shale_dedup_evictions_total").increment(1);
                }
            })
            .build();
        let stripes = (0..STRIPES)
            .map(|_| Arc::new(tokio::sync::Mutex::new(())))
            .collect();
        Self { seen, stripes }
    }

    /// Locks the stripes of `ids` on `topic` (in ascending order, so two
    /// requests never deadlock).
    pub async fn lock<'a>(&self, topic: &str, ids: impl Iterator<Item = &'a str>) -> DedupGuard {
        let mut idx: Vec<usize> = ids.map(|id| stripe_of(topic, id)).collect();
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].clone().lock_owned().await);
        }
        DedupGuard { _guards: guards }
    }

    /// The first message stored with `id` on `topic`, if within the window at `now_ms`.
    pub fn lookup(&self, topic: &str, id: &str, now_ms: i64) -> Option<DedupHit> {
        let key = (topic.to_string(), id.to_string());
        let hit = self.seen.get(&key)?;
        if now_ms - hit.store_ms < DEDUP_WINDOW_MS {
            return Some(hit);
        }
        self.seen.invalidate(&key);
        None
    }

    /// Remembers that `id` was stored as `hit`, unless an earlier, still
    /// valid message holds the id (the first one wins).
    pub fn record(&self, topic: &str, id: &str, hit: DedupHit) {
        let key = (topic.to_string(), id.to_string());
        if let Some(existing) = self.seen.get(&key)
            && existing.store_ms <= hit.store_ms
            && hit.store_ms - existing.store_ms < DEDUP_WINDOW_MS
        {
            return;
        }
        self.seen.insert(key, hit);
    }

    /// Every id of `topic` stored in `queue` that is still remembered (a
    /// hand-over passes them on; one pass over the window).
    pub fn entries_of(&self, topic: &str, queue: u32) -> Vec<(String, DedupHit)> {
        self.seen
            .iter()
            .filter(|(k, hit)| k.0 == topic && hit.queue == queue)
            .map(|(k, hit)| (k.1.clone(), hit))
            .collect()
    }

    /// Forgets every id of a deleted topic.
    pub fn forget_topic(&self, topic: &str) {
        let topic = topic.to_string();
        if let Err(e) = self.seen.invalidate_entries_if(move |k, _| k.0 == topic) {
            tracing::error!(error = %crate::error::error_chain(&e), "cannot forget dedup ids of a deleted topic");
        }
    }
}

/// FNV-1a over topic and id: a stable stripe for a given id.
fn stripe_of(topic: &str, id: &str) -> usize {
    let h = crate::produce::queue_choice::fnv1a(&[topic.as_bytes(), b"\0", id.as_bytes()]);
    (h % STRIPES as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(store_ms: i64, offset: u64) -> DedupHit {
        DedupHit {
            queue: 1,
            offset,
            message_id: MessageId::new(store_ms, 1, offset, 0),
            store_ms,
            deliver_at_ms: None,
            scheduled: false,
        }
    }

    #[test]
    fn window_and_first_wins() {
        let w = DedupWindow::new(100);
        w.record("t", "a", hit(1_000, 5));
        w.record("t", "a", hit(2_000, 6));
        assert_eq!(w.lookup("t", "a", 2_000).map(|h| h.offset), Some(5));
        assert_eq!(w.lookup("u", "a", 2_000), None);
        assert_eq!(w.lookup("t", "a", 1_000 + DEDUP_WINDOW_MS), None);
        // After the window a new message takes the id.
        w.record("t", "a", hit(1_000 + DEDUP_WINDOW_MS, 9));
        assert_eq!(
            w.lookup("t", "a", 1_000 + DEDUP_WINDOW_MS)
                .map(|h| h.offset),
            Some(9)
        );
    }

    #[tokio::test]
    async fn lock_is_exclusive_per_id() {
        let w = Arc::new(DedupWindow::new(100));
        let g = w.lock("t", ["a", "b", "a"].into_iter()).await;
        let w2 = w.clone();
        let waiter = tokio::spawn(async move {
            let _g = w2.lock("t", ["a"].into_iter()).await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(g);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
