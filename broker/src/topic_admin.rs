//! Topic administration: create, list, describe, grow and delete.
//!
//! Invariants: metadata writes are serialized by the registry's admin lock;
//! every change goes to the object store's copy first, then the local file
//! (a topic exists only once a fresh node would find it); a delete flips the
//! topic's `deleted` flag under its write lock (waiting for in-flight
//! appends), removes the objects, the metadata, then the hot data, so no
//! message can be stored into a topic being deleted.

use std::sync::Arc;

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode, error_chain};
use crate::queue_view::TieredQueue;
use crate::topics::{
    DEFAULT_QUEUES, DEFAULT_RETENTION_MS, Durability, MessageType, Topic, TopicConfig,
};

/// A topic to create; absent settings take their defaults.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub queues: Option<u32>,
    pub message_type: Option<MessageType>,
    pub retention_ms: Option<u64>,
    pub durability: Option<Durability>,
}

/// A change of a topic's settings.
#[derive(Debug, Clone, Default)]
pub struct TopicPatch {
    /// May only grow.
    pub queues: Option<u32>,
    pub retention_ms: Option<u64>,
}

/// Whether a create made the topic or found it with the same settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
}

/// One queue of a described topic.
#[derive(Debug, Clone)]
pub struct QueueState {
    pub queue: u32,
    pub min_offset: u64,
    /// The visible end ([`crate::visible_end`]): what readers see, not what is written.
    pub max_offset: u64,
    /// On this node's disk.
    pub hot_bytes: u64,
    /// In the object store.
    pub cold_bytes: u64,
    pub cold_segments: u64,
    pub owner: String,
    /// Delay messages of the queue not yet due (counted by the node serving it).
    pub pending_timers: u64,
    /// Transactions of the queue not decided yet (TRANSACTION topics).
    pub pending_transactions: u64,
}

/// A topic's settings and the state of each of its queues.
#[derive(Debug, Clone)]
pub struct TopicState {
    pub config: TopicConfig,
    pub queues: Vec<QueueState>,
}

impl Broker {
    /// Creates a user topic (names starting `%` are the system's).
    pub async fn create_topic(
        self: &Arc<Self>,
        req: NewTopic,
    ) -> BrokerResult<(Created, TopicConfig)> {
        crate::validate::user_topic_name(&req.name)?;
        let wanted = TopicConfig {
            name: req.name,
            queues: req.queues.unwrap_or(DEFAULT_QUEUES),
            message_type: req.message_type.unwrap_or(MessageType::Normal),
            retention_ms: req.retention_ms.unwrap_or(DEFAULT_RETENTION_MS),
            durability: req.durability.unwrap_or(Durability::Sync),
            created_ms: self.clock.now_ms(),
        };
        wanted.validate()?;
        let _admin = self.topics.admin.lock().await;
        if let Some(existing) = self.topics.get(&wanted.name) {
            let existing = existing.config();
            if existing.same_settings(&wanted) {
                return Ok((Created::Existing, existing));
            }
            return Err(BrokerError::new(
                ErrorCode::AlreadyExists,
                format!(
                    "topic {:?} already exists with different settings",
                    wanted.name
                ),
            ));
        }
        // Create-only in the object store: of two nodes creating one topic at
        // once exactly one config wins, and the other answers as if it were local.
        let json = crate::topics::encode_topic(&wanted);
        if let Some(stored) = self
            .tier
            .create_topic_meta(&wanted.name, json.into())
            .await?
        {
            let stored = crate::topics::decode_topic(&stored)
                .map_err(|e| BrokerError::internal("reading a topic created by another node", e))?;
            // This node serves the winner's config from now on, either way.
            self.keep_topic_locally(stored.clone()).await?;
            if !stored.same_settings(&wanted) {
                return Err(BrokerError::new(
                    ErrorCode::AlreadyExists,
                    format!(
                        "topic {:?} already exists with different settings",
                        wanted.name
                    ),
                ));
            }
            return Ok((Created::Existing, stored));
        }
        self.keep_topic_locally(wanted.clone()).await?;
        self.announce_topic_change().await;
        tracing::info!(topic = %wanted.name, "topic created");
        Ok((Created::New, wanted))
    }

    /// Tells the other nodes that topics changed (best effort: they also
    /// re-read everything when they start).
    pub(crate) async fn announce_topic_change(&self) {
        if let Err(e) = self.tier.touch_topics_stamp().await {
            tracing::warn!(error = %error_chain(&e), "could not announce a topic change; other nodes see it when they restart");
        }
    }

    /// Writes a topic's metadata: the object store's copy first, then the
    /// local file. Callers hold the registry's admin lock.
    pub(crate) async fn store_topic(
        self: &Arc<Self>,
        config: TopicConfig,
    ) -> BrokerResult<Arc<Topic>> {
        self.tier
            .put_topic_meta(&config.name, crate::topics::encode_topic(&config).into())
            .await?;
        self.keep_topic_locally(config).await
    }

    /// Writes a topic's local metadata file and registers it (blocking I/O
    /// on the blocking pool). Callers hold the registry's admin lock.
    async fn keep_topic_locally(self: &Arc<Self>, config: TopicConfig) -> BrokerResult<Arc<Topic>> {
        let broker = self.clone();
        tokio::task::spawn_blocking(move || broker.topics.put_blocking(config))
            .await?
            .map_err(|e| BrokerError::internal("writing topic metadata", e))
    }

