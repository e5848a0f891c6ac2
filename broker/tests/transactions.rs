//! Transactions through the broker's Rust API with an injected clock: half
//! messages out of their queue until committed, then in it exactly once;
//! repeated and opposite decisions; check-back and the check limit; restarts
//! and a hand-over to an empty node; and a property test of the whole state
//! machine against a model, with restarts and spills at random points.
#![allow(clippy::unwrap_used)] // test setup helpers unwrap like the tests do

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use shale_broker::produce::{MessageInput, ProduceBatch, Produced};
use shale_broker::read::ReadRequest;
use shale_broker::topic_admin::NewTopic;
use shale_broker::txn::TxnSettings;
use shale_broker::txn::records::TxnId;
use shale_broker::txn::table::TxnDecision;
use shale_broker::{
    Broker, BrokerConfig, BrokerError, Durability, ErrorCode, ManualClock, MessageType, Record,
};
use shale_tiering::{Faults, Tier};

const START_MS: i64 = 1_800_000_000_000;
const COMMIT: TxnDecision = TxnDecision::Committed;
const ROLLBACK: TxnDecision = TxnDecision::RolledBack;

struct Node {
    broker: Arc<Broker>,
    clock: ManualClock,
}

fn config(dir: &Path, node_id: &str) -> BrokerConfig {
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

fn open(dir: &Path, tier: &Arc<Tier>, now_ms: i64, node_id: &str) -> Node {
    let clock = ManualClock::new(now_ms);
    let broker =
        Broker::open_with(&config(dir, node_id), Arc::new(clock.clone()), tier.clone()).unwrap();
    Node { broker, clock }
}

fn tier() -> Arc<Tier> {
    Arc::new(Tier::in_memory_with_faults(&Faults::default(), 1 << 20))
}

async fn txn_topic(node: &Node, name: &str, queues: u32) {
    let new = NewTopic {
        name: name.into(),
        queues: Some(queues),
        message_type: Some(MessageType::Transaction),
        durability: Some(Durability::Sync),
        ..Default::default()
    };
    node.broker.create_topic(new).await.unwrap();
}

fn message(body: &str, queue: Option<u32>) -> MessageInput {
    MessageInput {
        body: Bytes::from(body.to_string()),
        queue,
        ..Default::default()
    }
}

/// Stores one transaction of `bodies`; its id and the produce results.
async fn half(
    node: &Node,
    topic: &str,
    bodies: &[&str],
    queue: Option<u32>,
    check_after_ms: u32,
) -> Result<(String, Vec<Produced>), BrokerError> {
    let batch = ProduceBatch {
        messages: bodies.iter().map(|b| message(b, queue)).collect(),
        transaction: Some(TxnSettings {
            producer_group: "pg".into(),
            check_after_ms,
        }),
    };
    let produced = node.broker.producer(topic)?.produce(batch).await?;
    let id = TxnId {
        first: produced[0].message_id,
        topic: topic.into(),
    };
    Ok((id.to_string(), produced))
}

async fn queue_records(node: &Node, topic: &str, queues: u32) -> BTreeMap<u32, Vec<Record>> {
    let mut out = BTreeMap::new();
    for q in 0..queues {
        let req = ReadRequest {
            max_messages: Some(1000),
            ..Default::default()
        };
        out.insert(
            q,
            node.broker.read_queue(topic, q, req).await.unwrap().records,
        );
    }
    out
}

fn all_bodies(contents: &BTreeMap<u32, Vec<Record>>) -> Vec<String> {
    let mut out: Vec<String> = contents
        .values()
        .flatten()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    out.sort();
    out
}

async fn decide(node: &Node, id: &str, d: TxnDecision) -> Result<bool, ErrorCode> {
    node.broker
        .decide_transaction(id, d)
        .await
        .map(|x| x.now)
        .map_err(|e| e.code())
}

#[tokio::test]
async fn halves_stay_out_of_their_queue_until_committed_then_enter_it_once() {
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &tier, START_MS, "n1");
    txn_topic(&node, "pay", 2).await;
    let (t1, p1) = half(&node, "pay", &["a", "b", "c"], None, 6000)
        .await
        .unwrap();
    let (t2, _) = half(&node, "pay", &["d"], Some(1), 6000).await.unwrap();
    assert!(p1.iter().all(|p| p.scheduled && p.deliver_at_ms.is_none()));
    assert!(
        p1.iter().all(|p| p.queue == p1[0].queue),
        "one transaction, one queue"
    );
    assert!(all_bodies(&queue_records(&node, "pay", 2).await).is_empty());
    // A half message is seen by nobody, even by id.
    let hidden = node
        .broker
        .get_message("pay", &p1[0].message_id.to_string())
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), ErrorCode::MessageNotFound);
    assert_eq!(node.broker.pending_transactions("pay").await.unwrap(), 2);

    assert_eq!(decide(&node, &t1, COMMIT).await, Ok(true));
    let contents = queue_records(&node, "pay", 2).await;
    assert_eq!(all_bodies(&contents), ["a", "b", "c"]);
    let q = &contents[&p1[0].queue];
    assert_eq!(
        q.iter().map(|r| r.message_id).collect::<Vec<_>>(),
        p1.iter().map(|p| p.message_id).collect::<Vec<_>>(),
        "committed messages keep their ids, in request order"
    );
    assert!(q.iter().all(|r| r.deliver_at_ms.is_none()));
    let (_, found) = node
        .broker
        .get_message("pay", &p1[1].message_id.to_string())
        .await
        .unwrap();
    assert_eq!(found.record.body, Bytes::from("b"));

    // Repeated: 200 and nothing appended; opposite: 409.
    assert_eq!(decide(&node, &t1, COMMIT).await, Ok(false));
    assert_eq!(
        decide(&node, &t1, ROLLBACK).await,
        Err(ErrorCode::TransactionAlreadyResolved)
    );
    assert_eq!(decide(&node, &t2, ROLLBACK).await, Ok(true));
    assert_eq!(decide(&node, &t2, ROLLBACK).await, Ok(false));
    assert_eq!(
        decide(&node, &t2, COMMIT).await,
        Err(ErrorCode::TransactionAlreadyResolved)
    );
    assert_eq!(
        all_bodies(&queue_records(&node, "pay", 2).await),
        ["a", "b", "c"]
    );
    assert_eq!(node.broker.pending_transactions("pay").await.unwrap(), 0);

    // Unknown, forged and malformed ids.
    let forged = t1.replacen(&t1[..2], "ff", 1);
    for bad in [
        forged.as_str(),
        "nope",
        "00000000000000000000000000000000.pay",
    ] {
        assert_eq!(
            decide(&node, bad, COMMIT).await,
            Err(ErrorCode::TransactionNotFound),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn produce_rules_for_transaction_topics() {
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &tier, START_MS, "n1");
    txn_topic(&node, "pay", 2).await;
    let plain = ProduceBatch {
        messages: vec![message("x", None)],
        transaction: None,
    };
    let e = node
        .broker
        .producer("pay")
        .unwrap()
        .produce(plain)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageTypeMismatch);
    // Pinned queues must agree.
    let split = ProduceBatch {
        messages: vec![message("x", Some(0)), message("y", Some(1))],
        transaction: Some(TxnSettings {
            producer_group: "pg".into(),
            check_after_ms: 6000,
        }),
    };
    let e = node
        .broker
        .producer("pay")
        .unwrap()
        .produce(split)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert_eq!(
        half(&node, "pay", &["x"], None, 999)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
    let mut deduped = message("x", None);
    deduped.dedup_id = Some("d1".into());
    let e = node
        .broker
        .producer("pay")
        .unwrap()
        .produce(ProduceBatch {
            messages: vec![deduped],
            transaction: Some(TxnSettings {
                producer_group: "pg".into(),
                check_after_ms: 6000,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert_eq!(node.broker.pending_transactions("pay").await.unwrap(), 0);
}

/// Runs the timers job until the checks due at the clock are offered.
async fn tick(node: &Node) {
    for _ in 0..3 {
        node.broker.fire_timers().await;
    }
}

async fn poll(node: &Node) -> Vec<shale_broker::txn::checks::CheckOffer> {
    node.broker
        .transaction_checks("pg", 16, Duration::ZERO)
        .await
}

#[tokio::test]
async fn checks_come_every_check_after_ms_to_one_poller_and_the_limit_rolls_back() {
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &tier, START_MS, "n1");
    node.broker.set_transaction_max_checks(3);
    txn_topic(&node, "pay", 1).await;
    let (t1, p1) = half(&node, "pay", &["a"], None, 1000).await.unwrap();
    let (t2, _) = half(&node, "pay", &["b"], None, 1000).await.unwrap();
    tick(&node).await;
    assert!(poll(&node).await.is_empty(), "not before check_after_ms");
    node.clock.advance(999);
    tick(&node).await;
    assert!(poll(&node).await.is_empty());
    node.clock.advance(1);
    tick(&node).await;
    let checks = poll(&node).await;
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0].transaction_id, t1);
    assert_eq!(checks[0].check_count, 1);
    assert_eq!(checks[0].message.message_id, p1[0].message_id);
    assert_eq!(checks[0].message.body, Bytes::from("a"));
    assert!(
        poll(&node).await.is_empty(),
        "each check goes to one poller"
    );

    // t2 decided: no more checks for it; t1 checked again each second.
    assert_eq!(decide(&node, &t2, COMMIT).await, Ok(true));
    for count in 2..=3 {
        node.clock.advance(1000);
        tick(&node).await;
        let checks = poll(&node).await;
        assert_eq!(checks.len(), 1);
        assert_eq!(
            (checks[0].transaction_id.as_str(), checks[0].check_count),
            (t1.as_str(), count)
        );
    }
    // An offer whose transaction is decided meanwhile is not given out.
    node.clock.advance(1000);
    tick(&node).await;
    assert_eq!(
        decide(&node, &t1, COMMIT).await,
        Err(ErrorCode::TransactionAlreadyResolved),
        "rolled back after 3 checks"
    );
    assert!(poll(&node).await.is_empty());
    assert_eq!(all_bodies(&queue_records(&node, "pay", 1).await), ["b"]);

    // A long poll wakes up when a check is offered.
    let (t3, _) = half(&node, "pay", &["c"], None, 1000).await.unwrap();
    let b = node.broker.clone();
    let waiter =
        tokio::spawn(async move { b.transaction_checks("pg", 4, Duration::from_secs(10)).await });
    tokio::task::yield_now().await;
    node.clock.advance(1000);
    tick(&node).await;
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].transaction_id, t3);
}

