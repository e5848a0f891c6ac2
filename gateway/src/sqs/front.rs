//! The SQS endpoint's per-node state: how it names queues, and a short
//! cache of queue documents ([`QueueDoc`]) so that sends and receives do not
//! read the object store each time.
//!
//! Invariants: a cached document is used only while it belongs to the topic
//! the node knows (`topic_created_ms`), and for at most [`DOC_TTL`]; this
//! node's own writes replace its entry at once, other nodes' writes are seen
//! within the TTL (AWS documents up to 60 s for attribute changes).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shale_broker::topics::TopicConfig;
use shale_broker::{Broker, BrokerError, ErrorCode};

use super::naming::{self, Naming};
use super::protocol::SqsError;
use super::queue_attrs::QueueDoc;
use crate::config::NodeConfig;

/// How long a document read from the object store is used.
pub const DOC_TTL: Duration = Duration::from_secs(5);
/// The name of the SQS document among a topic's documents.
const DOC_NAME: &str = "sqs";

/// The SQS endpoint's state on one node.
#[derive(Debug, Clone)]
pub struct Front {
    pub naming: Naming,
    docs: moka::future::Cache<String, Arc<QueueDoc>>,
}

/// The SQS error for a broker error met outside a `/v1` call.
pub fn broker_error(queue: &str, e: &BrokerError) -> SqsError {
    match e.code() {
        ErrorCode::TopicNotFound => SqsError::queue_does_not_exist(queue),
        ErrorCode::Unavailable | ErrorCode::InsufficientStorage => {
            SqsError::unavailable(e.message().to_string())
        }
        ErrorCode::InvalidArgument => SqsError::invalid_parameter(e.message().to_string()),
        _ => SqsError::internal(e.message().to_string()),
    }
}

impl Front {
    pub fn of(config: &NodeConfig) -> Front {
        Front {
            naming: Naming::of(config),
            docs: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(DOC_TTL)
                .build(),
        }
    }

    /// The topic behind queue `queue`. A topic this node does not know may
    /// have been created on another one a moment ago (nodes learn topics at
    /// their heartbeat): the topics are re-read once (a HEAD of the topics
    /// stamp when nothing changed) before the queue is said not to exist.
    pub async fn topic(&self, broker: &Arc<Broker>, queue: &str) -> Result<TopicConfig, SqsError> {
        let name = naming::topic_of(queue);
        if let Some(t) = broker.topics.get(&name) {
            return Ok(t.config());
        }
        if let Err(e) = broker.refresh_topics_from_store().await {
            tracing::debug!(error = %format!("{e:#}"), "could not re-read the topics");
        }
        broker
            .topics
            .get(&name)
            .map(|t| t.config())
            .ok_or_else(|| SqsError::queue_does_not_exist(queue))
    }

    /// Queue `queue`'s topic and document (the defaults when none was written
    /// for this topic).
    pub async fn doc(
        &self,
        broker: &Arc<Broker>,
        queue: &str,
    ) -> Result<(TopicConfig, Arc<QueueDoc>), SqsError> {
        let topic = self.topic(broker, queue).await?;
        if let Some(doc) = self.docs.get(queue).await
            && doc.topic_created_ms == topic.created_ms
        {
            return Ok((topic, doc));
        }
        let stored = broker
            .topic_doc(&topic.name, DOC_NAME)
            .await
            .map_err(|e| broker_error(queue, &e))?;
        let doc = stored
            .and_then(|bytes| match serde_json::from_slice::<QueueDoc>(&bytes) {
                Ok(doc) => Some(QueueDoc { stored: true, ..doc }),
                Err(e) => {
                    tracing::error!(%queue, error = %e, "an SQS queue document does not parse; serving the defaults");
                    None
                }
            })
            .filter(|doc| doc.topic_created_ms == topic.created_ms)
            .unwrap_or_else(|| QueueDoc::defaults(topic.created_ms));
        let doc = Arc::new(doc);
        self.docs.insert(queue.to_string(), doc.clone()).await;
        Ok((topic, doc))
    }

    /// Stores queue `queue`'s document.
    pub async fn store(&self, broker: &Broker, queue: &str, doc: QueueDoc) -> Result<(), SqsError> {
        let json = serde_json::to_vec(&doc).map_err(|e| SqsError::internal(e.to_string()))?;
        broker
            .put_topic_doc(&naming::topic_of(queue), DOC_NAME, Bytes::from(json))
            .await
            .map_err(|e| broker_error(queue, &e))?;
        let doc = QueueDoc {
            stored: true,
            ..doc
        };
        self.docs.insert(queue.to_string(), Arc::new(doc)).await;
        Ok(())
    }

    /// Drops this node's copy of queue `queue`'s document.
    pub async fn forget(&self, queue: &str) {
        self.docs.invalidate(queue).await;
    }
}
