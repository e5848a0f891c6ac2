//! OBJECT durability: the node's write-ahead group commit to the object store.
//!
//! An OBJECT produce answers only once its messages are in the object store.
//! Rather than one PUT per request, the node batches: every queue with
//! messages waiting goes into the next *chunk* (one object,
//! [`shale_tiering::wal`]), one chunk per commit for the whole node. A commit
//! starts as soon as something waits, at most [`MAX_IN_FLIGHT`] at once and
//! at least `object_commit_interval` after the previous start, so an idle
//! node makes no request and a busy one at most `1 / interval` PUTs a second,
//! however many queues and producers it has.
//!
//! Per queue the commit tracks `queued_end` (everything below it is in a
//! pending or sent chunk); a produce asks for its queue's records up to its
//! last offset and waits until the queue's *replicated* watermark
//! ([`shale_hot::QueueLog::mark_replicated`]) reaches it. Chunks may finish
//! out of order, but the watermark only moves over a contiguous prefix (each
//! finished range waits in `done` until the ranges before it are in), so an
//! acknowledged offset has every earlier offset in the object store too, and
//! the OBJECT read watermark ([`crate::visible_end`]) is that same value.
//!
//! Failure: a PUT that fails (after the store's retries), or that returns
//! when this node may no longer write (its lease was not renewed in time, so
//! a new owner may already have listed the chunks), acknowledges nothing:
//! every producer waiting on one of its queues beyond the watermark gets a
//! retryable error, and the queue's `queued_end` falls back to the
//! watermark, so the next commit includes those records again.
//!
//! What a new owner does with the chunks is [`recover`]; deleting the ones
//! every queue has uploaded past is [`collect`].
//!
//! Timer journals (DELAY topics at OBJECT) go through the same commit: their
//! sections are named [`crate::timers::wal_topic`] of their topic, a name no
//! topic can have (`%` starts system names), so a queue's recovery never
//! reads them, and the timers' own recovery reads only them.

pub mod collect;
pub mod recover;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use shale_hot::QueueLog;
use shale_tiering::wal::{ChunkId, WalSection, encode_chunk, put_chunk};
use tokio::sync::{Notify, Semaphore, watch};

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, error_chain};

/// Commits in flight at once, per node.
pub const MAX_IN_FLIGHT: usize = 4;

/// How long a producer waits for its messages to reach the object store
/// before it is told to retry (the store is down or very slow).
pub const COMMIT_WAIT: Duration = Duration::from_secs(30);

/// Default spacing between the starts of two commits.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(10);

/// One queue whose messages an OBJECT produce waits for.
#[derive(Debug, Clone)]
pub struct CommitItem {
    pub log: Arc<QueueLog>,
    /// The name its sections carry: the topic, or the timer journal's
    /// [`crate::timers::wal_topic`].
    pub wal_topic: String,
    /// The topic's creation time (its generation; see [`WalSection`]).
    pub topic_created_ms: i64,
    /// Offset after the last message the produce reports.
    pub through: u64,
}

type QueueKey = (String, u32);

/// A queue's part of the next chunk.
#[derive(Debug)]
struct PendingRange {
    log: Arc<QueueLog>,
    wal_topic: String,
    topic_created_ms: i64,
    from: u64,
    to: u64,
}

/// What a committed chunk holds, for collecting it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedSection {
    pub topic: String,
    pub topic_created_ms: i64,
    pub queue: u32,
    pub end: u64,
}

#[derive(Debug)]
struct QueueState {
    /// Everything below it is in a pending or sent chunk (or replicated).
    queued_end: u64,
    /// Finished ranges (from → to) waiting for the ranges before them.
    done: BTreeMap<u64, u64>,
    /// Bumped at every failed commit of this queue: its waiters give up.
    failures: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    incarnation: u64,
    next_seq: u64,
    pending: BTreeMap<QueueKey, PendingRange>,
    queues: HashMap<QueueKey, QueueState>,
    /// Chunks of this incarnation in the store, with what they hold.
    committed: BTreeMap<u64, Vec<CommittedSection>>,
    /// Where each queue handed over by this node was uploaded to.
    handed_over: HashMap<QueueKey, u64>,
}

