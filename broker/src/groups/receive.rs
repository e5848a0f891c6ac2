//! Receive: hands out messages of a topic to a group, over both tiers.
//!
//! A pass visits the topic's queues round-robin; in each it first hands out
//! what is due again (redeliveries after their backoff, FIFO messages whose
//! group is free, dead-letters), then new messages from the cursor's `next`.
//! A receive returns as soon as a pass has at least one message; otherwise it
//! waits (bounded by `wait_ms`) for new data, an ack/nack, a released read
//! claim, or the next retry — subscribing to each before it looks, so that
//! nothing arriving in between is missed.
//!
//! Read committed: "new data" is the queue's visible end moving
//! ([`crate::visible_end`]; for SYNC topics the fsync, not the append), and a
//! cursor never claims, reads or offers an offset at or past the visible end
//! (the [`TieredQueue`] stops there), so no consumer acts on a message a
//! crash could take back.
//!
//! Locking (see `cursor_map`): every step is lock the cursor → decide →
//! unlock → read (I/O) → lock → commit, where the commit re-checks the
//! decision: a redelivery is handed out only if it is still the delivery in
//! flight (same attempt and nonce), and new records are offered only while
//! this receive still holds the cursor's read claim with `next` unmoved. So
//! a message is in flight to at most one receiver, FIFO holds per message
//! group, and `committed` moves only over acked, filtered, forgotten or
//! dead-lettered offsets — while a slow cold read holds up only its own receive.

use std::sync::Arc;
use std::time::Duration;

use shale_hot::Record;

use super::CursorKey;
use super::config::GroupConfig;
use super::cursor::{Decision, RedeliveryPolicy};
use super::cursor_map::CursorSlot;
use super::dead_letter::{DeadLetterClaim, dead_letter};
use super::filter::Filter;
use super::offsets::start_offset;
use super::receipt::Receipt;
use super::secret::secret;
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, error_chain};
use crate::queue_view::{Slot, TieredQueue};
use crate::topics::{MessageType, Topic, TopicConfig};
use crate::visible_end::Watermark;

/// New records read from a queue per step.
const READ_CHUNK: usize = 256;
/// Most bytes of new records read from a queue per step.
const READ_BUDGET_BYTES: usize = 4 << 20;
/// Most FIFO messages held back per queue before reading stops.
const MAX_HELD: usize = 10_000;
/// How long a receive that found nothing, because another receive was
/// reading the new messages of a queue, waits for that read to end before it
/// looks once more — also with `wait_ms` 0, so that a short poll does not
/// answer empty while messages are there. A read takes one chunk's I/O.
const CLAIM_WAIT: Duration = Duration::from_secs(2);

/// One delivered message.
#[derive(Debug)]
pub struct Delivered {
    pub queue: u32,
    pub record: Record,
    pub receipt_handle: String,
    pub attempt: u32,
    pub invisible_until_ms: i64,
}

/// A receive request, checked.
#[derive(Debug)]
pub struct ReceiveRequest {
    pub topic: Arc<Topic>,
    pub max_messages: usize,
    pub invisible_ms: i64,
    pub wait: Duration,
    pub filter: Filter,
    /// Empty in CLUSTERING mode.
    pub consumer: String,
}

