//! Pending delay messages seen from outside: the paged list, the state of
//! one by id, and recall (API.md "Produce", pending delay messages).
//!
//! An id from [`MessageId::scheduled`] names its queue, its journal offset
//! and its delivery time, so each lookup reads one journal record, or one
//! block per run for a timer only in runs. Once fired, the message is in
//! its queue with the same id: it is found by scanning the queue from its
//! delivery time (fires go in delivery order, so it is near), at most
//! [`FIRED_SCAN`] messages. Listings merge memory and the runs beyond what
//! is loaded, reading run blocks in growing time windows until a page is
//! full; a listing by key reads only the blocks whose bloom filter may hold
//! the key.

use std::sync::Arc;

use shale_hot::{MessageId, Record};

use super::TimerQueue;
use super::entries::{cancel_tombstones, decode_loaded};
use super::index::{Key, Recall, Source, TimerState};
use super::journal::{Entry, entry_of};
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};
use crate::queue_view::TieredQueue;
use crate::topics::{MessageType, Topic};
use shale_tiering::timer_run::RunEntry;

/// Timers listed per page without `limit`.
pub const DEFAULT_TIMER_PAGE: usize = 100;
/// Most timers per page.
pub const MAX_TIMER_PAGE: usize = 1000;
/// Messages of its queue scanned for a fired delay message.
const FIRED_SCAN: usize = 65_536;

/// One pending delay message, as listed.
#[derive(Debug, Clone)]
pub struct TimerInfo {
    pub message_id: MessageId,
    pub queue: u32,
    pub deliver_at_ms: i64,
    pub tag: Option<String>,
    pub keys: Vec<String>,
}

/// A delay message looked up by id.
#[derive(Debug)]
pub enum TimerLookup {
    /// Pending: the record as scheduled (its offset is the journal's).
    Scheduled(Record),
    /// Fired: the record in its queue.
    Delivered(Record),
    /// Not a delay message this node knows (try the ordinary lookup).
    Unknown,
}

/// Sort order of a listing: delivery time, then queue, then journal offset.
type ListKey = (i64, u32, u64);

