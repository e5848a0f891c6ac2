//! Delay messages through the broker's Rust API with an injected clock: out
//! of their queue until due, then in it exactly once, across restarts; the
//! timer list, the SCHEDULED state and recall.
#![allow(clippy::unwrap_used)] // test setup helpers unwrap like the tests do

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use shale_broker::produce::{DelayInput, MessageInput, ProduceBatch, Produced};
use shale_broker::read::ReadRequest;
use shale_broker::topic_admin::NewTopic;
use shale_broker::{
    Broker, BrokerConfig, BrokerError, Durability, ErrorCode, ManualClock, MessageType, Record,
};
use shale_tiering::{Faults, Tier};

const START_MS: i64 = 1_800_000_000_000;

struct Node {
    broker: Arc<Broker>,
    clock: ManualClock,
}

fn config(dir: &Path) -> BrokerConfig {
    config_as(dir, "n1")
}

fn config_as(dir: &Path, node_id: &str) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_path_buf(),
        object_store: "memory://".parse().unwrap(),
        segment_bytes: 1 << 20,
        segment_ms: 600_000,
        hot_bytes: None,
        node_id: node_id.into(),
        cluster: Default::default(),
        object_commit_interval: shale_broker::wal::DEFAULT_INTERVAL,
        max_delay_ms: shale_broker::produce::plan::DEFAULT_MAX_DELAY_MS,
    }
}

/// A node on `dir` over `tier` (shared across restarts, like a bucket).
fn open(dir: &Path, tier: &Arc<Tier>, now_ms: i64) -> Node {
    let clock = ManualClock::new(now_ms);
    let broker = Broker::open_with(&config(dir), Arc::new(clock.clone()), tier.clone()).unwrap();
    Node { broker, clock }
}

/// Node `node_id` on `dir` over `tier`.
fn open_as(dir: &Path, tier: &Arc<Tier>, now_ms: i64, node_id: &str) -> Node {
    let clock = ManualClock::new(now_ms);
    let mut config = config_as(dir, node_id);
    config.max_delay_ms = 365 * DAY_MS;
    let broker = Broker::open_with(&config, Arc::new(clock.clone()), tier.clone()).unwrap();
    Node { broker, clock }
}

fn tier() -> Arc<Tier> {
    Arc::new(Tier::in_memory_with_faults(&Faults::default(), 1 << 20))
}

async fn delay_topic(node: &Node, name: &str, queues: u32, durability: Durability) {
    let new = NewTopic {
        name: name.into(),
        queues: Some(queues),
        message_type: Some(MessageType::Delay),
        durability: Some(durability),
        ..Default::default()
    };
    node.broker.create_topic(new).await.unwrap();
}

