//! Opening a queue's timers (by the queue's owner): the timer checkpoint
//! taken under a new epoch, the local journal kept or dropped, the index
//! rebuilt from the journal beyond what was spilled, the saved fire state
//! and the fires found in the target queue after it (see [`super::index`]),
//! then the runs loaded up to the horizon.
//!
//! The local journal is kept only when this node wrote the checkpoint last
//! and the journal covers it (it reaches the checkpoint's `journal_end` and
//! still holds everything from `spilled_end`): then nobody else owned the
//! timers since, and the journal's unspilled records are this owner's.
//! Otherwise it is dropped (its unspilled timers, if any, never reached the
//! object store: an error names how many) and a new journal continues the
//! checkpoint's offsets. A journal or state that cannot be read fails the
//! open (the caller retries later) rather than guessing: guessing could fire
//! a timer twice or never.

use std::sync::Arc;

use shale_hot::{QueueLog, Record};
use shale_tiering::timer_checkpoint::TimerCheckpoint;
use std::collections::BTreeMap;

use bytes::Bytes;
use shale_tiering::timer_run::RunEntry;
use shale_tiering::{FencedObject, QueueOwner, Versioned};

use super::index::{Key, TimerIndex};
use super::journal::{Entry, LocalState, entry_of, read_state};
use super::store::{RunSet, fire_state_of, list_run, tiering_err, write_run};
use super::{TIMER_PROPERTY, TimerQueue};
use crate::broker::Broker;
use crate::dedup::{DEDUP_PROPERTY, DEDUP_WINDOW_MS, DedupHit, dedup_id_of};
use crate::error::{BrokerError, BrokerResult};
use crate::queue_view::TieredQueue;
use crate::topics::Durability;

/// Records read per journal or queue read.
const READ_BATCH: usize = 4096;
const READ_BYTES: usize = 16 << 20;

/// Builds the timers of `topic`/`queue` (a queue this node holds).
pub async fn recover(
    state: &Broker,
    topic: &str,
    queue: u32,
    owners: &[QueueOwner],
) -> BrokerResult<TimerQueue> {
    let config = state.topics.require(topic)?.config();
    let me = state.node_id.clone();
    let dir = state.tier.layout().timer_checkpoint_dir(topic, queue);
    let taken = FencedObject::<TimerCheckpoint>::acquire_if(
        state.tier.store().clone(),
        dir,
        format!("timers of {topic}/{queue}"),
        TimerCheckpoint::empty(),
        |_, next| {
            next.owner_node = Some(me.clone());
            true
        },
    )
    .await?;
    let (mut ckpt, mut previous) = taken.ok_or_else(|| {
        BrokerError::internal(
            "taking the timer checkpoint",
            "an unconditional take was refused",
        )
    })?;
    let mut table = crate::txn::snapshot::read(&state.tier, topic, queue, ckpt.value()).await?;
    if config.durability == Durability::Object && !owners.is_empty() {
        let wal = WalReplay {
            created_ms: config.created_ms,
            owners,
        };
        let replayed = replay_wal(state, topic, queue, wal, &mut ckpt, &mut table).await?;
        if replayed {
            // The journal continues after what is now in runs.
            let now = ckpt.value();
            let mut view = previous.unwrap_or_else(TimerCheckpoint::empty);
            view.spilled_end = now.spilled_end;
            view.journal_end = now.journal_end;
            previous = Some(view);
        }
    }
    let state_path = state.timers.state_path(topic, queue);
    let local_state = {
        let p = state_path.clone();
        tokio::task::spawn_blocking(move || read_state(&p)).await??
    };
    let (journal, saved, spilled_end) =
        settle_journal(state, topic, queue, previous.as_ref(), local_state).await?;
    let (entries, recalls, events) = {
        let j = journal.clone();
        tokio::task::spawn_blocking(move || read_journal(&j, spilled_end)).await??
    };
    for e in events {
        table.apply(e);
    }
    let (fired_after, target_end) = fires_after(state, topic, queue, saved.target_end).await?;
    let set = RunSet::new(ckpt);
    let index = TimerIndex::restore(
        entries,
        recalls,
        &saved,
        &fired_after,
        spilled_end,
        journal.max_offset(),
        target_end,
        set.net(),
    );
    remember_dedup_ids(state, &journal);
    let q = TimerQueue {
        topic: topic.to_string(),
        queue,
        journal,
        index: parking_lot::Mutex::new(index),
        firing: tokio::sync::Mutex::new(()),
        saved_version: parking_lot::Mutex::new(0),
        state_path,
        epoch: set.epoch(),
        runs: tokio::sync::Mutex::new(set),
        txns: parking_lot::Mutex::new(table),
        committing: Default::default(),
        committing_starts: Default::default(),
    };
    if let Some(end) = crate::txn::recover::finish_commits(&q, &fired_after)? {
        q.journal.sync(end).await?;
    }
    {
        let mut set = q.runs.lock().await;
        q.load_ahead(&state.tier, &mut set, state.clock.now_ms())
            .await?;
        q.delete_orphans(&state.tier, &set).await;
        if config.durability == Durability::Object {
            // Whatever the journal holds goes up now, so the write-ahead
            // commits of this owner start at its end.
            q.spill_all(&state.tier, &mut set, state.clock.now_ms())
                .await?;
            let end = q.journal.max_offset();
            q.journal.mark_replicated(end);
            state.wal.reset_queue(&super::wal_topic(topic), queue, end);
        }
    }
    let runs = q.runs.lock().await.ckpt.value().runs.len();
    let pending = q.index.lock().pending_count();
    tracing::info!(
        topic,
        queue,
        pending,
        fired_after = fired_after.len(),
        runs,
        "timers recovered"
    );
    Ok(q)
}