/// The node's OBJECT group commit.
#[derive(Debug)]
pub struct ObjectWal {
    interval: Duration,
    state: parking_lot::Mutex<State>,
    wake: Arc<Notify>,
    running: std::sync::OnceLock<()>,
    in_flight: Arc<Semaphore>,
}

impl ObjectWal {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: parking_lot::Mutex::new(State::default()),
            wake: Arc::new(Notify::new()),
            running: std::sync::OnceLock::new(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Starts over for a queue this node has just taken (or taken back):
    /// everything it has locally is in the object store by now.
    pub fn reset_queue(&self, topic: &str, queue: u32, end: u64) {
        let mut st = self.state.lock();
        let key = (topic.to_string(), queue);
        st.pending.remove(&key);
        st.handed_over.remove(&key);
        let qs = queue_state(&mut st, &key, end);
        qs.queued_end = end;
        qs.done.clear();
    }

    /// Notes that `topic/queue` was handed over with everything below `end` uploaded.
    pub fn handed_over(&self, topic: &str, queue: u32, end: u64) {
        let mut st = self.state.lock();
        let key = (topic.to_string(), queue);
        st.pending.remove(&key);
        st.queues.remove(&key);
        st.handed_over.insert(key, end);
    }

    /// Queues the records each item reports and waits until the object store
    /// has them (every earlier offset of its queue too).
    pub async fn commit(&self, broker: &Arc<Broker>, items: &[CommitItem]) -> BrokerResult<()> {
        let mut waits = Vec::new();
        {
            let mut st = self.state.lock();
            for item in items {
                let replicated = item.log.replicated_offset();
                if replicated >= item.through {
                    continue;
                }
                let key = (item.wal_topic.clone(), item.log.queue());
                let qs = queue_state(&mut st, &key, replicated);
                let failures = qs.failures.subscribe();
                let from = qs.queued_end.max(replicated);
                if from < item.through {
                    qs.queued_end = item.through;
                }
                if from < item.through {
                    let range = st.pending.entry(key).or_insert_with(|| PendingRange {
                        log: item.log.clone(),
                        wal_topic: item.wal_topic.clone(),
                        topic_created_ms: item.topic_created_ms,
                        from,
                        to: from,
                    });
                    range.from = range.from.min(from);
                    range.to = range.to.max(item.through);
                }
                waits.push((item.log.clone(), item.through, failures));
            }
        }
        if waits.is_empty() {
            return Ok(());
        }
        self.ensure_running(broker);
        self.wake.notify_one();
        let all = futures::future::join_all(
            waits
                .into_iter()
                .map(|(log, through, failures)| wait_replicated(log, through, failures)),
        );
        match tokio::time::timeout(COMMIT_WAIT, all).await {
            Ok(results) => results.into_iter().collect(),
            Err(_) => Err(BrokerError::unavailable(format!(
                "the messages were stored on this node but the object store did not confirm them within {}s; retry (with dedup_id to store them once)",
                COMMIT_WAIT.as_secs()
            ))),
        }
    }

    /// The chunks this incarnation (`node`'s) has in the store, with what they hold.
    pub(crate) fn committed(&self, node: &str) -> Vec<(ChunkId, Vec<CommittedSection>)> {
        let st = self.state.lock();
        st.committed
            .iter()
            .map(|(seq, s)| (chunk_id(node, st.incarnation, *seq), s.clone()))
            .collect()
    }

    /// Forgets chunk `seq` of `incarnation` (deleted).
    pub(crate) fn forget_chunk(&self, incarnation: u64, seq: u64) {
        let mut st = self.state.lock();
        if st.incarnation == incarnation {
            st.committed.remove(&seq);
        }
    }

    /// Where `topic/queue` was uploaded to when this node handed it over.
    pub(crate) fn handed_over_end(&self, topic: &str, queue: u32) -> Option<u64> {
        let st = self.state.lock();
        st.handed_over.get(&(topic.to_string(), queue)).copied()
    }

    fn ensure_running(&self, broker: &Arc<Broker>) {
        if self.running.set(()).is_ok() {
            tokio::spawn(run(
                Arc::downgrade(broker),
                self.wake.clone(),
                self.in_flight.clone(),
                self.interval,
            ));
        }
    }
}

fn chunk_id(node: &str, incarnation: u64, seq: u64) -> ChunkId {
    ChunkId {
        node: node.to_string(),
        incarnation,
        seq,
    }
}

fn queue_state<'a>(st: &'a mut State, key: &QueueKey, start: u64) -> &'a mut QueueState {
    st.queues.entry(key.clone()).or_insert_with(|| QueueState {
        queued_end: start,
        done: BTreeMap::new(),
        failures: watch::Sender::new(0),
    })
}

