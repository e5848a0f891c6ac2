//! Receive, ack, change-invisibility, offsets and reset: the group cursors
//! driven over both tiers.
//!
//! A receive visits the topic's queues round-robin; in each it first hands
//! out what is due again (redeliveries after their backoff, FIFO messages
//! whose group is free, dead-letters), then new messages from the cursor's
//! `next`. It returns as soon as it has at least one message; otherwise it
//! waits (bounded by `wait_ms`) for new data, an ack/nack, or the next retry.
//! Dead-lettered messages are appended to `%DLQ%{group}` (1 queue, created on
//! demand) with `shale.origin_*` properties before they leave the cursor.

use std::sync::Arc;
use std::time::Duration;

use shale_hot::{AppendRequest, Record};

use super::CursorKey;
use super::config::{ConsumeFrom, ConsumeMode, GroupConfig, Position};
use super::cursor::{Decision, HandleError};
use super::filter::Filter;
use super::receipt::Receipt;
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};
use crate::queue_view::{Slot, TieredQueue};
use crate::topics::{Durability, MessageType, Topic, TopicConfig};

/// New records read from a queue per step.
const READ_CHUNK: usize = 256;
/// Most FIFO messages held back per queue before reading stops.
const MAX_HELD: usize = 10_000;

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

/// The receipt-handle key: read from the object store, created there once.
pub async fn secret(state: &Broker) -> BrokerResult<&[u8]> {
    let v = state
        .groups
        .secret
        .get_or_try_init(|| async {
            let store = state.tier.store();
            let path = state
                .tier
                .layout()
                .prefix()
                .child("secrets")
                .child("receipt-handle-key");
            for _ in 0..3 {
                match store.get(&path).await {
                    Ok(got) => {
                        let bytes = got.bytes().await.map_err(store_err)?;
                        if bytes.len() == 32 {
                            return Ok(bytes.to_vec());
                        }
                        return Err(BrokerError::internal(
                            "reading the receipt-handle key",
                            "it is not 32 bytes",
                        ));
                    }
                    Err(object_store::Error::NotFound { .. }) => {
                        let key: [u8; 32] = rand::random();
                        let opts = object_store::PutOptions {
                            mode: object_store::PutMode::Create,
                            ..Default::default()
                        };
                        match store.put_opts(&path, key.to_vec().into(), opts).await {
                            Ok(_) => return Ok(key.to_vec()),
                            // Another node (or an earlier try) created it: read theirs.
                            Err(object_store::Error::AlreadyExists { .. }) => continue,
                            Err(e) => return Err(store_err(e)),
                        }
                    }
                    Err(e) => return Err(store_err(e)),
                }
            }
            Err(BrokerError::unavailable(
                "could not read or create the receipt-handle key",
            ))
        })
        .await?;
    Ok(v.as_slice())
}

fn store_err(e: object_store::Error) -> BrokerError {
    BrokerError::unavailable("the object store is unavailable; retry later").with_source(e)
}

/// The group, created with defaults on first use.
pub async fn ensure_group(state: &Arc<Broker>, name: &str) -> BrokerResult<GroupConfig> {
    if let Some(g) = state.groups.get(name) {
        return Ok(g);
    }
    crate::validate::group_name(name)?;
    let _admin = state.groups.admin.lock().await;
    if let Some(g) = state.groups.get(name) {
        return Ok(g);
    }
    let cfg = GroupConfig::defaults(name);
    put_group(state, cfg).await
}

/// Stores a group's settings: the object store's copy first, then the local file.
pub async fn put_group(state: &Arc<Broker>, cfg: GroupConfig) -> BrokerResult<GroupConfig> {
    let path = state
        .tier
        .layout()
        .prefix()
        .child("groups")
        .child(cfg.name.as_str())
        .child("group.json");
    state
        .tier
        .store()
        .put(&path, super::encode(&cfg).into())
        .await
        .map_err(store_err)?;
    let st = state.clone();
    let c = cfg.clone();
    tokio::task::spawn_blocking(move || st.groups.put_blocking(&c))
        .await?
        .map_err(|e| BrokerError::internal("writing group settings", e))?;
    Ok(cfg)
}

fn key(group: &str, topic: &str, queue: u32, consumer: &str) -> CursorKey {
    CursorKey {
        group: group.to_string(),
        topic: topic.to_string(),
        queue,
        consumer: consumer.to_string(),
    }
}