#[tokio::test]
async fn a_restart_keeps_pending_transactions_decisions_and_check_counts() {
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &tier, START_MS, "n1");
    txn_topic(&node, "pay", 1).await;
    let (t1, _) = half(&node, "pay", &["a"], None, 1000).await.unwrap();
    let (t2, _) = half(&node, "pay", &["b", "c"], None, 1000).await.unwrap();
    let (t3, _) = half(&node, "pay", &["d"], None, 1000).await.unwrap();
    assert_eq!(decide(&node, &t1, COMMIT).await, Ok(true));
    assert_eq!(decide(&node, &t3, ROLLBACK).await, Ok(true));
    node.clock.advance(1000);
    tick(&node).await;
    assert_eq!(poll(&node).await.len(), 1, "t2 checked once");
    drop(node);

    let node = open(dir.path(), &tier, START_MS + 1500, "n1");
    node.broker.serve_queue("pay", 0).await.unwrap();
    tick(&node).await;
    assert_eq!(node.broker.pending_transactions("pay").await.unwrap(), 1);
    assert_eq!(decide(&node, &t1, COMMIT).await, Ok(false));
    assert_eq!(
        decide(&node, &t3, COMMIT).await,
        Err(ErrorCode::TransactionAlreadyResolved)
    );
    node.clock.advance(500);
    tick(&node).await;
    let checks = poll(&node).await;
    assert_eq!(checks.len(), 1);
    assert_eq!(
        (checks[0].transaction_id.as_str(), checks[0].check_count),
        (t2.as_str(), 2)
    );
    assert_eq!(decide(&node, &t2, COMMIT).await, Ok(true));
    assert_eq!(
        all_bodies(&queue_records(&node, "pay", 1).await),
        ["a", "b", "c"]
    );
}

