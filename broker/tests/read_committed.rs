//! Read committed (`shale_broker::visible_end`): readers see a message only
//! once it is durable at its topic's level. A SYNC message appended but not
//! yet fsynced is invisible to every read path — read by offset, replay,
//! offset by timestamp, query by id and by key, group receive, the
//! `max_offset` of describe and of group offsets — and long polls waiting
//! on it (read and receive) wake on its fsync. An ASYNC message is visible
//! once written.
//!
//! Messages are appended through the hot tier directly, as a produce does
//! (owner's write permit) but without its group-commit wait, so the fsync
//! happens exactly when the test says. Every wait is bounded by [`TIMEOUT`].
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shale_broker::groups::api::ReceiveOptions;
use shale_broker::read::ReadRequest;
use shale_broker::read::query::KeyQuery;
use shale_broker::{Durability, ErrorCode, MessageType};
use shale_hot::{AppendRequest, Appended, QueueLog};
use support::*;

const TOPIC: &str = "rc";
const KEY: &str = "order-7";
/// The group whose receives check visibility (wait 0).
const GROUP: &str = "g";
/// The group whose receive long-polls.
const POLLING: &str = "poll";

/// A node with a 1-queue `TOPIC` at `durability`, its queue 0 taken by
/// this node (as a first produce would), and two groups from EARLIEST.
async fn node_with(durability: Durability) -> (Node, Arc<QueueLog>) {
    let node = Node::new();
    node.topic_at(TOPIC, 1, MessageType::Normal, Some(durability))
        .await;
    node.group(GROUP, earliest(16, vec![1000])).await;
    node.group(POLLING, earliest(16, vec![1000])).await;
    let (log, _permit) = node.broker.queue_for_write(TOPIC, 0).await.unwrap();
    (node, log)
}

/// Appends `body` (with key [`KEY`]) to queue 0 under the owner's write
/// permit, without waiting for an fsync.
async fn append_unsynced(node: &Node, body: &str) -> Appended {
    let (log, permit) = node.broker.queue_for_write(TOPIC, 0).await.unwrap();
    let req = AppendRequest {
        born_ms: node.clock_now(),
        keys: vec![KEY.into()],
        body: Bytes::from(body.to_string()),
        ..Default::default()
    };
    let appended = tokio::task::spawn_blocking(move || log.append(&[req]))
        .await
        .unwrap()
        .unwrap();
    drop(permit);
    appended[0]
}

fn read_from(offset: u64, wait_ms: u64) -> ReadRequest {
    ReadRequest {
        offset: Some(offset),
        wait_ms: Some(wait_ms),
        ..Default::default()
    }
}

/// Waits (bounded) until `n` watches of the visible end are held: the long
/// polls are waiting, not just started.
async fn until_watched(n: usize, watchers: impl Fn() -> usize) {
    tokio::time::timeout(TIMEOUT, async {
        while watchers() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap();
}

/// Bodies of what the replay of queue 0 from `min_offset` hands out.
async fn replayed(node: &Node) -> Vec<Bytes> {
    let mut replay = node
        .broker
        .replay(TOPIC, 0, None, None, None)
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        while let Some(chunk) = replay.next_chunk().unwrap() {
            out.extend(chunk.into_iter().map(|r| r.body));
        }
        out
    })
    .await
    .unwrap()
}

/// What the read paths answer about queue 0, which holds one message (`a`).
#[derive(Debug, PartialEq)]
struct Seen {
    read: Vec<Bytes>,
    max_offset: u64,
    replayed: Vec<Bytes>,
    /// The offset of the first message stored after `a`: `max_offset`.
    offset_after_it: u64,
    by_id: bool,
    by_key: usize,
    received: Vec<String>,
    described_max: u64,
    group_max_and_lag: (u64, u64),
}

