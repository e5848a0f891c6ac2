//! Storing a planned request: dedup check, one append per queue, durability.
//!
//! Invariants:
//! - the ids' dedup stripes are held from the window check until the new ids
//!   are recorded, so two concurrent requests with one id store it once;
//! - the topic's `deleted` read lock is held across the appends, so a
//!   concurrent delete waits for them and no message outlives its topic;
//! - each queue's messages go in one `append` (whole batch or nothing). A
//!   request spanning several queues is atomic per queue only: if one queue
//!   fails (disk full) the others may have stored their part; the request
//!   then fails and the stored ids stay in the dedup window, so a retry with
//!   the same `dedup_id`s stores only what is missing;
//! - with SYNC durability the answer waits for the group-commit fsync of every
//!   offset it reports, repeats of earlier messages included; with OBJECT it
//!   waits for that fsync and, at the same time, for the node's object-store
//!   group commit ([`crate::wal`]) of every offset it reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use shale_hot::{AppendRequest, Appended, QueueLog};

use super::plan::Planned;
use crate::broker::Broker;
use crate::cluster::ownership::WritePermit;
use crate::dedup::DedupHit;
use crate::error::{BrokerError, BrokerResult};
use crate::timers::TimerQueue;
use crate::topics::{Durability, Topic};
use crate::wal::CommitItem;

/// Where one message of the request was stored (a repeated `dedup_id`: where
/// the first one was).
pub type Produced = DedupHit;

/// Stores `planned` on `topic` at `durability`; results in request order.
pub async fn store(
    state: &Arc<Broker>,
    topic: &Arc<Topic>,
    mut planned: Vec<Planned>,
    durability: Durability,
) -> BrokerResult<Vec<Produced>> {
    let ids = planned
        .iter()
        .filter(|p| p.repeat_of.is_none())
        .filter_map(|p| p.dedup_id.as_deref());
    let dedup_guard = state.dedup.lock(&topic.name, ids).await;
    let deleted = topic.deleted.read().await;
    if *deleted {
        return Err(BrokerError::topic_not_found(&topic.name));
    }
    let (mut outcome, by_queue) = split_repeats(state, &topic.name, &planned);
    // Every queue must be served here before anything is stored: held until durable.
    let queues: std::collections::BTreeSet<u32> = by_queue.keys().map(|(q, _)| *q).collect();
    let held = hold_queues(state, &topic.name, queues.into_iter()).await?;
    // Read before the requests are moved into the appends.
    // (A half message's is no delivery time: it has none until committed.)
    let deliver_at: Vec<Option<i64>> = planned
        .iter()
        .map(|p| {
            p.request
                .deliver_at_ms
                .filter(|&at| at != crate::txn::records::PARKED_AT)
        })
        .collect();
    let (logs, permits): (BTreeMap<u32, Arc<QueueLog>>, Vec<WritePermit>) = held
        .into_iter()
        .map(|(q, (log, permit))| ((q, log), permit))
        .unzip();
    let mut timers = BTreeMap::new();
    for &(q, scheduled) in by_queue.keys() {
        if scheduled {
            let t = state.timer_queue(&topic.name, q).await?;
            // Before anything is stored: memory holds what is not spilled yet.
            t.refuse_when_behind()?;
            timers.insert(q, t);
        }
    }
    let targets = Targets {
        logs: &logs,
        timers: &timers,
    };
    let appended = append_by_queue(targets, &mut planned, by_queue).await;
    drop(deleted);
    let stored = Stored {
        planned: &planned,
        deliver_at: &deliver_at,
    };
    let (touched, first_error) = record_appends(state, &topic.name, stored, &mut outcome, appended);
    drop(dedup_guard);
    if let Some(e) = first_error {
        return Err(e);
    }
    let results = in_request_order(&planned, &outcome)?;
    if durability >= Durability::Sync {
        let touched = with_repeats(state, &topic.name, touched, &results);
        let committed = async {
            if durability < Durability::Object {
                return Ok(());
            }
            let created_ms = topic.config().created_ms;
            let items: Vec<CommitItem> = touched
                .iter()
                .map(|(&(_, scheduled), (log, through))| CommitItem {
                    log: log.clone(),
                    wal_topic: match scheduled {
                        true => crate::timers::wal_topic(&topic.name),
                        false => topic.name.clone(),
                    },
                    topic_created_ms: created_ms,
                    through: *through,
                })
                .collect();
            state.wal.commit(state, &items).await
        };
        let (synced, committed) = tokio::join!(sync_all(&touched), committed);
        synced?;
        committed?;
    }
    drop(permits);
    Ok(results)
}

