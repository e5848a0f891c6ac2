//! Durable consumer-group progress: one [`QueueCheckpoint`] per (group, topic,
//! queue) — per consumer too in BROADCASTING mode — kept as a
//! [`FencedObject`], so that the node serving a queue for a group is its only
//! writer and a node that took the queue over fences the previous one.
//!
//! Layout (see [`crate::paths`]):
//! `{prefix}/groups/{group}/topics/{topic}/queues/{queue}[/consumers/{consumer}]/checkpoint/{seq:020}.json`,
//! one immutable JSON version per save, the few newest kept.
//!
//! Ownership: [`GroupCheckpoints`] takes a checkpoint (raising its epoch) on
//! [`GroupCheckpoints::acquire`] or on the first save, then every save is a
//! fenced replace under that epoch. A save that gets
//! [`TieringError::Fenced`] drops ownership: another node serves the queue
//! now, and this one must stop delivering it (a later save would take it back).
//! Reads ([`GroupCheckpoints::load`]) take no ownership and work on any node.
//!
//! Invariants of a checkpoint (checked before every write and on every read,
//! see [`QueueCheckpoint`]): `committed <= next`; the offsets of `inflight`,
//! `held` and `acked` are each strictly increasing, pairwise disjoint and in
//! `[committed, next)`.
//!
//! Deleting a group deletes everything under `{prefix}/groups/{group}/` (its
//! settings object included). The callers must have stopped delivering the
//! group on every node first: a node still owning one of its checkpoints
//! would write it again on its next save.

use std::collections::HashMap;
use std::sync::Arc;

use object_store::ObjectStore;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TieringError};
use crate::fenced::{FencedObject, Versioned, read_latest};
use crate::paths::Layout;

/// Current checkpoint format.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// A delivered, not yet acked message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InflightEntry {
    pub offset: u64,
    /// Deliveries so far (1 after the first).
    pub attempt: u32,
    /// When the message becomes visible (deliverable) again if not acked.
    pub visible_at_ms: i64,
    /// Identifies the current delivery; receipt handles carrying another are expired.
    pub nonce: u64,
    /// FIFO group key (a hash of `message_group`) on FIFO topics: later
    /// messages of this group are held until this one is done.
    #[serde(default)]
    pub fifo_group: Option<u64>,
}

/// A FIFO message read but held back behind an earlier message of its group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HeldEntry {
    pub offset: u64,
    /// FIFO group key (a hash of `message_group`).
    pub fifo_group: u64,
}

/// The progress of a group (or of one BROADCASTING consumer) on one queue.
///
/// An offset below `committed` is consumed; one at or above `next` was never
/// delivered. An offset in `[committed, next)` is in flight if listed in
/// `inflight`, held back if listed in `held`, and consumed otherwise (acked,
/// filtered out or dead-lettered), whether or not `acked` lists it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct QueueCheckpoint {
    pub format: u32,
    /// Owner generation; set by the fencing layer (whatever a caller puts here is replaced).
    pub epoch: u64,
    /// Lowest offset not consumed yet.
    pub committed: u64,
    /// Next offset never delivered (nor filtered, nor held).
    pub next: u64,
    /// Messages delivered and not acked, by increasing offset.
    pub inflight: Vec<InflightEntry>,
    /// Offsets in `[committed, next)` acked out of order, increasing. A
    /// writer may leave it empty (what is neither in flight nor held is
    /// consumed anyway); it is there for writers that track acks explicitly.
    pub acked: Vec<u64>,
    /// Every offset below this one was evaluated against the group's filter
    /// (the rejected ones count as consumed). Usually `next`; it may run
    /// ahead of it when a scan evaluated records without delivering any. Not
    /// checked against the other fields.
    pub filtered_through: u64,
    /// FIFO messages held back behind an earlier message of their group, by increasing offset.
    #[serde(default)]
    pub held: Vec<HeldEntry>,
}

