//! The object-store side of a queue's timers: runs, loading ahead, spills,
//! merges, collection and the fenced checkpoint.
//!
//! Layout (tiering `paths`): `topics/{t}/timers/{q}/checkpoint/…` (a
//! [`FencedObject`] of [`TimerCheckpoint`]) and `topics/{t}/timers/{q}/runs/…`
//! (immutable sorted runs, [`shale_tiering::timer_run`]).
//!
//! - **Spill** ([`super::spill`]): the journal range `[spilled_end, journal_end)`
//!   goes up as runs of at most [`SPILL_MAX_BYTES`] of journal each (their
//!   pending timers, and tombstones for recalls of timers already in runs),
//!   the checkpoint lists each and moves `spilled_end`, and the spilled
//!   timers beyond `loaded_until` leave memory. Triggered by count, by age
//!   (so the object store holds every timer older than [`SPILL_AGE`]) and by
//!   a hand-over (everything).
//! - **Load ahead**: run blocks with keys in `(loaded_until, now + LOAD_HORIZON]`
//!   are read and their pending timers go to memory, before they are due.
//! - **Merge**: more than [`MAX_RUNS`] runs → the smallest few are merged
//!   (a timer and its tombstone cancel; fired timers are dropped), at most
//!   [`MERGE_MAX_INPUT`] bytes at once: a merge holds its inputs and its
//!   output in memory.
//! - **Collect**: a run whose keys are all fired is deleted.
//!
//! Invariants: every run the checkpoint lists exists (a run is written
//! before the checkpoint names it, and deleted only after it no longer
//! does); all of this runs under the queue's `runs` mutex, one operation at
//! a time; a run written by an owner that is then fenced is never listed,
//! and is deleted by the next owner (orphans under the runs prefix).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shale_tiering::timer_checkpoint::{RunMeta, TimerCheckpoint, run_name};
use shale_tiering::timer_run::{self, BlockMeta, RunEntry, RunFooter, RunWriter};
use shale_tiering::{FencedObject, Tier};

use super::TimerQueue;
use super::entries::{cancel_tombstones, merge_entries};
use super::index::{FireState, Key};
use crate::error::{BrokerError, BrokerResult};

/// How far ahead of now run entries are loaded into memory.
pub const LOAD_HORIZON_MS: i64 = 30_000;
/// Unspilled timers of a queue that trigger a spill.
pub const SPILL_COUNT: u64 = 65_536;
/// Oldest unspilled timer's age that triggers a spill.
pub const SPILL_AGE: Duration = Duration::from_secs(10);
/// Runs of a queue beyond which the smallest are merged.
pub const MAX_RUNS: usize = 8;
/// Runs merged at once.
const MERGE_FANIN: usize = 4;
/// Runs this big are not merged any more (a merge holds its inputs in memory).
const MERGE_MAX_BYTES: u64 = SPILL_MAX_BYTES as u64;
/// Most bytes of runs one merge reads (and so about what it writes).
const MERGE_MAX_INPUT: u64 = 3 * MERGE_MAX_BYTES;
/// Target size of a run block.
const BLOCK_BYTES: usize = 64 << 10;
/// Least time between two checkpoints written only for the fire state.
pub const CHECKPOINT_PERIOD: Duration = Duration::from_secs(30);
pub use super::spill::{SPILL_MAX_BYTES, UNSPILLED_CAP};

/// The object-store state of one queue's timers (behind `TimerQueue::runs`).
#[derive(Debug)]
pub struct RunSet {
    pub(crate) ckpt: FencedObject<TimerCheckpoint>,
    footers: HashMap<String, Arc<RunFooter>>,
    /// When the fire state was last written, and at which index version.
    pub(crate) checkpointed: (Instant, u64),
    /// When the oldest unspilled timer was written (None: nothing unspilled).
    pub(crate) unspilled_since: Option<Instant>,
    /// The transaction table version the checkpoint's snapshot holds.
    pub(crate) txn_version: u64,
}

impl RunSet {
    pub fn new(ckpt: FencedObject<TimerCheckpoint>) -> RunSet {
        RunSet {
            ckpt,
            footers: HashMap::new(),
            checkpointed: (Instant::now(), 0),
            unspilled_since: None,
            txn_version: 0,
        }
    }

    /// Timers minus tombstones of every run.
    pub fn net(&self) -> i64 {
        self.ckpt
            .value()
            .runs
            .iter()
            .map(|r| r.summary.timers as i64 - r.summary.tombstones as i64)
            .sum()
    }