/// Hands out up to `req.max_messages` messages, long-polling up to `req.wait`.
pub async fn receive(
    state: &Arc<Broker>,
    group: &GroupConfig,
    req: &ReceiveRequest,
) -> BrokerResult<Vec<Delivered>> {
    let mut deadline = tokio::time::Instant::now() + req.wait;
    let mut waited_for_claim = false;
    loop {
        // Subscribe before looking, so that a message arriving in between still wakes us.
        let changed = state.groups.changed.notified();
        let mut watches = Vec::new();
        if !req.wait.is_zero() {
            let watermark = Watermark::of(req.topic.durability());
            for q in 0..req.topic.queues() {
                if let Ok(log) = state.queue_to_watch(&req.topic.name, q).await {
                    watches.push(watermark.watch(&log));
                }
            }
        }
        let outcome = Pass::new(state, group, req).await?.run().await?;
        let (got, next_retry_ms) = (outcome.delivered, outcome.next_retry_ms);
        let now = tokio::time::Instant::now();
        if !got.is_empty() || state.is_draining() {
            return Ok(got);
        }
        if now >= deadline {
            if !outcome.turned_away || waited_for_claim {
                return Ok(got);
            }
            // Another receive was reading new messages we could have had:
            // wait for its read to end (its claim release wakes `changed`), once.
            waited_for_claim = true;
            deadline = now + CLAIM_WAIT;
        }
        // Wait for new visible data in any queue, an ack/nack, the next retry, or the deadline.
        let has_watches = !watches.is_empty();
        let data = async {
            let futs = watches.iter_mut().map(|w| Box::pin(w.changed()));
            // A closed watch (queue removed) also ends the wait: the next pass re-checks.
            let _ = futures::future::select_all(futs).await;
        };
        let retry_in = next_retry_ms
            .map(|at| Duration::from_millis(at.saturating_sub(state.clock.now_ms()).max(1) as u64));
        let retry = async {
            match retry_in {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = data, if has_watches => {}
            _ = changed => {}
            _ = retry => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = state.drained() => {}
        }
    }
}

/// What one pass found.
struct PassOutcome {
    delivered: Vec<Delivered>,
    /// When the next redelivery falls due.
    next_retry_ms: Option<i64>,
    /// A queue's new messages were being read by another receive.
    turned_away: bool,
}

/// One queue of a pass: both tiers, and the group's cursor on it.
struct QueueVisit {
    queue: u32,
    tq: TieredQueue,
    cursor: CursorSlot,
}

/// One pass over the queues of a receive.
struct Pass<'a> {
    state: &'a Arc<Broker>,
    group: &'a GroupConfig,
    req: &'a ReceiveRequest,
    topic: TopicConfig,
    secret: Vec<u8>,
    policy: RedeliveryPolicy,
    out: Vec<Delivered>,
    /// A dead-letter append that failed this pass (the message stays deliverable).
    dead_letter_error: Option<BrokerError>,
    /// Another receive held a queue's read claim.
    turned_away: bool,
}

