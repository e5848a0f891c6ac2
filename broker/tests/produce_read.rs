//! The broker's produce, read, replay and query behaviour through its Rust
//! API, without HTTP (the HTTP tests in gateway/tests cover the contract's
//! wire form of the same calls).
#![allow(clippy::unwrap_used)] // test setup helpers unwrap like the tests do

use std::sync::Arc;

use bytes::Bytes;
use shale_broker::produce::{DelayInput, MessageInput, ProduceBatch};
use shale_broker::read::ReadRequest;
use shale_broker::read::query::KeyQuery;
use shale_broker::topic_admin::{Created, NewTopic, TopicPatch};
use shale_broker::{
    Broker, BrokerConfig, BrokerError, Durability, ErrorCode, ManualClock, MessageType,
};
use shale_tiering::{Faults, Tier};

const START_MS: i64 = 1_800_000_000_000;

struct Node {
    broker: Arc<Broker>,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

fn open() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        object_store: "memory://".parse().unwrap(),
        segment_bytes: 1 << 20,
        segment_ms: 600_000,
        hot_bytes: None,
        node_id: "n1".into(),
        cluster: Default::default(),
        object_commit_interval: shale_broker::wal::DEFAULT_INTERVAL,
        max_delay_ms: shale_broker::produce::plan::DEFAULT_MAX_DELAY_MS,
    };
    let clock = ManualClock::new(START_MS);
    let tier = Arc::new(Tier::in_memory_with_faults(&Faults::default(), 1 << 20));
    let broker = Broker::open_with(&config, Arc::new(clock.clone()), tier).unwrap();
    Node {
        broker,
        clock,
        _dir: dir,
    }
}

fn text(body: &'static str) -> MessageInput {
    MessageInput {
        body: Bytes::from_static(body.as_bytes()),
        ..Default::default()
    }
}

async fn topic(node: &Node, name: &str, kind: MessageType, queues: u32) {
    let new = NewTopic {
        name: name.into(),
        queues: Some(queues),
        message_type: Some(kind),
        ..Default::default()
    };
    let (created, config) = node.broker.create_topic(new).await.unwrap();
    assert_eq!(created, Created::New);
    assert_eq!(config.queues, queues);
}

async fn produce(
    node: &Node,
    topic: &str,
    messages: Vec<MessageInput>,
) -> Result<Vec<shale_broker::produce::Produced>, BrokerError> {
    let batch = ProduceBatch {
        messages,
        transaction: None,
    };
    node.broker.producer(topic)?.produce(batch).await
}