fn parse_cursor(s: &str) -> BrokerResult<ListKey> {
    let bad = || {
        BrokerError::invalid(format!(
            "after {s:?} is not a cursor this endpoint returned"
        ))
    };
    let mut parts = s.split('.');
    let (Some(a), Some(b), Some(c), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((
        a.parse().map_err(|_| bad())?,
        b.parse().map_err(|_| bad())?,
        c.parse().map_err(|_| bad())?,
    ))
}

fn cursor_of(k: ListKey) -> String {
    format!("{}.{}.{}", k.0, k.1, k.2)
}

/// The per-queue "after" key equivalent to the listing cursor `c`.
fn queue_after(c: ListKey, queue: u32) -> Key {
    use std::cmp::Ordering::*;
    match queue.cmp(&c.1) {
        Less => (c.0, u64::MAX),
        Equal => (c.0, c.2),
        Greater => (c.0.saturating_sub(1), u64::MAX),
    }
}

impl Broker {
    /// The timers of `topic` queue `queue` (a DELAY or TRANSACTION topic) if
    /// this node holds the queue.
    async fn timers_if_any(
        &self,
        topic: &str,
        queue: u32,
    ) -> BrokerResult<Option<Arc<TimerQueue>>> {
        if let Some(q) = self.timers.get(topic, queue) {
            return Ok(Some(q));
        }
        let timed = self.topics.get(topic).is_some_and(|t| {
            matches!(
                t.config().message_type,
                MessageType::Delay | MessageType::Transaction
            )
        });
        if !timed || !self.cluster.holds(topic, queue) {
            return Ok(None);
        }
        self.open_held_timers(topic, queue, &[]).await.map(Some)
    }

    /// How many delay messages of `topic` are pending here (journals found
    /// on disk and not opened yet are opened, so a restart does not show 0).
    pub async fn pending_timers(&self, topic: &str) -> BrokerResult<u64> {
        let t = self.topics.require(topic)?;
        let mut n = 0u64;
        for q in 0..t.queues() {
            n += self.queue_pending_timers(&t.name, q).await?;
        }
        Ok(n)
    }

    /// How many delay messages of `topic`/`queue` are pending here (0 when
    /// another node serves the queue).
    pub async fn queue_pending_timers(&self, topic: &str, queue: u32) -> BrokerResult<u64> {
        let delay = self
            .topics
            .get(topic)
            .is_some_and(|t| t.config().message_type == MessageType::Delay);
        Ok(match self.timers_if_any(topic, queue).await? {
            Some(tq) if delay => tq.index.lock().pending_count() as u64,
            _ => 0,
        })
    }

    /// How many transactions of `topic`/`queue` are undecided here (0 when
    /// another node serves the queue, or for another type of topic).
    pub async fn queue_pending_transactions(&self, topic: &str, queue: u32) -> BrokerResult<u64> {
        Ok(match self.timers_if_any(topic, queue).await? {
            Some(tq) => tq.txns.lock().pending() as u64,
            None => 0,
        })
    }

    /// Pending delay messages of `topic` in delivery order (with `key`: only
    /// those carrying it), `limit` per page after the cursor `after`; the
    /// next page's cursor when there may be more.
    pub async fn list_timers(
        &self,
        topic: &str,
        key: Option<String>,
        limit: Option<usize>,
        after: Option<String>,
    ) -> BrokerResult<(String, Vec<TimerInfo>, Option<String>)> {
        let t = self.topics.require(topic)?;
        let limit = limit.unwrap_or(DEFAULT_TIMER_PAGE);
        if limit == 0 || limit > MAX_TIMER_PAGE {
            return Err(BrokerError::invalid(format!(
                "limit must be 1-{MAX_TIMER_PAGE}, got {limit}"
            )));
        }
        if let Some(k) = &key {
            crate::validate::keys(std::slice::from_ref(k))?;
        }
        let cursor = after.as_deref().map(parse_cursor).transpose()?;
        let mut found: Vec<(ListKey, Record)> = Vec::new();
        if t.config().message_type == MessageType::Delay {
            for q in 0..t.queues() {
                let Some(tq) = self.timers_if_any(&t.name, q).await? else {
                    continue;
                };
                let after = cursor.map(|c| queue_after(c, q));
                let page = match &key {
                    None => self.pending_page(&tq, after, limit + 1).await?,
                    Some(k) => self.pending_with_key(&tq, k, after, limit + 1).await?,
                };
                found.extend(page.into_iter().map(|((at, seq), r)| ((at, q, seq), r)));
            }
        }
        found.sort_by_key(|(k, _)| *k);
        let more = found.len() > limit;
        found.truncate(limit);
        let next = more.then(|| cursor_of(found.last().expect("more than limit").0));
        let out = found
            .into_iter()
            .map(|((at, q, _), r)| TimerInfo {
                message_id: r.message_id,
                queue: q,
                deliver_at_ms: at,
                tag: r.tag,
                keys: r.keys,
            })
            .collect();
        Ok((t.name.clone(), out, next))
    }

    /// The delay message `id` of `topic` if it is one: pending or fired.
    pub async fn lookup_timer(&self, t: &Topic, id: MessageId) -> BrokerResult<TimerLookup> {
        let kind = t.config().message_type;
        if !matches!(kind, MessageType::Delay | MessageType::Transaction)
            || !id.is_scheduled()
            || id.queue() >= t.queues()
        {
            return Ok(TimerLookup::Unknown);
        }
        let Some(tq) = self.timers_if_any(&t.name, id.queue()).await? else {
            return Ok(TimerLookup::Unknown);
        };
        if kind == MessageType::Transaction {
            // A half message is seen by nobody; a committed one is in its
            // queue, after its birth (the time its id carries).
            let pending = {
                let txns = tq.txns.lock();
                txns.containing(id.offset()).is_some_and(|(seq0, _)| {
                    txns.get(seq0)
                        .is_some_and(|t| t.decision == crate::txn::table::TxnDecision::Pending)
                })
            };
            if pending {
                return Ok(TimerLookup::Unknown);
            }
            return Ok(match self.find_fired(&t.name, id).await? {
                Some(r) => TimerLookup::Delivered(r),
                None => TimerLookup::Unknown,
            });
        }
        let key = (id.store_ms(), id.offset());
        let state = tq.index.lock().state_of(key);
        match state {
            TimerState::Pending => {
                if let Some(r) = pending_record(&tq, key)
                    .await?
                    .filter(|r| r.message_id == id)
                {
                    return Ok(TimerLookup::Scheduled(r));
                }
            }
            TimerState::InRuns => {
                return Ok(match self.run_record(&tq, key).await? {
                    Some(r) if r.message_id == id && !tq.index.lock().is_recalled(key) => {
                        TimerLookup::Scheduled(r)
                    }
                    _ => TimerLookup::Unknown,
                });
            }
            TimerState::Recalled => return Ok(TimerLookup::Unknown),
            TimerState::Delivered => {}
        }
        Ok(match self.find_fired(&t.name, id).await? {
            Some(r) => TimerLookup::Delivered(r),
            None => TimerLookup::Unknown,
        })
    }

    /// Recalls the pending delay message `id`: 404 unknown (or recalled
    /// before), 409 MESSAGE_ALREADY_DELIVERED once it is in its queue.
    pub async fn recall_timer(self: &Arc<Self>, topic: &str, id: &str) -> BrokerResult<String> {
        let t = self.topics.require(topic)?;
        let message_id: MessageId = id
            .parse()
            .map_err(|e| BrokerError::invalid(format!("message id {id:?}: {e}")).with_source(e))?;
        let queue = message_id.queue();
        // Held until the recall is written: a hand-over waits for it.
        let _permit = if queue < t.queues() {
            Some(self.write_permit(&t.name, queue).await?)
        } else {
            None
        };
        let delivered = || {
            BrokerError::new(
                ErrorCode::MessageAlreadyDelivered,
                format!("message {id} is already due and in its queue; it cannot be recalled"),
            )
        };
        let not_found = || {
            BrokerError::new(
                ErrorCode::MessageNotFound,
                format!("message {id} not found"),
            )
        };
        let tq = match self.lookup_timer(&t, message_id).await? {
            TimerLookup::Delivered(_) => return Err(delivered()),
            TimerLookup::Unknown => {
                // An ordinary message (delivered at once) is in its queue already.
                return match self.get_message(&t.name, id).await {
                    Ok(_) => Err(delivered()),
                    Err(e) if e.code() == ErrorCode::MessageNotFound => Err(not_found()),
                    Err(e) => Err(e),
                };
            }
            TimerLookup::Scheduled(_) => self.timer_queue(&t.name, queue).await?,
        };
        let key = (message_id.store_ms(), message_id.offset());
        let tq2 = tq.clone();
        let recalled = tokio::task::spawn_blocking(move || tq2.append_recall(key)).await??;
        match recalled {
            Recall::Recalled => {
                let end = tq.journal.max_offset();
                let config = t.config();
                self.make_durable(
                    &tq.journal,
                    super::wal_topic(&t.name),
                    config.created_ms,
                    end,
                    config.durability,
                )
                .await?;
                Ok(t.name.clone())
            }
            Recall::Delivered => Err(delivered()),
            Recall::Gone => Err(not_found()),
        }
    }

    /// The fired delay message `id` in its queue, scanning from its delivery time.
    async fn find_fired(&self, topic: &str, id: MessageId) -> BrokerResult<Option<Record>> {
        let view = Arc::new(TieredQueue::open(self, topic, id.queue()).await?);
        let mut at = view.offset_for_timestamp(id.store_ms()).await?;
        let end = view.max_offset();
        let mut scanned = 0usize;
        while at < end && scanned < FIRED_SCAN {
            let v = view.clone();
            let records =
                tokio::task::spawn_blocking(move || v.read_blocking(at, 1024, 8 << 20)).await??;
            let Some(last) = records.last() else {
                break;
            };
            at = last.offset + 1;
            scanned += records.len();
            if let Some(r) = records.into_iter().find(|r| r.message_id == id) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }
}

/// The record of the timer `key`, pending in memory.
pub(crate) async fn pending_record(tq: &Arc<TimerQueue>, key: Key) -> BrokerResult<Option<Record>> {
    let source = tq.index.lock().source_of(key);
    match source {
        None => Ok(None),
        Some(Source::Loaded(bytes)) => decode_loaded(&bytes).map(Some),
        Some(Source::Journal) => {
            let j = tq.journal.clone();
            let seq = key.1;
            if seq < j.min_offset() || seq >= j.max_offset() {
                return Ok(None);
            }
            Ok(tokio::task::spawn_blocking(move || j.read_one(seq)).await??)
        }
    }
}

/// The key just before `key` (so `(before(k), k]` holds only `k`).
fn before(key: Key) -> Key {
    match key.1 {
        0 => (key.0 - 1, u64::MAX),
        s => (key.0, s - 1),
    }
}

/// First window of a listing over runs; it grows 8 times per round.
const LIST_WINDOW_MS: i64 = 3_600_000;

impl Broker {
    /// The timer `key` in the runs, unless a run holds its tombstone.
    pub(crate) async fn run_record(
        &self,
        tq: &Arc<TimerQueue>,
        key: Key,
    ) -> BrokerResult<Option<Record>> {
        let entries = {
            let mut set = tq.runs.lock().await;
            tq.read_runs(&self.tier, &mut set, Some(before(key)), key)
                .await?
        };
        if entries
            .iter()
            .any(|e| matches!(e, RunEntry::Tombstone { .. }))
        {
            return Ok(None);
        }
        match entries.into_iter().next() {
            Some(RunEntry::Timer { record, .. }) => decode_loaded(&record).map(Some),
            _ => Ok(None),
        }
    }

    /// Pending timers of `tq` after `after` in key order, at most `max`,
    /// with their records: memory first, then runs beyond what is loaded.
    async fn pending_page(
        &self,
        tq: &Arc<TimerQueue>,
        after: Option<Key>,
        max: usize,
    ) -> BrokerResult<Vec<(Key, Record)>> {
        let (keys, loaded) = {
            let index = tq.index.lock();
            (index.page(after, max), index.loaded_until())
        };
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(r) = pending_record(tq, k).await? {
                out.push((k, r));
            }
        }
        // Runs hold only keys beyond `loaded`; read them in growing windows
        // until `max` known keys are at most the window's end (no unread
        // key can come before them) or the runs end.
        let mut from = after.max(loaded);
        let mut window = LIST_WINDOW_MS;
        let mut set = tq.runs.lock().await;
        let last = set
            .ckpt
            .value()
            .runs
            .iter()
            .filter_map(|r| r.summary.max_key)
            .max();
        while let Some(last) = last.filter(|l| from.is_none_or(|f| *l > f)) {
            let start = from.map_or(i64::MIN, |f| f.0);
            let through = (start.saturating_add(window), u64::MAX).min(last);
            let entries = tq.read_runs(&self.tier, &mut set, from, through).await?;
            for (key, record) in cancel_tombstones(entries).0 {
                if !tq.index.lock().is_recalled(key) {
                    out.push((key, decode_loaded(&record)?));
                }
            }
            from = Some(through);
            window = window.saturating_mul(8);
            if out.iter().filter(|(k, _)| *k <= through).count() >= max {
                break;
            }
        }
        out.sort_by_key(|(k, _)| *k);
        out.dedup_by_key(|(k, _)| *k);
        out.truncate(max);
        Ok(out)
    }

    /// Pending timers of `tq` carrying `key`, after `after`, at most `max`,
    /// in key order: the journal's key index, the loaded records, and the
    /// run blocks whose bloom filter may hold the key.
    async fn pending_with_key(
        &self,
        tq: &Arc<TimerQueue>,
        key: &str,
        after: Option<Key>,
        max: usize,
    ) -> BrokerResult<Vec<(Key, Record)>> {
        let j = tq.journal.clone();
        let k = key.to_string();
        let records =
            tokio::task::spawn_blocking(move || j.find_by_key(&k, i64::MIN, i64::MAX, usize::MAX))
                .await??;
        let mut out: Vec<(Key, Record)> = Vec::new();
        let loaded: Vec<(Key, bytes::Bytes)>;
        {
            let index = tq.index.lock();
            for r in records {
                if let Some(Entry::Timer(k)) = entry_of(&r)
                    && after.is_none_or(|a| k > a)
                    && index.state_of(k) == TimerState::Pending
                {
                    out.push((k, r));
                }
            }
            loaded = index.loaded_records(after);
        }
        for (k, bytes) in loaded {
            let r = decode_loaded(&bytes)?;
            if r.keys.iter().any(|x| x == key) {
                out.push((k, r));
            }
        }
        let beyond = after.max(tq.index.lock().loaded_until());
        let mut set = tq.runs.lock().await;
        let runs = set.ckpt.value().runs.clone();
        let mut candidates = Vec::new();
        for run in &runs {
            for e in tq
                .read_runs_with_key(&self.tier, &mut set, run, key, beyond)
                .await?
            {
                if let RunEntry::Timer { key: k, record } = e {
                    let r = decode_loaded(&record)?;
                    if r.keys.iter().any(|x| x == key) && !tq.index.lock().is_recalled(k) {
                        candidates.push((k, r));
                    }
                }
            }
        }
        candidates.sort_by_key(|(k, _)| *k);
        for (k, r) in candidates {
            if out.len() > max * 2 {
                break;
            }
            // A tombstone lives in another run, at the same key.
            let here = tq
                .read_runs(&self.tier, &mut set, Some(before(k)), k)
                .await?;
            if !here.iter().any(|e| matches!(e, RunEntry::Tombstone { .. })) {
                out.push((k, r));
            }
        }
        out.sort_by_key(|(k, _)| *k);
        out.dedup_by_key(|(k, _)| *k);
        out.truncate(max);
        Ok(out)
    }
}