#[tokio::test]
async fn transactions_move_with_their_queue_to_an_empty_node() {
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &tier, START_MS, "n1");
    txn_topic(&node, "pay", 2).await;
    let mut ids = Vec::new();
    for i in 0..120 {
        let b1 = format!("m{i}-a");
        let b2 = format!("m{i}-b");
        let (id, _) = half(&node, "pay", &[&b1, &b2], None, 600_000)
            .await
            .unwrap();
        ids.push(id);
    }
    // Some decided before the move, the rest after.
    for id in &ids[..20] {
        assert_eq!(decide(&node, id, COMMIT).await, Ok(true));
    }
    for id in &ids[20..30] {
        assert_eq!(decide(&node, id, ROLLBACK).await, Ok(true));
    }
    node.broker.spill_timers("pay").await.unwrap();
    node.broker
        .leave_cluster(Duration::from_secs(30))
        .await
        .unwrap();
    drop(node);

    let dir2 = tempfile::tempdir().unwrap();
    let node2 = open(dir2.path(), &tier, START_MS + 1000, "n2");
    node2.broker.cluster_tick().await;
    for q in 0..2 {
        node2.broker.serve_queue("pay", q).await.unwrap();
    }
    tick(&node2).await;
    assert_eq!(node2.broker.pending_transactions("pay").await.unwrap(), 90);
    assert_eq!(decide(&node2, &ids[0], COMMIT).await, Ok(false));
    assert_eq!(
        decide(&node2, &ids[25], COMMIT).await,
        Err(ErrorCode::TransactionAlreadyResolved)
    );
    // Halves now only in the object store's runs: commit reads them there.
    for id in &ids[30..80] {
        assert_eq!(decide(&node2, id, COMMIT).await, Ok(true), "{id}");
    }
    for id in &ids[80..] {
        assert_eq!(decide(&node2, id, ROLLBACK).await, Ok(true));
    }
    let mut want: Vec<String> = (0..20)
        .chain(30..80)
        .flat_map(|i| [format!("m{i}-a"), format!("m{i}-b")])
        .collect();
    want.sort();
    assert_eq!(all_bodies(&queue_records(&node2, "pay", 2).await), want);
    assert_eq!(node2.broker.pending_transactions("pay").await.unwrap(), 0);
}

