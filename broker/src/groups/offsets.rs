//! A group's offsets on a topic (committed, max, lag, in flight) and resets
//! (backtracking or skipping ahead), over both tiers.
//!
//! Invariants: `max_offset` (and so `lag`, and where LATEST starts) is the
//! queue's visible end ([`crate::visible_end`]), not what is merely written;
//! a reported committed offset lies within the queue's
//! `[min_offset, max_offset]`; a queue the group never consumed reports
//! where it would start. A reset replaces the cursor's state under its lock:
//! deliveries in flight, dead-letter and read claims are forgotten (their
//! handles expire, and a receive that read before the reset drops what it read).
//!
//! Tier-aware lag: the lag `[committed_offset, max_offset)` splits at the
//! first offset still in a local segment of the hot tier (`hot_min`):
//! `lag_hot` is the part at or above it (read from local disk), `lag_cold`
//! the part below it (only in the object store: evicted, or never local on
//! this node), so `lag_hot + lag_cold == lag`. `retrying` counts the
//! group's delivered, unacked messages whose invisibility ran out (waiting
//! for a redelivery), `pending_timers` the queue's delay messages not yet
//! due (not in the queue, so not in the lag), `consume_rate_per_s` the
//! group's recent acks on the queue ([`super::ack_rate`]) and `catch_up_ms`
//! the lag over that rate.

use std::sync::Arc;

use super::CursorKey;
use super::config::{ConsumeFrom, GroupConfig, Position};
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};
use crate::queue_view::TieredQueue;
use crate::topics::Topic;

/// A queue's offsets for a group.
#[derive(Debug, serde::Serialize)]
pub struct QueueOffsets {
    pub queue: u32,
    pub committed_offset: u64,
    pub max_offset: u64,
    pub lag: u64,
    pub inflight: u64,
    /// Part of `lag` still on this node's local disk.
    pub lag_hot: u64,
    /// Part of `lag` only in the object store.
    pub lag_cold: u64,
    /// Delivered, unacked, invisibility over: waiting for a redelivery.
    pub retrying: u64,
    /// Delay messages of the queue not yet due.
    pub pending_timers: u64,
    /// The group's acks a second on the queue over the last minute.
    pub consume_rate_per_s: Option<f64>,
    /// `lag` at `consume_rate_per_s`, in ms (0 without lag).
    pub catch_up_ms: Option<u64>,
}

/// Splits the lag `[committed, max)` at `hot_min`, the first offset still on
/// local disk (`None`: the queue has no local data here): `(hot, cold)`.
pub fn split_lag(committed: u64, max: u64, hot_min: Option<u64>) -> (u64, u64) {
    let lag = max.saturating_sub(committed);
    let hot_from = hot_min.unwrap_or(max).clamp(committed, max.max(committed));
    let hot = max.saturating_sub(hot_from);
    (hot, lag - hot)
}

/// Where a reset moves the group.
#[derive(Debug, Clone)]
pub enum ResetTo {
    Timestamp(i64),
    Earliest,
    Latest,
    Offsets(Vec<(u32, u64)>),
}

/// Where a group starts on a queue it has never consumed.
pub async fn start_offset(from: ConsumeFrom, q: &TieredQueue) -> BrokerResult<u64> {
    Ok(match from {
        ConsumeFrom::Position(Position::Earliest) => q.min_offset(),
        ConsumeFrom::Timestamp { timestamp_ms } => q.offset_for_timestamp(timestamp_ms).await?,
        ConsumeFrom::Position(Position::Latest) | ConsumeFrom::Latest => q.max_offset(),
    })
}

