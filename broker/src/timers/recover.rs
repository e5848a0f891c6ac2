//! Opening a queue's timers: the journal read back, the saved fire state,
//! and the fires found in the target queue after it (see [`super::index`]).
//!
//! A journal or state that cannot be read fails the open (the produce or
//! job retries later) rather than guessing: guessing could fire a timer
//! twice or never.

use std::sync::Arc;

use shale_hot::{QueueLog, Record};

use super::index::{Key, TimerIndex};
use super::journal::{Entry, entry_of, read_state};
use super::{TIMER_PROPERTY, TimerQueue};
use crate::broker::Broker;
use crate::dedup::{DEDUP_PROPERTY, DEDUP_WINDOW_MS, DedupHit, dedup_id_of};
use crate::error::{BrokerError, BrokerResult};
use crate::queue_view::TieredQueue;

/// Records read per journal or queue read.
const READ_BATCH: usize = 4096;
const READ_BYTES: usize = 16 << 20;

/// Builds the timers of `topic`/`queue` from what is on disk.
pub async fn recover(state: &Broker, topic: &str, queue: u32) -> BrokerResult<TimerQueue> {
    let journals = state.timers.journals.clone();
    let name = topic.to_string();
    let journal: Arc<QueueLog> =
        tokio::task::spawn_blocking(move || journals.queue(&name, queue)).await??;
    let state_path = state.timers.state_path(topic, queue);
    let saved = {
        let p = state_path.clone();
        tokio::task::spawn_blocking(move || read_state(&p))
            .await??
            .unwrap_or_default()
    };
    let (entries, recalls) = {
        let j = journal.clone();
        tokio::task::spawn_blocking(move || read_journal(&j)).await??
    };
    let (fired_after, target_end) = fires_after(state, topic, queue, saved.target_end).await?;
    let index = TimerIndex::restore(
        entries,
        recalls,
        &saved,
        &fired_after,
        journal.max_offset(),
        target_end,
    );
    tracing::info!(
        topic,
        queue,
        pending = index.pending_count(),
        fired_after = fired_after.len(),
        "timers recovered"
    );
    remember_dedup_ids(state, &journal);
    Ok(TimerQueue {
        topic: topic.to_string(),
        queue,
        journal,
        index: parking_lot::Mutex::new(index),
        firing: tokio::sync::Mutex::new(()),
        saved_version: parking_lot::Mutex::new(0),
        state_path,
    })
}

/// Every timer and recall in the journal, from its first kept record.
fn read_journal(journal: &QueueLog) -> BrokerResult<(Vec<Key>, Vec<Key>)> {
    let (mut entries, mut recalls) = (Vec::new(), Vec::new());
    let mut at = journal.min_offset();
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
            match entry_of(r) {
                Some(Entry::Timer(k)) => entries.push(k),
                Some(Entry::Recall(k)) => recalls.push(k),
                None => {}
            }
        }
    }
    Ok((entries, recalls))
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

/// The timer key a fired message carries.
pub fn fired_key(r: &Record) -> Option<Key> {
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