#[tokio::test]
async fn produced_messages_read_back_in_order_with_their_ids() {
    let node = open();
    topic(&node, "orders", MessageType::Normal, 2).await;
    let mut pinned = text("a");
    pinned.queue = Some(1);
    let mut second = text("b");
    second.queue = Some(1);
    second.keys = vec!["k1".into()];
    let results = produce(&node, "orders", vec![pinned, second])
        .await
        .unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| (r.queue, r.offset))
            .collect::<Vec<_>>(),
        vec![(1, 0), (1, 1)]
    );

    let read = node
        .broker
        .read_queue("orders", 1, ReadRequest::default())
        .await
        .unwrap();
    assert_eq!(
        (read.min_offset, read.max_offset, read.next_offset),
        (0, 2, 2)
    );
    let bodies: Vec<_> = read.records.iter().map(|r| r.body.clone()).collect();
    assert_eq!(
        bodies,
        vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
    assert_eq!(read.records[1].message_id, results[1].message_id);

    let (_, found) = node
        .broker
        .get_message("orders", &results[0].message_id.to_string())
        .await
        .unwrap();
    assert_eq!((found.queue, found.record.offset), (1, 0));

    let (_, by_key) = node
        .broker
        .find_by_key(
            "orders",
            KeyQuery {
                key: Some("k1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].record.message_id, results[1].message_id);

    // A replay streams the same records in chunks.
    let mut replay = node
        .broker
        .replay("orders", 1, None, None, None)
        .await
        .unwrap();
    let chunk = tokio::task::spawn_blocking(move || replay.next_chunk().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(chunk.len(), 2);
}

#[tokio::test]
async fn dedup_ids_repeat_the_first_result_within_the_window() {
    let node = open();
    topic(&node, "t", MessageType::Normal, 1).await;
    let with_id = |body| {
        let mut m = text(body);
        m.dedup_id = Some("once".into());
        m
    };
    let first = produce(&node, "t", vec![with_id("x")]).await.unwrap();
    node.clock.advance(60_000);
    let again = produce(&node, "t", vec![with_id("y")]).await.unwrap();
    assert_eq!(again[0].offset, first[0].offset);
    assert_eq!(again[0].message_id, first[0].message_id);
    // Past the 5-minute window the id is new again.
    node.clock.advance(5 * 60_000);
    let later = produce(&node, "t", vec![with_id("z")]).await.unwrap();
    assert_eq!(later[0].offset, first[0].offset + 1);
}

#[tokio::test]
async fn type_rules_and_limits_refuse_the_whole_request() {
    let node = open();
    topic(&node, "plain", MessageType::Normal, 1).await;
    topic(&node, "fifo", MessageType::Fifo, 4).await;

    let mut delayed = text("d");
    delayed.delay = DelayInput {
        delay_ms: Some(1_000),
        ..Default::default()
    };
    let e = produce(&node, "plain", vec![text("ok"), delayed])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageTypeMismatch);
    assert!(e.message().starts_with("messages[1]: "), "{}", e.message());

    let e = produce(&node, "fifo", vec![text("no group")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageTypeMismatch);

    let mut beyond = text("q");
    beyond.queue = Some(7);
    let e = produce(&node, "plain", vec![beyond]).await.unwrap_err();
    assert!(matches!(e, BrokerError::InvalidArgument { .. }), "{e:?}");

    // Nothing of the refused requests was stored.
    let read = node
        .broker
        .read_queue("plain", 0, ReadRequest::default())
        .await
        .unwrap();
    assert_eq!(read.max_offset, 0);

    // One message group always lands in one queue.
    let grouped = |g: &str| {
        let mut m = text("g");
        m.message_group = Some(g.to_string());
        m
    };
    let a = produce(&node, "fifo", vec![grouped("order-1"), grouped("order-1")])
        .await
        .unwrap();
    assert_eq!(a[0].queue, a[1].queue);
}

#[tokio::test]
async fn unknown_topics_queues_and_offsets_have_their_codes() {
    let node = open();
    topic(&node, "t", MessageType::Normal, 1).await;
    let e = node.broker.producer("nope").unwrap_err();
    assert_eq!(e.code(), ErrorCode::TopicNotFound);
    let e = node
        .broker
        .read_queue("t", 3, ReadRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    let past_end = ReadRequest {
        offset: Some(5),
        ..Default::default()
    };
    let e = node.broker.read_queue("t", 0, past_end).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::OffsetOutOfRange);
    let e = node.broker.get_message("t", "not-hex").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    // A stronger durability than the topic's is taken (OBJECT included).
    let p = node.broker.producer("t").unwrap();
    assert_eq!(
        p.at_least(Durability::Object).unwrap().durability(),
        Durability::Object
    );
}

#[tokio::test]
async fn topics_grow_and_delete_with_their_data() {
    let node = open();
    topic(&node, "t", MessageType::Normal, 1).await;
    produce(&node, "t", vec![text("a")]).await.unwrap();
    let e = node
        .broker
        .patch_topic(
            "t",
            TopicPatch {
                queues: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let grown = node
        .broker
        .patch_topic(
            "t",
            TopicPatch {
                queues: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(grown.queues, 3);
    let described = node.broker.describe_topic("t").await.unwrap();
    assert_eq!(described.queues.len(), 3);
    assert_eq!(described.queues[0].max_offset, 1);
    assert_eq!(described.queues[0].owner, "n1");

    node.broker.delete_topic("t").await.unwrap();
    let e = node.broker.describe_topic("t").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TopicNotFound);
    // A topic created again with the name starts empty.
    topic(&node, "t", MessageType::Normal, 1).await;
    let read = node
        .broker
        .read_queue("t", 0, ReadRequest::default())
        .await
        .unwrap();
    assert_eq!(read.max_offset, 0);
}

#[tokio::test]
async fn a_draining_broker_refuses_produce_as_retryable() {
    let node = open();
    topic(&node, "t", MessageType::Normal, 1).await;
    node.broker.set_draining();
    let e = node.broker.producer("t").unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable);
    assert!(e.is_retryable());
}

/// A DELAY topic takes OBJECT durability (its timers go through the
/// write-ahead commit); a NORMAL topic still answers delay fields with
/// MESSAGE_TYPE_MISMATCH.
#[tokio::test]
async fn delay_topics_take_object_durability() {
    let node = open();
    let new = NewTopic {
        name: "later".into(),
        message_type: Some(MessageType::Delay),
        durability: Some(Durability::Object),
        ..Default::default()
    };
    node.broker.create_topic(new).await.unwrap();
    let mut delayed = text("d");
    delayed.delay = DelayInput {
        delay_ms: Some(1_000),
        ..Default::default()
    };
    let got = produce(&node, "later", vec![delayed.clone()])
        .await
        .unwrap();
    assert!(got[0].scheduled, "{got:?}");
    assert_eq!(
        node.broker
            .read_queue("later", 0, ReadRequest::default())
            .await
            .unwrap()
            .records
            .len(),
        0
    );
    topic(&node, "plain", MessageType::Normal, 1).await;
    let e = produce(&node, "plain", vec![delayed]).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageTypeMismatch);
}
