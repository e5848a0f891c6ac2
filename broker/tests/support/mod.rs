//! Harness for the broker-level group tests: a [`Broker`] on a temp data dir
//! over an in-memory object store behind a [`Faults`] panel, with a
//! [`ManualClock`], and helpers to create topics, produce and receive.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use shale_broker::groups::api::{GroupSettings, ReceiveOptions};
use shale_broker::groups::deliver::{AckOutcome, Delivered};
use shale_broker::groups::filter::FilterSpec;
use shale_broker::produce::{MessageInput, ProduceBatch};
use shale_broker::topic_admin::NewTopic;
use shale_broker::{Broker, BrokerConfig, Durability, ManualClock, MessageType};
use shale_tiering::{Faults, ObjectStoreUrl, Tier};

/// Bound of every wait in the tests.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Where the manual clock starts.
pub const START_MS: i64 = 1_700_000_000_000;

pub struct Node {
    pub dir: tempfile::TempDir,
    pub broker: Arc<Broker>,
    pub clock: Arc<ManualClock>,
    pub faults: Faults,
}

pub fn config(dir: &std::path::Path) -> BrokerConfig {
    config_as(dir, "node-test")
}

/// [`config`] for node `id`.
pub fn config_as(dir: &std::path::Path, id: &str) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_path_buf(),
        object_store: ObjectStoreUrl::Memory,
        segment_bytes: 1 << 20,
        segment_ms: 3_600_000,
        hot_bytes: None,
        node_id: id.into(),
        cluster: Default::default(),
        object_commit_interval: shale_broker::wal::DEFAULT_INTERVAL,
        max_delay_ms: shale_broker::produce::plan::DEFAULT_MAX_DELAY_MS,
    }
}

impl Node {
    /// A node with an empty disk over the bucket of a first node that wrote
    /// `n` messages `{prefix}{i}` to a 1-queue `topic` and handed it over:
    /// `topic` is served from the object store only. The faults panel is the
    /// bucket's.
    pub async fn cold(topic: &str, prefix: &str, n: usize) -> Arc<Node> {
        let first = Node::new();
        first.topic(topic, 1, MessageType::Normal).await;
        first.produce_n(topic, prefix, n).await;
        first.broker.leave_cluster(TIMEOUT).await.unwrap();
        let store = first.broker.tier.store().clone();
        let faults = first.faults.clone();
        drop(first);
        let tier = Arc::new(Tier::new(
            store,
            object_store::path::Path::default(),
            1 << 20,
        ));
        let node = Arc::new(Node::over(tier, faults));
        node.broker.load_topics_from_store().await.unwrap();
        node
    }

    pub fn new() -> Node {
        let faults = Faults::default();
        let tier = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
        Self::over(tier, faults)
    }

    /// A node with an empty disk over `tier` (another node's bucket).
    pub fn over(tier: Arc<Tier>, faults: Faults) -> Node {
        Self::over_as(tier, faults, "node-test")
    }

    /// [`Self::over`] as node `id`.
    pub fn over_as(tier: Arc<Tier>, faults: Faults, id: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(START_MS));
        let broker = Broker::open_with(&config_as(dir.path(), id), clock.clone(), tier).unwrap();
        Node {
            dir,
            broker,
            clock,
            faults,
        }
    }

    pub async fn topic(&self, name: &str, queues: u32, message_type: MessageType) {
        self.topic_at(name, queues, message_type, None).await;
    }

    /// A topic with this durability (`None`: the default, SYNC).
    pub async fn topic_at(
        &self,
        name: &str,
        queues: u32,
        message_type: MessageType,
        durability: Option<Durability>,
    ) {
        self.broker
            .create_topic(NewTopic {
                name: name.into(),
                queues: Some(queues),
                message_type: Some(message_type),
                retention_ms: None,
                durability,
            })
            .await
            .unwrap();
    }

    pub async fn produce(&self, topic: &str, messages: Vec<MessageInput>) {
        let batch = ProduceBatch {
            messages,
            transaction: None,
        };
        self.broker
            .producer(topic)
            .unwrap()
            .produce(batch)
            .await
            .unwrap();
    }

    /// Produces `n` messages with bodies `"{prefix}{i}"`.
    pub async fn produce_n(&self, topic: &str, prefix: &str, n: usize) {
        let msgs = (0..n).map(|i| body(&format!("{prefix}{i}"))).collect();
        self.produce(topic, msgs).await;
    }

    pub async fn group(&self, name: &str, settings: GroupSettings) {
        self.broker.put_group(name, settings).await.unwrap();
    }

    pub async fn receive_with(&self, group: &str, opts: ReceiveOptions) -> Vec<Delivered> {
        tokio::time::timeout(TIMEOUT, self.broker.receive(group, opts))
            .await
            .unwrap()
            .unwrap()
            .1
    }

    pub async fn receive(&self, group: &str, topic: &str, max: u64) -> Vec<Delivered> {
        self.receive_with(group, opts(topic, max)).await
    }

    pub async fn ack(&self, group: &str, topic: &str, handles: &[&Delivered]) -> Vec<AckOutcome> {
        let handles: Vec<String> = handles.iter().map(|d| d.receipt_handle.clone()).collect();
        self.broker.ack(group, topic, &handles).await.unwrap()
    }
}

/// Receive options: `max` messages, the default invisibility, no wait.
pub fn opts(topic: &str, max: u64) -> ReceiveOptions {
    ReceiveOptions {
        topic: topic.into(),
        max_messages: Some(max),
        ..Default::default()
    }
}

pub fn filter(kind: &str, expression: &str) -> Option<FilterSpec> {
    Some(FilterSpec {
        kind: kind.into(),
        expression: expression.into(),
    })
}

pub fn body(text: &str) -> MessageInput {
    MessageInput {
        body: bytes::Bytes::from(text.to_string()),
        ..Default::default()
    }
}

pub fn bodies(got: &[Delivered]) -> Vec<String> {
    got.iter()
        .map(|d| String::from_utf8_lossy(&d.record.body).into_owned())
        .collect()
}

/// Group settings that consume from EARLIEST with these retry delays.
pub fn earliest(max_attempts: u32, backoff_ms: Vec<u64>) -> GroupSettings {
    GroupSettings {
        max_delivery_attempts: Some(max_attempts),
        retry_backoff_ms: Some(backoff_ms),
        consume_from: Some(shale_broker::groups::config::ConsumeFrom::Position(
            shale_broker::groups::config::Position::Earliest,
        )),
        ..Default::default()
    }
}

pub fn is_ok(o: &AckOutcome) -> bool {
    matches!(o, AckOutcome::Ok)
}

impl Node {
    pub fn clock_now(&self) -> i64 {
        shale_broker::Clock::now_ms(self.clock.as_ref())
    }
}