/// Replays the timer journal sections of `owners`' write-ahead chunks
/// beyond the checkpoint's `spilled_end` into a run (their seqs may be below
/// the checkpoint's `journal_end`, which a new journal continues after), and
/// remembers their dedup ids. Whether anything was replayed.
/// Whose write-ahead chunks to replay, for a topic created when.
struct WalReplay<'a> {
    created_ms: i64,
    owners: &'a [QueueOwner],
}

async fn replay_wal(
    state: &Broker,
    topic: &str,
    queue: u32,
    wal: WalReplay<'_>,
    ckpt: &mut FencedObject<TimerCheckpoint>,
    table: &mut crate::txn::table::TxnTable,
) -> BrokerResult<bool> {
    let (created_ms, owners) = (wal.created_ms, wal.owners);
    let from = ckpt.value().spilled_end;
    let records = state
        .records_of(&super::wal_topic(topic), created_ms, queue, owners)
        .await?;
    let records: Vec<Record> = records.into_iter().filter(|r| r.offset >= from).collect();
    let Some(end) = records.last().map(|r| r.offset + 1) else {
        return Ok(false);
    };
    let since = state.clock.now_ms() - DEDUP_WINDOW_MS;
    let mut timers: BTreeMap<Key, Bytes> = BTreeMap::new();
    let mut tombstones = Vec::new();
    let table_before = table.version();
    for r in &records {
        if let Some(e) = crate::txn::records::event_of(r) {
            table.apply(e);
        }
        match entry_of(r) {
            Some(Entry::Timer(k)) => {
                timers.insert(k, Bytes::from(r.encode()));
                if r.store_ms >= since
                    && let Some(id) = dedup_id_of(r)
                {
                    let mut hit = DedupHit::of_record(queue, r);
                    hit.scheduled = true;
                    state.dedup.record(topic, id, hit);
                }
            }
            Some(e @ (Entry::Recall(_) | Entry::Decision(_))) => {
                for k in e.ended() {
                    if k.1 >= from {
                        timers.remove(&k);
                    } else {
                        tombstones.push(k);
                    }
                }
            }
            None => {}
        }
    }
    let mut entries: Vec<RunEntry> = timers
        .into_iter()
        .map(|(key, record)| RunEntry::Timer { key, record })
        .chain(
            tombstones
                .into_iter()
                .map(|key| RunEntry::Tombstone { key }),
        )
        .collect();
    entries.sort_by_key(|e| e.key());
    entries.dedup_by_key(|e| e.key());
    let run = if entries.is_empty() {
        None
    } else {
        Some(write_run(&state.tier, topic, queue, ckpt, entries).await?)
    };
    let snapshot = match table.version() != table_before {
        true => {
            Some(crate::txn::snapshot::write(&state.tier, topic, queue, ckpt, table.rows()).await?)
        }
        false => None,
    };
    let replaced = crate::txn::snapshot::replaced(ckpt.value(), snapshot.as_ref());
    ckpt.update(|c| {
        let listed = run.is_some();
        list_run(c, run.as_ref());
        crate::txn::snapshot::list(c, snapshot.as_ref(), listed);
        c.spilled_end = c.spilled_end.max(end);
        c.journal_end = c.journal_end.max(end);
        Ok(())
    })
    .await
    .map_err(|e| tiering_err("writing the timer checkpoint", e))?;
    if let Some(old) = replaced {
        crate::txn::snapshot::delete(&state.tier, topic, queue, &old).await;
    }
    tracing::info!(
        topic,
        queue,
        records = records.len(),
        from = ?owners,
        "recovered OBJECT-acknowledged timer journal records from the previous owner's write-ahead chunks"
    );
    Ok(true)
}