async fn wait_replicated(
    log: Arc<QueueLog>,
    through: u64,
    mut failures: watch::Receiver<u64>,
) -> BrokerResult<()> {
    let mut replicated = log.watch_replicated_offset();
    loop {
        if *replicated.borrow_and_update() >= through {
            return Ok(());
        }
        tokio::select! {
            r = replicated.changed() => {
                if r.is_err() {
                    return Err(BrokerError::unavailable("the queue was closed before its messages reached the object store; retry"));
                }
            }
            r = failures.changed() => {
                if r.is_ok() && log.replicated_offset() >= through {
                    return Ok(());
                }
                return Err(BrokerError::unavailable(
                    "the messages were stored on this node but could not be written to the object store; retry (with dedup_id to store them once)",
                ));
            }
        }
    }
}

/// The commit loop: one chunk per turn while anything waits, at most
/// [`MAX_IN_FLIGHT`] at once, starts `interval` apart. It holds the broker
/// only while it commits, so a broker dropped while idle ends it.
async fn run(weak: Weak<Broker>, wake: Arc<Notify>, in_flight: Arc<Semaphore>, interval: Duration) {
    let mut last_start: Option<Instant> = None;
    loop {
        loop {
            let Some(broker) = weak.upgrade() else {
                return;
            };
            if !broker.wal.state.lock().pending.is_empty() {
                break;
            }
            drop(broker);
            // A wake-up sent meanwhile is kept by the `Notify`; the timeout
            // only lets a dropped broker end the loop.
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        if let Some(last) = last_start {
            tokio::time::sleep_until((last + interval).into()).await;
        }
        let Some(broker) = weak.upgrade() else {
            return;
        };
        let taken = std::mem::take(&mut broker.wal.state.lock().pending);
        if taken.is_empty() {
            continue;
        }
        last_start = Some(Instant::now());
        tokio::spawn(async move {
            commit_chunk(&broker, taken).await;
            drop(permit);
        });
    }
}

/// Builds, puts and settles one chunk.
async fn commit_chunk(broker: &Arc<Broker>, ranges: BTreeMap<QueueKey, PendingRange>) {
    let started = Instant::now();
    let me = broker.cluster.me();
    let seq = {
        let mut st = broker.wal.state.lock();
        if st.incarnation != me.incarnation {
            // A new incarnation numbers its chunks from 0 in its own directory;
            // the old one's chunks are the janitor's ([`collect`]).
            st.incarnation = me.incarnation;
            st.next_seq = 0;
            st.committed.clear();
        }
        st.next_seq += 1;
        st.next_seq
    };
    let ranges: Vec<(QueueKey, PendingRange)> = ranges.into_iter().collect();
    let built = {
        let ranges: Vec<Range> = ranges
            .iter()
            .map(|(_, r)| {
                (
                    r.log.clone(),
                    r.wal_topic.clone(),
                    r.topic_created_ms,
                    r.from,
                    r.to,
                )
            })
            .collect();
        tokio::task::spawn_blocking(move || build_sections(&ranges)).await
    };
    let result = match built {
        Ok(Ok(sections)) => {
            let messages: usize = sections.iter().map(|s| s.records.len()).sum();
            match encode_chunk(&sections) {
                Ok(bytes) => {
                    let id = chunk_id(&me.node, me.incarnation, seq);
                    let bytes_len = bytes.len();
                    let put = put_chunk(
                        broker.tier.store().as_ref(),
                        broker.tier.layout(),
                        &id,
                        bytes,
                    )
                    .await
                    .map_err(BrokerError::from);
                    crate::metrics::object_commit(started, messages, bytes_len, put.is_ok());
                    put.and_then(|()| {
                        if broker.cluster.may_write() && broker.cluster.me() == me {
                            Ok(sections)
                        } else {
                            Err(BrokerError::unavailable(
                                "this node's lease ran out while its messages were being written to the object store",
                            ))
                        }
                    })
                }
                Err(e) => Err(BrokerError::from(e)),
            }
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(BrokerError::from(e)),
    };
    settle(broker, seq, &ranges, result);
}

/// A log, its sections' name, its topic generation and the offsets to commit.
type Range = (Arc<QueueLog>, String, i64, u64, u64);

/// Reads each range's records back from the hot tier (what is below the
/// queue's watermark by now is left out).
fn build_sections(ranges: &[Range]) -> BrokerResult<Vec<WalSection>> {
    let mut sections = Vec::with_capacity(ranges.len());
    for (log, name, created, from, to) in ranges {
        let from = (*from).max(log.replicated_offset()).max(log.min_offset());
        let mut records = Vec::new();
        let mut next = from;
        while next < *to {
            let want = usize::try_from(*to - next).unwrap_or(usize::MAX);
            let got = log.read(next, want, usize::MAX)?;
            let Some(last) = got.last() else {
                break;
            };
            next = last.offset + 1;
            records.extend(got);
        }
        records.retain(|r| r.offset < *to);
        sections.push(WalSection {
            topic: name.clone(),
            topic_created_ms: *created,
            queue: log.queue(),
            records,
        });
    }
    Ok(sections)
}

/// Moves the watermarks of a chunk's queues (or fails their waiters).
fn settle(
    broker: &Broker,
    seq: u64,
    ranges: &[(QueueKey, PendingRange)],
    result: BrokerResult<Vec<WalSection>>,
) {
    let mut st = broker.wal.state.lock();
    match result {
        Ok(sections) => {
            let committed = sections
                .iter()
                .filter(|s| !s.records.is_empty())
                .map(|s| CommittedSection {
                    topic: s.topic.clone(),
                    topic_created_ms: s.topic_created_ms,
                    queue: s.queue,
                    end: s.end_offset(),
                })
                .collect();
            st.committed.insert(seq, committed);
            for (key, r) in ranges {
                let Some(qs) = st.queues.get_mut(key) else {
                    continue;
                };
                qs.done.insert(r.from, r.to);
                while let Some((&from, &to)) = qs.done.first_key_value() {
                    if from > r.log.replicated_offset() {
                        break;
                    }
                    r.log.mark_replicated(to);
                    qs.done.remove(&from);
                }
            }
        }
        Err(e) => {
            tracing::warn!(chunk = seq, error = %error_chain(&e), "an OBJECT commit failed; its producers are told to retry");
            for (key, r) in ranges {
                if let Some(qs) = st.queues.get_mut(key) {
                    qs.queued_end = r.log.replicated_offset();
                    qs.failures.send_modify(|n| *n += 1);
                }
            }
        }
    }
}

impl Broker {
    /// Waits until `log` is durable through `through` at `durability`: its
    /// fsync from SYNC on and, at OBJECT, at the same time the group commit
    /// of its records under `wal_topic` (for a topic created at `created_ms`).
    pub(crate) async fn make_durable(
        self: &Arc<Self>,
        log: &Arc<QueueLog>,
        wal_topic: String,
        created_ms: i64,
        through: u64,
        durability: crate::topics::Durability,
    ) -> BrokerResult<()> {
        use crate::topics::Durability;
        if durability < Durability::Sync {
            return Ok(());
        }
        let committed = async {
            if durability < Durability::Object {
                return Ok(());
            }
            let item = CommitItem {
                log: log.clone(),
                wal_topic,
                topic_created_ms: created_ms,
                through,
            };
            self.wal.commit(self, &[item]).await
        };
        let (synced, committed) = tokio::join!(log.sync(through), committed);
        synced?;
        committed
    }
}
