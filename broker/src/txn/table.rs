//! The transaction table of one queue: every pending transaction (its half
//! messages, producer group, check schedule and count) and the decisions
//! remembered for [`DECISION_RETENTION_MS`]. Pure: it changes only through
//! [`TxnEvent`]s, the same events the journal records carry, so replaying
//! the journal over a snapshot rebuilds exactly the table that was.
//!
//! Invariants:
//! - `checks` holds `(next_check_ms, seq0)` of every pending transaction
//!   and of no other;
//! - a transaction is decided at most once: a second decision event (the
//!   same or the opposite) changes nothing, so a replay cannot flip one;
//! - decided rows leave after [`DECISION_RETENTION_MS`], or sooner when a
//!   queue remembers more than [`MAX_DECIDED`], oldest first.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

pub use shale_tiering::txn_table::{TxnDecision, TxnRow};

/// How long a decision is remembered (a repeated decision within it is
/// answered 200, the opposite one 409; later both are 404).
pub const DECISION_RETENTION_MS: i64 = 15 * 60 * 1000;
/// Most decisions a queue remembers at once.
pub const MAX_DECIDED: usize = 65_536;

/// A change to the table, as a journal record states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnEvent {
    /// The half messages `seq0..seq0+n` of a new transaction were stored.
    Begin {
        seq0: u64,
        n: u32,
        rand: u32,
        producer_group: String,
        born_ms: i64,
        check_after_ms: u32,
    },
    /// Check `checks` was offered; the next is due at `next_check_ms`.
    Checked {
        seq0: u64,
        checks: u32,
        next_check_ms: i64,
    },
    /// The transaction was committed or rolled back at `at_ms`.
    Decided {
        seq0: u64,
        decision: TxnDecision,
        at_ms: i64,
    },
}

/// One transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub n: u32,
    pub rand: u32,
    pub producer_group: Arc<str>,
    pub born_ms: i64,
    pub check_after_ms: u32,
    pub checks: u32,
    pub next_check_ms: i64,
    pub decision: TxnDecision,
    pub decided_ms: i64,
}

/// Pending transactions of one producer group in one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupPending {
    pub pending: u64,
    pub oldest_born_ms: Option<i64>,
}

/// The table (see the module docs).
#[derive(Debug, Default)]
pub struct TxnTable {
    rows: BTreeMap<u64, Txn>,
    checks: BTreeSet<(i64, u64)>,
    /// Decided rows in decision order, for expiry.
    decided: VecDeque<(i64, u64)>,
    groups: HashMap<String, Arc<str>>,
    version: u64,
}

impl TxnTable {
    /// The table a snapshot holds.
    pub fn from_rows(rows: Vec<TxnRow>) -> TxnTable {
        let mut t = TxnTable::default();
        let mut decided = Vec::new();
        for r in rows {
            let group = t.intern(&r.producer_group);
            if r.decision == TxnDecision::Pending {
                t.checks.insert((r.next_check_ms, r.seq0));
            } else {
                decided.push((r.decided_ms, r.seq0));
            }
            t.rows.insert(
                r.seq0,
                Txn {
                    n: r.n,
                    rand: r.rand,
                    producer_group: group,
                    born_ms: r.born_ms,
                    check_after_ms: r.check_after_ms,
                    checks: r.checks,
                    next_check_ms: r.next_check_ms,
                    decision: r.decision,
                    decided_ms: r.decided_ms,
                },
            );
        }
        decided.sort_unstable();
        t.decided = decided.into();
        t
    }

    /// Every row, by `seq0` (for a snapshot).
    pub fn rows(&self) -> Vec<TxnRow> {
        self.rows
            .iter()
            .map(|(&seq0, t)| TxnRow {
                seq0,
                n: t.n,
                rand: t.rand,
                producer_group: t.producer_group.to_string(),
                born_ms: t.born_ms,
                check_after_ms: t.check_after_ms,
                checks: t.checks,
                next_check_ms: t.next_check_ms,
                decision: t.decision,
                decided_ms: t.decided_ms,
            })
            .collect()
    }

    fn intern(&mut self, group: &str) -> Arc<str> {
        if let Some(g) = self.groups.get(group) {
            return g.clone();
        }
        let g: Arc<str> = Arc::from(group);
        self.groups.insert(group.to_string(), g.clone());
        g
    }