impl QueueCheckpoint {
    /// A checkpoint at `offset` with nothing delivered.
    pub fn starting_at(offset: u64) -> Self {
        Self {
            format: CHECKPOINT_FORMAT,
            epoch: 0,
            committed: offset,
            next: offset,
            inflight: Vec::new(),
            acked: Vec::new(),
            filtered_through: offset,
            held: Vec::new(),
        }
    }

    /// Checks that `offsets` increase strictly and lie in `[committed, next)`.
    fn check_offsets(
        &self,
        what: &str,
        offsets: impl Iterator<Item = u64>,
    ) -> std::result::Result<(), String> {
        let mut previous: Option<u64> = None;
        for o in offsets {
            if o < self.committed || o >= self.next {
                return Err(format!(
                    "{what} offset {o} is outside [{}, {})",
                    self.committed, self.next
                ));
            }
            if previous.is_some_and(|p| p >= o) {
                return Err(format!("{what} offsets are not strictly increasing at {o}"));
            }
            previous = Some(o);
        }
        Ok(())
    }
}

impl Versioned for QueueCheckpoint {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.format != CHECKPOINT_FORMAT {
            return Err(format!("unknown checkpoint format {}", self.format));
        }
        if self.committed > self.next {
            return Err(format!(
                "committed offset {} is beyond the next offset {}",
                self.committed, self.next
            ));
        }
        self.check_offsets("in-flight", self.inflight.iter().map(|e| e.offset))?;
        self.check_offsets("held", self.held.iter().map(|e| e.offset))?;
        self.check_offsets("acked", self.acked.iter().copied())?;
        // Each list is sorted: a merge finds an offset listed twice.
        let mut all: Vec<u64> = self.inflight.iter().map(|e| e.offset).collect();
        all.extend(self.held.iter().map(|e| e.offset));
        all.extend(self.acked.iter().copied());
        all.sort_unstable();
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "offset {} is listed twice among in-flight, held and acked",
                w[0]
            ));
        }
        Ok(())
    }

    fn empty() -> Self {
        Self::starting_at(0)
    }
}

/// Which checkpoint: group, topic, queue and, in BROADCASTING mode, consumer id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckpointKey {
    pub group: String,
    pub topic: String,
    pub queue: u32,
    /// `Some(consumer id)` in BROADCASTING mode, `None` in CLUSTERING mode.
    pub consumer: Option<String>,
}

impl CheckpointKey {
    /// The shared progress of a CLUSTERING group.
    pub fn clustering(group: impl Into<String>, topic: impl Into<String>, queue: u32) -> Self {
        Self {
            group: group.into(),
            topic: topic.into(),
            queue,
            consumer: None,
        }
    }

    /// The progress of one consumer of a BROADCASTING group.
    pub fn broadcasting(
        group: impl Into<String>,
        topic: impl Into<String>,
        queue: u32,
        consumer: impl Into<String>,
    ) -> Self {
        Self {
            consumer: Some(consumer.into()),
            ..Self::clustering(group, topic, queue)
        }
    }

    /// How errors and logs name it (`Fenced { queue, .. }` carries this).
    fn name(&self) -> String {
        let Self {
            group,
            topic,
            queue,
            consumer,
        } = self;
        match consumer {
            Some(c) => format!("checkpoint of group {group} consumer {c} on {topic}/{queue}"),
            None => format!("checkpoint of group {group} on {topic}/{queue}"),
        }
    }

    /// Empty names would make paths with empty segments (or the group's whole prefix).
    fn validate(&self) -> Result<()> {
        let empty = self.group.is_empty()
            || self.topic.is_empty()
            || self.consumer.as_ref().is_some_and(String::is_empty);
        if empty {
            return Err(TieringError::Invalid {
                path: self.name(),
                reason: "group, topic and consumer names must not be empty".into(),
            });
        }
        Ok(())
    }
}

/// An owned checkpoint, or `None` before the first acquire / after a fence.
type Slot = Arc<tokio::sync::Mutex<Option<FencedObject<QueueCheckpoint>>>>;

