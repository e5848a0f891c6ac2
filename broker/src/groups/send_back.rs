//! Sending a dead-letter message back to its origin topic (a DLQ redrive,
//! as SQS's and the RocketMQ dashboard's "resend").
//!
//! A message of `%DLQ%{group}` is produced again to the topic named by its
//! `shale.origin_topic`, as a new message (new id and offset, born now)
//! with the copy's body, tag, keys and user properties (the `shale.*` ones
//! are dropped) plus `shale.sent_back_from` = the dead-letter message's id,
//! at the origin topic's durability. Then a record of it is stored
//! create-only in the object store (`topics/{dlq}/sent-back/{id}.json`, see
//! `shale_tiering::paths`), which marks the dead-letter message handled.
//!
//! Invariants: a message is sent back at most once per record: a second
//! send-back answers the record of the first (`repeated`) and stores
//! nothing. The produce carries the `dedup_id` `shale-send-back-{id}`, so
//! a send-back interrupted between its produce and its record and retried
//! within the dedup window (5 minutes) answers the same message rather than
//! a second copy. The dead-letter message itself stays (a queue is
//! append-only; retention removes it). Origins of type FIFO (the copy has
//! no `message_group` left) and TRANSACTION (only half messages go in) are
//! refused with MESSAGE_TYPE_MISMATCH.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult};
use crate::produce::{MessageInput, ProduceBatch};
use crate::topics::MessageType;
use crate::validate::RESERVED_PROPERTY_PREFIX;

/// Prefix of the dead-letter topics.
pub const DLQ_PREFIX: &str = "%DLQ%";
/// Property of a sent-back message naming the dead-letter message it came from.
pub const SENT_BACK_FROM: &str = "shale.sent_back_from";

/// The record of one send-back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentBack {
    /// The dead-letter message.
    pub dlq_message_id: String,
    /// Where it went.
    pub topic: String,
    pub message_id: String,
    pub queue: u32,
    pub offset: u64,
    pub sent_back_ms: i64,
    /// This answer repeats an earlier send-back (nothing was stored now).
    #[serde(skip)]
    pub repeated: bool,
}

impl Broker {
    /// The origin topic of dead-letter message `id` of `dlq` (read from its
    /// `shale.origin_topic`).
    pub async fn dead_letter_origin(&self, dlq: &str, id: &str) -> BrokerResult<String> {
        let (_, record) = self.dead_letter_message(dlq, id).await?;
        origin_of(&record)
    }

    /// Sends dead-letter message `id` of `dlq` back to its origin topic
    /// (see the module doc); a repeated call answers the first record.
    pub async fn send_back(self: &Arc<Self>, dlq: &str, id: &str) -> BrokerResult<SentBack> {
        let (dlq, record) = self.dead_letter_message(dlq, id).await?;
        if let Some(done) = self.sent_back_record(&dlq, id).await? {
            return Ok(SentBack {
                repeated: true,
                ..done
            });
        }
        let origin = origin_of(&record)?;
        let topic = self.topics.require(&origin)?;
        let kind = topic.config().message_type;
        if matches!(kind, MessageType::Fifo | MessageType::Transaction) {
            return Err(BrokerError::mismatch(format!(
                "topic {origin:?} is {kind:?}: a dead-letter copy cannot be sent back to it \
                 (FIFO needs the message_group the copy no longer has; TRANSACTION takes only half messages)"
            )));
        }
        let mut properties: Vec<(String, String)> = record
            .properties
            .iter()
            .filter(|(k, _)| !k.starts_with(RESERVED_PROPERTY_PREFIX))
            .cloned()
            .collect();
        properties.push((SENT_BACK_FROM.to_string(), id.to_string()));
        let input = MessageInput {
            body: record.body.clone(),
            tag: record.tag.clone(),
            keys: record.keys.clone(),
            properties,
            dedup_id: Some(format!("shale-send-back-{id}")),
            ..Default::default()
        };
        let batch = ProduceBatch {
            messages: vec![input],
            transaction: None,
        };
        let produced = self.producer(&topic.name)?.produce(batch).await?;
        let Some(p) = produced.first() else {
            return Err(BrokerError::internal(
                "sending back a dead-letter message",
                "the produce answered no result",
            ));
        };
        let done = SentBack {
            dlq_message_id: id.to_string(),
            topic: topic.name.clone(),
            message_id: p.message_id.to_string(),
            queue: p.queue,
            offset: p.offset,
            sent_back_ms: self.clock.now_ms(),
            repeated: false,
        };
        let json = serde_json::to_vec(&done)
            .map_err(|e| BrokerError::internal("encoding a send-back record", e))?;
        match self
            .tier
            .create_sent_back(&dlq, id, Bytes::from(json))
            .await?
        {
            None => Ok(done),
            // Another send-back of the same message was recorded first.
            Some(first) => Ok(SentBack {
                repeated: true,
                ..decode(&first)?
            }),
        }
    }

    /// The record of dead-letter message `id` of `dlq` having been sent
    /// back; MESSAGE_NOT_FOUND when it was not (or is unknown).
    pub async fn sent_back(&self, dlq: &str, id: &str) -> BrokerResult<SentBack> {
        let t = self.dead_letter_topic(dlq)?;
        id.parse::<crate::MessageId>()
            .map_err(|e| BrokerError::invalid(format!("message id {id:?}: {e}")).with_source(e))?;
        self.sent_back_record(&t, id).await?.ok_or_else(|| {
            BrokerError::new(
                crate::ErrorCode::MessageNotFound,
                format!("dead-letter message {id} of {t:?} was not sent back"),
            )
        })
    }

    async fn sent_back_record(&self, dlq: &str, id: &str) -> BrokerResult<Option<SentBack>> {
        match self.tier.sent_back(dlq, id).await? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The canonical name of `dlq`, which must be a dead-letter topic.
    fn dead_letter_topic(&self, dlq: &str) -> BrokerResult<String> {
        let t = self.topics.require(dlq)?;
        if !t.name.starts_with(DLQ_PREFIX) {
            return Err(BrokerError::invalid(format!(
                "topic {:?} is not a dead-letter topic ({DLQ_PREFIX}{{group}}): only their messages are sent back",
                t.name
            )));
        }
        Ok(t.name.clone())
    }

    async fn dead_letter_message(
        &self,
        dlq: &str,
        id: &str,
    ) -> BrokerResult<(String, crate::Record)> {
        let dlq = self.dead_letter_topic(dlq)?;
        let (_, found) = self.get_message(&dlq, id).await?;
        Ok((dlq, found.record))
    }
}

fn origin_of(record: &crate::Record) -> BrokerResult<String> {
    record
        .properties
        .iter()
        .find(|(k, _)| k == "shale.origin_topic")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| {
            BrokerError::invalid(format!(
                "message {} has no shale.origin_topic: it is not a dead-letter copy",
                record.message_id
            ))
        })
}

fn decode(bytes: &[u8]) -> BrokerResult<SentBack> {
    serde_json::from_slice(bytes)
        .map_err(|e| BrokerError::internal("decoding a send-back record", e))
}
