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
            (c.committed, c.inflight(now) as u64)
        });
        let (committed, inflight) = match known {
            Some(v) => v,
            None => match super::durable::peek(state, &k).await? {
                Some(c) => (c.committed, c.inflight(now) as u64),
                None => (start_offset(group.consume_from, &tq).await?, 0),
            },
        };
        let committed = committed.max(tq.min_offset()).min(max_offset);
        out.push(QueueOffsets {
            queue,
            committed_offset: committed,
            max_offset,
            lag: max_offset - committed,
            inflight,
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
