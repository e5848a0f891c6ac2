//! The node's cursors: a map from [`CursorKey`] to one lock per cursor.
//!
//! Two kinds of lock, never nested and never held across I/O or an `.await`
//! (both are `parking_lot` locks, whose guards cannot cross an `.await` in a
//! `Send` future):
//! - the map lock protects only membership (which cursors this node holds);
//!   it is held to look up, insert or remove an entry, never while a cursor
//!   is locked;
//! - each cursor's own mutex protects that cursor's state machine
//!   ([`Cursor`]) and is held only for one pure transition (decide, offer,
//!   ack, …). Reads of records and dead-letter appends happen between two
//!   such transitions, and the second one re-checks what the first decided
//!   (claims and nonces in [`Cursor`]), so a slow object store stalls only
//!   the receive that waits on it, not the other groups of the node.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::CursorKey;
use super::cursor::Cursor;

/// One cursor, shared by the receives, acks and checkpoints that touch it.
pub type CursorSlot = Arc<Mutex<Cursor>>;

/// Every cursor this node holds.
#[derive(Debug, Default)]
pub struct CursorMap {
    map: RwLock<HashMap<CursorKey, CursorSlot>>,
}

impl CursorMap {
    /// The cursor of `key`, if this node holds it.
    pub fn get(&self, key: &CursorKey) -> Option<CursorSlot> {
        self.map.read().get(key).cloned()
    }

    pub fn contains(&self, key: &CursorKey) -> bool {
        self.map.read().contains_key(key)
    }

    /// The cursor of `key`, made by `make` when the node does not hold it yet
    /// (an existing one wins: it may already have moved).
    pub fn get_or_insert(&self, key: &CursorKey, make: impl FnOnce() -> Cursor) -> CursorSlot {
        self.map
            .write()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Mutex::new(make())))
            .clone()
    }

    /// Drops the cursor from memory (another node owns it now).
    pub fn remove(&self, key: &CursorKey) {
        self.map.write().remove(key);
    }

    /// Drops every cursor of one queue (its ownership moved).
    pub fn remove_queue(&self, topic: &str, queue: u32) {
        self.map
            .write()
            .retain(|k, _| !(k.topic == topic && k.queue == queue));
    }

    /// `f` of every cursor for which `keep` holds, each cursor locked in turn
    /// (the map lock is let go first: the locks never nest).
    pub fn collect<T>(
        &self,
        keep: impl Fn(&CursorKey) -> bool,
        f: impl Fn(&CursorKey, &Cursor) -> T,
    ) -> Vec<T> {
        let slots: Vec<(CursorKey, CursorSlot)> = self
            .map
            .read()
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        slots.iter().map(|(k, c)| f(k, &c.lock())).collect()
    }
}
