#![allow(clippy::unwrap_used)]
//! OBJECT durability in-process: a produce answers only once its messages
//! are in the object store, readers see them only then, one PUT carries
//! many queues and producers, and a new owner recovers every acknowledged
//! message at its offset from a dead owner's write-ahead chunks.

mod support;

use std::sync::Arc;
use std::time::Duration;

use shale_broker::cluster::ClusterConfig;
use shale_broker::produce::{MessageInput, ProduceBatch, Produced};
use shale_broker::read::ReadRequest;
use shale_broker::{Broker, Durability, ManualClock, MessageType};
use shale_tiering::{Faults, Tier};
use support::{START_MS, body, config_as};

/// A node `id` over `tier` whose lease time is `lease_clock` (moved by hand).
struct Member {
    _dir: tempfile::TempDir,
    broker: Arc<Broker>,
    lease_clock: Arc<ManualClock>,
}

fn member(tier: &Arc<Tier>, id: &str) -> Member {
    member_at(tier, id).0
}

/// `b` joins, learns the topics, and once the dead owner's lease has run
/// out (on b's lease clock) takes its queues.
async fn take_over_from_the_dead(b: &Member) {
    b.broker.cluster.join().await.unwrap();
    b.broker.refresh_topics_from_store().await.unwrap();
    b.broker.cluster_tick().await;
    b.lease_clock.advance(11_000);
    b.broker.cluster_tick().await;
    b.broker.cluster_tick().await;
}

fn shared(tier: &Arc<Tier>) -> Arc<Tier> {
    Arc::new(Tier::new(
        tier.store().clone(),
        object_store::path::Path::default(),
        1 << 20,
    ))
}

async fn object_topic(b: &Arc<Broker>, name: &str, queues: u32) {
    b.create_topic(shale_broker::topic_admin::NewTopic {
        name: name.into(),
        queues: Some(queues),
        message_type: Some(MessageType::Normal),
        retention_ms: None,
        durability: Some(Durability::Object),
    })
    .await
    .unwrap();
}

async fn produce(
    b: &Arc<Broker>,
    topic: &str,
    messages: Vec<MessageInput>,
) -> shale_broker::BrokerResult<Vec<Produced>> {
    let batch = ProduceBatch {
        messages,
        transaction: None,
    };
    b.producer(topic)?.produce(batch).await
}

fn to_queue(text: &str, queue: u32) -> MessageInput {
    MessageInput {
        queue: Some(queue),
        ..body(text)
    }
}

async fn read_all(b: &Arc<Broker>, topic: &str, queue: u32) -> Vec<shale_hot::Record> {
    let req = ReadRequest {
        offset: Some(0),
        max_messages: Some(1000),
        ..Default::default()
    };
    b.read_queue(topic, queue, req).await.unwrap().records
}

fn wal_chunks(tier: &Tier) -> usize {
    futures::executor::block_on(shale_tiering::wal::list_all_chunks(
        tier.store().as_ref(),
        tier.layout(),
    ))
    .unwrap()
    .len()
}

/// While the store refuses writes an OBJECT produce fails (retryable) and
/// readers do not see its messages; once the store is back, the next
/// produce commits them too, and both become visible together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_produce_answers_only_once_the_store_has_it() {
    let faults = Faults::default();
    let tier = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let a = member(&tier, "a");
    a.broker.cluster.join().await.unwrap();
    object_topic(&a.broker, "t", 1).await;
    a.broker.serve_queue("t", 0).await.unwrap();

    faults.set_down(true);
    let e = produce(&a.broker, "t", vec![body("first")])
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        read_all(&a.broker, "t", 0).await.is_empty(),
        "not visible before it is in the store"
    );
    faults.set_down(false);
    assert_eq!(wal_chunks(&tier), 0);
    let ok = produce(&a.broker, "t", vec![body("second")]).await.unwrap();
    assert_eq!(ok[0].offset, 1);
    let got = read_all(&a.broker, "t", 0).await;
    let texts: Vec<_> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .collect();
    assert_eq!(
        texts,
        ["first", "second"],
        "the failed one's record went up with the next commit"
    );
    assert!(wal_chunks(&tier) >= 1);
}