    /// Runs the checkpoint lists.
    pub fn run_count(&self) -> usize {
        self.ckpt.value().runs.len()
    }

    /// The checkpoint epoch this node writes under.
    pub fn epoch(&self) -> u64 {
        self.ckpt.epoch()
    }
}

/// A fenced writer is `NotOwner`, a store failure `Unavailable`, the rest internal.
pub(crate) fn tiering_err(what: &str, e: shale_tiering::TieringError) -> BrokerError {
    if e.is_fenced() || e.is_store_failure() {
        return BrokerError::from(e);
    }
    BrokerError::internal(what, e)
}

impl TimerQueue {
    /// Runs the queue's checkpoint lists (waits for an upkeep under way).
    pub async fn run_count(&self) -> usize {
        self.runs.lock().await.run_count()
    }

    async fn footer(
        &self,
        tier: &Tier,
        set: &mut RunSet,
        run: &RunMeta,
    ) -> BrokerResult<Arc<RunFooter>> {
        if let Some(f) = set.footers.get(&run.name) {
            return Ok(f.clone());
        }
        let path = tier.layout().timer_run(&self.topic, self.queue, &run.name);
        let footer = timer_run::read_footer(tier.store().as_ref(), &path, &run.summary)
            .await
            .map_err(|e| tiering_err("reading a timer run", e))?;
        let footer = Arc::new(footer);
        set.footers.insert(run.name.clone(), footer.clone());
        Ok(footer)
    }

    /// Run entries with keys in `(after, through]`, from every run, in key order.
    pub(crate) async fn read_runs(
        &self,
        tier: &Tier,
        set: &mut RunSet,
        after: Option<Key>,
        through: Key,
    ) -> BrokerResult<Vec<RunEntry>> {
        let runs: Vec<RunMeta> = set
            .ckpt
            .value()
            .runs
            .iter()
            .filter(|r| {
                r.summary.min_key.is_some_and(|m| m <= through)
                    && r.summary
                        .max_key
                        .is_some_and(|m| after.is_none_or(|a| m > a))
            })
            .cloned()
            .collect();
        let mut out = Vec::new();
        for run in runs {
            let footer = self.footer(tier, set, &run).await?;
            let blocks = footer.blocks_between(after, through).to_vec();
            if blocks.is_empty() {
                continue;
            }
            let read = self.read_blocks(tier, &run, &blocks).await?;
            out.extend(
                read.into_iter()
                    .flatten()
                    .filter(|e| after.is_none_or(|a| e.key() > a) && e.key() <= through),
            );
        }
        out.sort_by_key(|e| (e.key(), matches!(e, RunEntry::Timer { .. })));
        Ok(out)
    }

    /// The entries of `blocks` of `run`, block by block (counted in the metrics).
    async fn read_blocks(
        &self,
        tier: &Tier,
        run: &RunMeta,
        blocks: &[BlockMeta],
    ) -> BrokerResult<Vec<Vec<RunEntry>>> {
        let path = tier.layout().timer_run(&self.topic, self.queue, &run.name);
        let read = timer_run::read_blocks(tier.store().as_ref(), &path, blocks)
            .await
            .map_err(|e| tiering_err("reading a timer run", e))?;
        crate::metrics::timer_index_objects("read", read.len() as u64);
        Ok(read)
    }

    /// Entries of `run` beyond `after` in the blocks whose bloom filter may
    /// hold the message key `key`.
    pub(crate) async fn read_runs_with_key(
        &self,
        tier: &Tier,
        set: &mut RunSet,
        run: &RunMeta,
        key: &str,
        after: Option<Key>,
    ) -> BrokerResult<Vec<RunEntry>> {
        let footer = self.footer(tier, set, run).await?;
        let blocks: Vec<_> = footer
            .blocks
            .iter()
            .filter(|b| after.is_none_or(|a| b.last > a) && b.may_contain_message_key(key))
            .cloned()
            .collect();
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        let read = self.read_blocks(tier, run, &blocks).await?;
        Ok(read
            .into_iter()
            .flatten()
            .filter(|e| after.is_none_or(|a| e.key() > a))
            .collect())
    }

