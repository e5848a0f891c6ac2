//! [`QueueLog`]: one queue's log — its sealed segments plus the active one.
//!
//! Concurrency: one `RwLock` guards the segment list. Appends take it for
//! writing (offsets, store time and ids are assigned under it, so offsets are
//! contiguous and `store_ms` never decreases); reads take it for reading and
//! copy records out. fsyncs never hold it (see [`crate::group_commit`]), and
//! neither do the file creations and fsyncs of a roll.
//!
//! Segments roll when a batch would push the active one past
//! `segment_bytes`, or when its first record is older than `segment_ms`. A
//! roll (one at a time, under `roll_lock`) goes:
//! 1. *freeze*: under the lock, mark the queue `rolling`; appends then wait on
//!    `create_gate` instead of writing, so the active segment's end is fixed;
//!    reads go on;
//! 2. *create* the next segment at that end, without the lock. It is created
//!    *before* the old one is sealed, so a full disk leaves the queue exactly
//!    as it was (the freeze is lifted and the error returned);
//! 3. *swap*, under the lock: the next segment becomes active and the old one
//!    moves to the `sealing` slot, where reads still find it and group commits
//!    fsync its files too (appends to the next segment may be acknowledged as
//!    durable before the old one's seal is);
//! 4. *seal* the old segment without the lock (flush, fsyncs, rename);
//! 5. *publish*, under the lock: it joins the sealed list and everything
//!    below its end is marked durable.
//!
//! A failure in steps 3–4 poisons the queue as a failed fsync does: appends
//! fail until a restart, whose recovery seals the segment from disk.
//!
//! Two ends, each with a watch for long polls: `max_offset`, everything
//! written (moved by every append), and `durable_offset`, everything fsynced
//! (moved by group commits, blocking flushes and a roll's publish; recovery
//! starts it at the end it found, which it fsynced). `durable_offset <=
//! max_offset`, and every sealed segment lies below `durable_offset`. Reads
//! here return whatever is written: which end a reader may see is the
//! broker's decision (by the topic's durability), not this crate's.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::active_segment::{ActiveSegment, Stamps};
use crate::clock::Clock;
use crate::error::{HotError, Result};
use crate::group_commit::{GroupCommit, SyncTarget};
use crate::message_id::{MAX_QUEUE, MessageId};
use crate::record::{self, AppendRequest, Record};
use crate::recovery;
use crate::salvage::{SalvagedSegment, salvage};
use crate::sealed_segment::SealedSegment;
use crate::segment_view::SegmentView;
use crate::store::HotConfig;

/// Where an appended message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub offset: u64,
    pub message_id: MessageId,
    pub store_ms: i64,
}

/// A sealed segment, as the tiering layer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: u64,
    /// Offset after the last record.
    pub end_offset: u64,
    pub first_store_ms: i64,
    pub last_store_ms: i64,
    pub bytes: u64,
}

/// A queue's extent and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Lowest offset stored locally.
    pub min_offset: u64,
    /// The offset the next message will get.
    pub max_offset: u64,
    /// Bytes of segment files on disk (the active one's allocated size included).
    pub disk_bytes: u64,
    /// Sealed segments plus the active one.
    pub segments: usize,
}

#[derive(Debug)]
struct Segments {
    sealed: Vec<Arc<SealedSegment>>,
    /// The segment a roll is sealing, between the swap and the publish.
    sealing: Option<Sealing>,
    active: ActiveSegment,
    last_store_ms: i64,
    /// A roll is creating the next segment: appends wait (see the module docs).
    rolling: bool,
}

/// A former active segment being sealed outside the lock; readable meanwhile.
#[derive(Debug)]
struct Sealing {
    segment: Arc<ActiveSegment>,
    /// Its log and key index, fsynced by every group commit until published.
    sync_files: Vec<Arc<File>>,
}

impl Segments {
    fn min_offset(&self) -> u64 {
        self.sealed
            .first()
            .map(|s| s.base)
            .or(self.sealing.as_ref().map(|s| s.segment.base))
            .unwrap_or(self.active.base)
    }