fn delayed(body: &str, delay_ms: i64, queue: u32) -> MessageInput {
    MessageInput {
        body: Bytes::from(body.to_string()),
        queue: Some(queue),
        keys: vec![format!("k-{body}")],
        delay: DelayInput {
            delay_ms: Some(delay_ms),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn produce(
    node: &Node,
    topic: &str,
    messages: Vec<MessageInput>,
) -> Result<Vec<Produced>, BrokerError> {
    let batch = ProduceBatch {
        messages,
        transaction: None,
    };
    node.broker.producer(topic)?.produce(batch).await
}

/// Everything in `topic`'s queues, by queue.
async fn queue_contents(node: &Node, topic: &str, queues: u32) -> BTreeMap<u32, Vec<Record>> {
    let mut out = BTreeMap::new();
    for q in 0..queues {
        let req = ReadRequest {
            max_messages: Some(1000),
            ..Default::default()
        };
        let records = node.broker.read_queue(topic, q, req).await.unwrap().records;
        out.insert(q, records);
    }
    out
}

fn bodies(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

#[tokio::test]
async fn delay_messages_stay_out_of_their_queue_until_due_then_enter_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &tier(), START_MS);
    delay_topic(&node, "later", 2, Durability::Sync).await;
    let msgs = vec![
        delayed("five", 5_000, 0),
        delayed("one", 1_000, 0),
        delayed("three", 3_000, 1),
        delayed("now", 0, 0),
    ];
    let got = produce(&node, "later", msgs).await.unwrap();
    assert!(got[..3].iter().all(|p| p.scheduled), "{got:?}");
    assert!(!got[3].scheduled, "a delay of 0 is delivered at once");
    assert_eq!(got[1].deliver_at_ms, Some(START_MS + 1_000));
    assert!(got[..3].iter().all(|p| p.message_id.is_scheduled()));

    let contents = queue_contents(&node, "later", 2).await;
    assert_eq!(bodies(&contents[&0]), ["now"]);
    assert!(contents[&1].is_empty());
    assert_eq!(node.broker.timers.pending_of("later"), 3);

    // Listed in delivery order; each SCHEDULED by id.
    let (_, list, next) = node
        .broker
        .list_timers("later", None, None, None)
        .await
        .unwrap();
    let order: Vec<i64> = list.iter().map(|t| t.deliver_at_ms).collect();
    assert_eq!(
        order,
        [START_MS + 1_000, START_MS + 3_000, START_MS + 5_000]
    );
    assert!(next.is_none());
    let id = got[0].message_id.to_string();
    let (_, found) = node.broker.get_message("later", &id).await.unwrap();
    assert!(found.scheduled);
    assert_eq!(found.record.body, Bytes::from_static(b"five"));

    // Not due yet: nothing moves.
    node.clock.advance(999);
    node.broker.fire_timers().await;
    assert_eq!(
        bodies(&queue_contents(&node, "later", 2).await[&0]),
        ["now"]
    );

    node.clock.advance(1);
    node.broker.fire_timers().await;
    let q0 = queue_contents(&node, "later", 2).await[&0].clone();
    assert_eq!(bodies(&q0), ["now", "one"]);
    assert_eq!(
        q0[1].message_id, got[1].message_id,
        "a fired message keeps its id"
    );
    assert_eq!(q0[1].offset, 1);
    assert!(q0[1].store_ms >= START_MS + 1_000);
    assert_eq!(q0[1].deliver_at_ms, Some(START_MS + 1_000));

    node.clock.advance(10_000);
    node.broker.fire_timers().await;
    node.broker.fire_timers().await;
    let contents = queue_contents(&node, "later", 2).await;
    assert_eq!(bodies(&contents[&0]), ["now", "one", "five"]);
    assert_eq!(bodies(&contents[&1]), ["three"]);
    assert_eq!(node.broker.timers.pending_of("later"), 0);
    let (_, found) = node.broker.get_message("later", &id).await.unwrap();
    assert!(!found.scheduled);
    assert_eq!(found.record.offset, 2, "found in its queue once fired");
    let (_, list, _) = node
        .broker
        .list_timers("later", None, None, None)
        .await
        .unwrap();
    assert!(list.is_empty());
}

/// A restart at any point (here: after some fires were never recorded in the
/// saved state) neither loses a timer nor fires one twice.
#[tokio::test]
async fn a_restart_loses_no_timer_and_fires_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let tier = tier();
    let node = open(dir.path(), &tier, START_MS);
    delay_topic(&node, "later", 1, Durability::Sync).await;
    let msgs: Vec<MessageInput> = (1..=20)
        .map(|i| delayed(&format!("m{i:02}"), i * 100, 0))
        .collect();
    produce(&node, "later", msgs).await.unwrap();
    // The first call saves the state; the fires after it are not in it.
    node.broker.fire_timers().await;
    node.clock.advance(500);
    node.broker.fire_timers().await;
    assert_eq!(queue_contents(&node, "later", 1).await[&0].len(), 5);
    let now = shale_broker::Clock::now_ms(&node.clock);
    drop(node);

    let node = open(dir.path(), &tier, now);
    node.broker.fire_timers().await;
    assert_eq!(
        queue_contents(&node, "later", 1).await[&0].len(),
        5,
        "nothing fired twice after the restart"
    );
    assert_eq!(node.broker.timers.pending_of("later"), 15);
    node.clock.advance(2_000);
    node.broker.fire_timers().await;
    let all = bodies(&queue_contents(&node, "later", 1).await[&0]);
    let want: Vec<String> = (1..=20).map(|i| format!("m{i:02}")).collect();
    assert_eq!(all, want, "each once, in delivery order");

    // A retry of a scheduled message after a restart is not scheduled twice.
    let mut retried = delayed("dedup", 60_000, 0);
    retried.dedup_id = Some("once".into());
    let first = produce(&node, "later", vec![retried.clone()])
        .await
        .unwrap();
    drop(node);
    let node = open(dir.path(), &tier, now + 2_500);
    node.broker.open_timers().await;
    let again = produce(&node, "later", vec![retried]).await.unwrap();
    assert_eq!(again[0].message_id, first[0].message_id);
    assert!(again[0].scheduled);
    assert_eq!(node.broker.timers.pending_of("later"), 1);
    node.clock.advance(60_000);
    node.broker.fire_timers().await;

    // Once more, with everything fired and the state saved.
    drop(node);
    let node = open(dir.path(), &tier, now + 3_000);
    node.broker.fire_timers().await;
    assert_eq!(queue_contents(&node, "later", 1).await[&0].len(), 21);
    assert_eq!(node.broker.timers.pending_of("later"), 0);
}

#[tokio::test]
async fn recall_answers_204_while_pending_409_once_delivered_and_404_for_unknown_ids() {
    let dir = tempfile::tempdir().unwrap();
    let tier = tier();
    let node = open(dir.path(), &tier, START_MS);
    delay_topic(&node, "later", 1, Durability::Sync).await;
    let msgs = vec![
        delayed("keep", 1_000, 0),
        delayed("drop", 2_000, 0),
        delayed("now", 0, 0),
    ];
    let got = produce(&node, "later", msgs).await.unwrap();
    let (keep, drop_id, now_id) = (
        got[0].message_id.to_string(),
        got[1].message_id.to_string(),
        got[2].message_id.to_string(),
    );
    node.broker.recall_timer("later", &drop_id).await.unwrap();
    let code = |r: Result<String, BrokerError>| r.unwrap_err().code();
    assert_eq!(
        code(node.broker.recall_timer("later", &drop_id).await),
        ErrorCode::MessageNotFound,
        "recalled before"
    );
    assert_eq!(
        code(node.broker.recall_timer("later", &now_id).await),
        ErrorCode::MessageAlreadyDelivered,
        "delivered at once"
    );
    let unknown = shale_broker::MessageId::scheduled(START_MS + 5, 0, 99, 7).to_string();
    assert_eq!(
        code(node.broker.recall_timer("later", &unknown).await),
        ErrorCode::MessageNotFound
    );
    assert_eq!(
        code(node.broker.recall_timer("later", "zz").await),
        ErrorCode::InvalidArgument
    );
    let e = node
        .broker
        .get_message("later", &drop_id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageNotFound);

    node.clock.advance(1_000);
    node.broker.fire_timers().await;
    assert_eq!(
        code(node.broker.recall_timer("later", &keep).await),
        ErrorCode::MessageAlreadyDelivered
    );

    // The recall outlives a restart.
    drop(node);
    let node = open(dir.path(), &tier, START_MS + 10_000);
    node.broker.fire_timers().await;
    assert_eq!(
        bodies(&queue_contents(&node, "later", 1).await[&0]),
        ["now", "keep"]
    );
}

#[tokio::test]
async fn the_timer_list_pages_in_delivery_order_and_filters_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &tier(), START_MS);
    delay_topic(&node, "later", 3, Durability::Async).await;
    let msgs: Vec<MessageInput> = (0..30)
        .map(|i| {
            delayed(
                &format!("m{i}"),
                1_000 + (i * 7919 % 30) * 10,
                (i % 3) as u32,
            )
        })
        .collect();
    produce(&node, "later", msgs).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (_, page, next) = node
            .broker
            .list_timers("later", None, Some(7), after.clone())
            .await
            .unwrap();
        assert!(page.len() <= 7);
        seen.extend(page.iter().map(|t| (t.deliver_at_ms, t.queue)));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    let (_, by_key, _) = node
        .broker
        .list_timers("later", Some("k-m4".into()), None, None)
        .await
        .unwrap();
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].keys, ["k-m4"]);
    let e = node
        .broker
        .list_timers("later", None, Some(0), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let e = node
        .broker
        .list_timers("later", None, None, Some("nope".into()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn bad_delay_input_is_refused_and_a_deleted_topic_takes_its_timers() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &tier(), START_MS);
    let plain = NewTopic {
        name: "plain".into(),
        ..Default::default()
    };
    node.broker.create_topic(plain).await.unwrap();
    let e = produce(&node, "plain", vec![delayed("x", 1_000, 0)])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageTypeMismatch);

    delay_topic(&node, "later", 1, Durability::Sync).await;
    let too_far = delayed("far", 41 * 24 * 3_600_000, 0);
    let e = produce(&node, "later", vec![too_far]).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    produce(&node, "later", vec![delayed("gone", 1_000, 0)])
        .await
        .unwrap();
    assert_eq!(node.broker.timers.pending_of("later"), 1);
    node.broker.delete_topic("later").await.unwrap();
    delay_topic(&node, "later", 1, Durability::Sync).await;
    node.clock.advance(5_000);
    node.broker.fire_timers().await;
    assert!(queue_contents(&node, "later", 1).await[&0].is_empty());
    assert_eq!(node.broker.timers.pending_of("later"), 0);
}