/// Write permits of every queue the request appends to. When some queue is
/// served elsewhere nothing is stored: the error names the other node when
/// every queue is there (the front-end forwards the whole request), else it
/// is a retryable 503.
async fn hold_queues(
    state: &Broker,
    topic: &str,
    queues: impl Iterator<Item = u32>,
) -> BrokerResult<BTreeMap<u32, (Arc<QueueLog>, WritePermit)>> {
    let queues: Vec<u32> = queues.collect();
    let tries =
        futures::future::join_all(queues.iter().map(|&q| state.queue_for_write(topic, q))).await;
    let mut held = BTreeMap::new();
    let mut elsewhere: Vec<BrokerError> = Vec::new();
    for (q, r) in queues.into_iter().zip(tries) {
        match r {
            Ok(h) => {
                held.insert(q, h);
            }
            Err(e) if e.elsewhere().is_some() => elsewhere.push(e),
            Err(e) => return Err(e),
        }
    }
    let Some(first) = elsewhere.first() else {
        return Ok(held);
    };
    let node = first.elsewhere().map(|e| e.node.clone());
    if held.is_empty()
        && elsewhere
            .iter()
            .all(|e| e.elsewhere().map(|x| &x.node) == node.as_ref())
    {
        return Err(elsewhere.swap_remove(0));
    }
    Err(BrokerError::unavailable(
        "the request's messages go to queues served by different nodes; send them in separate requests (one per queue or message group), or retry",
    ))
}

/// Where a message goes: its queue, and whether to its timer journal.
type Dest = (u32, bool);

/// The indexes of the messages to append, by destination; the others
/// (repeats of an id stored within the window) already have their result.
fn split_repeats(
    state: &Broker,
    topic: &str,
    planned: &[Planned],
) -> (Vec<Option<DedupHit>>, BTreeMap<Dest, Vec<usize>>) {
    let now = state.clock.now_ms();
    let mut outcome: Vec<Option<DedupHit>> = vec![None; planned.len()];
    let mut by_queue: BTreeMap<Dest, Vec<usize>> = BTreeMap::new();
    for (i, p) in planned.iter().enumerate() {
        if p.repeat_of.is_some() {
            continue;
        }
        if let Some(hit) = p
            .dedup_id
            .as_deref()
            .and_then(|id| state.dedup.lookup(topic, id, now))
        {
            outcome[i] = Some(hit);
            continue;
        }
        by_queue.entry((p.queue, p.scheduled)).or_default().push(i);
    }
    (outcome, by_queue)
}

/// What one queue's append gave: its destination, the request indexes it
/// holds, and the log, appended records and body bytes (or why it failed).
type QueueAppend = (
    Dest,
    Vec<usize>,
    BrokerResult<(Arc<QueueLog>, Vec<Appended>, u64)>,
);

/// The logs a request appends to: queues (held) and timer journals.
#[derive(Clone, Copy)]
struct Targets<'a> {
    logs: &'a BTreeMap<u32, Arc<QueueLog>>,
    timers: &'a BTreeMap<u32, Arc<TimerQueue>>,
}