/// A decision asked for and what it answered (`Ok(true)`: it decided).
type Outcome = (TxnDecision, Result<bool, ErrorCode>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_and_repeated_commits_of_one_queue_append_each_message_once() {
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &tier, START_MS, "n1");
    txn_topic(&node, "pay", 1).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let b = format!("m{i}");
        ids.push(half(&node, "pay", &[&b], None, 60_000).await.unwrap().0);
    }
    // Every transaction committed twice and rolled back once, all at once:
    // one call decides it, the same decision again is 200, the opposite 409.
    let mut calls = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        for d in [COMMIT, COMMIT, ROLLBACK] {
            let (b, id) = (node.broker.clone(), id.clone());
            calls.push(tokio::spawn(async move {
                let got = b.decide_transaction(&id, d).await;
                (i, d, got.map(|x| x.now).map_err(|e| e.code()))
            }));
        }
    }
    let mut outcomes: BTreeMap<usize, Vec<Outcome>> = BTreeMap::new();
    for c in calls {
        let (i, d, got) = c.await.unwrap();
        outcomes.entry(i).or_default().push((d, got));
    }
    let mut want = Vec::new();
    for (i, got) in outcomes {
        let winners: Vec<TxnDecision> = got
            .iter()
            .filter(|(_, r)| *r == Ok(true))
            .map(|(d, _)| *d)
            .collect();
        assert_eq!(winners.len(), 1, "transaction {i}: {got:?}");
        for (d, r) in &got {
            let expected_if_lost = if *d == winners[0] {
                Ok(false)
            } else {
                Err(ErrorCode::TransactionAlreadyResolved)
            };
            assert!(
                *r == Ok(true) || *r == expected_if_lost,
                "transaction {i}: {got:?}"
            );
        }
        if winners[0] == COMMIT {
            want.push(format!("m{i}"));
        }
    }
    want.sort();
    assert_eq!(all_bodies(&queue_records(&node, "pay", 1).await), want);
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    Produce(u8),
    Decide(usize, bool),
    Advance(u16),
    Spill,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..4).prop_map(Op::Produce),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(i, c)| Op::Decide(i, c)),
        2 => (1u16..3000).prop_map(Op::Advance),
        1 => Just(Op::Spill),
        1 => Just(Op::Restart),
    ]
}