/// The group checkpoints of one node: those it owns, and reads of any.
#[derive(Debug)]
pub struct GroupCheckpoints {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    /// One slot per key ever used (until released, fenced or deleted); the
    /// slot's async lock serialises the saves of one key while different
    /// keys save concurrently.
    owned: Mutex<HashMap<CheckpointKey, Slot>>,
}

impl GroupCheckpoints {
    pub fn new(store: Arc<dyn ObjectStore>, layout: Layout) -> Self {
        Self {
            store,
            layout,
            owned: Mutex::new(HashMap::new()),
        }
    }

    fn dir(&self, key: &CheckpointKey) -> object_store::path::Path {
        self.layout
            .group_checkpoint_dir(&key.group, &key.topic, key.queue, key.consumer.as_deref())
    }

    fn slot(&self, key: &CheckpointKey) -> Slot {
        self.owned.lock().entry(key.clone()).or_default().clone()
    }

    /// Forgets `slot` if it is still the one registered for `key`.
    fn forget(&self, key: &CheckpointKey, slot: &Slot) {
        let mut owned = self.owned.lock();
        if owned.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            owned.remove(key);
        }
    }

    /// The stored checkpoint (`None`: never saved), read without taking
    /// ownership — for `GET offsets` on any node. Always reads the store.
    pub async fn load(&self, key: &CheckpointKey) -> Result<Option<QueueCheckpoint>> {
        key.validate()?;
        Ok(
            read_latest::<QueueCheckpoint>(self.store.as_ref(), &self.dir(key))
                .await?
                .map(|(checkpoint, _)| checkpoint),
        )
    }

    /// Takes ownership of the checkpoint now (raising its epoch) and returns
    /// it; a checkpoint never saved starts as `initial`. When this node owns
    /// it already, returns the value it holds without any I/O (a fence by
    /// another node shows at the next save). A node taking a queue over calls this before delivering:
    /// it fences the previous owner first, so what it reads is final.
    pub async fn acquire(
        &self,
        key: &CheckpointKey,
        initial: QueueCheckpoint,
    ) -> Result<QueueCheckpoint> {
        key.validate()?;
        let slot = self.slot(key);
        let mut owner = slot.lock().await;
        if let Some(owned) = owner.as_ref() {
            return Ok(owned.value().clone());
        }
        let acquired =
            FencedObject::acquire_or(self.store.clone(), self.dir(key), key.name(), initial)
                .await?;
        let value = acquired.value().clone();
        *owner = Some(acquired);
        Ok(value)
    }

    /// Stores `checkpoint` as the key's progress (its `epoch` is ignored).
    /// Takes ownership on the first save; writes nothing when the value is
    /// the one stored. A checkpoint breaking its invariants is refused
    /// (`Invalid`) before anything is written. `Fenced`: another node took
    /// the checkpoint over; this node no longer owns it.
    pub async fn save(&self, key: &CheckpointKey, checkpoint: QueueCheckpoint) -> Result<()> {
        key.validate()?;
        checkpoint.check().map_err(|reason| TieringError::Invalid {
            path: self.dir(key).to_string(),
            reason,
        })?;
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        let owner = match guard.as_mut() {
            Some(owner) => owner,
            None => guard.insert(
                FencedObject::acquire_or(
                    self.store.clone(),
                    self.dir(key),
                    key.name(),
                    checkpoint.clone(),
                )
                .await?,
            ),
        };
        let res = owner
            .update(|current| {
                *current = checkpoint.clone();
                Ok(())
            })
            .await;
        if let Err(TieringError::Fenced { .. }) = &res {
            tracing::warn!(key = %key.name(), "checkpoint fenced by a newer owner; dropping ownership");
            *guard = None;
            drop(guard);
            self.forget(key, &slot);
        }
        res
    }

    /// The epoch under which this node owns the checkpoint, if it does.
    pub async fn owned_epoch(&self, key: &CheckpointKey) -> Option<u64> {
        let slot = self.owned.lock().get(key).cloned()?;
        let owner = slot.lock().await;
        owner.as_ref().map(FencedObject::epoch)
    }

    /// Drops ownership (the queue moved to another node); nothing is written.
    pub fn release(&self, key: &CheckpointKey) {
        self.owned.lock().remove(key);
    }

    /// Deletes every object of `group` (checkpoints of every topic, queue and
    /// consumer, settings included) and drops this node's ownership of its
    /// checkpoints, after the saves in progress here have finished.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        if group.is_empty() {
            return Err(TieringError::Invalid {
                path: self.layout.prefix().to_string(),
                reason: "an empty group name would delete every group".into(),
            });
        }
        let slots: Vec<Slot> = {
            let mut owned = self.owned.lock();
            let keys: Vec<CheckpointKey> =
                owned.keys().filter(|k| k.group == group).cloned().collect();
            keys.iter().filter_map(|k| owned.remove(k)).collect()
        };
        for slot in slots {
            *slot.lock().await = None;
        }
        crate::objects::delete_prefix(self.store.as_ref(), &self.layout.group_dir(group)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Breaker = fn(&mut QueueCheckpoint);

    fn sample() -> QueueCheckpoint {
        QueueCheckpoint {
            format: CHECKPOINT_FORMAT,
            epoch: 3,
            committed: 10,
            next: 20,
            inflight: vec![InflightEntry {
                offset: 10,
                attempt: 2,
                visible_at_ms: 1_700_000_000_000,
                nonce: 7,
                fifo_group: Some(5),
            }],
            acked: vec![11, 12],
            filtered_through: 20,
            held: vec![HeldEntry {
                offset: 15,
                fifo_group: 5,
            }],
        }
    }

    /// The stored bytes are a contract with older and newer nodes: changing
    /// them needs a new format number.
    #[test]
    fn the_stored_format_is_stable() {
        let json = serde_json::to_string(&sample()).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"format":1,"epoch":3,"committed":10,"next":20,"inflight":[{"offset":10,"attempt":2,"visible_at_ms":1700000000000,"nonce":7,"fifo_group":5}],"acked":[11,12],"filtered_through":20,"held":[{"offset":15,"fifo_group":5}]}"#
        );
        let back: Option<QueueCheckpoint> = serde_json::from_str(&json).ok();
        assert_eq!(back, Some(sample()));
    }

    #[test]
    fn optional_fields_default_when_absent() {
        let json = r#"{"format":1,"epoch":1,"committed":0,"next":1,"inflight":[{"offset":0,"attempt":1,"visible_at_ms":0,"nonce":1}],"acked":[],"filtered_through":1}"#;
        let c: Option<QueueCheckpoint> = serde_json::from_str(json).ok();
        let c = c.map(|c| (c.inflight[0].fifo_group, c.held.len(), c.check()));
        assert_eq!(c, Some((None, 0, Ok(()))));
    }

    #[test]
    fn checks_hold_the_invariants() {
        assert_eq!(sample().check(), Ok(()));
        assert_eq!(QueueCheckpoint::starting_at(42).check(), Ok(()));
        let broken: [(&str, Breaker); 8] = [
            ("format", |c| c.format = 2),
            ("committed > next", |c| c.committed = 21),
            ("in flight below committed", |c| c.inflight[0].offset = 9),
            ("held at next", |c| c.held[0].offset = 20),
            ("acked unsorted", |c| c.acked = vec![12, 11]),
            ("acked twice", |c| c.acked = vec![11, 11]),
            ("acked and in flight", |c| c.acked = vec![10, 11]),
            ("held and acked", |c| c.acked = vec![11, 15]),
        ];
        for (what, breaks) in broken {
            let mut c = sample();
            breaks(&mut c);
            assert!(c.check().is_err(), "{what} was accepted");
        }
    }
}