/// One PUT per commit for the whole node: many producers on many queues at
/// once make a handful of PUTs, not one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_put_carries_the_messages_of_many_queues_and_producers() {
    let faults = Faults::default();
    let tier = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let a = member(&tier, "a");
    a.broker.cluster.join().await.unwrap();
    object_topic(&a.broker, "t", 8).await;
    for q in 0..8 {
        a.broker.serve_queue("t", q).await.unwrap();
    }
    faults.set_latency(Duration::from_millis(100));
    let before = faults.counts().puts;
    let producers: Vec<_> = (0..64u32)
        .map(|i| {
            let b = a.broker.clone();
            tokio::spawn(
                async move { produce(&b, "t", vec![to_queue(&format!("m{i}"), i % 8)]).await },
            )
        })
        .collect();
    for p in producers {
        p.await.unwrap().unwrap();
    }
    let puts = faults.counts().puts - before;
    faults.set_latency(Duration::ZERO);
    assert!(
        puts <= 16,
        "64 produce calls over 8 queues made {puts} PUTs"
    );
    let mut total = 0;
    for q in 0..8 {
        let got = read_all(&a.broker, "t", q).await;
        assert_eq!(got.len(), 8, "queue {q}");
        total += got.len();
    }
    assert_eq!(total, 64);
    eprintln!("64 concurrent OBJECT produces over 8 queues, 100 ms PUTs: {puts} PUTs");
}

/// A node dies (no hand-over, nothing uploaded as segments) after
/// acknowledging OBJECT messages; the node that takes its queues over
/// serves every one of them at its offset, with its id and store time, and
/// new messages continue after them. Then the dead node's chunks are
/// collected, and so are the new owner's once its segments cover them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_recovers_every_acknowledged_message_at_its_offset() {
    let faults = Faults::default();
    let tier_a = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let a = member(&tier_a, "a");
    a.broker.cluster.join().await.unwrap();
    object_topic(&a.broker, "t", 2).await;
    let mut acked = Vec::new();
    for i in 0..20u32 {
        let got = produce(&a.broker, "t", vec![to_queue(&format!("m{i}"), i % 2)])
            .await
            .unwrap();
        acked.push((format!("m{i}"), got[0]));
    }
    // The last one's answer is "lost": its producer will retry it through the new owner.
    let with_id = MessageInput {
        dedup_id: Some("retry-me".into()),
        ..to_queue("m20", 0)
    };
    let first = produce(&a.broker, "t", vec![with_id.clone()])
        .await
        .unwrap()[0];
    let original: Vec<Vec<shale_hot::Record>> = vec![
        read_all(&a.broker, "t", 0).await,
        read_all(&a.broker, "t", 1).await,
    ];
    assert_eq!(original[0].len() + original[1].len(), 21);
    assert!(wal_chunks(&tier_a) >= 1);
    // `a` dies: it never hands over, never uploads, never renews again.

    let tier_b = shared(&tier_a);
    let b = member(&tier_b, "b");
    take_over_from_the_dead(&b).await;
    assert_eq!(b.broker.cluster.held().len(), 2, "b took both queues");
    for q in 0..2u32 {
        let got = read_all(&b.broker, "t", q).await;
        assert!(
            got == original[q as usize],
            "queue {q}: recovered records differ"
        );
    }
    for (text, p) in &acked {
        let r = &read_all(&b.broker, "t", p.queue).await[p.offset as usize];
        assert_eq!(
            (
                String::from_utf8_lossy(&r.body).as_ref(),
                r.message_id,
                r.store_ms
            ),
            (text.as_str(), p.message_id, p.store_ms)
        );
    }
    // The retry is recognised: same place, same id, nothing stored twice.
    let retried = produce(&b.broker, "t", vec![with_id]).await.unwrap()[0];
    assert_eq!(
        (retried.offset, retried.message_id),
        (first.offset, first.message_id)
    );
    let next = produce(&b.broker, "t", vec![to_queue("after", 0)])
        .await
        .unwrap();
    assert_eq!(next[0].offset, original[0].len() as u64);

    // The dead owner's chunks are covered by the segments b uploaded.
    assert!(b.broker.collect_gone_wal().await >= 1);
    // b's own chunk is covered once its segment is up.
    let log = b.broker.hot.existing_queue("t", 0).unwrap();
    tokio::task::spawn_blocking(move || log.seal_active())
        .await
        .unwrap()
        .unwrap();
    b.broker.upload_and_retain().await;
    assert!(b.broker.collect_own_wal().await >= 1);
    assert_eq!(
        wal_chunks(&tier_b),
        0,
        "every chunk was covered and deleted"
    );
}