    /// The segment holding `offset` (which must be below the active end).
    fn view_for(&self, offset: u64) -> Option<SegmentView<'_>> {
        if offset >= self.active.base {
            return Some(self.active.view());
        }
        if let Some(s) = &self.sealing
            && offset >= s.segment.base
        {
            return Some(s.segment.view());
        }
        let i = self
            .sealed
            .partition_point(|s| s.base <= offset)
            .checked_sub(1)?;
        let seg = &self.sealed[i];
        (offset < seg.end).then(|| seg.view())
    }

    fn views(&self) -> impl Iterator<Item = (SegmentView<'_>, i64, i64)> {
        let sealed = self
            .sealed
            .iter()
            .map(|s| (s.view(), s.first_store_ms, s.last_store_ms));
        let sealing = self.sealing.as_ref().map(|s| {
            let seg = &s.segment;
            let first = seg.first_store_ms.unwrap_or(i64::MAX);
            let last = seg.last_record.map_or(i64::MIN, |r| r.store_ms);
            (seg.view(), first, last)
        });
        let active = (!self.active.is_empty()).then(|| {
            let first = self.active.first_store_ms.unwrap_or(i64::MAX);
            (self.active.view(), first, self.last_store_ms)
        });
        sealed.chain(sealing).chain(active)
    }

    /// Key-index candidates of the segment starting at `base`.
    fn key_candidates(&self, base: u64, term: &str) -> Result<Vec<u64>> {
        if base == self.active.base {
            return self.active.key_candidates(term);
        }
        if let Some(s) = self.sealing.as_ref().filter(|s| s.segment.base == base) {
            return s.segment.key_candidates(term);
        }
        let i = self.sealed.partition_point(|s| s.base < base);
        self.sealed[i].key_candidates(term)
    }

    /// Whether a batch of `total` bytes at `now` must go to a new segment.
    fn needs_roll(&self, now: i64, total: u64, config: &HotConfig) -> bool {
        let active = &self.active;
        let too_old = active
            .first_store_ms
            .is_some_and(|f| now.saturating_sub(f) >= config.segment_ms);
        let too_big = active.write_pos + total > config.segment_bytes || !active.fits(total);
        !active.is_empty() && (too_old || too_big)
    }
}

/// The encoded length of each request, and their sum; an unencodable one is an error.
fn encoded_lens(batch: &[AppendRequest]) -> Result<(Vec<usize>, u64)> {
    let lens = batch
        .iter()
        .map(|r| record::check_encodable(r).map_err(HotError::InvalidRecord))
        .collect::<Result<Vec<usize>>>()?;
    let total = lens.iter().map(|l| *l as u64).sum();
    Ok((lens, total))
}

/// One queue's log.
#[derive(Debug)]
pub struct QueueLog {
    topic: String,
    queue: u32,
    dir: PathBuf,
    config: HotConfig,
    clock: Arc<dyn Clock>,
    segments: RwLock<Segments>,
    /// Held for a whole roll: one roll at a time.
    roll_lock: Mutex<()>,
    /// Held while a roll creates the next segment; appends wait on it.
    create_gate: Mutex<()>,
    commit: GroupCommit,
    max_offset_tx: watch::Sender<u64>,
    /// The end of what the broker has copied off this node (see [`Self::mark_replicated`]).
    replicated_tx: watch::Sender<u64>,
    removed: AtomicBool,
}

