//! The dedup window travels with a queue that is handed over.
//!
//! A new owner rebuilds a queue's dedup ids from its local copy (at start) or
//! from what a takeover recovered ([`crate::wal::recover`]); after a planned
//! move it has neither, since the queue's messages reached it as uploaded
//! segments. So the old owner, once the queue is drained and uploaded, writes
//! the queue's ids still within the window to
//! `topics/{t}/queues/{q}/dedup/{epoch}.json` (a key only the owner of that
//! epoch writes), and the next owner records them before it serves the queue,
//! then deletes the object. Both steps are best effort: a failure is logged,
//! and costs only the dedup of a retry within the window (a message may then
//! be stored twice), never a message.

use serde::{Deserialize, Serialize};
use shale_hot::MessageId;
use shale_tiering::Acquired;

use crate::broker::Broker;
use crate::dedup::{DEDUP_WINDOW_MS, DedupHit};
use crate::error::error_chain;

const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    entries: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    id: String,
    offset: u64,
    message_id: String,
    store_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deliver_at_ms: Option<i64>,
}

impl Broker {
    /// Writes the queue's ids within the window (hand-over, before the release).
    pub(crate) async fn pass_on_dedup(&self, topic: &str, queue: u32) {
        let now = self.clock.now_ms();
        let entries: Vec<Entry> = self
            .dedup
            .entries_of(topic, queue)
            .into_iter()
            .filter(|(_, hit)| now - hit.store_ms < DEDUP_WINDOW_MS)
            .map(|(id, hit)| Entry {
                id,
                offset: hit.offset,
                message_id: hit.message_id.to_hex().as_str().to_string(),
                store_ms: hit.store_ms,
                deliver_at_ms: hit.deliver_at_ms,
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let n = entries.len();
        let json = match serde_json::to_vec(&Snapshot {
            format: FORMAT,
            entries,
        }) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(topic, queue, error = %e, "cannot encode the dedup ids to pass on");
                return;
            }
        };
        if let Err(e) = self
            .tier
            .put_dedup_snapshot(topic, queue, json.into())
            .await
        {
            tracing::warn!(topic, queue, ids = n, error = %error_chain(&e), "cannot pass the dedup ids on with the hand-over; retries within the window may be stored twice");
        }
    }

    /// Records the ids the previous owner passed on with its hand-over.
    pub(crate) async fn take_over_dedup(&self, topic: &str, queue: u32, acquired: &Acquired) {
        if acquired.previous_owner.is_some() || acquired.previous_epoch == 0 {
            return;
        }
        let epoch = acquired.previous_epoch;
        let bytes = match self.tier.dedup_snapshot(topic, queue, epoch).await {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(topic, queue, error = %error_chain(&e), "cannot read the dedup ids passed on with the hand-over");
                return;
            }
        };
        let snapshot = match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(s) if s.format == FORMAT => s,
            Ok(s) => {
                tracing::warn!(
                    topic,
                    queue,
                    format = s.format,
                    "dedup ids in an unknown format are ignored"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(topic, queue, error = %e, "unreadable dedup ids are ignored");
                return;
            }
        };
        for e in &snapshot.entries {
            let Ok(message_id) = e.message_id.parse::<MessageId>() else {
                continue;
            };
            let hit = DedupHit {
                queue,
                offset: e.offset,
                message_id,
                store_ms: e.store_ms,
                deliver_at_ms: e.deliver_at_ms,
                scheduled: false,
            };
            self.dedup.record(topic, &e.id, hit);
        }
        let path = self.tier.layout().dedup_snapshot(topic, queue, epoch);
        let _ = self.tier.store().delete(&path).await;
    }
}
