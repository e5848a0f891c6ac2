#![allow(clippy::unwrap_used)]
//! The cluster layer in-process: brokers on one (fault-counting) in-memory
//! store. What it costs to stay alive, and how queues split and move.

mod support;

use std::sync::Arc;

use futures::StreamExt;
use shale_broker::MessageType;
use shale_tiering::{Faults, Tier};
use support::Node;

/// A node over the shared `tier` with its own data dir and node id.
fn node_on(tier: &Arc<Tier>, faults: &Faults, id: &str) -> Node {
    Node::over_as(tier.clone(), faults.clone(), id)
}

/// Object-store calls of one heartbeat pass of an idle node that serves
/// every queue of a topic with `queues` queues.
async fn idle_tick_cost(queues: u32) -> shale_tiering::fault_store::OpCounts {
    let faults = Faults::default();
    let tier = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let n = node_on(&tier, &faults, "n0");
    n.topic("t", queues, MessageType::Normal).await;
    n.broker.cluster.join().await.unwrap();
    // The first passes take every queue (one manifest each; on a busy
    // machine a pass may not take them all, so up to 50 passes), and fill
    // the lease's window of kept versions (so each renewal deletes one);
    // then it is idle.
    for pass in 0..50 {
        n.broker.cluster_tick().await;
        if pass >= 5 && n.broker.cluster.held().len() == queues as usize {
            break;
        }
    }
    assert_eq!(n.broker.cluster.held().len(), queues as usize);
    let before = faults.counts();
    for _ in 0..10 {
        n.broker.cluster_tick().await;
    }
    let after = faults.counts();
    shale_tiering::fault_store::OpCounts {
        puts: after.puts - before.puts,
        gets: after.gets - before.gets,
        heads: after.heads - before.heads,
        deletes: after.deletes - before.deletes,
        lists: after.lists - before.lists,
    }
}

/// Staying alive costs per node, never per queue: ten idle heartbeats of a
/// node serving 1,000 queues make exactly the calls of one serving 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_at_rest_does_not_grow_with_the_number_of_queues() {
    let one = idle_tick_cost(1).await;
    let many = idle_tick_cost(1000).await;
    assert_eq!(one, many, "1 queue: {one:?}, 1000 queues: {many:?}");
    // Per heartbeat: one renewal (PUT, and a DELETE behind it) and one listing
    // of the leases; one HEAD each of the topics and groups stamps; no GET of
    // its own lease; no per-queue call at all.
    assert_eq!(
        (many.puts, many.lists, many.heads, many.gets),
        (10, 10, 20, 0),
        "{many:?}"
    );
    eprintln!("10 idle heartbeats of a node serving 1000 queues: {many:?}");
}

/// Two brokers on one bucket split a topic's queues between them by
/// placement, each serves only its own, and a write to the other's queue is
/// answered with where that queue is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_split_the_queues_and_point_at_each_other() {
    let faults = Faults::default();
    let tier_a = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let store = tier_a.store().clone();
    let tier_b = Arc::new(Tier::new(
        store,
        object_store::path::Path::default(),
        1 << 20,
    ));
    let a = node_on(&tier_a, &faults, "a");
    let b = node_on(&tier_b, &faults, "b");
    a.topic("t", 16, MessageType::Normal).await;
    a.broker.cluster.join().await.unwrap();
    b.broker.cluster.join().await.unwrap();
    b.broker.refresh_topics_from_store().await.unwrap();
    for _ in 0..3 {
        a.broker.cluster_tick().await;
        b.broker.cluster_tick().await;
    }
    let (held_a, held_b) = (a.broker.cluster.held(), b.broker.cluster.held());
    assert_eq!(held_a.len() + held_b.len(), 16, "{held_a:?} {held_b:?}");
    assert!(
        !held_a.is_empty() && !held_b.is_empty(),
        "{held_a:?} {held_b:?}"
    );
    assert!(
        held_a.iter().all(|q| !held_b.contains(q)),
        "a queue held twice"
    );
    let (_, q) = held_b[0].clone();
    let err = a.broker.queue_for_write("t", q).await.unwrap_err();
    let at = err.elsewhere().expect("a routing answer");
    assert_eq!((at.node.as_str(), at.queue), ("b", q));
}