impl<'a> Pass<'a> {
    async fn new(
        state: &'a Arc<Broker>,
        group: &'a GroupConfig,
        req: &'a ReceiveRequest,
    ) -> BrokerResult<Pass<'a>> {
        Ok(Pass {
            state,
            group,
            req,
            topic: req.topic.config(),
            secret: secret(state).await?.to_vec(),
            policy: group.redelivery_policy(),
            out: Vec::new(),
            dead_letter_error: None,
            turned_away: false,
        })
    }

    fn wanted(&self) -> usize {
        self.req.max_messages.saturating_sub(self.out.len())
    }

    /// Visits every queue once; returns the deliveries and when the next
    /// retry falls due. A failed dead-letter append is the pass's error only
    /// when it delivered nothing else.
    async fn run(mut self) -> BrokerResult<PassOutcome> {
        let queues = self.topic.queues;
        let start = self
            .state
            .groups
            .round_robin
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut next_retry: Option<i64> = None;
        for i in 0..queues {
            if self.wanted() == 0 {
                break;
            }
            let Some(visit) = self.visit(start.wrapping_add(i) % queues).await? else {
                continue;
            };
            self.hand_out_due(&visit).await?;
            self.hand_out_new(&visit).await?;
            if let Some(at) = visit.cursor.lock().next_retry_at(&self.policy) {
                next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
            }
        }
        if self.out.is_empty()
            && let Some(e) = self.dead_letter_error
        {
            return Err(e);
        }
        Ok(PassOutcome {
            delivered: self.out,
            next_retry_ms: next_retry,
            turned_away: self.turned_away,
        })
    }

    /// Opens the queue and makes sure its cursor is in memory (I/O, no lock
    /// held); `None` when the cursor was fenced away right after its restore
    /// (the next pass restores it from its new owner).
    async fn visit(&self, queue: u32) -> BrokerResult<Option<QueueVisit>> {
        // Queues served by other nodes are theirs to deliver (the front-end gathers).
        match self.state.serve_queue(&self.topic.name, queue).await {
            Ok(()) => {}
            Err(BrokerError::NotOwner { .. } | BrokerError::Unavailable { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let tq = TieredQueue::open(self.state, &self.topic.name, queue).await?;
        let k = CursorKey::new(
            &self.group.name,
            &self.topic.name,
            queue,
            &self.req.consumer,
        );
        super::durable::ensure_cursor(self.state, &k, async || {
            start_offset(self.group.consume_from, &tq).await
        })
        .await?;
        let Some(cursor) = self.state.groups.cursors.get(&k) else {
            return Ok(None);
        };
        Ok(Some(QueueVisit { queue, tq, cursor }))
    }

    /// Redeliveries, freed FIFO messages and dead-letters due now.
    async fn hand_out_due(&mut self, v: &QueueVisit) -> BrokerResult<()> {
        let now = self.state.clock.now_ms();
        let decisions = {
            let mut c = v.cursor.lock();
            let min = v.tq.min_offset();
            if c.next < min {
                c.skip_to(min);
            }
            c.due(
                now,
                self.wanted(),
                self.req.invisible_ms,
                &self.policy,
                rand::random::<u64>,
            )
        };
        // Claims first, before any I/O: an error or a dropped receive gives
        // every claim of this pass back.
        let mut dead = Vec::new();
        let mut deliveries = Vec::new();
        for d in decisions {
            match d {
                Decision::DeadLetter {
                    offset,
                    attempts,
                    claim,
                } => dead.push((
                    DeadLetterClaim::new(&v.cursor, offset, claim, now),
                    attempts,
                )),
                Decision::Deliver { .. } => deliveries.push(d),
            }
        }
        for d in deliveries {
            let Decision::Deliver {
                offset,
                attempt,
                nonce,
                invisible_until,
            } = d
            else {
                continue;
            };
            let Some(record) = read_or_forget(&v.tq, &v.cursor, offset, &self.group.name).await?
            else {
                continue;
            };
            // A reset while we read replaced this delivery: hand nothing out.
            if v.cursor.lock().is_delivery(offset, attempt, nonce) {
                self.push(v.queue, record, attempt, nonce, invisible_until);
            }
        }
        for (claim, attempts) in dead {
            self.dead_letter_one(v, claim, attempts).await?;
        }
        Ok(())
    }

    /// Appends one exhausted message to the dead-letter topic (no lock held);
    /// a failed append is logged and the message stays deliverable.
    async fn dead_letter_one(
        &mut self,
        v: &QueueVisit,
        claim: DeadLetterClaim<'_>,
        attempts: u32,
    ) -> BrokerResult<()> {
        let offset = claim.offset();
        let Some(record) = read_or_forget(&v.tq, &v.cursor, offset, &self.group.name).await? else {
            return Ok(());
        };
        match dead_letter(self.state, self.group, &self.topic.name, &record, attempts).await {
            Ok(()) => claim.done(),
            Err(e) => {
                tracing::warn!(
                    group = %self.group.name,
                    topic = %self.topic.name,
                    queue = v.queue,
                    offset,
                    error = %error_chain(&e),
                    "dead-lettering failed; the message stays deliverable"
                );
                self.dead_letter_error.get_or_insert(e);
            }
        }
        Ok(())
    }

    /// New messages from the cursor's `next`, a chunk at a time, under the
    /// cursor's read claim; nothing is claimed at or past the visible end.
    async fn hand_out_new(&mut self, v: &QueueVisit) -> BrokerResult<()> {
        let max_offset = v.tq.max_offset();
        while self.wanted() > 0 {
            let claim = self.state.groups.next_claim();
            let from = {
                let mut c = v.cursor.lock();
                if c.next >= max_offset || c.held.len() >= MAX_HELD {
                    return Ok(());
                }
                match c.claim_read(claim) {
                    Some(from) => from,
                    // Another receive is reading this queue; it wakes us when done.
                    None => {
                        self.turned_away = true;
                        return Ok(());
                    }
                }
            };
            let _claim = ReadClaim {
                cursor: &v.cursor,
                claim,
                changed: &self.state.groups.changed,
            };
            let Some(records) = self.read_new(v, from).await? else {
                continue;
            };
            if records.is_empty() {
                return Ok(());
            }
            if !self.offer(v, claim, from, records) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads new records from `from` (I/O, no lock held). `None`: the record
    /// at `from` is gone or lost and the cursor stepped over it (read again).
    async fn read_new(&self, v: &QueueVisit, from: u64) -> BrokerResult<Option<Vec<Record>>> {
        let reader = v.tq.clone();
        // Without a filter every record read is delivered: read no more
        // than asked, or the rest is decoded again by the next receive.
        let chunk = match self.req.filter {
            Filter::Tag(ref t) if t.is_all() => self.wanted().min(READ_CHUNK),
            _ => READ_CHUNK,
        };
        let read = tokio::task::spawn_blocking(move || {
            reader.read_blocking(from, chunk, READ_BUDGET_BYTES)
        })
        .await?;
        match read {
            Ok(records) => Ok(Some(records)),
            // A read fails only on its first record: step over it if it is lost.
            Err(e) => match read_or_forget(&v.tq, &v.cursor, from, &self.group.name).await? {
                None if v.cursor.lock().next > from => Ok(None),
                _ => Err(e),
            },
        }
    }

    /// Offers what was read from `from` to the cursor, if this receive's
    /// claim still holds; false when it does not (a reset came in between).
    fn offer(&mut self, v: &QueueVisit, claim: u64, from: u64, records: Vec<Record>) -> bool {
        let now = self.state.clock.now_ms();
        let mut c = v.cursor.lock();
        if !c.holds_read(claim, from) {
            return false;
        }
        let mut handed = Vec::new();
        for r in records {
            if handed.len() >= self.wanted() || r.offset != c.next {
                break;
            }
            let matches = self.req.filter.matches(&r);
            let fifo = fifo_key(&self.topic, &r);
            let offered = c.offer(
                r.offset,
                matches,
                fifo,
                now,
                self.req.invisible_ms,
                rand::random::<u64>(),
            );
            if let Some(Decision::Deliver {
                attempt,
                nonce,
                invisible_until,
                ..
            }) = offered
            {
                handed.push((r, attempt, nonce, invisible_until));
            }
        }
        drop(c);
        for (r, attempt, nonce, until) in handed {
            self.push(v.queue, r, attempt, nonce, until);
        }
        true
    }

    fn push(&mut self, queue: u32, record: Record, attempt: u32, nonce: u64, until: i64) {
        let receipt = Receipt {
            group: self.group.name.clone(),
            topic: self.topic.name.clone(),
            queue,
            offset: record.offset,
            attempt,
            nonce,
            consumer: self.req.consumer.clone(),
        };
        self.out.push(Delivered {
            queue,
            receipt_handle: receipt.encode(&self.secret),
            record,
            attempt,
            invisible_until_ms: until,
        });
    }
}

/// A receive's claim on reading a cursor's new offsets, let go when dropped
/// (also when the receive is cancelled); wakes receives it turned away.
struct ReadClaim<'a> {
    cursor: &'a CursorSlot,
    claim: u64,
    changed: &'a tokio::sync::Notify,
}

impl Drop for ReadClaim<'_> {
    fn drop(&mut self) {
        let contended = self.cursor.lock().release_read(self.claim);
        if contended {
            self.changed.notify_waiters();
        }
    }
}

/// The FIFO group key of a record of a FIFO topic.
fn fifo_key(topic: &TopicConfig, r: &Record) -> Option<u64> {
    if topic.message_type != MessageType::Fifo {
        return None;
    }
    let g = r.message_group.as_deref().unwrap_or("");
    Some(crate::produce::queue_choice::fnv1a(&[g.as_bytes()]))
}

/// Reads the record at `offset` for a delivery (no lock held), or `None` when
/// the queue cannot return it — gone (retention), or lost to damage before
/// upload — in which case it makes the cursor forget it (it counts as
/// consumed); a lost one is logged and counted
/// (`shale_group_lost_skipped_total`). An error (object store down) leaves
/// the cursor as it was, for a later receive to retry.
async fn read_or_forget(
    tq: &TieredQueue,
    cursor: &CursorSlot,
    offset: u64,
    group: &str,
) -> BrokerResult<Option<Record>> {
    match tq.read_slot(offset).await? {
        Slot::Message(r) => Ok(Some(r)),
        Slot::Absent => {
            cursor.lock().forget(offset);
            Ok(None)
        }
        Slot::Lost(e) => {
            tracing::error!(
                group,
                topic = %tq.topic,
                queue = tq.queue,
                offset,
                error = %error_chain(&e),
                "message lost to damage before upload; the group steps over it"
            );
            crate::metrics::lost_skipped(group, &tq.topic);
            cursor.lock().forget(offset);
            Ok(None)
        }
    }
}
