//! The timer index of one queue: which scheduled messages are pending, in
//! delivery order, and what survives a restart. Pure (no I/O): the journal
//! and the target queue are the caller's; this only decides.
//!
//! A timer is named by its [`Key`] `(deliver_at_ms, seq)`, `seq` being its
//! offset in the queue's timer journal. Fires go in key order, a batch at a
//! time: [`TimerIndex::take_due`] marks a batch in flight, and
//! [`TimerIndex::fired`] (once the batch is durable in the target queue)
//! removes it and raises the fire watermark `fired_through`.
//!
//! Restart rule (see [`TimerIndex::restore`]): from the last [`FireState`]
//! saved, a journal entry is done when it was recalled, or when its key is
//! at most `fired_through`, its seq below `journal_end` and it is not listed
//! `late`; and then the fires found in the target queue after `target_end`
//! (each fired message names its seq) are done too. For that rule to hold,
//! a [`FireState`] is only taken from the index itself ([`TimerIndex::state`]):
//! every entry below `journal_end` has been inserted, and an entry at or below
//! the watermark that is still pending (inserted after the watermark passed its
//! time, or in flight) is listed in `late`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// `(deliver_at_ms, seq)`: delivery order, ties by journal offset.
pub type Key = (i64, u64);

/// What a restart needs besides the journal and the target queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireState {
    /// Every key up to this one was fired or recalled, except `late` ones.
    pub fired_through: Option<Key>,
    /// Every journal offset below this one was in the index when saved.
    pub journal_end: u64,
    /// Seqs of pending timers with keys up to `fired_through`.
    pub late: Vec<u64>,
    /// Fires after this target offset are found by scanning the target queue.
    pub target_end: u64,
}

/// What a recall found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recall {
    /// It was pending; it will never fire.
    Recalled,
    /// It fired, or is firing now.
    Delivered,
    /// It was recalled before.
    Gone,
}

/// Where a timer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerState {
    Pending,
    /// In flight or fired.
    Delivered,
    Recalled,
}

/// Pending timers of one queue.
#[derive(Debug, Default)]
pub struct TimerIndex {
    pending: BTreeSet<Key>,
    in_flight: BTreeSet<Key>,
    recalled: BTreeSet<Key>,
    fired_through: Option<Key>,
    journal_end: u64,
    target_end: u64,
    /// Bumped at every change, so savers know when there is something new.
    version: u64,
}

impl TimerIndex {
    /// Rebuilds the index after a restart from the journal's `entries` and
    /// `recalls` (keys of recalled timers), the last `saved` state and the
    /// keys `fired_after` found in the target queue beyond `saved.target_end`
    /// (whose end is `target_end`). `journal_end` is the journal's end.
    pub fn restore(
        entries: impl IntoIterator<Item = Key>,
        recalls: impl IntoIterator<Item = Key>,
        saved: &FireState,
        fired_after: &[Key],
        journal_end: u64,
        target_end: u64,
    ) -> TimerIndex {
        let late: BTreeSet<u64> = saved.late.iter().copied().collect();
        let recalled: BTreeSet<Key> = recalls.into_iter().collect();
        let fired: BTreeSet<Key> = fired_after.iter().copied().collect();
        let done_before = |k: &Key| {
            saved.fired_through.is_some_and(|w| *k <= w)
                && k.1 < saved.journal_end
                && !late.contains(&k.1)
        };
        let pending = entries
            .into_iter()
            .filter(|k| !recalled.contains(k) && !fired.contains(k) && !done_before(k))
            .collect();
        let fired_through = saved.fired_through.max(fired.iter().next_back().copied());
        TimerIndex {
            pending,
            in_flight: BTreeSet::new(),
            recalled,
            fired_through,
            journal_end,
            target_end: target_end.max(saved.target_end),
            version: 1,
        }
    }

    /// Adds a timer just written to the journal at `key.1`.
    pub fn insert(&mut self, key: Key) {
        self.pending.insert(key);
        self.journal_end = self.journal_end.max(key.1 + 1);
        self.version += 1;
    }