async fn seen(node: &Node, a: &Appended) -> Seen {
    let b = &node.broker;
    let read = b.read_queue(TOPIC, 0, read_from(0, 0)).await.unwrap();
    let by_id = match b.get_message(TOPIC, &a.message_id.to_string()).await {
        Ok(_) => true,
        Err(e) if e.code() == ErrorCode::MessageNotFound => false,
        Err(e) => panic!("query by id: {e}"),
    };
    let key = KeyQuery {
        key: Some(KEY.into()),
        ..Default::default()
    };
    let by_key = b.find_by_key(TOPIC, key).await.unwrap().1.len();
    let described = b.describe_topic(TOPIC).await.unwrap();
    let offsets = b.group_offsets(GROUP, Some(TOPIC), None).await.unwrap();
    Seen {
        read: read.records.into_iter().map(|r| r.body).collect(),
        max_offset: read.max_offset,
        replayed: replayed(node).await,
        offset_after_it: b
            .offset_for_timestamp(TOPIC, 0, a.store_ms + 1)
            .await
            .unwrap(),
        by_id,
        by_key,
        received: bodies(&node.receive(GROUP, TOPIC, 16).await),
        described_max: described.queues[0].max_offset,
        group_max_and_lag: (offsets[0].max_offset, offsets[0].lag),
    }
}

/// Nothing of the message: queue 0 looks empty.
fn nothing() -> Seen {
    Seen {
        read: vec![],
        max_offset: 0,
        replayed: vec![],
        offset_after_it: 0,
        by_id: false,
        by_key: 0,
        received: vec![],
        described_max: 0,
        group_max_and_lag: (0, 0),
    }
}

/// The message `a`, first delivery to [`GROUP`] included.
fn the_message() -> Seen {
    Seen {
        read: vec![Bytes::from_static(b"a")],
        max_offset: 1,
        replayed: vec![Bytes::from_static(b"a")],
        offset_after_it: 1,
        by_id: true,
        by_key: 1,
        received: vec!["a".into()],
        described_max: 1,
        group_max_and_lag: (1, 1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_message_is_seen_only_once_fsynced_and_waiting_polls_wake_then() {
    let (node, log) = node_with(Durability::Sync).await;
    let node = Arc::new(node);
    let a = append_unsynced(&node, "a").await;
    assert_eq!((log.max_offset(), log.durable_offset()), (1, 0));

    assert_eq!(seen(&node, &a).await, nothing(), "written, not fsynced");
    let past = node.broker.read_queue(TOPIC, 0, read_from(1, 0)).await;
    assert_eq!(
        past.unwrap_err().code(),
        ErrorCode::OffsetOutOfRange,
        "the written end is past what readers see"
    );

    // Long polls on the visible end: a read at offset 0 and a receive.
    let reader = {
        let node = node.clone();
        tokio::spawn(async move { node.broker.read_queue(TOPIC, 0, read_from(0, 30_000)).await })
    };
    let receiver = {
        let node = node.clone();
        tokio::spawn(async move {
            let opts = ReceiveOptions {
                wait_ms: Some(30_000),
                ..opts(TOPIC, 16)
            };
            node.broker.receive(POLLING, opts).await
        })
    };
    until_watched(2, || log.durable_offset_watchers()).await;
    assert!(!reader.is_finished() && !receiver.is_finished());

    // The group commit's fsync makes it visible and wakes both.
    log.sync(a.offset + 1).await.unwrap();
    let read = tokio::time::timeout(TIMEOUT, reader)
        .await
        .unwrap()
        .unwrap();
    let read = read.unwrap();
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].message_id, a.message_id);
    let (_, got) = tokio::time::timeout(TIMEOUT, receiver)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&got), vec!["a".to_string()]);

    assert_eq!(seen(&node, &a).await, the_message(), "after the fsync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_flush_makes_a_sync_message_visible() {
    let (node, _log) = node_with(Durability::Sync).await;
    let a = append_unsynced(&node, "a").await;
    assert_eq!(seen(&node, &a).await, nothing());
    node.broker.flush_and_seal().await;
    assert_eq!(seen(&node, &a).await, the_message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_message_is_seen_once_written_and_wakes_polls_then() {
    let (node, log) = node_with(Durability::Async).await;
    let node = Arc::new(node);
    let reader = {
        let node = node.clone();
        tokio::spawn(async move { node.broker.read_queue(TOPIC, 0, read_from(0, 30_000)).await })
    };
    until_watched(1, || log.max_offset_watchers()).await;

    let a = append_unsynced(&node, "a").await;
    let read = tokio::time::timeout(TIMEOUT, reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.unwrap().records[0].message_id, a.message_id);
    assert_eq!(log.durable_offset(), 0, "visible before any fsync");
    assert_eq!(seen(&node, &a).await, the_message());
}
