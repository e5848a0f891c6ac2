//! The timer index of one queue: which scheduled messages are pending, in
//! delivery order, and what survives a restart. Pure (no I/O): the journal,
//! the runs in the object store and the target queue are the caller's; this
//! only decides.
//!
//! A timer is named by its [`Key`] `(deliver_at_ms, seq)`, `seq` being its
//! offset in the queue's timer journal. Fires go in key order, a batch at a
//! time: [`TimerIndex::take_due`] marks a batch in flight, and
//! [`TimerIndex::fired`] (once the batch is durable in the target queue)
//! removes it and raises the fire watermark `fired_through`.
//!
//! Two places hold pending timers (see [`super::store`]):
//! - memory: every timer of the journal not yet *spilled* (seq at or above
//!   `spilled_end`), and every timer of the runs up to `loaded_until`;
//! - the runs in the object store: every spilled timer. Those with a key
//!   beyond `loaded_until` are *only* there (a spill evicts them), and are
//!   counted in `far` (timers minus tombstones beyond `loaded_until`).
//!
//! So: every pending timer is in memory, or in a run beyond `loaded_until`.
//! While runs may hold keys beyond `loaded_until`, fires stop there, so
//! delivery order holds across both places.
//!
//! Restart rule (see [`TimerIndex::restore`] and [`TimerIndex::is_done`]):
//! from the last [`FireState`] saved, a timer is done when it was recalled,
//! or when its key is at most `fired_through`, its seq below `journal_end`
//! and it is not listed `late`; and then the fires found in the target queue
//! after `target_end` (each fired message names its seq) are done too. For
//! that rule to hold, a [`FireState`] is only taken from the index itself
//! ([`TimerIndex::state`]): every entry below `journal_end` has been
//! inserted, and an entry at or below the watermark that is still pending
//! (inserted after the watermark passed its time, or in flight) is listed in
//! `late`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// `(deliver_at_ms, seq)`: delivery order, ties by journal offset.
pub type Key = (i64, u64);

/// What a restart needs besides the journal, the runs and the target queue.
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

/// Where a pending timer's record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// In the local journal, at the key's seq.
    Journal,
    /// Loaded from a run: the hot-encoded journal record.
    Loaded(Bytes),
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

/// Where a timer stands, as far as memory knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerState {
    Pending,
    /// In flight or fired.
    Delivered,
    Recalled,
    /// Beyond `loaded_until` and spilled: only the runs know.
    InRuns,
}

/// Pending timers of one queue.
#[derive(Debug, Default)]
pub struct TimerIndex {
    pending: BTreeMap<Key, Source>,
    in_flight: BTreeMap<Key, Source>,
    /// Recalled timers this index still has to know of, with the journal
    /// offset of their recall record (forgotten once a spill covers it: a
    /// recall of a spilled timer is then a tombstone in a run).
    recalled: BTreeMap<Key, u64>,
    fired_through: Option<Key>,
    journal_end: u64,
    target_end: u64,
    /// Journal offsets below this one are in runs.
    spilled_end: u64,
    /// Run entries up to this key are in memory.
    loaded_until: Option<Key>,
    /// Timers minus tombstones in runs beyond `loaded_until`.
    far: i64,
    /// Whether runs may hold keys beyond `loaded_until` (fires stop there).
    runs_ahead: bool,
    /// The restart rule, until the loads have passed every key it decides.
    restore: Option<Restore>,
    /// Bumped at every change, so savers know when there is something new.
    version: u64,
}