/// Offsets of every queue of `topic` for the group (a queue never consumed
/// reports where the group would start).
pub async fn offsets(
    state: &Arc<Broker>,
    group: &GroupConfig,
    topic: &Topic,
    consumer: &str,
) -> BrokerResult<Vec<QueueOffsets>> {
    let mut out = Vec::new();
    let now = state.clock.now_ms();
    for queue in 0..topic.queues() {
        let tq = TieredQueue::open(state, &topic.name, queue).await?;
        let max_offset = tq.max_offset();
        let k = CursorKey::new(&group.name, &topic.name, queue, consumer);
        let known = state.groups.cursors.get(&k).map(|c| {
            let c = c.lock();
            (c.committed, c.inflight(now) as u64, c.retrying(now) as u64)
        });
        let (committed, inflight, retrying) = match known {
            Some(v) => v,
            None => match super::durable::peek(state, &k).await? {
                Some(c) => (c.committed, c.inflight(now) as u64, c.retrying(now) as u64),
                None => (start_offset(group.consume_from, &tq).await?, 0, 0),
            },
        };
        let committed = committed.max(tq.min_offset()).min(max_offset);
        let lag = max_offset - committed;
        let (lag_hot, lag_cold) = split_lag(committed, max_offset, tq.hot_min_offset());
        let consume_rate_per_s = state.groups.ack_rates.rate(&k, now);
        out.push(QueueOffsets {
            queue,
            committed_offset: committed,
            max_offset,
            lag,
            inflight,
            lag_hot,
            lag_cold,
            retrying,
            pending_timers: state.queue_pending_timers(&topic.name, queue).await?,
            consume_rate_per_s,
            catch_up_ms: super::ack_rate::catch_up_ms(lag, consume_rate_per_s),
        });
    }
    Ok(out)
}

/// The offset a reset moves `queue` to, `None` when it leaves it alone.
async fn reset_target(tq: &TieredQueue, queue: u32, to: &ResetTo) -> BrokerResult<Option<u64>> {
    Ok(match to {
        ResetTo::Timestamp(ts) => Some(tq.offset_for_timestamp(*ts).await?),
        ResetTo::Earliest => Some(tq.min_offset()),
        ResetTo::Latest => Some(tq.max_offset()),
        ResetTo::Offsets(list) => match list.iter().find(|(q, _)| *q == queue) {
            Some((_, o)) if *o < tq.min_offset() || *o > tq.max_offset() => {
                return Err(BrokerError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!(
                        "offset {o} of queue {queue} is outside [{}, {}]",
                        tq.min_offset(),
                        tq.max_offset()
                    ),
                ));
            }
            Some((_, o)) => Some(*o),
            None => None,
        },
    })
}

/// Moves the group's cursors on `topic` (backtracking or skipping); deliveries
/// in flight are forgotten. Returns the new offsets.
pub async fn reset(
    state: &Arc<Broker>,
    group: &GroupConfig,
    topic: &Topic,
    consumer: &str,
    to: ResetTo,
) -> BrokerResult<Vec<QueueOffsets>> {
    let mut targets = Vec::new();
    for queue in 0..topic.queues() {
        let tq = TieredQueue::open(state, &topic.name, queue).await?;
        if let Some(t) = reset_target(&tq, queue, &to).await? {
            targets.push((queue, t));
        }
    }
    if let ResetTo::Offsets(list) = &to
        && let Some((q, _)) = list.iter().find(|(q, _)| *q >= topic.queues())
    {
        return Err(BrokerError::invalid(format!(
            "queue {q} does not exist: topic {:?} has {} queues",
            topic.name,
            topic.queues()
        )));
    }
    // In a cluster each node resets the queues it serves (the front-end asks
    // the others); a queue moving right now makes the whole reset retryable.
    let mut here = Vec::new();
    for (queue, t) in targets {
        match state.serve_queue(&topic.name, queue).await {
            Ok(()) => here.push((queue, t)),
            Err(e) if e.elsewhere().is_some() => {}
            Err(e) => return Err(e),
        }
    }
    for (queue, t) in here {
        let k = CursorKey::new(&group.name, &topic.name, queue, consumer);
        super::durable::ensure_cursor(state, &k, async || Ok(t)).await?;
        if let Some(c) = state.groups.cursors.get(&k) {
            c.lock().reset(t);
        }
    }
    state.groups.changed.notify_waiters();
    offsets(state, group, topic, consumer).await
}

#[cfg(test)]
mod tests {
    use super::split_lag;

    #[test]
    fn the_lag_splits_at_the_first_local_offset() {
        // Local from 100: 40..100 only in the object store, 100..150 local.
        assert_eq!(split_lag(40, 150, Some(100)), (50, 60));
        // Committed past the local start: all local.
        assert_eq!(split_lag(120, 150, Some(100)), (30, 0));
        // Nothing local here (evicted to the end, or another node's queue).
        assert_eq!(split_lag(40, 150, None), (0, 110));
        assert_eq!(split_lag(40, 150, Some(150)), (0, 110));
        // No lag.
        assert_eq!(split_lag(150, 150, Some(100)), (0, 0));
        // A local tier that starts below the committed offset or past the end.
        assert_eq!(split_lag(10, 20, Some(0)), (10, 0));
        assert_eq!(split_lag(10, 20, Some(30)), (0, 10));
    }
}
