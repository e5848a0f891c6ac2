//! The timer index against a simple model, with restarts at random points
//! (some right after a batch reached the queue unconfirmed), spills to runs
//! and loads from them as `super::store` does them: nothing lost, nothing
//! fired twice, each batch in delivery order and only when due.

use std::collections::BTreeSet;

use proptest::prelude::*;

use bytes::Bytes;

use super::index::{FireState, Key, Recall, Source, TimerIndex, TimerState};

#[derive(Debug, Clone)]
enum Op {
    /// Schedules a timer `delay` ms from now (negative: inserted after the
    /// watermark passed its time, as a slow produce can).
    Insert(i64),
    Recall(usize),
    Advance(i64),
    Fire(usize),
    /// A fire whose append fails: the batch is pending again.
    FireFails(usize),
    /// A batch reaches the queue, then the node dies before confirming it.
    FireThenCrash(usize),
    Save,
    Restart,
    /// The unspilled journal goes up as a run (after a load, as the store does).
    Spill,
    /// Loads run entries up to `now + ms`.
    Load(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (-50i64..500).prop_map(Op::Insert),
        1 => any::<usize>().prop_map(Op::Recall),
        2 => (0i64..200).prop_map(Op::Advance),
        2 => (1usize..6).prop_map(Op::Fire),
        1 => (1usize..6).prop_map(Op::FireFails),
        1 => (1usize..6).prop_map(Op::FireThenCrash),
        1 => Just(Op::Save),
        1 => Just(Op::Restart),
        1 => Just(Op::Spill),
        2 => (0i64..300).prop_map(Op::Load),
    ]
}

/// The journal, the queue and the saved state: what survives a restart.
#[derive(Default)]
struct World {
    timers: Vec<Key>,
    /// Recalled keys and the offsets of their recall records.
    recalls: Vec<(Key, u64)>,
    journal_len: u64,
    target: Vec<Key>,
    saved: FireState,
    now: i64,
    /// Runs in the object store: (key, tombstone).
    runs: Vec<Vec<(Key, bool)>>,
    spilled_end: u64,
}

const HORIZON: i64 = 100;

impl World {
    fn restart(&self) -> TimerIndex {
        let after = usize::try_from(self.saved.target_end).unwrap();
        let far = self
            .runs
            .iter()
            .flatten()
            .map(|(_, t)| if *t { -1 } else { 1 })
            .sum();
        let mut index = TimerIndex::restore(
            self.timers.iter().copied(),
            self.recalls
                .iter()
                .copied()
                .filter(|(_, s)| *s >= self.spilled_end),
            &self.saved,
            &self.target[after..],
            self.spilled_end,
            self.journal_len,
            self.target.len() as u64,
            far,
        );
        self.load(&mut index, self.now + HORIZON);
        index
    }

    /// What `TimerQueue::load_ahead` does, through `(until, MAX)`.
    fn load(&self, index: &mut TimerIndex, until: i64) {
        let through = (until, u64::MAX);
        let after = index.loaded_until();
        let entries: Vec<(Key, bool)> = self
            .runs
            .iter()
            .flatten()
            .filter(|(k, _)| after.is_none_or(|a| *k > a) && *k <= through)
            .copied()
            .collect();
        let net = entries.iter().map(|(_, t)| if *t { -1 } else { 1 }).sum();
        let gone: BTreeSet<Key> = entries.iter().filter(|e| e.1).map(|e| e.0).collect();
        let timers = entries
            .iter()
            .filter(|(k, t)| !*t && !gone.contains(k))
            .map(|(k, _)| (*k, Bytes::new()))
            .collect();
        let ahead = self.runs.iter().flatten().any(|(k, _)| *k > through);
        index.loaded(through, timers, net, ahead);
    }

    /// What `TimerQueue::spill` does.
    fn spill(&mut self, index: &mut TimerIndex) {
        self.load(index, self.now + HORIZON);
        let (from, end, loaded) = (
            index.spilled_end(),
            index.journal_end(),
            index.loaded_until(),
        );
        let mut run: Vec<(Key, bool)> = self
            .timers
            .iter()
            .filter(|k| k.1 >= from && k.1 < end && index.is_live(**k))
            .map(|k| (*k, false))
            .collect();
        run.extend(
            self.recalls
                .iter()
                .filter(|(k, s)| *s >= from && *s < end && k.1 < from)
                .map(|(k, _)| (*k, true)),
        );
        run.sort();
        let net_beyond = run
            .iter()
            .filter(|(k, _)| loaded.is_none_or(|l| *k > l))
            .map(|(_, t)| if *t { -1 } else { 1 })
            .sum();
        if !run.is_empty() {
            self.runs.push(run);
        }
        self.spilled_end = end;
        index.spilled(end, net_beyond);
    }