/// The journal to use, the fire state to restore from and the journal
/// offset spilled to (module docs).
async fn settle_journal(
    state: &Broker,
    topic: &str,
    queue: u32,
    previous: Option<&TimerCheckpoint>,
    local_state: Option<LocalState>,
) -> BrokerResult<(Arc<QueueLog>, super::FireState, u64)> {
    let journals = state.timers.journals.clone();
    let local = journals.existing_queue(topic, queue);
    let name = topic.to_string();
    let Some(p) = previous else {
        // Never checkpointed: the local journal (if any) is all there is.
        let j = tokio::task::spawn_blocking(move || journals.queue(&name, queue)).await??;
        return Ok((j, local_state.map(|s| s.state).unwrap_or_default(), 0));
    };
    let mine = p.owner_node.as_deref() == Some(state.node_id.as_str());
    if let Some(l) =
        local.filter(|l| mine && l.max_offset() >= p.journal_end && l.min_offset() <= p.spilled_end)
    {
        let saved = match local_state {
            Some(s) if s.epoch == Some(p.epoch) && s.state.target_end >= p.target_end => s.state,
            _ => fire_state_of(p),
        };
        return Ok((l, saved, p.spilled_end));
    }
    if let Some(l) = journals.existing_queue(topic, queue) {
        let lost = l
            .max_offset()
            .saturating_sub(p.spilled_end.max(l.min_offset()));
        if lost > 0 {
            tracing::error!(
                topic,
                queue,
                records = lost,
                local_end = l.max_offset(),
                spilled_end = p.spilled_end,
                "local timer journal records that never reached the object store, and the timers were owned elsewhere since: dropped"
            );
        }
    }
    state
        .timers
        .remove_local(topic, queue)
        .await
        .map_err(|e| BrokerError::internal("dropping a stale timer journal", e))?;
    let base = p.journal_end;
    let j = tokio::task::spawn_blocking(move || journals.queue_from(&name, queue, base)).await??;
    Ok((j, fire_state_of(p), p.spilled_end))
}

/// Timers, recalls with their record's offset (a decision's halves
/// included) and transaction events, read from a journal.
type JournalEntries = (Vec<Key>, Vec<(Key, u64)>, Vec<crate::txn::table::TxnEvent>);

/// Every timer, recall and transaction event in the journal from `from`.
fn read_journal(journal: &QueueLog, from: u64) -> BrokerResult<JournalEntries> {
    let (mut entries, mut recalls, mut events) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = journal.min_offset().max(from);
    let end = journal.max_offset();
    while at < end {
        let records = journal.read(at, READ_BATCH, READ_BYTES)?;
        let Some(last) = records.last() else {
            return Err(BrokerError::internal(
                "reading the timer journal",
                format!(
                    "nothing readable at offset {at} of {}/{}",
                    journal.topic(),
                    journal.queue()
                ),
            ));
        };
        at = last.offset + 1;
        for r in &records {
            events.extend(crate::txn::records::event_of(r));
            match entry_of(r) {
                Some(Entry::Timer(k)) => entries.push(k),
                Some(e) => recalls.extend(e.ended().into_iter().map(|k| (k, r.offset))),
                None => {}
            }
        }
    }
    Ok((entries, recalls, events))
}

/// Keys of the timers fired into the queue at or after `from`, and where the queue ends.
async fn fires_after(
    state: &Broker,
    topic: &str,
    queue: u32,
    from: u64,
) -> BrokerResult<(Vec<Key>, u64)> {
    let view = Arc::new(TieredQueue::open(state, topic, queue).await?);
    let end = view.max_offset();
    let mut at = from.max(view.min_offset());
    let mut fired = Vec::new();
    while at < end {
        let v = view.clone();
        let records: Vec<Record> =
            tokio::task::spawn_blocking(move || v.read_blocking(at, READ_BATCH, READ_BYTES))
                .await??;
        let Some(last) = records.last() else {
            break;
        };
        at = last.offset + 1;
        fired.extend(records.iter().filter_map(fired_key));
    }
    Ok((fired, end))
}

/// The timer key a fired message carries (a committed half's included).
pub fn fired_key(r: &Record) -> Option<Key> {
    if let Some(k) = crate::txn::records::committed_key(r) {
        return Some(k);
    }
    let seq = r
        .properties
        .iter()
        .find(|(k, _)| k == TIMER_PROPERTY)?
        .1
        .parse()
        .ok()?;
    Some((r.deliver_at_ms?, seq))
}

/// Records the dedup ids of the journal's recent delay messages, so a retry
/// after a restart answers the scheduled message instead of scheduling it
/// again (the queue's own ids are rebuilt by the broker at open).
fn remember_dedup_ids(state: &Broker, journal: &QueueLog) {
    let since = state.clock.now_ms() - DEDUP_WINDOW_MS;
    match journal.find_with_property(DEDUP_PROPERTY, since, i64::MAX, usize::MAX) {
        Ok(records) => {
            for r in records.iter().filter(|r| r.message_id.is_scheduled()) {
                if let Some(id) = dedup_id_of(r) {
                    let mut hit = DedupHit::of_record(journal.queue(), r);
                    hit.scheduled = true;
                    state.dedup.record(journal.topic(), id, hit);
                }
            }
        }
        Err(e) => tracing::error!(
            topic = journal.topic(), queue = journal.queue(), error = %e,
            "cannot rebuild the dedup ids of a timer journal; a retry may schedule a message twice"
        ),
    }
}