/// One append per destination, all at once (each on the blocking pool).
async fn append_by_queue(
    targets: Targets<'_>,
    planned: &mut [Planned],
    by_queue: BTreeMap<Dest, Vec<usize>>,
) -> Vec<QueueAppend> {
    let appends = by_queue.into_iter().map(|(dest, indexes)| {
        let batch: Vec<AppendRequest> = indexes
            .iter()
            .map(|&i| std::mem::take(&mut planned[i].request))
            .collect();
        let log = targets.logs.get(&dest.0).cloned();
        let timers = targets.timers.get(&dest.0).cloned().filter(|_| dest.1);
        async move {
            let Some(log) = log else {
                let e = BrokerError::internal("appending", "a queue without a write permit");
                return (dest, indexes, Err(e));
            };
            let appended = tokio::task::spawn_blocking(move || {
                let bytes: u64 = batch.iter().map(|r| r.body.len() as u64).sum();
                match timers {
                    Some(t) => {
                        let appended = t.schedule(&batch)?;
                        Ok::<_, BrokerError>((t.journal.clone(), appended, bytes))
                    }
                    None => Ok((log.clone(), log.append(&batch)?, bytes)),
                }
            })
            .await;
            (
                dest,
                indexes,
                appended.map_err(BrokerError::from).and_then(|r| r),
            )
        }
    });
    futures::future::join_all(appends).await
}

/// Logs appended to, with the offset their fsync must reach.
type ToSync = BTreeMap<Dest, (Arc<QueueLog>, u64)>;

/// The request's messages after their appends, with their delivery times.
#[derive(Clone, Copy)]
struct Stored<'a> {
    planned: &'a [Planned],
    deliver_at: &'a [Option<i64>],
}

/// Records each stored message's result (and its dedup id); returns the
/// queues to fsync (through which offset) and the first failure.
fn record_appends(
    state: &Broker,
    topic: &str,
    stored_of: Stored<'_>,
    outcome: &mut [Option<DedupHit>],
    appended: Vec<QueueAppend>,
) -> (ToSync, Option<BrokerError>) {
    let mut first_error = None;
    let mut touched = ToSync::new();
    let (mut stored, mut stored_bytes) = (0u64, 0u64);
    for (dest, indexes, result) in appended {
        let (log, appended, bytes) = match result {
            Ok(ok) => ok,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        stored += appended.len() as u64;
        stored_bytes += bytes;
        for (&i, a) in indexes.iter().zip(&appended) {
            let mut hit = hit_of(dest.0, a, stored_of.deliver_at[i]);
            hit.scheduled = dest.1;
            if let Some(id) = stored_of.planned[i].dedup_id.as_deref() {
                state.dedup.record(topic, id, hit);
            }
            outcome[i] = Some(hit);
        }
        if let Some(last) = appended.last() {
            touched.insert(dest, (log, last.offset + 1));
        }
    }
    crate::metrics::produced(topic, stored, stored_bytes);
    (touched, first_error)
}

/// Every message's result, repeats within the request taking their first's.
fn in_request_order(
    planned: &[Planned],
    outcome: &[Option<DedupHit>],
) -> BrokerResult<Vec<DedupHit>> {
    planned
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.repeat_of
                .map_or(outcome[i], |first| outcome[first])
                .ok_or_else(|| {
                    BrokerError::internal("collecting results", "a message has no result")
                })
        })
        .collect()
}

fn hit_of(queue: u32, a: &Appended, deliver_at_ms: Option<i64>) -> DedupHit {
    DedupHit {
        queue,
        offset: a.offset,
        message_id: a.message_id,
        store_ms: a.store_ms,
        deliver_at_ms,
        scheduled: false,
    }
}

/// Every queue holding a reported offset (repeated, dedup, messages
/// included), through the last one reported.
fn with_repeats(state: &Broker, topic: &str, mut touched: ToSync, results: &[DedupHit]) -> ToSync {
    for r in results {
        match touched.get_mut(&(r.queue, r.scheduled)) {
            Some((_, through)) => *through = (*through).max(r.offset + 1),
            None => {
                let log = match r.scheduled {
                    true => state.timers.get(topic, r.queue).map(|t| t.journal.clone()),
                    false => state.hot.existing_queue(topic, r.queue),
                };
                if let Some(log) = log {
                    touched.insert((r.queue, r.scheduled), (log, r.offset + 1));
                }
            }
        }
    }
    touched
}

/// Waits for the fsync of every offset in `touched`.
async fn sync_all(touched: &ToSync) -> BrokerResult<()> {
    let syncs = touched.values().map(|(log, through)| log.sync(*through));
    for r in futures::future::join_all(syncs).await {
        r?;
    }
    Ok(())
}
