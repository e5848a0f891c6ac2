//! The timer checkpoint of a queue: which timer runs ([`crate::timer_run`])
//! are live, how far the queue's timer journal has been spilled into them,
//! and the fire state a restart resumes from. It is a [`FencedObject`], so
//! the node owning the queue's timers is its only writer and a node taking
//! them over fences the previous one.
//!
//! Layout (see [`crate::paths`]):
//! `{prefix}/topics/{topic}/timers/{queue}/checkpoint/{seq:020}.json`, one
//! immutable JSON version per save, the few newest kept; the runs it lists
//! are `{prefix}/topics/{topic}/timers/{queue}/runs/{name}`, named
//! `{epoch:020}-{n:020}.run` ([`run_name`]) by the owner of `epoch`, `n`
//! counting up from [`TimerCheckpoint::next_run`]. A run name is therefore
//! never written by two owners, nor twice by one.
//!
//! Invariants (checked before every write and on every read, see
//! [`TimerCheckpoint`]'s `check`): the format is [`TIMER_CHECKPOINT_FORMAT`];
//! `spilled_end <= journal_end`; run names are well-formed and unique, none
//! from a later epoch, and those of the current epoch below `next_run`;
//! every run summary is coherent ([`RunSummary::check`]); `late` is sorted
//! without duplicates.

use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fenced::{FencedObject, Versioned, read_latest};
use crate::timer_run::{RunSummary, TimerKey};

/// Current timer checkpoint format.
pub const TIMER_CHECKPOINT_FORMAT: u32 = 1;

/// One live run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// File name in the runs directory, [`run_name`]`(epoch, n)`.
    pub name: String,
    pub summary: RunSummary,
}

/// A queue's timer state in the object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerCheckpoint {
    pub format: u32,
    /// Owner generation; set by the fencing layer.
    pub epoch: u64,
    /// Node id of the writer.
    pub owner_node: Option<String>,
    /// The live runs.
    pub runs: Vec<RunMeta>,
    /// Sequence for naming the next run of this epoch ([`run_name`]). A new
    /// owner may start again from 0 or keep counting: names differ by epoch.
    pub next_run: u64,
    /// Journal seqs below this are in runs (or were done before being spilled).
    pub spilled_end: u64,
    /// The journal's end when written (a new owner's journal starts here).
    pub journal_end: u64,
    /// Every timer up to this key was fired or recalled, except `late` ones.
    pub fired_through: Option<TimerKey>,
    /// Seqs of pending timers with keys up to `fired_through`, ascending.
    pub late: Vec<u64>,
    /// Fires after this target offset are found by scanning the target queue.
    pub target_end: u64,
    /// The queue's transaction table as of `spilled_end`
    /// ([`crate::txn_table`]), a file name in the `txns` directory; `None`
    /// for a queue that never had a transaction.
    #[serde(default)]
    pub txn_table: Option<String>,
}

/// The file name of run `n` of the owner of `epoch`.
pub fn run_name(epoch: u64, n: u64) -> String {
    format!("{epoch:020}-{n:020}.run")
}

/// The `(epoch, n)` of a run name as [`run_name`] writes it; `None` for any
/// other name.
pub fn parse_run_name(name: &str) -> Option<(u64, u64)> {
    let (epoch, n) = name.strip_suffix(".run")?.split_once('-')?;
    let number = |s: &str| {
        (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((number(epoch)?, number(n)?))
}

impl Versioned for TimerCheckpoint {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.format != TIMER_CHECKPOINT_FORMAT {
            return Err(format!("unknown timer checkpoint format {}", self.format));
        }
        if self.spilled_end > self.journal_end {
            return Err(format!(
                "spilled_end {} is beyond journal_end {}",
                self.spilled_end, self.journal_end
            ));
        }
        let mut names = std::collections::HashSet::with_capacity(self.runs.len());
        for run in &self.runs {
            let Some((epoch, n)) = parse_run_name(&run.name) else {
                return Err(format!("{:?} is not a run name", run.name));
            };
            if !names.insert(run.name.as_str()) {
                return Err(format!("run {} is listed twice", run.name));
            }
            if epoch > self.epoch || (epoch == self.epoch && n >= self.next_run) {
                return Err(format!(
                    "run {} is not below the next run {} of epoch {}",
                    run.name, self.next_run, self.epoch
                ));
            }
            run.summary
                .check()
                .map_err(|e| format!("run {}: {e}", run.name))?;
        }
        if let Some(w) = self.late.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!("late seqs {} and {} out of order", w[0], w[1]));
        }
        if let Some(t) = self
            .txn_table
            .as_deref()
            .filter(|t| !crate::txn_table::is_table_name(t))
        {
            return Err(format!("{t:?} is not a transaction table name"));
        }
        Ok(())
    }

    fn empty() -> Self {
        Self {
            format: TIMER_CHECKPOINT_FORMAT,
            epoch: 0,
            owner_node: None,
            runs: Vec::new(),
            next_run: 0,
            spilled_end: 0,
            journal_end: 0,
            fired_through: None,
            late: Vec::new(),
            target_end: 0,
            txn_table: None,
        }
    }
}