    /// Every topic (system topics included), sorted by name.
    pub fn list_topics(&self) -> Vec<TopicConfig> {
        self.topics.list().iter().map(|t| t.config()).collect()
    }

    /// A topic's settings and the offsets and sizes of its queues.
    pub async fn describe_topic(&self, name: &str) -> BrokerResult<TopicState> {
        let config = self.topics.require(name)?.config();
        let mut queues = Vec::with_capacity(config.queues as usize);
        for q in 0..config.queues {
            let log = TieredQueue::open(self, &config.name, q).await?;
            let hot_bytes = log.hot.as_ref().map_or(0, |h| h.stats().disk_bytes);
            let cold = log.cold.as_deref();
            queues.push(QueueState {
                queue: q,
                min_offset: log.min_offset(),
                max_offset: log.max_offset(),
                hot_bytes,
                cold_bytes: cold.map_or(0, |m| m.segments.iter().map(|s| s.bytes).sum()),
                cold_segments: cold.map_or(0, |m| m.segments.len() as u64),
                owner: if self.cluster.holds(&config.name, q) {
                    self.node_id.clone()
                } else {
                    self.cluster.placed_on(&config.name, q)
                },
                pending_timers: self.queue_pending_timers(&config.name, q).await?,
                pending_transactions: self.queue_pending_transactions(&config.name, q).await?,
            });
        }
        Ok(TopicState { config, queues })
    }

    /// Grows a topic's queues and/or changes its retention.
    pub async fn patch_topic(
        self: &Arc<Self>,
        name: &str,
        patch: TopicPatch,
    ) -> BrokerResult<TopicConfig> {
        let _admin = self.topics.admin.lock().await;
        let mut config = self.topics.require(name)?.config();
        if let Some(queues) = patch.queues {
            if queues < config.queues {
                return Err(BrokerError::invalid(format!(
                    "queues may only grow: the topic has {}, asked {queues}",
                    config.queues
                )));
            }
            config.queues = queues;
        }
        if let Some(retention_ms) = patch.retention_ms {
            config.retention_ms = retention_ms;
        }
        config.validate()?;
        self.store_topic(config.clone()).await?;
        self.announce_topic_change().await;
        Ok(config)
    }

    /// Deletes a topic with its hot and cold data. If the local data cannot
    /// be removed the topic is still deleted (INTERNAL is answered) and the
    /// data is removed at the next start.
    pub async fn delete_topic(self: &Arc<Self>, name: &str) -> BrokerResult<()> {
        let _admin = self.topics.admin.lock().await;
        let topic = self.topics.require(name)?;
        let mut deleted = topic.deleted.write().await;
        // Objects first (metadata copy, manifests, segments): once they are gone no
        // node can bring the topic back, and a topic created later with the same
        // name starts empty. If the store is down nothing local has changed yet.
        self.tier.delete_topic(name).await?;
        let dropped = self.drop_local_topic(name, &mut deleted).await;
        // Sweep anything an upload in flight wrote meanwhile.
        if let Err(e) = self.tier.delete_topic(name).await {
            tracing::warn!(topic = %name, error = %error_chain(&e), "objects uploaded during the delete may remain");
        }
        self.announce_topic_change().await;
        tracing::info!(topic = %name, "topic deleted");
        dropped
    }

    /// Forgets a topic another node deleted: its local metadata and hot data
    /// (the objects are gone already). Nothing is written to the object store.
    /// The caller holds the registry's admin lock.
    pub(crate) async fn forget_deleted_topic(self: &Arc<Self>, name: &str) -> BrokerResult<()> {
        let Some(topic) = self.topics.get(name) else {
            return Ok(());
        };
        let mut deleted = topic.deleted.write().await;
        self.drop_local_topic(name, &mut deleted).await?;
        tracing::info!(topic = %name, "topic deleted through another node: forgotten here");
        Ok(())
    }

    /// Removes a deleted topic from this node: its metadata (then `deleted`
    /// is set, under the topic's write lock the caller holds), its dedup
    /// window, its queues, then its hot data. A failure to remove the hot
    /// data leaves the topic deleted; the data goes at the next start.
    async fn drop_local_topic(
        self: &Arc<Self>,
        name: &str,
        deleted: &mut bool,
    ) -> BrokerResult<()> {
        let broker = self.clone();
        let n = name.to_string();
        tokio::task::spawn_blocking(move || broker.topics.remove_blocking(&n))
            .await?
            .map_err(|e| BrokerError::internal("removing topic metadata", e))?;
        *deleted = true;
        self.dedup.forget_topic(name);
        self.groups.ack_rates.forget_topic(name);
        self.release_topic_queues(name).await;
        let broker = self.clone();
        let n = name.to_string();
        let timers = tokio::task::spawn_blocking(move || broker.timers.remove_topic(&n)).await?;
        if let Err(e) = timers {
            tracing::error!(topic = %name, error = %error_chain(&*e), "cannot remove the topic's timers; they go at the next start");
        }
        let broker = self.clone();
        let n = name.to_string();
        let removed = tokio::task::spawn_blocking(move || broker.hot.remove_topic(&n)).await?;
        removed.map_err(|e| {
            tracing::error!(topic = %name, error = %error_chain(&e), "topic deleted but its data remains");
            BrokerError::internal(
                "removing the topic's data (the topic is deleted; its data is removed at the next start)",
                e,
            )
        })
    }
}