    fn fire(&mut self, index: &mut TimerIndex, max: usize) -> Vec<Key> {
        let keys: Vec<Key> = index
            .take_due(self.now, max)
            .into_iter()
            .map(|(k, source)| {
                assert!(
                    source == Source::Journal || k.1 < self.spilled_end,
                    "only spilled timers come from runs"
                );
                k
            })
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "a batch goes in delivery order"
        );
        assert!(keys.iter().all(|k| k.0 <= self.now), "only due timers fire");
        keys
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn nothing_lost_nothing_twice_in_delivery_order(ops in proptest::collection::vec(op(), 1..120)) {
        let mut w = World { now: 1_000, ..Default::default() };
        let mut index = TimerIndex::default();
        let mut recalled: BTreeSet<Key> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Insert(delay) => {
                    let key = (w.now + delay, w.journal_len);
                    w.journal_len += 1;
                    w.timers.push(key);
                    index.insert(key);
                }
                Op::Recall(i) => {
                    if w.timers.is_empty() {
                        continue;
                    }
                    let key = w.timers[i % w.timers.len()];
                    let expected = if recalled.contains(&key) {
                        Recall::Gone
                    } else if w.target.contains(&key) {
                        Recall::Delivered
                    } else {
                        Recall::Recalled
                    };
                    // The broker looks in the runs first for a key only they hold.
                    let tombstoned = w.runs.iter().flatten().any(|e| *e == (key, true))
                        || !w.runs.iter().flatten().any(|e| *e == (key, false));
                    // And a "delivered" one it cannot find in the queue is unknown (404).
                    let state = index.state_of(key);
                    let got = if (state == TimerState::InRuns && tombstoned)
                        || (state == TimerState::Delivered && !w.target.contains(&key))
                    {
                        Recall::Gone
                    } else {
                        index.recall(key, w.journal_len)
                    };
                    prop_assert_eq!(got, expected);
                    if got == Recall::Recalled {
                        recalled.insert(key);
                        w.recalls.push((key, w.journal_len));
                        w.journal_len += 1;
                        index.skip_journal_to(w.journal_len);
                    }
                }
                Op::Advance(ms) => w.now += ms,
                Op::Fire(max) => {
                    let keys = w.fire(&mut index, max);
                    w.target.extend(&keys);
                    index.fired(&keys, w.target.len() as u64);
                }
                Op::FireFails(max) => {
                    let keys = w.fire(&mut index, max);
                    index.not_fired(&keys);
                }
                Op::FireThenCrash(max) => {
                    let keys = w.fire(&mut index, max);
                    w.target.extend(&keys);
                    index = w.restart();
                }
                Op::Save => w.saved = index.state(),
                Op::Restart => index = w.restart(),
                Op::Spill => w.spill(&mut index),
                Op::Load(ms) => w.load(&mut index, w.now + ms),
            }
            let fired: BTreeSet<Key> = w.target.iter().copied().collect();
            prop_assert_eq!(fired.len(), w.target.len(), "a timer fired twice");
            for k in &w.timers {
                let want = if recalled.contains(k) {
                    TimerState::Recalled
                } else if fired.contains(k) {
                    TimerState::Delivered
                } else {
                    TimerState::Pending
                };
                let got = index.state_of(*k);
                // Only the runs know a timer beyond what is loaded.
                let in_runs = got == TimerState::InRuns && want != TimerState::Delivered;
                // A recall a spill covered is forgotten: "delivered" but not in the queue is 404 too.
                let forgotten = want == TimerState::Recalled && got == TimerState::Delivered;
                prop_assert!(got == want || in_runs || forgotten, "timer {:?}: {:?}, expected {:?}", k, got, want);
            }
            let pending = w.timers.iter().filter(|k| !recalled.contains(k) && !fired.contains(k)).count();
            prop_assert_eq!(index.pending_count(), pending, "pending count");
        }
        // Everything due fires exactly once, recalled ones never.
        w.now = i64::MAX / 2;
        w.load(&mut index, w.now);
        loop {
            let keys = w.fire(&mut index, 64);
            if keys.is_empty() {
                break;
            }
            w.target.extend(&keys);
            index.fired(&keys, w.target.len() as u64);
        }
        let fired: BTreeSet<Key> = w.target.iter().copied().collect();
        prop_assert_eq!(fired.len(), w.target.len());
        let expected: BTreeSet<Key> = w.timers.iter().copied().filter(|k| !recalled.contains(k)).collect();
        prop_assert_eq!(fired, expected);
        prop_assert_eq!(index.pending_count(), 0);
    }
}