/// Reads the newest timer checkpoint under `dir`
/// ([`crate::paths::Layout::timer_checkpoint_dir`]) with its sequence
/// number, taking no ownership; `None` if there is none.
pub async fn read_timer_checkpoint(
    store: &dyn ObjectStore,
    dir: &Path,
) -> Result<Option<(TimerCheckpoint, u64)>> {
    read_latest(store, dir).await
}

/// A timer checkpoint owned by this writer at a given epoch: `acquire`,
/// `epoch`, `value`, `update` and `refresh` are those of [`FencedObject`].
pub type FencedTimerCheckpoint = FencedObject<TimerCheckpoint>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;
    use crate::error::TieringError;
    use crate::paths::Layout;
    use crate::timer_run::{RunEntry, RunWriter};

    fn summary() -> RunSummary {
        let mut w = RunWriter::new(64);
        w.push(RunEntry::Tombstone { key: (5, 1) }).unwrap();
        w.finish().summary
    }

    fn checkpoint() -> TimerCheckpoint {
        TimerCheckpoint {
            epoch: 3,
            owner_node: Some("node-a".into()),
            runs: vec![
                RunMeta {
                    name: run_name(2, 7),
                    summary: summary(),
                },
                RunMeta {
                    name: run_name(3, 0),
                    summary: summary(),
                },
            ],
            next_run: 1,
            spilled_end: 40,
            journal_end: 42,
            fired_through: Some((5, 2)),
            late: vec![1, 4],
            target_end: 9,
            ..TimerCheckpoint::empty()
        }
    }

    #[test]
    fn run_names_round_trip() {
        let name = run_name(2, 7);
        assert_eq!(name, "00000000000000000002-00000000000000000007.run");
        assert_eq!(parse_run_name(&name), Some((2, 7)));
        for bad in [
            "2-7.run",
            "00000000000000000002-00000000000000000007.json",
            "00000000000000000002_00000000000000000007.run",
            "0000000000000000000+-00000000000000000007.run",
        ] {
            assert_eq!(parse_run_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn check_refuses_each_broken_invariant() {
        assert_eq!(TimerCheckpoint::empty().check(), Ok(()));
        assert_eq!(checkpoint().check(), Ok(()));
        type Breaks = fn(&mut TimerCheckpoint);
        let broken: [(&str, Breaks); 10] = [
            ("format", |c| c.format = 2),
            ("spilled beyond the journal", |c| c.spilled_end = 43),
            ("a duplicate run", |c| c.runs.push(c.runs[0].clone())),
            ("a bad name", |c| c.runs[0].name = "x.run".into()),
            ("a run of a later epoch", |c| {
                c.runs[0].name = run_name(4, 0)
            }),
            ("a run not below next_run", |c| c.next_run = 0),
            ("min above max", |c| {
                c.runs[0].summary.min_key = Some((6, 0));
            }),
            ("keys without entries", |c| c.runs[0].summary.tombstones = 0),
            ("late out of order", |c| c.late = vec![4, 1]),
            ("late twice", |c| c.late = vec![1, 1]),
        ];
        for (what, breaks) in broken {
            let mut c = checkpoint();
            breaks(&mut c);
            assert!(c.check().is_err(), "{what} went unnoticed");
        }
    }

    #[tokio::test]
    async fn a_fenced_checkpoint_round_trips_and_fences_its_old_owner() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let dir = Layout::new(Path::from("p")).timer_checkpoint_dir("orders", 3);
        let mut first = FencedTimerCheckpoint::acquire(store.clone(), dir.clone(), "orders/3")
            .await
            .unwrap();
        assert_eq!(first.epoch(), 1);
        let epoch = first.epoch();
        let added = RunMeta {
            name: run_name(epoch, 0),
            summary: summary(),
        };
        first
            .update(|c| {
                if !c.runs.contains(&added) {
                    c.runs.push(added.clone());
                    c.next_run = 1;
                }
                c.owner_node = Some("node-a".into());
                c.spilled_end = 10;
                c.journal_end = 12;
                Ok(())
            })
            .await
            .unwrap();
        let (read, _) = read_timer_checkpoint(store.as_ref(), &dir)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&read, first.value());
        assert_eq!(read.runs, vec![added]);

        // An update that breaks an invariant writes nothing.
        let err = first.update(|c| {
            c.spilled_end = 13;
            Ok(())
        });
        assert!(matches!(err.await, Err(TieringError::Invalid { .. })));

        let second = FencedTimerCheckpoint::acquire(store.clone(), dir.clone(), "orders/3")
            .await
            .unwrap();
        assert_eq!(second.epoch(), 2);
        assert_eq!(second.value().runs, read.runs);
        let err = first
            .update(|c| {
                c.target_end = 1;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(err.is_fenced(), "{err:?}");
    }
}