    /// Notes journal offsets that hold no timer (recall records).
    pub fn skip_journal_to(&mut self, end: u64) {
        if end > self.journal_end {
            self.journal_end = end;
            self.version += 1;
        }
    }

    /// Up to `max` pending timers due at `now_ms`, in key order, marked in flight.
    pub fn take_due(&mut self, now_ms: i64, max: usize) -> Vec<Key> {
        let due: Vec<Key> = self
            .pending
            .range(..=(now_ms, u64::MAX))
            .take(max)
            .copied()
            .collect();
        for k in &due {
            self.pending.remove(k);
            self.in_flight.insert(*k);
        }
        if !due.is_empty() {
            self.version += 1;
        }
        due
    }

    /// The batch `keys` is durable in the target queue, which now ends at `target_end`.
    pub fn fired(&mut self, keys: &[Key], target_end: u64) {
        for k in keys {
            self.in_flight.remove(k);
        }
        if let Some(last) = keys.iter().max() {
            self.fired_through = self.fired_through.max(Some(*last));
        }
        self.target_end = self.target_end.max(target_end);
        self.version += 1;
    }

    /// The batch `keys` could not be fired: pending again.
    pub fn not_fired(&mut self, keys: &[Key]) {
        for k in keys {
            if self.in_flight.remove(k) {
                self.pending.insert(*k);
            }
        }
        self.version += 1;
    }

    /// Recalls the timer `key` (its journal entry exists).
    pub fn recall(&mut self, key: Key) -> Recall {
        match self.state_of(key) {
            TimerState::Pending => {
                self.pending.remove(&key);
                self.recalled.insert(key);
                self.version += 1;
                Recall::Recalled
            }
            TimerState::Delivered => Recall::Delivered,
            TimerState::Recalled => Recall::Gone,
        }
    }

    /// Undoes a [`Self::recall`] whose journal record could not be written.
    pub fn unrecall(&mut self, key: Key) {
        if self.recalled.remove(&key) {
            self.pending.insert(key);
            self.version += 1;
        }
    }

    /// Where the timer `key` (whose journal entry exists) stands.
    pub fn state_of(&self, key: Key) -> TimerState {
        if self.pending.contains(&key) {
            TimerState::Pending
        } else if self.recalled.contains(&key) {
            TimerState::Recalled
        } else {
            TimerState::Delivered
        }
    }

    /// The state to save (see the module docs).
    pub fn state(&self) -> FireState {
        let late = match self.fired_through {
            Some(w) => self
                .pending
                .range(..=w)
                .chain(self.in_flight.range(..=w))
                .map(|k| k.1)
                .collect::<BTreeSet<u64>>()
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        FireState {
            fired_through: self.fired_through,
            journal_end: self.journal_end,
            late,
            target_end: self.target_end,
        }
    }

    /// Changes so far (compare to know whether to save again).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Pending timers (in flight ones included).
    pub fn pending_count(&self) -> usize {
        self.pending.len() + self.in_flight.len()
    }

    /// Pending timers due before `until_ms`.
    pub fn due_before(&self, until_ms: i64) -> usize {
        self.pending.range(..(until_ms, 0)).count() + self.in_flight.len()
    }

    /// The earliest delivery time pending (not in flight).
    pub fn next_due(&self) -> Option<i64> {
        self.pending.first().map(|k| k.0)
    }

    /// The lowest journal offset still needed (a pending or in-flight timer);
    /// `None` when nothing is pending.
    pub fn min_pending_seq(&self) -> Option<u64> {
        self.pending
            .iter()
            .chain(&self.in_flight)
            .map(|k| k.1)
            .min()
    }

    /// Pending timers after `after` in key order, at most `max`.
    pub fn page(&self, after: Option<Key>, max: usize) -> Vec<Key> {
        let from = match after {
            Some(k) => std::ops::Bound::Excluded(k),
            None => std::ops::Bound::Unbounded,
        };
        let mut all: Vec<Key> = self
            .pending
            .range((from, std::ops::Bound::Unbounded))
            .take(max)
            .chain(
                self.in_flight
                    .range((from, std::ops::Bound::Unbounded))
                    .take(max),
            )
            .copied()
            .collect();
        all.sort_unstable();
        all.truncate(max);
        all
    }
}