fn member_at(tier: &Arc<Tier>, id: &str) -> (Member, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let lease_clock = Arc::new(ManualClock::new(0));
    let mut config = config_as(dir.path(), id);
    config.cluster = ClusterConfig {
        lease_clock: Some(lease_clock.clone()),
        ..ClusterConfig::default()
    };
    let clock = Arc::new(ManualClock::new(START_MS));
    let broker = Broker::open_with(&config, clock.clone(), tier.clone()).unwrap();
    let m = Member {
        _dir: dir,
        broker,
        lease_clock,
    };
    (m, clock)
}

fn later(text: &str, queue: u32, delay_ms: i64) -> MessageInput {
    MessageInput {
        delay: shale_broker::produce::DelayInput {
            delay_ms: Some(delay_ms),
            ..Default::default()
        },
        ..to_queue(text, queue)
    }
}

/// DELAY at OBJECT: timers acknowledged by an owner that dies before
/// spilling them are replayed by the new owner from the write-ahead chunks
/// (a dedup retry is recognised), fire once each, and the chunks are
/// collected once everything is in runs and segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_recovers_every_acknowledged_timer_from_the_write_ahead_chunks() {
    let faults = Faults::default();
    let tier_a = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let (a, _) = member_at(&tier_a, "a");
    a.broker.cluster.join().await.unwrap();
    a.broker
        .create_topic(shale_broker::topic_admin::NewTopic {
            name: "d".into(),
            queues: Some(2),
            message_type: Some(MessageType::Delay),
            retention_ms: None,
            durability: Some(Durability::Object),
        })
        .await
        .unwrap();
    let mut acked = std::collections::BTreeMap::new();
    for i in 0..20i64 {
        let delay = if i < 10 {
            5_000 + i
        } else {
            10 * 86_400_000 + i
        };
        let got = produce(
            &a.broker,
            "d",
            vec![later(&format!("t{i}"), i as u32 % 2, delay)],
        )
        .await
        .unwrap();
        assert!(got[0].scheduled);
        acked.insert(format!("t{i}"), got[0].message_id);
    }
    let with_id = MessageInput {
        dedup_id: Some("retry-d".into()),
        ..later("t20", 0, 20 * 86_400_000)
    };
    let first = produce(&a.broker, "d", vec![with_id.clone()])
        .await
        .unwrap()[0];
    acked.insert("t20".into(), first.message_id);
    assert!(wal_chunks(&tier_a) >= 1);
    // `a` dies without a hand-over and without having spilled anything.

    let tier_b = shared(&tier_a);
    let (b, clock) = member_at(&tier_b, "b");
    take_over_from_the_dead(&b).await;
    assert_eq!(b.broker.cluster.held().len(), 2, "b took both queues");
    assert_eq!(b.broker.pending_timers("d").await.unwrap(), 21);
    let retried = produce(&b.broker, "d", vec![with_id]).await.unwrap()[0];
    assert_eq!(
        retried.message_id, first.message_id,
        "the retry is recognised"
    );
    assert_eq!(b.broker.pending_timers("d").await.unwrap(), 21);
    // A far one recalled through the new owner never fires.
    let recalled = acked.remove("t13").unwrap();
    b.broker
        .recall_timer("d", &recalled.to_string())
        .await
        .unwrap();

    clock.advance(30 * 86_400_000);
    for _ in 0..50 {
        b.broker.fire_timers().await;
        if b.broker.pending_timers("d").await.unwrap() == 0 {
            break;
        }
    }
    let mut fired = std::collections::BTreeMap::new();
    for q in 0..2 {
        for r in read_all(&b.broker, "d", q).await {
            let text = String::from_utf8_lossy(&r.body).to_string();
            assert!(fired.insert(text, r.message_id).is_none(), "fired twice");
        }
    }
    assert_eq!(
        fired, acked,
        "every acknowledged timer fired once, with its id"
    );

    // The dead owner's chunks are covered by b's segments and runs.
    assert!(b.broker.collect_gone_wal().await >= 1);
    b.broker.spill_timers("d").await.unwrap();
    for q in 0..2 {
        let log = b.broker.hot.existing_queue("d", q).unwrap();
        tokio::task::spawn_blocking(move || log.seal_active())
            .await
            .unwrap()
            .unwrap();
    }
    b.broker.upload_and_retain().await;
    b.broker.collect_own_wal().await;
    assert_eq!(
        wal_chunks(&tier_b),
        0,
        "every chunk was covered and deleted"
    );
}

