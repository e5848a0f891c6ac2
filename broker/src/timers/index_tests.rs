//! The timer index against a simple model, with restarts at random points
//! (some right after a batch reached the queue unconfirmed): nothing lost,
//! nothing fired twice, each batch in delivery order and only when due.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::index::{FireState, Key, Recall, TimerIndex, TimerState};

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
    ]
}

/// The journal, the queue and the saved state: what survives a restart.
#[derive(Default)]
struct World {
    timers: Vec<Key>,
    recalls: Vec<Key>,
    journal_len: u64,
    target: Vec<Key>,
    saved: FireState,
    now: i64,
}

impl World {
    fn restart(&self) -> TimerIndex {
        let after = usize::try_from(self.saved.target_end).unwrap();
        TimerIndex::restore(
            self.timers.iter().copied(),
            self.recalls.iter().copied(),
            &self.saved,
            &self.target[after..],
            self.journal_len,
            self.target.len() as u64,
        )
    }

    fn fire(&mut self, index: &mut TimerIndex, max: usize) -> Vec<Key> {
        let keys = index.take_due(self.now, max);
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
                    let got = index.recall(key);
                    prop_assert_eq!(got, expected);
                    if got == Recall::Recalled {
                        recalled.insert(key);
                        w.recalls.push(key);
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
                prop_assert_eq!(index.state_of(*k), want, "timer {:?}", k);
            }
        }
        // Everything due fires exactly once, recalled ones never.
        w.now = i64::MAX / 2;
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