    /// Applies one event (idempotent: a replayed event changes nothing more).
    pub fn apply(&mut self, event: TxnEvent) {
        match event {
            TxnEvent::Begin {
                seq0,
                n,
                rand,
                producer_group,
                born_ms,
                check_after_ms,
            } => {
                if self.rows.contains_key(&seq0) {
                    return;
                }
                let group = self.intern(&producer_group);
                let next = born_ms.saturating_add(i64::from(check_after_ms));
                self.rows.insert(
                    seq0,
                    Txn {
                        n,
                        rand,
                        producer_group: group,
                        born_ms,
                        check_after_ms,
                        checks: 0,
                        next_check_ms: next,
                        decision: TxnDecision::Pending,
                        decided_ms: 0,
                    },
                );
                self.checks.insert((next, seq0));
            }
            TxnEvent::Checked {
                seq0,
                checks,
                next_check_ms,
            } => {
                let Some(t) = self.rows.get_mut(&seq0) else {
                    return;
                };
                if t.decision != TxnDecision::Pending || checks <= t.checks {
                    return;
                }
                self.checks.remove(&(t.next_check_ms, seq0));
                t.checks = checks;
                t.next_check_ms = next_check_ms;
                self.checks.insert((next_check_ms, seq0));
            }
            TxnEvent::Decided {
                seq0,
                decision,
                at_ms,
            } => {
                let Some(t) = self.rows.get_mut(&seq0) else {
                    return;
                };
                if t.decision != TxnDecision::Pending || decision == TxnDecision::Pending {
                    return;
                }
                self.checks.remove(&(t.next_check_ms, seq0));
                t.decision = decision;
                t.decided_ms = at_ms;
                self.decided.push_back((at_ms, seq0));
            }
        }
        self.version += 1;
    }

    /// The transaction whose first half message is at `seq0`.
    pub fn get(&self, seq0: u64) -> Option<&Txn> {
        self.rows.get(&seq0)
    }

    /// The transaction holding the half at journal offset `seq`: `(seq0, n)`.
    pub fn containing(&self, seq: u64) -> Option<(u64, u32)> {
        let (&seq0, t) = self.rows.range(..=seq).next_back()?;
        (seq < seq0 + u64::from(t.n)).then_some((seq0, t.n))
    }

    /// Up to `max` pending transactions whose check is due at `now_ms`,
    /// earliest first.
    pub fn due_checks(&self, now_ms: i64, max: usize) -> Vec<u64> {
        self.checks
            .range(..=(now_ms, u64::MAX))
            .take(max)
            .map(|&(_, s)| s)
            .collect()
    }

    /// When the next check is due.
    pub fn next_check(&self) -> Option<i64> {
        self.checks.first().map(|&(at, _)| at)
    }