const DAY_MS: i64 = 86_400_000;

/// `n` delay messages over `queues` queues, due from 1 minute to ~300 days
/// ahead (a few in the same millisecond); `(body, queue, delay)`.
fn far_messages(n: usize, queues: u32) -> Vec<(String, u32, i64)> {
    (0..n)
        .map(|i| {
            let delay = 60_000 + ((i as i64 * 7919) % 300) * DAY_MS + (i as i64 % 3);
            (format!("far-{i}"), i as u32 % queues, delay)
        })
        .collect()
}

async fn schedule_all(node: &Node, topic: &str, msgs: &[(String, u32, i64)]) -> Vec<Produced> {
    let mut out = Vec::new();
    for chunk in msgs.chunks(50) {
        let batch = chunk.iter().map(|(b, q, d)| delayed(b, *d, *q)).collect();
        out.extend(produce(node, topic, batch).await.unwrap());
    }
    out
}

/// Takes every queue of `topic` (as the first request to each would).
async fn serve_all(node: &Node, topic: &str, queues: u32) {
    // Finds topics created through other nodes.
    node.broker.cluster_tick().await;
    for q in 0..queues {
        node.broker.serve_queue(topic, q).await.unwrap();
    }
}

/// A clean leave of `node` (every timer goes up in runs), then node `n2`
/// with an empty disk on the same bucket serving `topic`'s queues.
async fn hand_over_to_an_empty_node(
    node: Node,
    tier: &Arc<Tier>,
    topic: &str,
    queues: u32,
) -> (Node, tempfile::TempDir) {
    node.broker
        .leave_cluster(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    drop(node);
    let dir = tempfile::tempdir().unwrap();
    let node2 = open_as(dir.path(), tier, START_MS + 1_000, "n2");
    serve_all(&node2, topic, queues).await;
    (node2, dir)
}

fn in_memory(node: &Node, topic: &str, queues: u32) -> usize {
    (0..queues)
        .map(|q| {
            node.broker
                .timers
                .get(topic, q)
                .map_or(0, |t| t.index.lock().in_memory())
        })
        .sum()
}

/// Fires until nothing is pending (bounded), then checks each queue: every
/// expected body once, in delivery order.
async fn fire_all_and_check(
    node: &Node,
    topic: &str,
    queues: u32,
    expected: &BTreeMap<String, i64>,
) {
    for _ in 0..200 {
        node.broker.fire_timers().await;
        if node.broker.pending_timers(topic).await.unwrap() == 0 {
            break;
        }
    }
    assert_eq!(node.broker.pending_timers(topic).await.unwrap(), 0);
    let mut seen = BTreeMap::new();
    for (q, records) in queue_contents(node, topic, queues).await {
        let due: Vec<i64> = records.iter().map(|r| r.deliver_at_ms.unwrap()).collect();
        assert!(
            due.windows(2).all(|w| w[0] <= w[1]),
            "queue {q} out of delivery order"
        );
        for b in bodies(&records) {
            assert!(seen.insert(b.clone(), ()).is_none(), "{b} delivered twice");
        }
    }
    let want: Vec<&String> = expected.keys().collect();
    let got: Vec<&String> = seen.keys().collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn far_timers_live_in_the_object_store_and_move_with_the_queue_to_an_empty_node() {
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let node = open_as(dir.path(), &tier, START_MS, "n1");
    delay_topic(&node, "far", 2, Durability::Sync).await;
    let msgs = far_messages(300, 2);
    let produced = schedule_all(&node, "far", &msgs).await;
    assert!(produced.iter().all(|p| p.scheduled));
    let (node2, _dir2) = hand_over_to_an_empty_node(node, &tier, "far", 2).await;
    assert_eq!(node2.broker.pending_timers("far").await.unwrap(), 300);
    assert!(
        in_memory(&node2, "far", 2) < 10,
        "only timers due within the load horizon are in memory, not {}",
        in_memory(&node2, "far", 2)
    );
    // Listing pages in delivery order over the runs.
    let mut listed = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let (_, page, next) = node2
            .broker
            .list_timers("far", None, Some(70), after.clone())
            .await
            .unwrap();
        listed.extend(page);
        after = next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(listed.len(), 300);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].deliver_at_ms <= w[1].deliver_at_ms)
    );
    let by_key = node2
        .broker
        .list_timers("far", Some("k-far-7".into()), None, None)
        .await
        .unwrap()
        .1;
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].message_id, produced[7].message_id);

    // A far timer: SCHEDULED from its run, then recalled (404 after).
    let id = produced[5].message_id.to_string();
    node2.broker.recall_timer("far", &id).await.unwrap();
    let again = node2.broker.recall_timer("far", &id).await.unwrap_err();
    assert_eq!(again.code(), ErrorCode::MessageNotFound);
    assert_eq!(node2.broker.pending_timers("far").await.unwrap(), 299);

    // Down for a year: everything fires at once, in delivery order, once.
    node2.clock.advance(365 * DAY_MS);
    let expected: BTreeMap<String, i64> = msgs
        .iter()
        .filter(|(b, _, _)| b != "far-5")
        .map(|(b, _, d)| (b.clone(), *d))
        .collect();
    fire_all_and_check(&node2, "far", 2, &expected).await;
}