impl QueueLog {
    /// Opens the queue in `dir`, recovering whatever a previous run left there.
    pub(crate) fn open(
        topic: &str,
        queue: u32,
        dir: &Path,
        config: HotConfig,
        clock: Arc<dyn Clock>,
        initial_base: u64,
    ) -> Result<Self> {
        if queue > MAX_QUEUE {
            return Err(HotError::InvalidRecord(format!(
                "queue {queue} is above the maximum {MAX_QUEUE}"
            )));
        }
        let recovered = recovery::recover_queue(dir, &config, initial_base)?;
        let last_store_ms = recovered
            .active
            .last_record
            .map(|r| r.store_ms)
            .or_else(|| recovered.sealed.last().map(|s| s.last_store_ms))
            .unwrap_or(i64::MIN);
        let end = recovered.active.end;
        let segments = Segments {
            sealed: recovered.sealed.into_iter().map(Arc::new).collect(),
            sealing: None,
            active: recovered.active,
            last_store_ms,
            rolling: false,
        };
        Ok(Self {
            topic: topic.to_string(),
            queue,
            dir: dir.to_path_buf(),
            config,
            clock,
            segments: RwLock::new(segments),
            roll_lock: Mutex::new(()),
            create_gate: Mutex::new(()),
            // Recovery fsyncs what it keeps, so everything found is durable.
            commit: GroupCommit::new(end),
            max_offset_tx: watch::Sender::new(end),
            replicated_tx: watch::Sender::new(0),
            removed: AtomicBool::new(false),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    fn check_writable(&self) -> Result<()> {
        if self.removed.load(Ordering::Acquire) {
            return Err(HotError::Removed(format!("{}/{}", self.topic, self.queue)));
        }
        if self.commit.is_poisoned() {
            return Err(HotError::Io {
                context: "appending after an earlier fsync or seal failure",
                path: self.dir.clone(),
                source: std::io::Error::other("queue is read-only until the node restarts"),
            });
        }
        Ok(())
    }

    /// Appends the whole batch with contiguous offsets, or nothing. Blocking: it
    /// copies into the map and may create or seal a segment (with fsyncs).
    pub fn append(&self, batch: &[AppendRequest]) -> Result<Vec<Appended>> {
        self.append_new(batch, None)
    }

    /// Appends like [`Self::append`], with the ids made by `mint` from each
    /// message's index in the batch and its offset (the broker's timers give
    /// scheduled messages ids that carry their delivery time, and a fired one
    /// keeps the id it was scheduled under). The caller owns their uniqueness.
    pub fn append_minted(
        &self,
        batch: &[AppendRequest],
        mint: &(dyn Fn(usize, u64) -> MessageId + Sync),
    ) -> Result<Vec<Appended>> {
        self.append_new(batch, Some(mint))
    }

    /// New messages, stamped now: fresh ids, or minted by `mint`.
    fn append_new(
        &self,
        batch: &[AppendRequest],
        mint: Option<&(dyn Fn(usize, u64) -> MessageId + Sync)>,
    ) -> Result<Vec<Appended>> {
        self.check_writable()?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (lens, total) = encoded_lens(batch)?;
        let segs = self.lock_for_append(total)?;
        let store_ms = self.clock.now_ms().max(segs.last_store_ms);
        let stamps = match mint {
            Some(mint) => Stamps::Minted(store_ms, mint),
            None => Stamps::Fresh(store_ms),
        };
        self.write_locked(segs, batch, &lens, stamps)
    }

    /// Appends records recovered from another copy of this queue (the object
    /// store's write-ahead chunks), keeping their offsets, store times and
    /// ids. Records below `max_offset` are skipped (already here); the rest
    /// must continue the log without a gap, in order, with store times that
    /// do not go back. Returns how many were appended. All or nothing.
    pub fn append_recovered(&self, records: &[Record]) -> Result<u64> {
        self.check_writable()?;
        let end = self.max_offset();
        let fresh: Vec<&Record> = records.iter().filter(|r| r.offset >= end).collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        for (i, r) in fresh.iter().enumerate() {
            if r.offset != end + i as u64 {
                return Err(HotError::InvalidRecord(format!(
                    "recovered records must continue the log at offset {}, got offset {} at position {i}",
                    end + i as u64,
                    r.offset
                )));
            }
            if fresh.get(i + 1).is_some_and(|n| n.store_ms < r.store_ms) {
                return Err(HotError::InvalidRecord(format!(
                    "recovered record {} has a store time before its predecessor's",
                    r.offset + 1
                )));
            }
        }
        let batch: Vec<AppendRequest> = fresh.iter().map(|r| r.to_request()).collect();
        let stamps: Vec<(i64, MessageId)> =
            fresh.iter().map(|r| (r.store_ms, r.message_id)).collect();
        let (lens, total) = encoded_lens(&batch)?;
        let segs = self.lock_for_append(total)?;
        if segs.active.end != end {
            return Err(HotError::InvalidRecord(format!(
                "queue {}/{} was appended to while records were being recovered",
                self.topic, self.queue
            )));
        }
        if stamps[0].0 < segs.last_store_ms {
            return Err(HotError::InvalidRecord(format!(
                "recovered record {end} has a store time before the log's last one"
            )));
        }
        self.write_locked(segs, &batch, &lens, Stamps::Given(&stamps))?;
        Ok(fresh.len() as u64)
    }

    /// Writes `batch` into the active segment under `segs` (taken by
    /// [`Self::lock_for_append`]) and publishes the new end.
    fn write_locked(
        &self,
        mut segs: parking_lot::RwLockWriteGuard<'_, Segments>,
        batch: &[AppendRequest],
        lens: &[usize],
        stamps: Stamps<'_>,
    ) -> Result<Vec<Appended>> {
        let appended = segs.active.append(
            batch,
            lens,
            stamps,
            self.queue,
            &self.config.indexed_properties,
        )?;
        if let Some(last) = appended.last() {
            segs.last_store_ms = last.store_ms;
        }
        let end = segs.active.end;
        drop(segs);
        self.max_offset_tx.send_replace(end);
        Ok(appended)
    }

    /// Records that every offset below `through` is stored off this node as
    /// well (the broker's object-store commit); never moves back and never
    /// past `max_offset`. This crate does not use it: it only keeps the
    /// watermark and its watch next to the other two.
    pub fn mark_replicated(&self, through: u64) {
        let through = through.min(self.max_offset());
        self.replicated_tx.send_if_modified(|end| {
            let moved = through > *end;
            if moved {
                *end = through;
            }
            moved
        });
    }

    /// Offset below which everything is stored off this node (0 until the
    /// broker first says so).
    pub fn replicated_offset(&self) -> u64 {
        *self.replicated_tx.borrow()
    }

    /// Watches `replicated_offset`.
    pub fn watch_replicated_offset(&self) -> watch::Receiver<u64> {
        self.replicated_tx.subscribe()
    }

    /// The segments lock, for writing `total` bytes to the active segment:
    /// after any roll they need (and once a roll under way is done), with
    /// the active map large enough.
    fn lock_for_append(&self, total: u64) -> Result<parking_lot::RwLockWriteGuard<'_, Segments>> {
        let mut segs = loop {
            let segs = self.segments.write();
            self.check_writable()?;
            if segs.rolling {
                // The next segment is being created: wait for it, then look again.
                drop(segs);
                drop(self.create_gate.lock());
                continue;
            }
            if segs.needs_roll(self.clock.now_ms(), total, &self.config) {
                drop(segs);
                let needed = |s: &Segments| s.needs_roll(self.clock.now_ms(), total, &self.config);
                self.roll(needed, total)?;
                continue;
            }
            break segs;
        };
        if !segs.active.fits(total) {
            segs.active.grow_map(total)?;
        }
        Ok(segs)
    }

    /// Seals the active segment and starts the next one if `needed` still
    /// holds once this roll has its turn (see the module docs for the steps).
    /// Must be called without the segments lock.
    fn roll(&self, needed: impl Fn(&Segments) -> bool, next_batch: u64) -> Result<()> {
        let _one_roll = self.roll_lock.lock();
        let create_gate = self.create_gate.lock();
        // 1. Freeze.
        let base = {
            let mut segs = self.segments.write();
            self.check_writable()?;
            if !needed(&segs) {
                return Ok(());
            }
            debug_assert!(segs.sealing.is_none(), "one roll at a time");
            segs.rolling = true;
            segs.active.end
        };
        // 2. Create the next segment; on failure nothing has changed.
        let map_len = self.config.segment_bytes.max(next_batch);
        let next =
            ActiveSegment::create(&self.dir, base, map_len, self.config.index_interval_bytes);
        // 3. Swap.
        let sealing = {
            let mut segs = self.segments.write();
            segs.rolling = false;
            let next = next?;
            debug_assert_eq!(segs.active.end, base, "appends wait while rolling");
            let sync_files = segs
                .active
                .index_last_record()
                .and_then(|()| segs.active.sealing_sync_files())
                .inspect_err(|_| self.commit.poison())?;
            let old = Arc::new(std::mem::replace(&mut segs.active, next));
            segs.sealing = Some(Sealing {
                segment: old.clone(),
                sync_files,
            });
            old
        };
        drop(create_gate);
        // 4. Seal, readers still reading the old segment from the sealing slot.
        let sealed = sealing
            .seal_in_place()
            .and_then(SealedSegment::from_parts)
            .inspect_err(|_| self.commit.poison())?;
        // 5. Publish.
        let end = sealed.end;
        {
            let mut segs = self.segments.write();
            segs.sealing = None;
            segs.sealed.push(Arc::new(sealed));
        }
        self.commit.mark_durable(end);
        Ok(())
    }

    /// Seals the active segment now if it holds any record (hand-over on
    /// shutdown: everything acknowledged becomes an uploadable sealed segment).
    pub fn seal_active(&self) -> Result<()> {
        self.check_writable()?;
        self.roll(|s| !s.active.is_empty(), 0)
    }

    /// Seals the active segment if its first record is older than `segment_ms`.
    pub fn seal_if_expired(&self) -> Result<()> {
        let now = self.clock.now_ms();
        let expired = |s: &Segments| {
            s.active
                .first_store_ms
                .is_some_and(|f| now.saturating_sub(f) >= self.config.segment_ms)
        };
        if self.removed.load(Ordering::Acquire)
            || self.commit.is_poisoned()
            || !expired(&self.segments.read())
        {
            return Ok(());
        }
        self.roll(expired, 0)
    }

    fn sync_target(&self) -> SyncTarget {
        let mut segs = self.segments.write();
        let through = segs.active.end;
        let (log, keys) = segs.active.sync_handles();
        let mut files = vec![log];
        files.extend(keys.map(Arc::new));
        if let Some(sealing) = &segs.sealing {
            files.extend(sealing.sync_files.iter().cloned());
        }
        SyncTarget {
            files,
            through,
            path: self.dir.clone(),
        }
    }

    /// Returns once every offset below `through_offset` is fsynced (group commit).
    pub async fn sync(&self, through_offset: u64) -> Result<()> {
        self.commit
            .sync_to(through_offset, || self.sync_target())
            .await
    }

    /// Blocking fsync of everything written so far (background flush, shutdown).
    /// Must not be called from an async context.
    pub fn flush(&self) -> Result<()> {
        if self.removed.load(Ordering::Acquire) || self.commit.is_poisoned() {
            return Ok(());
        }
        if self.commit.durable() >= self.max_offset() {
            return Ok(());
        }
        self.commit.sync_blocking(|| self.sync_target())
    }

    /// Offset below which everything is fsynced.
    pub fn durable_offset(&self) -> u64 {
        self.commit.durable()
    }

    /// Watches `durable_offset`; it changes after every fsync that moves it
    /// (a group commit, a flush, a roll's seal), never on a mere append.
    pub fn watch_durable_offset(&self) -> watch::Receiver<u64> {
        self.commit.watch()
    }

    /// Reads from `offset`: at most `max_messages`, stopping before `max_bytes` of
    /// encoded records would be exceeded (but always one record when one exists).
    /// `offset == max_offset` gives an empty answer; outside `[min, max]` is an error.
    /// A damaged record ends the read just before it; a read that starts at one
    /// fails with [`HotError::Corrupt`] (as the cold tier does for a lost offset).
    pub fn read(&self, offset: u64, max_messages: usize, max_bytes: usize) -> Result<Vec<Record>> {
        let segs = self.segments.read();
        let (min, max) = (segs.min_offset(), segs.active.end);
        if offset < min || offset > max {
            return Err(HotError::OffsetOutOfRange { offset, min, max });
        }
        let mut out = Vec::new();
        let mut budget = max_bytes;
        let mut at = offset;
        while at < max && out.len() < max_messages {
            let Some(view) = segs.view_for(at) else {
                return Err(HotError::Corrupt {
                    path: self.dir.clone(),
                    position: 0,
                    reason: format!("no segment holds offset {at}"),
                });
            };
            let next = match view.read_into(at, max_messages, &mut budget, &mut out) {
                Ok(next) => next,
                // Every record pushed passed its CRC: hand those out.
                Err(HotError::Corrupt { .. }) if !out.is_empty() => break,
                Err(e) => return Err(e),
            };
            if next == at {
                break;
            }
            at = next;
        }
        Ok(out)
    }

    /// The record at `offset`, if the queue holds it.
    pub fn read_one(&self, offset: u64) -> Result<Option<Record>> {
        let segs = self.segments.read();
        if offset < segs.min_offset() || offset >= segs.active.end {
            return Ok(None);
        }
        let Some(view) = segs.view_for(offset) else {
            return Ok(None);
        };
        let pos = view.position_of(offset)?;
        view.record_at(pos, offset).map(Some)
    }

    /// The message with this id, if this queue holds it.
    pub fn get_by_id(&self, id: &MessageId) -> Result<Option<Record>> {
        if id.queue() != self.queue {
            return Ok(None);
        }
        Ok(self.read_one(id.offset())?.filter(|r| r.message_id == *id))
    }

    /// Messages carrying `key` with `begin_ms <= store_ms <= end_ms`, oldest first, at most `max`.
    pub fn find_by_key(
        &self,
        key: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<Record>> {
        self.find_indexed(key, begin_ms, end_ms, max, |r| {
            r.keys.iter().any(|k| k == key)
        })
    }

    /// Messages carrying the property `name` (which must be one of
    /// `HotConfig::indexed_properties`) with `begin_ms <= store_ms <= end_ms`,
    /// oldest first, at most `max`. Only those records are read.
    pub fn find_with_property(
        &self,
        name: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<Record>> {
        let term = crate::key_index::property_term(name);
        self.find_indexed(&term, begin_ms, end_ms, max, |r| {
            r.properties.iter().any(|(k, _)| k == name)
        })
    }

    /// Records indexed under `term` in the time window that pass `matches`
    /// (index entries are only candidates: hashes collide, failed appends leave some).
    fn find_indexed(
        &self,
        term: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
        matches: impl Fn(&Record) -> bool,
    ) -> Result<Vec<Record>> {
        let segs = self.segments.read();
        let mut out = Vec::new();
        for (view, first_ms, last_ms) in segs.views() {
            if last_ms < begin_ms || first_ms > end_ms {
                continue;
            }
            let mut offsets: Vec<u64> = segs
                .key_candidates(view.base, term)?
                .into_iter()
                .filter(|o| *o >= view.base && *o < view.end)
                .collect();
            offsets.sort_unstable();
            offsets.dedup();
            for offset in offsets {
                let rec = view.record_at(view.position_of(offset)?, offset)?;
                if rec.store_ms >= begin_ms && rec.store_ms <= end_ms && matches(&rec) {
                    out.push(rec);
                    if out.len() >= max {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The first offset whose `store_ms >= ts_ms`, or `max_offset` when there is none.
    pub fn offset_for_timestamp(&self, ts_ms: i64) -> Result<u64> {
        let segs = self.segments.read();
        for (view, _, last_ms) in segs.views() {
            if last_ms >= ts_ms {
                return view.offset_for_timestamp(ts_ms);
            }
        }
        Ok(segs.active.end)
    }

    pub fn min_offset(&self) -> u64 {
        self.segments.read().min_offset()
    }

    pub fn max_offset(&self) -> u64 {
        self.segments.read().active.end
    }

    pub fn stats(&self) -> QueueStats {
        let segs = self.segments.read();
        QueueStats {
            min_offset: segs.min_offset(),
            max_offset: segs.active.end,
            disk_bytes: segs.sealed.iter().map(|s| s.disk_bytes()).sum::<u64>()
                + segs.sealing.as_ref().map_or(0, |s| s.segment.disk_bytes())
                + segs.active.disk_bytes(),
            segments: segs.sealed.len() + usize::from(segs.sealing.is_some()) + 1,
        }
    }

    /// Every record of the sealed segment starting at `base_offset` that
    /// still passes its checks, and the offsets that do not (see
    /// `salvage.rs`). `None` when no sealed segment starts there.
    pub fn salvage_sealed(&self, base_offset: u64) -> Option<SalvagedSegment> {
        let segs = self.segments.read();
        let seg = segs.sealed.iter().find(|s| s.base == base_offset)?;
        Some(salvage(&seg.view()))
    }

    /// The sealed segments still on local disk, oldest first.
    pub fn sealed_segments(&self) -> Vec<SegmentInfo> {
        let segs = self.segments.read();
        segs.sealed
            .iter()
            .map(|s| SegmentInfo {
                base_offset: s.base,
                end_offset: s.end,
                first_store_ms: s.first_store_ms,
                last_store_ms: s.last_store_ms,
                bytes: s.disk_bytes(),
            })
            .collect()
    }

    /// Deletes local sealed segments that end at or before `offset` (they are
    /// safe elsewhere, e.g. uploaded). Reads below the new `min_offset` then
    /// get `OffsetOutOfRange` from this tier. Returns the bytes freed.
    pub fn evict_through(&self, offset: u64) -> Result<u64> {
        let evicted: Vec<Arc<SealedSegment>> = {
            let mut segs = self.segments.write();
            let keep = segs.sealed.partition_point(|s| s.end <= offset);
            segs.sealed.drain(..keep).collect()
        };
        let mut freed = 0;
        for seg in &evicted {
            freed += seg.disk_bytes();
            seg.delete_files()?;
        }
        if !evicted.is_empty() {
            crate::fs_util::fsync_dir(&self.dir)
                .map_err(|e| HotError::io("syncing a queue directory", &self.dir, e))?;
        }
        Ok(freed)
    }

    /// Watches `max_offset`; it changes after every append (for long polls).
    pub fn watch_max_offset(&self) -> watch::Receiver<u64> {
        self.max_offset_tx.subscribe()
    }

    /// How many watches of `max_offset` are held right now (long polls
    /// waiting; tests use it to know a poll is waiting before they act).
    pub fn max_offset_watchers(&self) -> usize {
        self.max_offset_tx.receiver_count()
    }

    /// How many watches of `durable_offset` are held right now.
    pub fn durable_offset_watchers(&self) -> usize {
        self.commit.watchers()
    }
}