    /// Loads run entries up to `now + LOAD_HORIZON_MS` when memory holds less
    /// than half of that ahead.
    pub(crate) async fn load_ahead(
        &self,
        tier: &Tier,
        set: &mut RunSet,
        now: i64,
    ) -> BrokerResult<()> {
        let loaded = self.index.lock().loaded_until();
        if loaded.is_some_and(|l| l.0 >= now.saturating_add(LOAD_HORIZON_MS / 2)) {
            return Ok(());
        }
        let through = (now.saturating_add(LOAD_HORIZON_MS), u64::MAX);
        let entries = self.read_runs(tier, set, loaded, through).await?;
        let (timers, net) = cancel_tombstones(entries);
        let ahead = set
            .ckpt
            .value()
            .runs
            .iter()
            .any(|r| r.summary.max_key.is_some_and(|m| m > through));
        self.index.lock().loaded(through, timers, net, ahead);
        Ok(())
    }

    pub(crate) async fn write_run(
        &self,
        tier: &Tier,
        set: &RunSet,
        entries: Vec<RunEntry>,
    ) -> BrokerResult<RunMeta> {
        write_run(tier, &self.topic, self.queue, &set.ckpt, entries).await
    }

    /// Merges the smallest runs when there are more than [`MAX_RUNS`] (at
    /// most [`MERGE_FANIN`] of them, [`MERGE_MAX_INPUT`] bytes in all);
    /// returns whether it did.
    pub(crate) async fn merge(&self, tier: &Tier, set: &mut RunSet) -> BrokerResult<bool> {
        let mut small: Vec<RunMeta> = set
            .ckpt
            .value()
            .runs
            .iter()
            .filter(|r| r.summary.bytes < MERGE_MAX_BYTES)
            .cloned()
            .collect();
        if set.ckpt.value().runs.len() <= MAX_RUNS || small.len() < 2 {
            return Ok(false);
        }
        small.sort_by_key(|r| r.summary.bytes);
        let mut input = 0;
        small = small
            .into_iter()
            .take(MERGE_FANIN)
            .take_while(|r| {
                input += r.summary.bytes;
                input <= MERGE_MAX_INPUT
            })
            .collect();
        if small.len() < 2 {
            return Ok(false);
        }
        let mut entries = Vec::new();
        for run in &small {
            let footer = self.footer(tier, set, run).await?;
            let read = self.read_blocks(tier, run, &footer.blocks).await?;
            entries.extend(read.into_iter().flatten());
        }
        // Only keys memory has loaded can be done there: check those under
        // the lock (few), merge the rest without it.
        let (done, fired_through) = {
            let index = self.index.lock();
            let loaded = index.loaded_until();
            let done: std::collections::HashSet<Key> = entries
                .iter()
                .map(RunEntry::key)
                .filter(|k| loaded.is_some_and(|l| *k <= l) && !index.is_live(*k))
                .collect();
            (done, index.fired_through())
        };
        let kept = tokio::task::spawn_blocking(move || {
            merge_entries(entries, |k| !done.contains(&k), fired_through)
        })
        .await?;
        let meta = if kept.is_empty() {
            None
        } else {
            Some(self.write_run(tier, set, kept).await?)
        };
        let gone: Vec<String> = small.iter().map(|r| r.name.clone()).collect();
        self.replace_runs(tier, set, &gone, meta).await?;
        Ok(true)
    }

    /// Deletes runs whose every key has fired (or was recalled).
    pub(crate) async fn collect(&self, tier: &Tier, set: &mut RunSet) -> BrokerResult<()> {
        let dead: Vec<String> = {
            let index = self.index.lock();
            let floor = index.fired_through().min(index.loaded_until());
            let first_live = index.page(None, 1).first().copied();
            set.ckpt
                .value()
                .runs
                .iter()
                .filter(|r| {
                    r.summary.max_key.is_some_and(|m| {
                        floor.is_some_and(|f| m <= f) && first_live.is_none_or(|l| l > m)
                    })
                })
                .map(|r| r.name.clone())
                .collect()
        };
        if dead.is_empty() {
            return Ok(());
        }
        self.replace_runs(tier, set, &dead, None).await
    }

    /// Lists `added` instead of `gone` in the checkpoint, then deletes `gone`.
    async fn replace_runs(
        &self,
        tier: &Tier,
        set: &mut RunSet,
        gone: &[String],
        added: Option<RunMeta>,
    ) -> BrokerResult<()> {
        let state = self.index.lock().state();
        set.ckpt
            .update(|c| {
                c.runs.retain(|r| !gone.contains(&r.name));
                list_run(c, added.as_ref());
                let spilled = c.spilled_end;
                set_fire_state(c, &state, spilled);
                Ok(())
            })
            .await
            .map_err(|e| tiering_err("writing the timer checkpoint", e))?;
        let ahead = {
            let index = self.index.lock();
            let loaded = index.loaded_until();
            set.ckpt.value().runs.iter().any(|r| {
                r.summary
                    .max_key
                    .is_some_and(|m| loaded.is_none_or(|l| m > l))
            })
        };
        self.index.lock().set_runs_ahead(ahead);
        for name in gone {
            set.footers.remove(name);
            let path = tier.layout().timer_run(&self.topic, self.queue, name);
            if let Err(e) = timer_run::delete_run(tier.store().as_ref(), &path).await {
                tracing::warn!(topic = %self.topic, queue = self.queue, run = %name, error = %e, "cannot delete a timer run no longer listed; it stays as garbage");
            }
        }
        Ok(())
    }

