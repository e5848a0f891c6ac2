//! The object-store side of a queue's timers: runs, loading ahead, spills,
//! merges, collection and the fenced checkpoint.
//!
//! Layout (tiering `paths`): `topics/{t}/timers/{q}/checkpoint/…` (a
//! [`FencedObject`] of [`TimerCheckpoint`]) and `topics/{t}/timers/{q}/runs/…`
//! (immutable sorted runs, [`shale_tiering::timer_run`]).
//!
//! - **Spill**: the journal range `[spilled_end, journal_end)` goes up as one
//!   run (its pending timers, and tombstones for recalls of timers already in
//!   runs), the checkpoint lists it and moves `spilled_end`, and the spilled
//!   timers beyond `loaded_until` leave memory. Triggered by count, by age
//!   (so the object store holds every timer older than [`SPILL_AGE`]) and by
//!   a hand-over (everything).
//! - **Load ahead**: run blocks with keys in `(loaded_until, now + LOAD_HORIZON]`
//!   are read and their pending timers go to memory, before they are due.
//! - **Merge**: more than [`MAX_RUNS`] runs → the smallest few are merged
//!   (a timer and its tombstone cancel; fired timers are dropped).
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

use bytes::Bytes;
use shale_tiering::timer_checkpoint::{RunMeta, TimerCheckpoint, run_name};
use shale_tiering::timer_run::{self, BlockMeta, RunEntry, RunFooter, RunWriter};
use shale_tiering::{FencedObject, Tier};

use super::TimerQueue;
use super::entries::{cancel_tombstones, merge_entries};
use super::index::{FireState, Key};
use super::journal::{Entry, entry_of};
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
const MERGE_MAX_BYTES: u64 = 64 << 20;
/// Target size of a run block.
const BLOCK_BYTES: usize = 64 << 10;
/// Least time between two checkpoints written only for the fire state.
pub const CHECKPOINT_PERIOD: Duration = Duration::from_secs(30);
/// Journal records read per batch when spilling.
const READ_BATCH: usize = 4096;
const READ_BYTES: usize = 16 << 20;

/// The object-store state of one queue's timers (behind `TimerQueue::runs`).
#[derive(Debug)]
pub struct RunSet {
    pub(crate) ckpt: FencedObject<TimerCheckpoint>,
    footers: HashMap<String, Arc<RunFooter>>,
    /// When the fire state was last written, and at which index version.
    checkpointed: (Instant, u64),
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

    /// Whether a spill is due: enough unspilled timers, or old enough ones.
    pub(crate) fn spill_due(&self, set: &mut RunSet) -> bool {
        let (spilled, end) = {
            let index = self.index.lock();
            (index.spilled_end(), index.journal_end())
        };
        if end <= spilled {
            set.unspilled_since = None;
            return false;
        }
        let since = *set.unspilled_since.get_or_insert_with(Instant::now);
        end - spilled >= SPILL_COUNT || since.elapsed() >= SPILL_AGE
    }