/// TRANSACTION at OBJECT: half messages, decisions and check counts
/// acknowledged by an owner that dies before spilling are replayed by the
/// new owner from the write-ahead chunks: pending ones stay pending (and can
/// be committed once), decided ones answer as decided, and the committed
/// messages are in their queue once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_recovers_every_acknowledged_transaction_from_the_write_ahead_chunks() {
    use shale_broker::txn::TxnSettings;
    use shale_broker::txn::records::TxnId;
    use shale_broker::txn::table::TxnDecision;

    let faults = Faults::default();
    let tier_a = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let (a, _) = member_at(&tier_a, "a");
    a.broker.cluster.join().await.unwrap();
    a.broker
        .create_topic(shale_broker::topic_admin::NewTopic {
            name: "t".into(),
            queues: Some(2),
            message_type: Some(MessageType::Transaction),
            retention_ms: None,
            durability: Some(Durability::Object),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..12u32 {
        let batch = ProduceBatch {
            messages: vec![
                to_queue(&format!("h{i}-a"), i % 2),
                to_queue(&format!("h{i}-b"), i % 2),
            ],
            transaction: Some(TxnSettings {
                producer_group: "pg".into(),
                check_after_ms: 60_000,
            }),
        };
        let got = a
            .broker
            .producer("t")
            .unwrap()
            .produce(batch)
            .await
            .unwrap();
        ids.push(
            TxnId {
                first: got[0].message_id,
                topic: "t".into(),
            }
            .to_string(),
        );
    }
    for id in &ids[..4] {
        a.broker
            .decide_transaction(id, TxnDecision::Committed)
            .await
            .unwrap();
    }
    for id in &ids[4..6] {
        a.broker
            .decide_transaction(id, TxnDecision::RolledBack)
            .await
            .unwrap();
    }
    // `a` dies without a hand-over and without having spilled anything.

    let tier_b = shared(&tier_a);
    let (b, _) = member_at(&tier_b, "b");
    take_over_from_the_dead(&b).await;
    assert_eq!(b.broker.pending_transactions("t").await.unwrap(), 6);
    let again = b
        .broker
        .decide_transaction(&ids[0], TxnDecision::Committed)
        .await
        .unwrap();
    assert!(
        !again.now,
        "a commit acknowledged by the dead owner is remembered"
    );
    let opposite = b
        .broker
        .decide_transaction(&ids[5], TxnDecision::Committed)
        .await
        .unwrap_err();
    assert_eq!(
        opposite.code(),
        shale_broker::ErrorCode::TransactionAlreadyResolved
    );
    for id in &ids[6..9] {
        assert!(
            b.broker
                .decide_transaction(id, TxnDecision::Committed)
                .await
                .unwrap()
                .now
        );
    }
    let mut seen = Vec::new();
    for q in 0..2 {
        for r in read_all(&b.broker, "t", q).await {
            seen.push(String::from_utf8_lossy(&r.body).to_string());
        }
    }
    seen.sort();
    let mut want: Vec<String> = (0..4)
        .chain(6..9)
        .flat_map(|i| [format!("h{i}-a"), format!("h{i}-b")])
        .collect();
    want.sort();
    assert_eq!(seen, want, "every committed message once");
    assert_eq!(b.broker.pending_transactions("t").await.unwrap(), 3);
}
