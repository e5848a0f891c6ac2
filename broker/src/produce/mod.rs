//! Produce: from validated [`MessageInput`]s to stored, durable messages.
//!
//! Steps, each in its own module: the contract's limits on each message
//! ([`input`], checked by the front-end as it decodes), the topic's type rules
//! and queue choice ([`plan`], pure), then storing with dedup and the
//! durability wait ([`write`]). Nothing is stored unless the whole request
//! passed the first two steps.
//!
//! A front-end opens a [`Producer`] for the topic first (so a drained node,
//! a hot tier over budget or an unknown topic is refused before the request
//! body is decoded), then calls [`Producer::produce`].

pub mod input;
pub mod plan;
pub mod queue_choice;
pub mod write;

use std::sync::Arc;
use std::time::Instant;

pub use input::{DelayInput, MessageInput};
pub use write::Produced;

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult};
use crate::topics::{Durability, Topic};

/// One produce call's messages, decoded and within the limits.
#[derive(Debug, Default)]
pub struct ProduceBatch {
    pub messages: Vec<MessageInput>,
    /// The request's transaction settings (TRANSACTION topics need them, no
    /// other takes them): its messages are then one transaction's half messages.
    pub transaction: Option<crate::txn::TxnSettings>,
}

/// A produce call under way on one topic: the node accepts writes and the topic exists.
#[derive(Debug)]
pub struct Producer {
    broker: Arc<Broker>,
    topic: Arc<Topic>,
    durability: Durability,
    born_ms: i64,
    started: Instant,
}

impl Broker {
    /// Starts a produce call on `topic`: 503 while draining or while the hot
    /// tier is over budget with nothing evictable, 404 for an unknown topic.
    pub fn producer(self: &Arc<Self>, topic: &str) -> BrokerResult<Producer> {
        let started = Instant::now();
        let born_ms = self.clock.now_ms();
        if self.is_draining() {
            return Err(BrokerError::unavailable(
                "the node is shutting down; retry on another node or later",
            ));
        }
        if self.over_hot_budget() {
            // The object store has not taken the backlog (down or slow) and the
            // local budget is spent: refuse rather than fill the disk.
            return Err(BrokerError::unavailable(
                "the local hot tier is over its budget while the object store catches up; retry later",
            ));
        }
        let topic = self.topics.require(topic)?;
        let durability = topic.config().durability;
        Ok(Producer {
            broker: self.clone(),
            topic,
            durability,
            born_ms,
            started,
        })
    }
}

impl Broker {
    /// The queue of an un-pinned request: the next of the topic's queues
    /// placed on this node (so it is stored without a forward), or of all of
    /// them when none is (the request is then forwarded to their owner).
    pub fn round_robin_queue(&self, topic: &Topic) -> u32 {
        let n = topic.queues();
        let first = topic.next_round_robin();
        let members = self.cluster.members();
        (0..n)
            .map(|i| (first + i) % n)
            .find(|&q| {
                crate::cluster::placement::owner_of(&members, &topic.name, q)
                    .is_none_or(|m| m == self.node_id)
            })
            .unwrap_or(first)
    }
}

impl Producer {
    /// Asks for a stronger durability than the topic's (a weaker one is ignored).
    pub fn at_least(mut self, requested: Durability) -> BrokerResult<Producer> {
        self.durability = self.durability.max(requested);
        Ok(self)
    }

    /// The durability the answer will wait for.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Plans and stores `batch`; one result per message, in order.
    pub async fn produce(self, batch: ProduceBatch) -> BrokerResult<Vec<Produced>> {
        let config = self.topic.config();
        let topic = &self.topic;
        let planned = plan::plan(
            &config,
            batch.messages,
            batch.transaction.as_ref(),
            self.born_ms,
            self.broker.max_delay_ms,
            || self.broker.round_robin_queue(topic),
        )?;
        let results = write::store(&self.broker, topic, planned, self.durability).await?;
        crate::metrics::produce_duration(self.durability.as_str(), self.started);
        Ok(results)
    }
}
