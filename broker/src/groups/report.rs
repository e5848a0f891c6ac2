//! Per group and topic gauges, refreshed by the tiering loop (once a second):
//! `shale_group_ready` (messages the group has not received yet),
//! `shale_group_inflight`, `shale_group_lag` (max_offset - committed;
//! `max_offset` is the visible end, as clients see it),
//! `shale_group_oldest_unacked_age_seconds`; the dead-letter counter
//! `shale_group_dead_lettered_total` is counted where it happens.

use std::collections::BTreeMap;

use crate::broker::Broker;
use crate::queue_view::TieredQueue;

#[derive(Default)]
struct Totals {
    ready: u64,
    inflight: u64,
    lag: u64,
    oldest_unacked_ms: Option<i64>,
}

/// Recomputes the gauges from the cursors in memory.
pub async fn report(state: &Broker) {
    let now = state.clock.now_ms();
    let cursors = state.groups.cursors.collect(
        |_| true,
        |k, c| (k.clone(), c.committed, c.next, c.inflight(now) as u64),
    );
    let mut totals: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for (k, committed, next, inflight) in cursors {
        if state.topics.get(&k.topic).is_none() {
            continue;
        }
        let Ok(q) = TieredQueue::open(state, &k.topic, k.queue).await else {
            continue;
        };
        let max = q.max_offset();
        let t = totals
            .entry((k.group.clone(), k.topic.clone()))
            .or_default();
        t.ready += max.saturating_sub(next);
        t.inflight += inflight;
        t.lag += max.saturating_sub(committed);
        if committed < max
            && let Ok(Some(r)) = q.read_one(committed).await
        {
            t.oldest_unacked_ms = Some(
                t.oldest_unacked_ms
                    .map_or(r.store_ms, |o| o.min(r.store_ms)),
            );
        }
    }
    for ((group, topic), t) in totals {
        let age_s = t
            .oldest_unacked_ms
            .map_or(0.0, |ms| (now - ms).max(0) as f64 / 1000.0);
        crate::metrics::group_gauges(&group, &topic, t.ready, t.inflight, t.lag, age_s);
    }
}