    /// Forgets decisions older than the retention (or beyond the cap).
    /// Returns how many were forgotten.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let mut gone = 0;
        while let Some(&(at, seq0)) = self.decided.front() {
            if at > now_ms - DECISION_RETENTION_MS && self.decided.len() <= MAX_DECIDED {
                break;
            }
            self.decided.pop_front();
            if self
                .rows
                .get(&seq0)
                .is_some_and(|t| t.decision != TxnDecision::Pending)
            {
                self.rows.remove(&seq0);
                gone += 1;
            }
        }
        if gone > 0 {
            self.version += 1;
        }
        gone
    }

    /// Pending transactions.
    pub fn pending(&self) -> usize {
        self.checks.len()
    }

    /// Pending transactions of `group`, and the oldest one's birth.
    pub fn group_pending(&self, group: &str) -> GroupPending {
        let mut out = GroupPending::default();
        for t in self.rows.values() {
            if t.decision == TxnDecision::Pending && &*t.producer_group == group {
                out.pending += 1;
                out.oldest_born_ms =
                    Some(out.oldest_born_ms.map_or(t.born_ms, |o| o.min(t.born_ms)));
            }
        }
        out
    }

    /// Changes so far (compare to know whether a snapshot is stale).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the table holds nothing (never had a transaction, or all forgotten).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn begin(seq0: u64, born: i64) -> TxnEvent {
        TxnEvent::Begin {
            seq0,
            n: 2,
            rand: 7,
            producer_group: "pg".into(),
            born_ms: born,
            check_after_ms: 1000,
        }
    }

    fn decide(seq0: u64, decision: TxnDecision, at_ms: i64) -> TxnEvent {
        TxnEvent::Decided {
            seq0,
            decision,
            at_ms,
        }
    }

    #[test]
    fn a_transaction_is_checked_until_decided_and_decided_once() {
        let mut t = TxnTable::default();
        t.apply(begin(10, 0));
        assert_eq!(t.due_checks(999, 10), Vec::<u64>::new());
        assert_eq!(t.due_checks(1000, 10), vec![10]);
        t.apply(TxnEvent::Checked {
            seq0: 10,
            checks: 1,
            next_check_ms: 2000,
        });
        assert_eq!(t.due_checks(1500, 10), Vec::<u64>::new());
        t.apply(decide(10, TxnDecision::RolledBack, 1600));
        t.apply(decide(10, TxnDecision::Committed, 1700));
        assert_eq!(t.get(10).unwrap().decision, TxnDecision::RolledBack);
        assert_eq!(t.due_checks(i64::MAX, 10), Vec::<u64>::new());
        assert_eq!(t.pending(), 0);
        assert_eq!(t.expire(1600 + DECISION_RETENTION_MS - 1), 0);
        assert_eq!(t.expire(1600 + DECISION_RETENTION_MS), 1);
        assert!(t.get(10).is_none());
    }

    #[test]
    fn groups_count_their_pending_transactions() {
        let mut t = TxnTable::default();
        t.apply(begin(1, 50));
        t.apply(begin(3, 20));
        t.apply(decide(3, TxnDecision::Committed, 60));
        assert_eq!(
            t.group_pending("pg"),
            GroupPending {
                pending: 1,
                oldest_born_ms: Some(50)
            }
        );
        assert_eq!(t.group_pending("other"), GroupPending::default());
    }

    fn event() -> impl Strategy<Value = TxnEvent> {
        prop_oneof![
            (0u64..8, 0i64..100).prop_map(|(s, b)| begin(s, b)),
            (0u64..8, 1u32..20, 0i64..10_000).prop_map(|(s, c, n)| TxnEvent::Checked {
                seq0: s,
                checks: c,
                next_check_ms: n
            }),
            (0u64..8, any::<bool>(), 0i64..100).prop_map(|(s, c, at)| decide(
                s,
                if c {
                    TxnDecision::Committed
                } else {
                    TxnDecision::RolledBack
                },
                at
            )),
        ]
    }

    proptest! {
        /// Replaying any prefix again, or restarting from a snapshot taken
        /// anywhere, gives the same table; a decision never changes.
        #[test]
        fn snapshots_and_replays_agree(events in proptest::collection::vec(event(), 0..60), cut in any::<prop::sample::Index>()) {
            // A journal states a transaction's checks and decision after its halves.
            let mut begun = std::collections::HashSet::new();
            let events: Vec<TxnEvent> = events
                .into_iter()
                .filter(|e| match e {
                    TxnEvent::Begin { seq0, .. } => {
                        begun.insert(*seq0);
                        true
                    }
                    TxnEvent::Checked { seq0, .. } | TxnEvent::Decided { seq0, .. } => {
                        begun.contains(seq0)
                    }
                })
                .collect();
            let mut whole = TxnTable::default();
            let mut first = HashMap::new();
            for e in &events {
                whole.apply(e.clone());
                for (s, t) in &whole.rows {
                    if t.decision != TxnDecision::Pending {
                        let d = *first.entry(*s).or_insert(t.decision);
                        prop_assert_eq!(d, t.decision);
                    }
                }
            }
            let cut = cut.index(events.len() + 1);
            let mut part = TxnTable::default();
            for e in &events[..cut] {
                part.apply(e.clone());
            }
            let mut restarted = TxnTable::from_rows(part.rows());
            // A restart replays the journal from before the snapshot too.
            for e in &events[cut.saturating_sub(3)..] {
                restarted.apply(e.clone());
            }
            prop_assert_eq!(restarted.rows(), whole.rows());
            prop_assert_eq!(&restarted.checks, &whole.checks);
            let pending = whole.rows.values().filter(|t| t.decision == TxnDecision::Pending).count();
            prop_assert_eq!(whole.pending(), pending);
        }
    }
}