#[tokio::test]
async fn a_crash_after_a_spill_keeps_the_runs_and_the_unspilled_journal() {
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let node = open_as(dir.path(), &tier, START_MS, "n1");
    delay_topic(&node, "mix", 2, Durability::Sync).await;
    let first = far_messages(100, 2);
    schedule_all(&node, "mix", &first).await;
    node.broker
        .leave_cluster(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    drop(node);
    // The same node (its disk kept) comes back, schedules more, and dies.
    let node = open_as(dir.path(), &tier, START_MS + 1_000, "n1");
    serve_all(&node, "mix", 2).await;
    let more: Vec<(String, u32, i64)> = far_messages(60, 2)
        .into_iter()
        .map(|(b, q, d)| (b.replace("far", "more"), q, d + 1))
        .collect();
    schedule_all(&node, "mix", &more).await;
    node.broker.fire_timers().await;
    drop(node);
    let node = open_as(dir.path(), &tier, START_MS + 2_000, "n1");
    serve_all(&node, "mix", 2).await;
    assert_eq!(node.broker.pending_timers("mix").await.unwrap(), 160);
    node.clock.advance(365 * DAY_MS);
    let expected: BTreeMap<String, i64> = first
        .iter()
        .chain(&more)
        .map(|(b, _, d)| (b.clone(), *d))
        .collect();
    fire_all_and_check(&node, "mix", 2, &expected).await;
}

/// A backlog longer than one spill goes up in several bounded runs (none
/// lost, none twice), and a queue whose unspilled timers reach the cap
/// refuses more (503, nothing stored) until spills catch up.
#[tokio::test]
async fn a_backlog_spills_in_bounded_runs_and_a_full_queue_refuses_more() {
    use shale_broker::timers::store::UNSPILLED_CAP;
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let node = open_as(dir.path(), &tier, START_MS, "n1");
    delay_topic(&node, "backlog", 1, Durability::Sync).await;
    // No jobs run here, so nothing spills until the test says so.
    let n = UNSPILLED_CAP as usize;
    let delay = |i: usize| 60_000 + (i as i64 * 7919 % 300) * DAY_MS;
    let body = |i: usize| format!("{i:08}-{}", "b".repeat(120));
    for start in (0..n).step_by(1024) {
        let batch = (start..(start + 1024).min(n))
            .map(|i| delayed(&body(i), delay(i), 0))
            .collect();
        produce(&node, "backlog", batch).await.unwrap();
        if start % (32 * 1024) == 0 {
            // No jobs here: renew the lease as the cluster job would.
            node.broker.cluster_tick().await;
        }
    }
    let refused = produce(&node, "backlog", vec![delayed("one more", 60_000, 0)])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Unavailable, "{refused}");
    assert_eq!(
        node.broker.pending_timers("backlog").await.unwrap(),
        n as u64
    );

    node.broker.spill_timers("backlog").await.unwrap();
    let q = node.broker.timers.get("backlog", 0).unwrap();
    let runs = q.run_count().await;
    // ~40 MB of journal, at most SPILL_MAX_BYTES (16 MiB) a run.
    assert!(runs >= 3, "{runs} runs");
    assert!(q.index.lock().in_memory() < 1000);
    node.broker.cluster_tick().await;
    produce(&node, "backlog", vec![delayed("one more", 60_000, 0)])
        .await
        .unwrap();
    assert_eq!(
        node.broker.pending_timers("backlog").await.unwrap(),
        n as u64 + 1
    );
    drop(q);

    // On another node with an empty disk: every timer, in delivery order.
    let (node2, _dir2) = hand_over_to_an_empty_node(node, &tier, "backlog", 1).await;
    assert_eq!(
        node2.broker.pending_timers("backlog").await.unwrap(),
        n as u64 + 1
    );
    let (_, page, _) = node2
        .broker
        .list_timers("backlog", None, Some(1000), None)
        .await
        .unwrap();
    assert!(
        page.windows(2)
            .all(|w| w[0].deliver_at_ms <= w[1].deliver_at_ms)
    );
    assert_eq!(page.len(), 1000);
}