    /// Writes the fire state to the checkpoint if it changed and
    /// [`CHECKPOINT_PERIOD`] passed (or `force`).
    pub(crate) async fn checkpoint(&self, set: &mut RunSet, force: bool) -> BrokerResult<()> {
        let (state, version) = {
            let index = self.index.lock();
            (index.state(), index.version())
        };
        if version == set.checkpointed.1
            || !(force || set.checkpointed.0.elapsed() >= CHECKPOINT_PERIOD)
        {
            return Ok(());
        }
        set.ckpt
            .update(|c| {
                let spilled = c.spilled_end;
                set_fire_state(c, &state, spilled);
                Ok(())
            })
            .await
            .map_err(|e| tiering_err("writing the timer checkpoint", e))?;
        set.checkpointed = (Instant::now(), version);
        Ok(())
    }

    /// Deletes runs under the prefix the checkpoint does not list (written by
    /// an owner fenced before it could list them). Only a new owner calls it.
    pub(crate) async fn delete_orphans(&self, tier: &Tier, set: &RunSet) {
        let dir = tier.layout().timer_runs_dir(&self.topic, self.queue);
        let listed = match timer_run::list_runs(tier.store().as_ref(), &dir).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(topic = %self.topic, queue = self.queue, error = %e, "cannot list timer runs to collect orphans");
                return;
            }
        };
        let known: std::collections::HashSet<&str> = set
            .ckpt
            .value()
            .runs
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        for path in listed {
            if path.filename().is_some_and(|n| !known.contains(n)) {
                let _ = timer_run::delete_run(tier.store().as_ref(), &path).await;
            }
        }
        let table = set.ckpt.value().txn_table.clone();
        crate::txn::snapshot::delete_orphans(tier, &self.topic, self.queue, table.as_deref()).await;
    }
}

/// Writes `entries` (in key order) as the next run of `ckpt`'s owner; the
/// caller lists it in the checkpoint (and bumps `next_run`).
pub(crate) async fn write_run(
    tier: &Tier,
    topic: &str,
    queue: u32,
    ckpt: &FencedObject<TimerCheckpoint>,
    entries: Vec<RunEntry>,
) -> BrokerResult<RunMeta> {
    let name = run_name(ckpt.epoch(), ckpt.value().next_run);
    let encoded = tokio::task::spawn_blocking(move || {
        let mut w = RunWriter::new(BLOCK_BYTES);
        for e in entries {
            w.push(e)
                .map_err(|e| BrokerError::internal("writing a timer run", e))?;
        }
        Ok::<_, BrokerError>(w.finish())
    })
    .await??;
    let path = tier.layout().timer_run(topic, queue, &name);
    timer_run::put_run(tier.store().as_ref(), &path, encoded.bytes)
        .await
        .map_err(|e| tiering_err("writing a timer run", e))?;
    crate::metrics::timer_index_objects("written", 1);
    Ok(RunMeta {
        name,
        summary: encoded.summary,
    })
}

/// Lists `run` (written by [`write_run`] under the current `next_run`) in a checkpoint.
pub(crate) fn list_run(c: &mut TimerCheckpoint, run: Option<&RunMeta>) {
    if let Some(m) = run {
        c.runs.push(m.clone());
        c.next_run += 1;
    }
}

/// Copies the fire state into a checkpoint whose journal is spilled to `spilled`.
pub(crate) fn set_fire_state(c: &mut TimerCheckpoint, state: &FireState, spilled: u64) {
    c.fired_through = state.fired_through;
    c.late = state.late.clone();
    c.target_end = c.target_end.max(state.target_end);
    c.journal_end = c.journal_end.max(state.journal_end).max(spilled);
}

/// The fire state a checkpoint holds.
pub fn fire_state_of(c: &TimerCheckpoint) -> FireState {
    FireState {
        fired_through: c.fired_through,
        journal_end: c.journal_end,
        late: c.late.clone(),
        target_end: c.target_end,
    }
}