/// The model: each transaction's bodies and decision.
#[derive(Default)]
struct Model {
    txns: Vec<(String, Vec<String>, Option<TxnDecision>)>,
}

async fn run_ops(ops: Vec<Op>) {
    let tier = tier();
    let dir = tempfile::tempdir().unwrap();
    let mut now = START_MS;
    let mut node = open(dir.path(), &tier, now, "n1");
    node.broker.set_transaction_max_checks(2);
    txn_topic(&node, "p", 2).await;
    let mut model = Model::default();
    let mut n = 0;
    for op in ops {
        match op {
            Op::Produce(k) => {
                let bodies: Vec<String> = (0..k).map(|j| format!("t{n}-{j}")).collect();
                n += 1;
                let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
                let (id, _) = half(&node, "p", &refs, None, 1000).await.unwrap();
                model.txns.push((id, bodies, None));
            }
            Op::Decide(i, commit) if !model.txns.is_empty() => {
                let i = i % model.txns.len();
                let d = if commit { COMMIT } else { ROLLBACK };
                let got = decide(&node, &model.txns[i].0, d).await;
                let want = match model.txns[i].2 {
                    None => Ok(true),
                    Some(x) if x == d => Ok(false),
                    Some(_) => Err(ErrorCode::TransactionAlreadyResolved),
                };
                assert_eq!(got, want, "decision {d:?} on transaction {i}");
                model.txns[i].2.get_or_insert(d);
            }
            Op::Decide(..) => {}
            Op::Advance(ms) => {
                node.clock.advance(i64::from(ms));
                now += i64::from(ms);
                tick(&node).await;
                // Checks are offered only for undecided transactions.
                for c in poll(&node).await {
                    let t = model.txns.iter().find(|t| t.0 == c.transaction_id).unwrap();
                    assert_eq!(t.2, None, "a check for a decided transaction");
                }
                // The check limit rolls back: learn it from the broker.
                for t in &mut model.txns {
                    if t.2.is_none() {
                        let row = decided_now(&node, &t.0).await;
                        if row == Some(ROLLBACK) {
                            t.2 = Some(ROLLBACK);
                        }
                    }
                }
            }
            Op::Spill => node.broker.spill_timers("p").await.unwrap(),
            Op::Restart => {
                drop(node);
                node = open(dir.path(), &tier, now, "n1");
                node.broker.set_transaction_max_checks(2);
                for q in 0..2 {
                    node.broker.serve_queue("p", q).await.unwrap();
                }
            }
        }
    }
    let mut want: Vec<String> = model
        .txns
        .iter()
        .filter(|t| t.2 == Some(COMMIT))
        .flat_map(|t| t.1.clone())
        .collect();
    want.sort();
    assert_eq!(all_bodies(&queue_records(&node, "p", 2).await), want);
    let pending = model.txns.iter().filter(|t| t.2.is_none()).count() as u64;
    assert_eq!(
        node.broker.pending_transactions("p").await.unwrap(),
        pending
    );
}

/// How the broker has decided `id`, without deciding it.
async fn decided_now(node: &Node, id: &str) -> Option<TxnDecision> {
    let t = TxnId::parse(id).unwrap();
    let q = node.broker.timers.get(&t.topic, t.queue())?;
    let txns = q.txns.lock();
    txns.get(t.seq0())
        .map(|r| r.decision)
        .filter(|d| *d != TxnDecision::Pending)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any sequence of produces, decisions, clock moves (checks and the
    /// limit), spills and restarts: every decision answers as the model
    /// says, the queues hold exactly the committed messages once, and the
    /// pending count is the model's.
    #[test]
    fn the_transaction_state_machine_matches_its_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run_ops(ops));
    }
}