    /// Writes the unspilled journal range as a run and lists it in the
    /// checkpoint; the spilled timers beyond `loaded_until` leave memory.
    pub(crate) async fn spill(&self, tier: &Tier, set: &mut RunSet, now: i64) -> BrokerResult<()> {
        // In-flight timers are due, so at most `loaded_until` after this.
        self.load_ahead(tier, set, now).await?;
        let (from, end, loaded, table) = {
            let index = self.index.lock();
            // Taken with the journal's end: the table as of `end`.
            let txns = self.txns.lock();
            let table = (txns.version() != set.txn_version).then(|| (txns.rows(), txns.version()));
            (
                index.spilled_end(),
                index.journal_end(),
                index.loaded_until(),
                table,
            )
        };
        if end <= from {
            set.unspilled_since = None;
            return Ok(());
        }
        let journal = self.journal.clone();
        let records =
            tokio::task::spawn_blocking(move || read_range(&journal, from, end)).await??;
        let mut entries = Vec::new();
        {
            let index = self.index.lock();
            for (r, bytes) in records {
                match entry_of(&r) {
                    Some(Entry::Timer(k)) if index.is_live(k) => entries.push(RunEntry::Timer {
                        key: k,
                        record: bytes,
                    }),
                    Some(e @ (Entry::Recall(_) | Entry::Decision(_))) => entries.extend(
                        e.ended()
                            .into_iter()
                            .filter(|k| k.1 < from)
                            .map(|key| RunEntry::Tombstone { key }),
                    ),
                    _ => {}
                }
            }
        }
        entries.sort_by_key(|e| e.key());
        entries.dedup_by_key(|e| e.key());
        let beyond = |k: Key| loaded.is_none_or(|l| k > l);
        let net_beyond: i64 = entries
            .iter()
            .filter(|e| beyond(e.key()))
            .map(|e| match e {
                RunEntry::Timer { .. } => 1,
                RunEntry::Tombstone { .. } => -1,
            })
            .sum();
        let meta = if entries.is_empty() {
            None
        } else {
            Some(self.write_run(tier, set, entries).await?)
        };
        let snapshot = match table {
            Some((rows, version)) => {
                let name =
                    crate::txn::snapshot::write(tier, &self.topic, self.queue, &set.ckpt, rows)
                        .await?;
                Some((name, version))
            }
            None => None,
        };
        let state = self.index.lock().state();
        let name = snapshot.as_ref().map(|s| &s.0);
        let replaced = crate::txn::snapshot::replaced(set.ckpt.value(), name);
        set.ckpt
            .update(|c| {
                let listed = meta.is_some();
                list_run(c, meta.as_ref());
                crate::txn::snapshot::list(c, name, listed);
                c.spilled_end = c.spilled_end.max(end);
                set_fire_state(c, &state, end);
                Ok(())
            })
            .await
            .map_err(|e| tiering_err("writing the timer checkpoint", e))?;
        if let Some((_, version)) = snapshot {
            set.txn_version = version;
        }
        if let Some(old) = replaced {
            crate::txn::snapshot::delete(tier, &self.topic, self.queue, &old).await;
        }
        let evicted = self.index.lock().spilled(end, net_beyond);
        set.unspilled_since = None;
        set.checkpointed = (Instant::now(), self.index.lock().version());
        tracing::debug!(topic = %self.topic, queue = self.queue, from, end, evicted, "timers spilled");
        Ok(())
    }

    async fn write_run(
        &self,
        tier: &Tier,
        set: &RunSet,
        entries: Vec<RunEntry>,
    ) -> BrokerResult<RunMeta> {
        write_run(tier, &self.topic, self.queue, &set.ckpt, entries).await
    }

    /// Merges the smallest runs when there are more than [`MAX_RUNS`].
    pub(crate) async fn merge(&self, tier: &Tier, set: &mut RunSet) -> BrokerResult<()> {
        let mut small: Vec<RunMeta> = set
            .ckpt
            .value()
            .runs
            .iter()
            .filter(|r| r.summary.bytes < MERGE_MAX_BYTES)
            .cloned()
            .collect();
        if set.ckpt.value().runs.len() <= MAX_RUNS || small.len() < 2 {
            return Ok(());
        }
        small.sort_by_key(|r| r.summary.bytes);
        small.truncate(MERGE_FANIN);
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
        self.replace_runs(tier, set, &gone, meta).await
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
fn set_fire_state(c: &mut TimerCheckpoint, state: &FireState, spilled: u64) {
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

/// The journal's records in `[from, end)`, each with its encoding.
fn read_range(
    journal: &shale_hot::QueueLog,
    from: u64,
    end: u64,
) -> BrokerResult<Vec<(shale_hot::Record, Bytes)>> {
    let mut out = Vec::new();
    let mut at = from.max(journal.min_offset());
    while at < end {
        let records = journal.read(at, READ_BATCH, READ_BYTES)?;
        let Some(last) = records.last() else {
            return Err(BrokerError::internal(
                "spilling timers",
                format!(
                    "nothing readable at offset {at} of the timer journal {}/{}",
                    journal.topic(),
                    journal.queue()
                ),
            ));
        };
        at = last.offset + 1;
        for r in records {
            if r.offset >= end {
                break;
            }
            let bytes = Bytes::from(r.encode());
            out.push((r, bytes));
        }
    }
    Ok(out)
}