/// Where a group starts on a queue it has never consumed.
async fn start_offset(from: ConsumeFrom, q: &TieredQueue) -> BrokerResult<u64> {
    Ok(match from {
        ConsumeFrom::Position(Position::Earliest) => q.min_offset(),
        ConsumeFrom::Timestamp { timestamp_ms } => q.offset_for_timestamp(timestamp_ms).await?,
        ConsumeFrom::Position(Position::Latest) | ConsumeFrom::Latest => q.max_offset(),
    })
}

fn fifo_key(topic: &TopicConfig, r: &Record) -> Option<u64> {
    if topic.message_type != MessageType::Fifo {
        return None;
    }
    let g = r.message_group.as_deref().unwrap_or("");
    Some(crate::produce::queue_choice::fnv1a(&[g.as_bytes()]))
}

/// Hands out up to `req.max_messages` messages, long-polling up to `req.wait`.
pub async fn receive(
    state: &Arc<Broker>,
    group: &GroupConfig,
    req: &ReceiveRequest,
) -> BrokerResult<Vec<Delivered>> {
    let deadline = tokio::time::Instant::now() + req.wait;
    loop {
        // Subscribe before looking, so that a message arriving in between still wakes us.
        let changed = state.groups.changed.notified();
        let mut watches = Vec::new();
        if !req.wait.is_zero() {
            for q in 0..req.topic.queues() {
                if let Ok(log) = state.queue_for_write(&req.topic.name, q).await {
                    watches.push(log.watch_max_offset());
                }
            }
        }
        let (got, next_retry_ms) = receive_once(state, group, req).await?;
        if !got.is_empty() || tokio::time::Instant::now() >= deadline || state.is_draining() {
            return Ok(got);
        }
        // Wait for new data in any queue, an ack/nack, the next retry, or the deadline.
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

/// One pass over the queues; also returns when the next retry falls due.
async fn receive_once(
    state: &Arc<Broker>,
    group: &GroupConfig,
    req: &ReceiveRequest,
) -> BrokerResult<(Vec<Delivered>, Option<i64>)> {
    let secret = secret(state).await?.to_vec();
    let topic_cfg = req.topic.config();
    let queues = topic_cfg.queues;
    let start = state
        .groups
        .round_robin
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let policy = group.retry_policy();
    let mut out = Vec::new();
    let mut next_retry: Option<i64> = None;
    for i in 0..queues {
        if out.len() >= req.max_messages {
            break;
        }
        let queue = (start.wrapping_add(i)) % queues;
        let deliver = |record, attempt, nonce, until| {
            let (topic, consumer) = (&topic_cfg.name, &req.consumer);
            delivered(
                &secret, group, topic, queue, consumer, record, attempt, nonce, until,
            )
        };
        let tq = TieredQueue::open(state, &topic_cfg.name, queue).await?;
        let k = key(&group.name, &topic_cfg.name, queue, &req.consumer);
        super::durable::ensure_cursor(state, &k, async || {
            start_offset(group.consume_from, &tq).await
        })
        .await?;
        let mut cursors = state.groups.cursors.lock().await;
        let Some(cursor) = cursors.get_mut(&k) else {
            continue;
        };
        if cursor.next < tq.min_offset() {
            cursor.skip_to(tq.min_offset());
        }
        let now = state.clock.now_ms();
        let want = req.max_messages - out.len();
        let due = cursor.due(now, want, req.invisible_ms, &policy, rand::random::<u64>);
        for d in due {
            match d {
                Decision::Deliver {
                    offset,
                    attempt,
                    nonce,
                    invisible_until,
                } => {
                    let Some(record) = readable(&tq, cursor, offset, &group.name).await? else {
                        continue;
                    };
                    out.push(deliver(record, attempt, nonce, invisible_until));
                }
                Decision::DeadLetter { offset, attempts } => {
                    let Some(record) = readable(&tq, cursor, offset, &group.name).await? else {
                        continue;
                    };
                    if let Err(e) =
                        dead_letter(state, group, &topic_cfg.name, &record, attempts).await
                    {
                        // Keep it: the next pass tries again.
                        cursor.pending.insert(
                            offset,
                            super::cursor::Pending {
                                attempts,
                                invisible_until: now,
                                nonce: 0,
                                fifo_group: fifo_key(&topic_cfg, &record),
                            },
                        );
                        return Err(e);
                    }
                }
            }
        }
        // New messages.
        let max_offset = tq.max_offset();
        while out.len() < req.max_messages
            && cursor.next < max_offset
            && cursor.held.len() < MAX_HELD
        {
            let from = cursor.next;
            let reader = tq.clone();
            // Without a filter every record read is delivered: read no more
            // than asked, or the rest is decoded again by the next receive.
            let chunk = match req.filter {
                Filter::Tag(ref t) if t.is_all() => (req.max_messages - out.len()).min(READ_CHUNK),
                _ => READ_CHUNK,
            };
            let records = match tokio::task::spawn_blocking(move || {
                reader.read_blocking(from, chunk, 4 << 20)
            })
            .await?
            {
                Ok(records) => records,
                // A read fails only on its first record: step over it if it is lost.
                Err(e) => match readable(&tq, cursor, from, &group.name).await? {
                    None if cursor.next > from => continue,
                    _ => return Err(e),
                },
            };
            if records.is_empty() {
                break;
            }
            for r in records {
                if out.len() >= req.max_messages || r.offset != cursor.next {
                    break;
                }
                let matches = req.filter.matches(&r);
                let nonce = rand::random::<u64>();
                if let Some(Decision::Deliver {
                    offset: _,
                    attempt,
                    nonce,
                    invisible_until,
                }) = cursor.offer(
                    r.offset,
                    matches,
                    fifo_key(&topic_cfg, &r),
                    now,
                    req.invisible_ms,
                    nonce,
                ) {
                    out.push(deliver(r, attempt, nonce, invisible_until));
                }
            }
        }
        if let Some(at) = cursor.next_retry_at(&policy) {
            next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
        }
    }
    Ok((out, next_retry))
}

/// The record at `offset` for a delivery, or `None` when the queue cannot
/// return it: gone (retention), or lost to damage before upload. Either way
/// the cursor forgets it (it counts as consumed); a lost one is logged and
/// counted (`shale_group_lost_skipped_total`). An error (object store down)
/// leaves the cursor as it was, for a later receive to retry.
async fn readable(
    tq: &TieredQueue,
    cursor: &mut super::cursor::Cursor,
    offset: u64,
    group: &str,
) -> BrokerResult<Option<Record>> {
    match tq.read_slot(offset).await? {
        Slot::Message(r) => Ok(Some(r)),
        Slot::Absent => {
            cursor.forget(offset);
            Ok(None)
        }
        Slot::Lost(e) => {
            tracing::error!(
                group,
                topic = %tq.topic,
                queue = tq.queue,
                offset,
                error = %e,
                "message lost to damage before upload; the group steps over it"
            );
            crate::metrics::lost_skipped(group, &tq.topic);
            cursor.forget(offset);
            Ok(None)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn delivered(
    secret: &[u8],
    group: &GroupConfig,
    topic: &str,
    queue: u32,
    consumer: &str,
    record: Record,
    attempt: u32,
    nonce: u64,
    invisible_until: i64,
) -> Delivered {
    let receipt = Receipt {
        group: group.name.clone(),
        topic: topic.to_string(),
        queue,
        offset: record.offset,
        attempt,
        nonce,
        consumer: consumer.to_string(),
    };
    Delivered {
        queue,
        receipt_handle: receipt.encode(secret),
        record,
        attempt,
        invisible_until_ms: invisible_until,
    }
}

/// The dead-letter topic of a group, created on demand.
async fn dlq_topic(state: &Arc<Broker>, group: &str) -> BrokerResult<Arc<Topic>> {
    let name = format!("%DLQ%{group}");
    if let Some(t) = state.topics.get(&name) {
        return Ok(t);
    }
    let _admin = state.topics.admin.lock().await;
    if let Some(t) = state.topics.get(&name) {
        return Ok(t);
    }
    let cfg = TopicConfig {
        name: name.clone(),
        queues: 1,
        message_type: MessageType::Normal,
        retention_ms: crate::topics::DEFAULT_RETENTION_MS,
        durability: Durability::Sync,
        created_ms: state.clock.now_ms(),
    };
    let t = state.store_topic(cfg).await?;
    Ok(t)
}

/// Appends `record` to `%DLQ%{group}` (fsynced) with its origin.
async fn dead_letter(
    state: &Arc<Broker>,
    group: &GroupConfig,
    origin_topic: &str,
    record: &Record,
    attempts: u32,
) -> BrokerResult<()> {
    let dlq = dlq_topic(state, &group.name).await?;
    let mut properties: Vec<(String, String)> = record
        .properties
        .iter()
        .filter(|(k, _)| !k.starts_with("shale.origin_"))
        .cloned()
        .collect();
    properties.push(("shale.origin_topic".into(), origin_topic.to_string()));
    properties.push((
        "shale.origin_message_id".into(),
        record.message_id.to_string(),
    ));
    properties.push(("shale.delivery_attempts".into(), attempts.to_string()));
    let req = AppendRequest {
        born_ms: record.born_ms,
        deliver_at_ms: None,
        tag: record.tag.clone(),
        keys: record.keys.clone(),
        properties,
        message_group: None,
        body: record.body.clone(),
    };
    let log = state.queue_for_write(&dlq.name, 0).await?;
    let appender = log.clone();
    let appended = tokio::task::spawn_blocking(move || appender.append(&[req])).await??;
    if let Some(a) = appended.last() {
        log.sync(a.offset + 1).await?;
    }
    crate::metrics::dead_lettered(&group.name, origin_topic);
    Ok(())
}

/// Outcome of one handle of an ack.
#[derive(Debug)]
pub enum AckOutcome {
    Ok,
    Err(BrokerError),
}

fn invalid_handle(why: &str) -> BrokerError {
    BrokerError::new(
        ErrorCode::InvalidReceiptHandle,
        format!("invalid receipt handle: {why}"),
    )
}

fn expired() -> BrokerError {
    BrokerError::new(
        ErrorCode::ReceiptHandleExpired,
        "the receipt handle has expired: the message became visible again or was delivered again",
    )
}

/// Verifies a handle for `group`/`topic`.
async fn verify(state: &Broker, group: &str, topic: &str, handle: &str) -> BrokerResult<Receipt> {
    let secret = secret(state).await?;
    let r = Receipt::decode(handle, secret).ok_or_else(|| invalid_handle("forged or malformed"))?;
    if r.group != group {
        return Err(invalid_handle("it belongs to another group"));
    }
    if r.topic != topic {
        return Err(invalid_handle("it belongs to another topic"));
    }
    Ok(r)
}

/// Acks each handle; one outcome per handle, in order.
pub async fn ack(
    state: &Broker,
    group: &str,
    topic: &str,
    handles: &[String],
) -> BrokerResult<Vec<AckOutcome>> {
    // Verify every handle first, restore each cursor they name once, then
    // apply all acks under one lock.
    let mut checked = Vec::with_capacity(handles.len());
    let mut keys = std::collections::BTreeSet::new();
    for h in handles {
        match verify(state, group, topic, h).await {
            Ok(r) => {
                keys.insert(key(&r.group, &r.topic, r.queue, &r.consumer));
                checked.push(Ok(r));
            }
            Err(e) if e.code() == ErrorCode::InvalidReceiptHandle => checked.push(Err(e)),
            Err(e) => return Err(e),
        }
    }
    for k in &keys {
        super::durable::restore_if_checkpointed(state, k).await?;
    }
    let now = state.clock.now_ms();
    let mut freed_fifo = false;
    let mut cursors = state.groups.cursors.lock().await;
    let out = checked
        .into_iter()
        .map(|c| {
            let r = match c {
                Ok(r) => r,
                Err(e) => return AckOutcome::Err(e),
            };
            let res = cursors
                .get_mut(&key(&r.group, &r.topic, r.queue, &r.consumer))
                .ok_or(HandleError::Expired)
                .and_then(|c| {
                    freed_fifo |= !c.held.is_empty();
                    c.ack(r.offset, r.attempt, r.nonce, now)
                });
            match res {
                Ok(()) => AckOutcome::Ok,
                Err(HandleError::Expired) => AckOutcome::Err(expired()),
            }
        })
        .collect();
    drop(cursors);
    // Only a FIFO hold can turn deliverable because of an ack: wake waiting
    // receives then, not on every ack.
    if freed_fifo {
        state.groups.changed.notify_waiters();
    }
    Ok(out)
}

/// Changes a delivery's invisibility; returns the new handle and its deadline.
pub async fn change_invisibility(
    state: &Broker,
    group: &str,
    topic: &str,
    handle: &str,
    invisible_ms: i64,
) -> BrokerResult<(String, i64)> {
    let r = verify(state, group, topic, handle).await?;
    let now = state.clock.now_ms();
    let nonce = rand::random::<u64>();
    let k = key(&r.group, &r.topic, r.queue, &r.consumer);
    super::durable::restore_if_checkpointed(state, &k).await?;
    let until = {
        let mut cursors = state.groups.cursors.lock().await;
        cursors
            .get_mut(&key(&r.group, &r.topic, r.queue, &r.consumer))
            .ok_or(HandleError::Expired)
            .and_then(|c| {
                c.change_invisibility(r.offset, r.attempt, r.nonce, now, invisible_ms, nonce)
            })
            .map_err(|_| expired())?
    };
    state.groups.changed.notify_waiters();
    let secret = secret(state).await?;
    Ok((Receipt { nonce, ..r }.encode(secret), until))
}

/// A queue's offsets for a group.
#[derive(Debug, serde::Serialize)]
pub struct QueueOffsets {
    pub queue: u32,
    pub committed_offset: u64,
    pub max_offset: u64,
    pub lag: u64,
    pub inflight: u64,
}

/// Offsets of every queue of `topic` for the group (a queue never consumed
/// reports where the group would start).
pub async fn offsets(
    state: &Arc<Broker>,
    group: &GroupConfig,
    topic: &Topic,
    consumer: &str,
) -> BrokerResult<Vec<QueueOffsets>> {
    let mut out = Vec::new();
    let now = state.clock.now_ms();
    for queue in 0..topic.queues() {
        let tq = TieredQueue::open(state, &topic.name, queue).await?;
        let max_offset = tq.max_offset();
        let k = key(&group.name, &topic.name, queue, consumer);
        let known = state
            .groups
            .cursors
            .lock()
            .await
            .get(&k)
            .map(|c| (c.committed, c.inflight(now) as u64));
        let (committed, inflight) = match known {
            Some(v) => v,
            None => match super::durable::peek(state, &k).await? {
                Some(c) => (c.committed, c.inflight(now) as u64),
                None => (start_offset(group.consume_from, &tq).await?, 0),
            },
        };
        let committed = committed.max(tq.min_offset()).min(max_offset);
        out.push(QueueOffsets {
            queue,
            committed_offset: committed,
            max_offset,
            lag: max_offset - committed,
            inflight,
        });
    }
    Ok(out)
}

/// Where a reset moves the group.
#[derive(Debug, Clone)]
pub enum ResetTo {
    Timestamp(i64),
    Earliest,
    Latest,
    Offsets(Vec<(u32, u64)>),
}

/// Moves the group's cursors on `topic` (backtracking or skipping); deliveries
/// in flight are forgotten. Returns the new offsets.
pub async fn reset(
    state: &Arc<Broker>,
    group: &GroupConfig,
    topic: &Topic,
    consumer: &str,
    to: ResetTo,
) -> BrokerResult<Vec<QueueOffsets>> {
    let mut targets = Vec::new();
    for queue in 0..topic.queues() {
        let tq = TieredQueue::open(state, &topic.name, queue).await?;
        let target = match &to {
            ResetTo::Timestamp(ts) => Some(tq.offset_for_timestamp(*ts).await?),
            ResetTo::Earliest => Some(tq.min_offset()),
            ResetTo::Latest => Some(tq.max_offset()),
            ResetTo::Offsets(list) => match list.iter().find(|(q, _)| *q == queue) {
                Some((_, o)) if *o < tq.min_offset() || *o > tq.max_offset() => {
                    return Err(BrokerError::new(
                        ErrorCode::OffsetOutOfRange,
                        format!(
                            "offset {o} of queue {queue} is outside [{}, {}]",
                            tq.min_offset(),
                            tq.max_offset()
                        ),
                    ));
                }
                Some((_, o)) => Some(*o),
                None => None,
            },
        };
        if let Some(t) = target {
            targets.push((queue, t));
        }
    }
    if let ResetTo::Offsets(list) = &to
        && let Some((q, _)) = list.iter().find(|(q, _)| *q >= topic.queues())
    {
        return Err(BrokerError::invalid(format!(
            "queue {q} does not exist: topic {:?} has {} queues",
            topic.name,
            topic.queues()
        )));
    }
    {
        for (queue, t) in targets {
            let k = key(&group.name, &topic.name, queue, consumer);
            super::durable::ensure_cursor(state, &k, async || Ok(t)).await?;
            if let Some(c) = state.groups.cursors.lock().await.get_mut(&k) {
                c.reset(t);
            }
        }
    }
    state.groups.changed.notify_waiters();
    offsets(state, group, topic, consumer).await
}

/// The consumer id a request must carry in its group's mode.
pub fn consumer_for(group: &GroupConfig, consumer_id: Option<&str>) -> BrokerResult<String> {
    match group.consume_mode {
        ConsumeMode::Clustering => Ok(String::new()),
        ConsumeMode::Broadcasting => {
            let id = consumer_id.ok_or_else(|| {
                BrokerError::invalid("consumer_id is required in BROADCASTING mode")
            })?;
            if id.is_empty() || id.len() > 128 || id.contains('\n') {
                return Err(BrokerError::invalid(
                    "consumer_id must be 1-128 bytes without newlines",
                ));
            }
            Ok(id.to_string())
        }
    }
}
