//! Durable group state: cursors checkpointed to the object store.
//!
//! A cursor is restored from its checkpoint the first time this node touches
//! it (taking ownership of the checkpoint, which raises its epoch and fences
//! any previous owner), and every cursor is saved by the tiering loop (once a
//! second by default) and at shutdown; an unchanged cursor writes nothing.
//! After a kill -9, acks newer than the last checkpoint are lost — those
//! messages are delivered again — and nothing unacked is ever lost.
//!
//! Every store call here runs under no lock: a snapshot is taken cursor by
//! cursor, each under its own lock, and restored cursors join the map only
//! if no one put one there meanwhile.

use shale_tiering::{CheckpointKey, HeldEntry, InflightEntry, QueueCheckpoint};

use super::CursorKey;
use super::cursor::{Cursor, Pending};
use crate::broker::Broker;
use crate::error::{BrokerResult, error_chain};

fn checkpoint_key(k: &CursorKey) -> CheckpointKey {
    if k.consumer.is_empty() {
        CheckpointKey::clustering(k.group.clone(), k.topic.clone(), k.queue)
    } else {
        CheckpointKey::broadcasting(
            k.group.clone(),
            k.topic.clone(),
            k.queue,
            k.consumer.clone(),
        )
    }
}

/// The checkpoint form of a cursor.
pub fn to_checkpoint(c: &Cursor) -> QueueCheckpoint {
    let mut cp = QueueCheckpoint::starting_at(c.committed);
    cp.next = c.next;
    cp.inflight = c
        .pending
        .iter()
        .map(|(offset, p)| InflightEntry {
            offset: *offset,
            attempt: p.attempts,
            visible_at_ms: p.invisible_until,
            nonce: p.nonce,
            fifo_group: p.fifo_group,
        })
        .collect();
    cp.held = c
        .held
        .iter()
        .map(|(offset, g)| HeldEntry {
            offset: *offset,
            fifo_group: *g,
        })
        .collect();
    cp
}

/// The cursor a checkpoint describes.
pub fn from_checkpoint(cp: &QueueCheckpoint) -> Cursor {
    Cursor {
        committed: cp.committed,
        next: cp.next,
        pending: cp
            .inflight
            .iter()
            .map(|e| {
                let p = Pending {
                    attempts: e.attempt,
                    invisible_until: e.visible_at_ms,
                    nonce: e.nonce,
                    fifo_group: e.fifo_group,
                };
                (e.offset, p)
            })
            .collect(),
        held: cp.held.iter().map(|h| (h.offset, h.fifo_group)).collect(),
        ..Default::default()
    }
}

/// Makes sure the cursor is in memory: restored from its checkpoint, or new
/// at `start` (computed only when there is no checkpoint).
pub async fn ensure_cursor<F>(state: &Broker, key: &CursorKey, start: F) -> BrokerResult<()>
where
    F: AsyncFnOnce() -> BrokerResult<u64>,
{
    // Only the queue's owner keeps its cursors (taking the queue first drops stale ones).
    state.serve_queue(&key.topic, key.queue).await?;
    if state.groups.cursors.contains(key) {
        return Ok(());
    }
    let ck = checkpoint_key(key);
    let restored = match state.checkpoints.load(&ck).await? {
        Some(cp) => cp,
        None => QueueCheckpoint::starting_at(start().await?),
    };
    adopt(state, key, restored).await
}

/// Restores the cursor from its checkpoint if it is not in memory and one
/// exists (an ack or an invisibility change after a restart); does nothing otherwise.
pub async fn restore_if_checkpointed(state: &Broker, key: &CursorKey) -> BrokerResult<()> {
    state.serve_queue(&key.topic, key.queue).await?;
    if state.groups.cursors.contains(key) {
        return Ok(());
    }
    let ck = checkpoint_key(key);
    let Some(cp) = state.checkpoints.load(&ck).await? else {
        return Ok(());
    };
    adopt(state, key, cp).await
}

/// Takes ownership of the cursor's checkpoint (fencing an earlier owner)
/// starting from `cp`, and keeps the cursor in memory.
async fn adopt(state: &Broker, key: &CursorKey, cp: QueueCheckpoint) -> BrokerResult<()> {
    let owned = state.checkpoints.acquire(&checkpoint_key(key), cp).await?;
    state
        .groups
        .cursors
        .get_or_insert(key, || from_checkpoint(&owned));
    Ok(())
}

/// The cursor as last checkpointed, without taking ownership (for reports).
pub async fn peek(state: &Broker, key: &CursorKey) -> BrokerResult<Option<Cursor>> {
    Ok(state
        .checkpoints
        .load(&checkpoint_key(key))
        .await?
        .as_ref()
        .map(from_checkpoint))
}

/// Saves every cursor of one queue (before its hand-over); the first failure is the error.
pub async fn checkpoint_queue(state: &Broker, topic: &str, queue: u32) -> BrokerResult<()> {
    let snapshot: Vec<(CursorKey, QueueCheckpoint)> = state.groups.cursors.collect(
        |k| k.topic == topic && k.queue == queue,
        |k, c| (k.clone(), to_checkpoint(c)),
    );
    for (k, cp) in snapshot {
        state.checkpoints.save(&checkpoint_key(&k), cp).await?;
    }
    Ok(())
}

/// Saves every cursor that changed since its last save. Errors are logged
/// (the next pass retries); a fenced cursor is dropped from memory, so the
/// next use restores it from its new owner's checkpoint.
pub async fn checkpoint_all(state: &Broker) {
    let snapshot: Vec<(CursorKey, QueueCheckpoint)> = state
        .groups
        .cursors
        .collect(|_| true, |k, c| (k.clone(), to_checkpoint(c)));
    for (k, cp) in snapshot {
        match state.checkpoints.save(&checkpoint_key(&k), cp).await {
            Ok(()) => {}
            Err(shale_tiering::TieringError::Fenced { .. }) => {
                tracing::warn!(group = %k.group, topic = %k.topic, queue = k.queue, "group checkpoint fenced by another owner");
                state.groups.cursors.remove(&k);
            }
            Err(e) => {
                tracing::warn!(group = %k.group, topic = %k.topic, queue = k.queue, error = %error_chain(&e), "group checkpoint failed; will retry")
            }
        }
    }
}
