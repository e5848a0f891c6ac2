//! Spills: a queue's unspilled timer journal goes up to the object store as
//! sorted runs, at most [`SPILL_MAX_BYTES`] of journal per run, and produce
//! is refused while a queue's unspilled timers pass [`UNSPILLED_CAP`].
//!
//! A spill takes the journal range `[spilled_end, cut)` (`cut` at most
//! [`SPILL_MAX_BYTES`] past the start, or the journal's end): its pending
//! timers, and tombstones for recalls and decisions of timers already in
//! runs. The run is written, then the checkpoint lists it and moves
//! `spilled_end` to `cut`, then the spilled timers beyond `loaded_until`
//! leave memory. Decoded journal records are dropped batch by batch, so a
//! spill holds about twice [`SPILL_MAX_BYTES`] (its entries, then the
//! encoded run), whatever the backlog. The transaction table's snapshot is
//! as of the journal's end, so it goes only with a spill that reaches it.
//!
//! Invariant: as in [`super::store`], a run is listed only once written, and
//! `spilled_end` only moves forward with the runs that hold the range.

use std::time::Instant;

use bytes::Bytes;
use shale_tiering::Tier;
use shale_tiering::timer_run::RunEntry;

use super::TimerQueue;
use super::index::Key;
use super::journal::{Entry, entry_of};
use super::store::{RunSet, SPILL_AGE, SPILL_COUNT, list_run, set_fire_state, tiering_err};
use crate::error::{BrokerError, BrokerResult};

/// Journal records read per batch when spilling.
const READ_BATCH: usize = 4096;
const READ_BYTES: usize = 1 << 20;
/// Most journal bytes one spill takes into its run; a longer backlog goes up
/// in several runs, one spill after the other. Bounds what a spill holds in
/// memory (the entries, then the encoded run: about twice this).
pub const SPILL_MAX_BYTES: usize = 16 << 20;
/// Unspilled timers of a queue past which delay produce is refused (503)
/// until spills catch up: bounds the memory of a node that takes timers
/// faster than the object store takes its runs.
pub const UNSPILLED_CAP: u64 = 4 * SPILL_COUNT;

impl TimerQueue {
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

    /// Spills everything unspilled, a run per [`SPILL_MAX_BYTES`] of journal.
    pub(crate) async fn spill_all(
        &self,
        tier: &Tier,
        set: &mut RunSet,
        now: i64,
    ) -> BrokerResult<()> {
        while !self.spill(tier, set, now).await? {}
        Ok(())
    }

    /// Writes the unspilled journal range, or its first [`SPILL_MAX_BYTES`],
    /// as a run and lists it in the checkpoint; the spilled timers beyond
    /// `loaded_until` leave memory. Returns whether nothing is left unspilled
    /// (as of the start of the call).
    pub(crate) async fn spill(
        &self,
        tier: &Tier,
        set: &mut RunSet,
        now: i64,
    ) -> BrokerResult<bool> {
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
            return Ok(true);
        }
        let journal = self.journal.clone();
        let (read, cut) =
            tokio::task::spawn_blocking(move || read_chunk(&journal, from, end, SPILL_MAX_BYTES))
                .await??;
        // The table snapshot is as of `end`: it goes with a spill that reaches it.
        let table = table.filter(|_| cut == end);
        let mut entries = Vec::with_capacity(read.len());
        {
            let index = self.index.lock();
            for (entry, record) in read {
                match (entry, record) {
                    (Entry::Timer(k), Some(record)) if index.is_live(k) => {
                        entries.push(RunEntry::Timer { key: k, record })
                    }
                    (e @ (Entry::Recall(_) | Entry::Decision(_)), _) => entries.extend(
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
                c.spilled_end = c.spilled_end.max(cut);
                set_fire_state(c, &state, cut);
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
        let evicted = self.index.lock().spilled(cut, net_beyond);
        let caught_up = cut == end;
        if caught_up {
            set.unspilled_since = None;
        }
        set.checkpointed = (Instant::now(), self.index.lock().version());
        tracing::debug!(topic = %self.topic, queue = self.queue, from, cut, end, evicted, "timers spilled");
        Ok(caught_up)
    }

    /// Refuses more timers while this queue's unspilled ones pass
    /// [`UNSPILLED_CAP`] (the object store is down or slower than producers).
    pub fn refuse_when_behind(&self) -> BrokerResult<()> {
        let unspilled = {
            let index = self.index.lock();
            index.journal_end().saturating_sub(index.spilled_end())
        };
        if unspilled >= UNSPILLED_CAP {
            return Err(BrokerError::unavailable(format!(
                "{unspilled} timers of {}/{} wait to be spilled to the object store; retry later",
                self.topic, self.queue
            )));
        }
        Ok(())
    }
}

/// A journal record as a spill sees it: what it is, and a timer's encoding.
type Classified = (Entry, Option<Bytes>);

/// The journal's records from `from` on, classified, each timer with its
/// encoding, until `end` or until they hold `max_bytes`; and where they
/// stop (the next spill's start). Decoded records are dropped as it goes.
fn read_chunk(
    journal: &shale_hot::QueueLog,
    from: u64,
    end: u64,
    max_bytes: usize,
) -> BrokerResult<(Vec<Classified>, u64)> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut at = from.max(journal.min_offset());
    while at < end && bytes < max_bytes {
        let records = journal.read(at, READ_BATCH, READ_BYTES)?;
        if records.is_empty() {
            return Err(BrokerError::internal(
                "spilling timers",
                format!(
                    "nothing readable at offset {at} of the timer journal {}/{}",
                    journal.topic(),
                    journal.queue()
                ),
            ));
        }
        for r in records {
            if r.offset >= end {
                at = end;
                break;
            }
            if bytes >= max_bytes {
                break;
            }
            at = r.offset + 1;
            let Some(entry) = entry_of(&r) else {
                continue;
            };
            let record = matches!(entry, Entry::Timer(_)).then(|| Bytes::from(r.encode()));
            // A recall or decision costs its key(s) in the run.
            bytes += record.as_ref().map_or(32, Bytes::len);
            out.push((entry, record));
        }
    }
    Ok((out, at.min(end)))
}
