//! Pure rules over run entries, shared by loads, merges and lookups: a
//! timer and its tombstone cancel each other (they carry the same key, so
//! they are always read together), and what a merge keeps. No I/O.

use std::collections::BTreeMap;

use bytes::Bytes;
use shale_tiering::timer_run::RunEntry;

use super::index::Key;
use crate::error::{BrokerError, BrokerResult};

/// A record loaded from a run (hot-encoded).
pub(crate) fn decode_loaded(bytes: &[u8]) -> BrokerResult<shale_hot::Record> {
    shale_hot::decode(bytes)
        .map_err(|e| BrokerError::internal("reading a timer from a run", e.to_string()))
}

/// Timers of `entries` (in key order) not cancelled by a tombstone, and
/// timers minus tombstones read.
pub(crate) fn cancel_tombstones(entries: Vec<RunEntry>) -> (Vec<(Key, Bytes)>, i64) {
    let mut net = 0i64;
    let mut timers: BTreeMap<Key, Bytes> = BTreeMap::new();
    let mut tombstones = Vec::new();
    for e in entries {
        match e {
            RunEntry::Timer { key, record } => {
                net += 1;
                timers.insert(key, record);
            }
            RunEntry::Tombstone { key } => {
                net -= 1;
                tombstones.push(key);
            }
        }
    }
    for k in tombstones {
        timers.remove(&k);
    }
    (timers.into_iter().collect(), net)
}

/// The entries of merged runs to keep, in key order: a timer and its
/// tombstone cancel, `keep_timer` decides the others, a tombstone at or
/// below `fired_through` is dropped (its timer counts as fired after a
/// restart, and is dropped too).
pub(crate) fn merge_entries(
    mut entries: Vec<RunEntry>,
    keep_timer: impl Fn(Key) -> bool,
    fired_through: Option<Key>,
) -> Vec<RunEntry> {
    entries.sort_by_key(|e| (e.key(), matches!(e, RunEntry::Timer { .. })));
    let mut out: Vec<RunEntry> = Vec::with_capacity(entries.len());
    let mut it = entries.into_iter().peekable();
    while let Some(e) = it.next() {
        if let RunEntry::Tombstone { key } = &e
            && it
                .peek()
                .is_some_and(|n| n.key() == *key && matches!(n, RunEntry::Timer { .. }))
        {
            it.next();
            continue;
        }
        let keep = match &e {
            RunEntry::Timer { key, .. } => keep_timer(*key),
            RunEntry::Tombstone { key } => fired_through.is_none_or(|f| *key > f),
        };
        if keep && out.last().is_none_or(|l| l.key() != e.key()) {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(at: i64, seq: u64) -> RunEntry {
        RunEntry::Timer {
            key: (at, seq),
            record: Bytes::from_static(b"r"),
        }
    }

    #[test]
    fn a_timer_and_its_tombstone_cancel_and_fired_ones_go() {
        let entries = vec![
            timer(10, 1),
            RunEntry::Tombstone { key: (10, 1) },
            timer(5, 2),
            RunEntry::Tombstone { key: (3, 9) },
            RunEntry::Tombstone { key: (50, 7) },
            timer(40, 3),
        ];
        let kept = merge_entries(entries, |k| k != (5, 2), Some((4, 0)));
        let keys: Vec<Key> = kept.iter().map(|e| e.key()).collect();
        assert_eq!(keys, vec![(40, 3), (50, 7)]);
        assert!(matches!(kept[1], RunEntry::Tombstone { .. }));
    }

    #[test]
    fn loading_cancels_tombstones_and_counts_what_it_read() {
        let (timers, net) = cancel_tombstones(vec![
            timer(1, 1),
            RunEntry::Tombstone { key: (1, 1) },
            timer(2, 2),
            RunEntry::Tombstone { key: (3, 3) },
        ]);
        assert_eq!(timers.iter().map(|t| t.0).collect::<Vec<_>>(), vec![(2, 2)]);
        assert_eq!(net, 0);
    }
}
