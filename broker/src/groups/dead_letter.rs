//! Dead-lettering: a message whose delivery attempts ran out is appended to
//! `%DLQ%{group}` (a NORMAL topic of 1 queue, SYNC, created on demand) — or
//! to the group's `dead_letter_topic` when it names an existing topic (the
//! queue of the message's group on a FIFO one, round-robin otherwise) — with
//! its origin in `shale.origin_topic`, `shale.origin_message_id` and
//! `shale.delivery_attempts`, and only then acked in its origin.
//!
//! Invariant: a message leaves its cursor only after it is fsynced in the
//! dead-letter topic. The cursor's claim ([`DeadLetterClaim`]) is reported
//! done after the append; if the append fails, or the receive is dropped
//! half-way, the claim is given back and the message stays deliverable. The
//! append runs under no lock (it may create a topic and write to the object
//! store). A crash between the append and the next checkpoint can put a
//! message in the dead-letter topic twice, never zero times.

use std::sync::Arc;

use shale_hot::{AppendRequest, Record};

use super::config::GroupConfig;
use super::cursor_map::CursorSlot;
use crate::broker::Broker;
use crate::error::BrokerResult;
use crate::topics::{Durability, MessageType, Topic, TopicConfig};

/// Prefix of the properties the dead-letter topic adds (an origin's own are replaced).
const ORIGIN_PREFIX: &str = "shale.origin_";

/// The dead-letter topic's name for `group`.
pub fn dlq_name(group: &str) -> String {
    format!("%DLQ%{group}")
}

/// A cursor's claim on one message being dead-lettered: given back when
/// dropped unless [`DeadLetterClaim::done`] reported the append durable.
#[derive(Debug)]
pub struct DeadLetterClaim<'a> {
    cursor: &'a CursorSlot,
    offset: u64,
    claim: u64,
    now: i64,
    settled: bool,
}

impl<'a> DeadLetterClaim<'a> {
    pub fn new(cursor: &'a CursorSlot, offset: u64, claim: u64, now: i64) -> Self {
        DeadLetterClaim {
            cursor,
            offset,
            claim,
            now,
            settled: false,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The append is durable: the message leaves the cursor.
    pub fn done(mut self) {
        self.settled = true;
        self.cursor.lock().dead_lettered(self.offset, self.claim);
    }
}

impl Drop for DeadLetterClaim<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.cursor
                .lock()
                .release_dead_letter(self.offset, self.claim, self.now);
        }
    }
}

/// Where a group's dead letters go: its `dead_letter_topic` while that
/// topic exists (a deleted one falls back, with a warning), else
/// `%DLQ%{group}`, created on demand.
async fn dlq_topic(state: &Arc<Broker>, group: &GroupConfig) -> BrokerResult<Arc<Topic>> {
    if let Some(target) = &group.dead_letter_topic {
        match state.topics.get(target) {
            Some(t) => return Ok(t),
            None => tracing::warn!(
                group = %group.name,
                topic = %target,
                "the group's dead_letter_topic does not exist; dead letters go to its %DLQ% topic"
            ),
        }
    }
    let name = dlq_name(&group.name);
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
    let topic = state.store_topic(cfg).await?;
    // The node serving its queue may be another one: it must learn the topic.
    state.announce_topic_change().await;
    Ok(topic)
}

/// The dead-letter copy of `record`: its properties, with its origin (and
/// its message group when the dead-letter topic is FIFO).
fn dead_letter_request(
    origin_topic: &str,
    record: &Record,
    attempts: u32,
    fifo: bool,
) -> AppendRequest {
    let mut properties: Vec<(String, String)> = record
        .properties
        .iter()
        .filter(|(k, _)| !k.starts_with(ORIGIN_PREFIX))
        .cloned()
        .collect();
    properties.push(("shale.origin_topic".into(), origin_topic.to_string()));
    properties.push((
        "shale.origin_message_id".into(),
        record.message_id.to_string(),
    ));
    properties.push(("shale.delivery_attempts".into(), attempts.to_string()));
    AppendRequest {
        born_ms: record.born_ms,
        deliver_at_ms: None,
        tag: record.tag.clone(),
        keys: record.keys.clone(),
        properties,
        message_group: if fifo {
            record.message_group.clone()
        } else {
            None
        },
        body: record.body.clone(),
    }
}

/// Appends `record` to `%DLQ%{group}` and waits for its fsync. Takes no cursor lock.
pub async fn dead_letter(
    state: &Arc<Broker>,
    group: &GroupConfig,
    origin_topic: &str,
    record: &Record,
    attempts: u32,
) -> BrokerResult<()> {
    let dlq = dlq_topic(state, group).await?;
    let fifo = dlq.config().message_type == MessageType::Fifo;
    let req = dead_letter_request(origin_topic, record, attempts, fifo);
    let queue = match (&req.message_group, dlq.queues()) {
        (_, 1) => 0,
        (Some(g), n) if fifo => crate::produce::queue_choice::group_queue(g, n),
        _ => dlq.next_round_robin(),
    };
    let (log, permit) = match state.queue_for_write(&dlq.name, queue).await {
        Ok(held) => held,
        // The dead-letter queue is served by another node: the copy goes there.
        Err(e) => match (e.elsewhere(), state.peer()) {
            (Some(at), Some(peer)) => {
                peer.append(&at.address, &dlq.name, queue, &req).await?;
                crate::metrics::dead_lettered(&group.name, origin_topic);
                return Ok(());
            }
            _ => return Err(e),
        },
    };
    let appender = log.clone();
    let appended = tokio::task::spawn_blocking(move || appender.append(&[req])).await??;
    if let Some(a) = appended.last() {
        log.sync(a.offset + 1).await?;
    }
    drop(permit);
    crate::metrics::dead_lettered(&group.name, origin_topic);
    Ok(())
}