impl TimerIndex {
    /// Rebuilds the index after a restart from the journal's `entries` and
    /// `recalls` (key, recall record offset) beyond `spilled_end`, the last
    /// `saved` state and the keys `fired_after` found in the target queue
    /// beyond `saved.target_end` (whose end is `target_end`). `journal_end`
    /// is the journal's end; `far` the runs' timers minus tombstones (none
    /// loaded yet: load them with [`Self::loaded`]).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        entries: impl IntoIterator<Item = Key>,
        recalls: impl IntoIterator<Item = (Key, u64)>,
        saved: &FireState,
        fired_after: &[Key],
        spilled_end: u64,
        journal_end: u64,
        target_end: u64,
        far: i64,
    ) -> TimerIndex {
        let recalled: BTreeMap<Key, u64> = recalls.into_iter().collect();
        let mut index = TimerIndex {
            pending: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            recalled,
            fired_through: saved.fired_through,
            journal_end: journal_end.max(spilled_end),
            target_end: target_end.max(saved.target_end),
            spilled_end,
            loaded_until: None,
            far,
            runs_ahead: far != 0,
            restore: None,
            version: 1,
        };
        let restore = Restore::new(saved, fired_after);
        for k in entries {
            if k.1 >= spilled_end && !index.recalled.contains_key(&k) && !restore.done(k) {
                index.pending.insert(k, Source::Journal);
            }
        }
        // Committed half messages (parked keys) were appended out of key
        // order: they are done, but the watermark never passes them.
        index.fired_through = index.fired_through.max(
            restore
                .fired
                .iter()
                .rev()
                .find(|k| k.0 < crate::txn::records::PARKED_AT)
                .copied(),
        );
        index.restore = Some(restore);
        index
    }

    /// Adds a timer just written to the journal at `key.1`.
    pub fn insert(&mut self, key: Key) {
        self.pending.insert(key, Source::Journal);
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

    /// Up to `max` pending timers due at `now_ms`, in key order, marked in
    /// flight (with their sources). Never beyond `loaded_until` while runs
    /// may hold keys beyond it.
    pub fn take_due(&mut self, now_ms: i64, max: usize) -> Vec<(Key, Source)> {
        let mut limit = (now_ms, u64::MAX);
        if self.runs_ahead {
            match self.loaded_until {
                Some(l) => limit = limit.min(l),
                None => return Vec::new(),
            }
        }
        let due: Vec<Key> = self
            .pending
            .range(..=limit)
            .take(max)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for k in due {
            let source = self.pending.remove(&k).expect("listed just now");
            self.in_flight.insert(k, source.clone());
            out.push((k, source));
        }
        if !out.is_empty() {
            self.version += 1;
        }
        out
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

    /// Messages were appended to the target queue outside a fire (a
    /// commit), which now ends at `target_end`: restart scans start there.
    pub fn target_advanced(&mut self, target_end: u64) {
        if target_end > self.target_end {
            self.target_end = target_end;
            self.version += 1;
        }
    }

    /// The batch `keys` could not be fired: pending again.
    pub fn not_fired(&mut self, keys: &[Key]) {
        for k in keys {
            if let Some(source) = self.in_flight.remove(k) {
                self.pending.insert(*k, source);
            }
        }
        self.version += 1;
    }

    /// Recalls the timer `key` whose recall record goes to journal offset
    /// `record_seq`. A key in [`TimerState::InRuns`] must have been checked
    /// in the runs first (pending there): it is then recalled here.
    pub fn recall(&mut self, key: Key, record_seq: u64) -> Recall {
        match self.state_of(key) {
            TimerState::Pending => {
                self.pending.remove(&key);
                self.recalled.insert(key, record_seq);
                self.version += 1;
                Recall::Recalled
            }
            TimerState::InRuns => {
                self.recalled.insert(key, record_seq);
                self.version += 1;
                Recall::Recalled
            }
            TimerState::Delivered => Recall::Delivered,
            TimerState::Recalled => Recall::Gone,
        }
    }

    /// Undoes a [`Self::recall`] whose journal record could not be written.
    pub fn unrecall(&mut self, key: Key, source: Option<Source>) {
        if self.recalled.remove(&key).is_some() {
            if let Some(s) = source {
                self.pending.insert(key, s);
            }
            self.version += 1;
        }
    }

    /// The source of a pending timer (before recalling it).
    pub fn source_of(&self, key: Key) -> Option<Source> {
        self.pending.get(&key).cloned()
    }

    /// Where the timer `key` (whose journal entry exists) stands.
    pub fn state_of(&self, key: Key) -> TimerState {
        if self.pending.contains_key(&key) {
            TimerState::Pending
        } else if self.recalled.contains_key(&key) {
            TimerState::Recalled
        } else if self.in_flight.contains_key(&key) {
            TimerState::Delivered
        } else if key.1 < self.spilled_end && self.loaded_until.is_none_or(|l| key > l) {
            TimerState::InRuns
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
                .map(|(k, _)| k.1)
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

    /// Pending timers (in flight ones and those only in runs included).
    pub fn pending_count(&self) -> usize {
        let recalled_in_runs = self
            .recalled
            .keys()
            .filter(|k| k.1 < self.spilled_end && self.loaded_until.is_none_or(|l| **k > l))
            .count() as i64;
        let far = (self.far - recalled_in_runs).max(0) as usize;
        self.pending.len() + self.in_flight.len() + far
    }

    /// Pending timers in memory due before `until_ms` (those only in runs
    /// are loaded well before they are due).
    pub fn due_before(&self, until_ms: i64) -> usize {
        self.pending.range(..(until_ms, 0)).count() + self.in_flight.len()
    }

    /// The earliest delivery time that may fire (not in flight).
    pub fn next_due(&self) -> Option<i64> {
        let (k, _) = self.pending.first_key_value()?;
        if self.runs_ahead && self.loaded_until.is_none_or(|l| *k > l) {
            return None;
        }
        Some(k.0)
    }

    /// The lowest journal offset memory still reads records from (a pending
    /// or in-flight timer of the journal); `None` when there is none.
    pub fn min_journal_seq(&self) -> Option<u64> {
        self.pending
            .iter()
            .chain(&self.in_flight)
            .filter(|(_, s)| **s == Source::Journal)
            .map(|(k, _)| k.1)
            .min()
    }

    /// Pending timers in memory after `after` in key order, at most `max`.
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
            .map(|(k, _)| *k)
            .collect();
        all.sort_unstable();
        all.truncate(max);
        all
    }

    /// Pending timers loaded from runs after `after`, with their records.
    pub fn loaded_records(&self, after: Option<Key>) -> Vec<(Key, Bytes)> {
        let from = match after {
            Some(k) => std::ops::Bound::Excluded(k),
            None => std::ops::Bound::Unbounded,
        };
        self.pending
            .range((from, std::ops::Bound::Unbounded))
            .filter_map(|(k, s)| match s {
                Source::Loaded(b) => Some((*k, b.clone())),
                Source::Journal => None,
            })
            .collect()
    }

    /// Whether run entries due before `until_ms` may not be loaded yet.
    pub fn wants_load(&self, until_ms: i64) -> bool {
        self.runs_ahead && self.loaded_until.is_none_or(|l| l.0 < until_ms)
    }

    /// Timers held in memory (pending and in flight), records or not.
    pub fn in_memory(&self) -> usize {
        self.pending.len() + self.in_flight.len()
    }

    /// Whether a recalled key is known here.
    pub fn is_recalled(&self, key: Key) -> bool {
        self.recalled.contains_key(&key)
    }

    // --- the object-store side (see `super::store`) ------------------------

    /// Journal offsets below this one are in runs.
    pub fn spilled_end(&self) -> u64 {
        self.spilled_end
    }

    /// Run entries up to this key are in memory.
    pub fn loaded_until(&self) -> Option<Key> {
        self.loaded_until
    }

    /// The fire watermark.
    pub fn fired_through(&self) -> Option<Key> {
        self.fired_through
    }

    /// The journal's end as the index knows it.
    pub fn journal_end(&self) -> u64 {
        self.journal_end
    }

    /// Whether the timer `key`, pending in memory or in flight, is still to fire.
    pub fn is_live(&self, key: Key) -> bool {
        self.pending.contains_key(&key) || self.in_flight.contains_key(&key)
    }

    /// Run entries from beyond `loaded_until` through `through` were read:
    /// `timers` (pending ones, not recalled or done) go to memory, and `net`
    /// (timers minus tombstones read, whatever became of them) leaves `far`.
    /// `runs_ahead`: whether runs may still hold keys beyond `through`.
    pub fn loaded(&mut self, through: Key, timers: Vec<(Key, Bytes)>, net: i64, runs_ahead: bool) {
        for (k, record) in timers {
            let done = self.restore.as_ref().is_some_and(|r| r.done(k));
            if !done && !self.recalled.contains_key(&k) && !self.in_flight.contains_key(&k) {
                self.pending.insert(k, Source::Loaded(record));
            }
        }
        self.far -= net;
        self.loaded_until = self.loaded_until.max(Some(through));
        if self
            .restore
            .as_ref()
            .is_some_and(|r| r.last_decided() <= self.loaded_until)
        {
            self.restore = None;
        }
        self.runs_ahead = runs_ahead;
        self.version += 1;
    }

    /// A spill wrote the journal up to `end` into a run holding `net_beyond`
    /// timers minus tombstones beyond `loaded_until`: pending timers of that
    /// range beyond `loaded_until` leave memory, recalls it covered are
    /// forgotten. Returns how many timers left memory.
    pub fn spilled(&mut self, end: u64, net_beyond: i64) -> usize {
        let beyond = |k: &Key| self.loaded_until.is_none_or(|l| *k > l);
        let evict: Vec<Key> = self
            .pending
            .keys()
            .filter(|k| k.1 >= self.spilled_end && k.1 < end && beyond(k))
            .copied()
            .collect();
        for k in &evict {
            self.pending.remove(k);
        }
        self.recalled.retain(|_, record| *record >= end);
        self.spilled_end = self.spilled_end.max(end);
        self.far += net_beyond;
        if net_beyond != 0 || !evict.is_empty() {
            self.runs_ahead = true;
        }
        self.version += 1;
        evict.len()
    }

    /// Runs may no longer hold anything beyond `loaded_until` (the last run
    /// was collected, or none was ever written).
    pub fn set_runs_ahead(&mut self, ahead: bool) {
        self.runs_ahead = ahead;
    }
}

/// The restart rule (module docs) for one saved state.
#[derive(Debug)]
pub struct Restore {
    fired_through: Option<Key>,
    journal_end: u64,
    late: BTreeSet<u64>,
    fired: BTreeSet<Key>,
}

impl Restore {
    pub fn new(saved: &FireState, fired_after: &[Key]) -> Restore {
        Restore {
            fired_through: saved.fired_through,
            journal_end: saved.journal_end,
            late: saved.late.iter().copied().collect(),
            fired: fired_after.iter().copied().collect(),
        }
    }

    /// The last key this rule may call done.
    fn last_decided(&self) -> Option<Key> {
        self.fired_through
            .max(self.fired.iter().next_back().copied())
    }

    /// Whether the timer `k` fired before the restart.
    pub fn done(&self, k: Key) -> bool {
        self.fired.contains(&k)
            || (self.fired_through.is_some_and(|w| k <= w)
                && k.1 < self.journal_end
                && !self.late.contains(&k.1))
    }
}