/// The dedup window moves with a handed-over queue: a producer retrying a
/// request through the new owner within the window gets the first answer,
/// and nothing is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_ids_move_with_a_handed_over_queue() {
    use shale_broker::produce::{MessageInput, ProduceBatch};
    let faults = Faults::default();
    let tier_a = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let tier_b = Arc::new(Tier::new(
        tier_a.store().clone(),
        object_store::path::Path::default(),
        1 << 20,
    ));
    let a = node_on(&tier_a, &faults, "a");
    let b = node_on(&tier_b, &faults, "b");
    a.topic("t", 1, MessageType::Normal).await;
    a.broker.cluster.join().await.unwrap();
    let once = || ProduceBatch {
        messages: vec![MessageInput {
            dedup_id: Some("pay-42".into()),
            ..support::body("charge")
        }],
        transaction: None,
    };
    let first = a
        .broker
        .producer("t")
        .unwrap()
        .produce(once())
        .await
        .unwrap()[0];
    a.broker.hand_over_queue("t", 0, false).await.unwrap();
    b.broker.cluster.join().await.unwrap();
    b.broker.refresh_topics_from_store().await.unwrap();
    b.broker.take_queue("t", 0).await.unwrap();
    let retried = b
        .broker
        .producer("t")
        .unwrap()
        .produce(once())
        .await
        .unwrap()[0];
    assert_eq!(
        (retried.offset, retried.message_id),
        (first.offset, first.message_id)
    );
    let stored = b
        .broker
        .read_queue("t", 0, Default::default())
        .await
        .unwrap()
        .records
        .len();
    assert_eq!(stored, 1, "the retry was not stored again");
    let left = tier_b
        .store()
        .list(Some(&object_store::path::Path::from(
            "topics/t/queues/0/dedup",
        )))
        .count()
        .await;
    assert_eq!(left, 0, "the passed-on ids are deleted once taken");
}

/// The lease objects of a node that left and stayed away for the quiet
/// period are deleted; live nodes (this one included) keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_objects_of_nodes_gone_for_good_are_deleted() {
    use shale_broker::cluster::ClusterConfig;
    let faults = Faults::default();
    let tier = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let open = |id: &str, clock: Arc<shale_broker::ManualClock>| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = support::config_as(dir.path(), id);
        config.cluster = ClusterConfig {
            lease_clock: Some(clock),
            ..ClusterConfig::default()
        };
        let tier = Arc::new(Tier::new(
            tier.store().clone(),
            object_store::path::Path::default(),
            1 << 20,
        ));
        let clock = Arc::new(shale_broker::ManualClock::new(support::START_MS));
        (
            dir,
            shale_broker::Broker::open_with(&config, clock, tier).unwrap(),
        )
    };
    let (lease_a, lease_b) = (
        Arc::new(shale_broker::ManualClock::new(0)),
        Arc::new(shale_broker::ManualClock::new(0)),
    );
    let (_da, a) = open("a", lease_a);
    let (_db, b) = open("b", lease_b.clone());
    a.cluster.join().await.unwrap();
    b.cluster.join().await.unwrap();
    a.leave_cluster(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    b.cluster_tick().await;
    let quiet = std::time::Duration::from_secs(3600);
    assert!(
        b.cluster.forget_departed(quiet).await.is_empty(),
        "not quiet long enough yet"
    );
    lease_b.advance(3_600_001);
    b.cluster_tick().await;
    assert_eq!(
        b.cluster.forget_departed(quiet).await,
        vec!["a".to_string()]
    );
    let leases = shale_tiering::lease::list_leases(tier.store().as_ref(), tier.layout())
        .await
        .unwrap();
    let ids: Vec<&str> = leases.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["b"]);
}
