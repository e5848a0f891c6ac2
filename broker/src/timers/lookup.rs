//! Pending delay messages seen from outside: the paged list, the state of
//! one by id, and recall (API.md "Produce", pending delay messages).
//!
//! An id from [`MessageId::scheduled`] names its queue, its journal offset
//! and its delivery time, so each lookup reads one journal record. Once
//! fired, the message is in its queue with the same id: it is found by
//! scanning the queue from its delivery time (fires go in delivery order,
//! so it is near), at most [`FIRED_SCAN`] messages.

use std::sync::Arc;

use shale_hot::{MessageId, Record};

use super::TimerQueue;
use super::index::{Key, Recall, TimerState};
use super::journal::{Entry, entry_of};
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};
use crate::queue_view::TieredQueue;
use crate::topics::{Durability, MessageType, Topic};

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
    /// The timers of `topic` queue `queue` if it has a journal here.
    async fn timers_if_any(
        &self,
        topic: &str,
        queue: u32,
    ) -> BrokerResult<Option<Arc<TimerQueue>>> {
        if self.timers.get(topic, queue).is_none() && !self.timers.has_journal(topic, queue) {
            return Ok(None);
        }
        self.timer_queue(topic, queue).await.map(Some)
    }

    /// How many delay messages of `topic` are pending here (journals found
    /// on disk and not opened yet are opened, so a restart does not show 0).
    pub async fn pending_timers(&self, topic: &str) -> BrokerResult<u64> {
        let t = self.topics.require(topic)?;
        let mut n = 0u64;
        for q in 0..t.queues() {
            if let Some(tq) = self.timers_if_any(&t.name, q).await? {
                n += tq.index.lock().pending_count() as u64;
            }
        }
        Ok(n)
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
        let mut found: Vec<(ListKey, Arc<TimerQueue>)> = Vec::new();
        if t.config().message_type == MessageType::Delay {
            for q in 0..t.queues() {
                let Some(tq) = self.timers_if_any(&t.name, q).await? else {
                    continue;
                };
                let after = cursor.map(|c| queue_after(c, q));
                let keys = match &key {
                    None => tq.index.lock().page(after, limit + 1),
                    Some(k) => pending_with_key(&tq, k, after, limit + 1).await?,
                };
                found.extend(keys.into_iter().map(|(at, seq)| ((at, q, seq), tq.clone())));
            }
        }
        found.sort_by_key(|(k, _)| *k);
        let more = found.len() > limit;
        found.truncate(limit);
        let next = more.then(|| cursor_of(found.last().expect("more than limit").0));
        let mut out = Vec::with_capacity(found.len());
        for ((at, q, seq), tq) in found {
            let j = tq.journal.clone();
            let Some(r) = tokio::task::spawn_blocking(move || j.read_one(seq)).await?? else {
                continue;
            };
            out.push(TimerInfo {
                message_id: r.message_id,
                queue: q,
                deliver_at_ms: at,
                tag: r.tag,
                keys: r.keys,
            });
        }
        Ok((t.name.clone(), out, next))
    }

    /// The delay message `id` of `topic` if it is one: pending or fired.
    pub async fn lookup_timer(&self, t: &Topic, id: MessageId) -> BrokerResult<TimerLookup> {
        if t.config().message_type != MessageType::Delay
            || !id.is_scheduled()
            || id.queue() >= t.queues()
        {
            return Ok(TimerLookup::Unknown);
        }
        let Some(tq) = self.timers_if_any(&t.name, id.queue()).await? else {
            return Ok(TimerLookup::Unknown);
        };
        if let Some(r) = journal_record(&tq, id).await? {
            let key = (id.store_ms(), id.offset());
            match tq.index.lock().state_of(key) {
                TimerState::Pending => return Ok(TimerLookup::Scheduled(r)),
                TimerState::Recalled => return Ok(TimerLookup::Unknown),
                TimerState::Delivered => {}
            }
        }
        Ok(match self.find_fired(&t.name, id).await? {
            Some(r) => TimerLookup::Delivered(r),
            None => TimerLookup::Unknown,
        })
    }

    /// Recalls the pending delay message `id`: 404 unknown (or recalled
    /// before), 409 MESSAGE_ALREADY_DELIVERED once it is in its queue.
    pub async fn recall_timer(&self, topic: &str, id: &str) -> BrokerResult<String> {
        let t = self.topics.require(topic)?;
        let message_id: MessageId = id
            .parse()
            .map_err(|e| BrokerError::invalid(format!("message id {id:?}: {e}")).with_source(e))?;
        let queue = message_id.queue();
        if queue < t.queues() {
            self.serve_queue(&t.name, queue).await?;
        }
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
                if t.config().durability >= Durability::Sync {
                    tq.journal.sync(tq.journal.max_offset()).await?;
                }
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

/// The journal record of the scheduled id `id`, if the journal still holds it.
async fn journal_record(tq: &Arc<TimerQueue>, id: MessageId) -> BrokerResult<Option<Record>> {
    let j = tq.journal.clone();
    let offset = id.offset();
    if offset < j.min_offset() || offset >= j.max_offset() {
        return Ok(None);
    }
    let r = tokio::task::spawn_blocking(move || j.read_one(offset)).await??;
    Ok(r.filter(|r| r.message_id == id))
}

/// Pending timers of `tq` carrying `key`, after `after`, at most `max`, in key order.
async fn pending_with_key(
    tq: &Arc<TimerQueue>,
    key: &str,
    after: Option<Key>,
    max: usize,
) -> BrokerResult<Vec<Key>> {
    let j = tq.journal.clone();
    let k = key.to_string();
    let records =
        tokio::task::spawn_blocking(move || j.find_by_key(&k, i64::MIN, i64::MAX, usize::MAX))
            .await??;
    let index = tq.index.lock();
    let mut keys: Vec<Key> = records
        .iter()
        .filter_map(|r| match entry_of(r) {
            Some(Entry::Timer(k)) => Some(k),
            _ => None,
        })
        .filter(|k| after.is_none_or(|a| *k > a))
        .filter(|k| index.state_of(*k) == TimerState::Pending)
        .collect();
    keys.sort_unstable();
    keys.truncate(max);
    Ok(keys)
}
