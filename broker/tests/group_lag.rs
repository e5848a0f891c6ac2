//! Tier-aware lag of a group's offsets: the lag split at the first offset
//! still on local disk (a queue with sealed, uploaded and evicted segments
//! has cold lag), retries waiting, pending timers, the recent ack rate and
//! the catch-up estimate, and the per-group split of `list_groups`.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use bytes::Bytes;
use shale_broker::groups::deliver::QueueOffsets;
use shale_broker::produce::{DelayInput, MessageInput};
use shale_broker::{Broker, MessageType};
use shale_tiering::{Faults, Tier};
use support::*;

/// A node whose hot tier holds little: 4 KiB segments, 64 KiB of local disk.
fn small_hot_tier() -> Node {
    let faults = Faults::default();
    let tier = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(shale_broker::ManualClock::new(START_MS));
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 4096;
    cfg.hot_bytes = Some(64 * 1024);
    let broker = Broker::open_with(&cfg, clock.clone(), tier).unwrap();
    Node {
        dir,
        broker,
        clock,
        faults,
    }
}

async fn offsets(n: &Node, group: &str, topic: &str) -> Vec<QueueOffsets> {
    n.broker
        .group_offsets(group, Some(topic), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn lag_below_the_local_segments_is_cold_and_the_rest_hot() {
    let n = small_hot_tier();
    n.topic("t", 1, MessageType::Normal).await;
    n.group("g", earliest(16, vec![1000])).await;
    // ~200 KiB in 4 KiB segments, uploaded and evicted down to 64 KiB as it goes.
    let body = "x".repeat(500);
    for round in 0..80 {
        let msgs = (0..5).map(|i| support::body(&format!("{round}-{i}-{body}")));
        n.produce("t", msgs.collect()).await;
        n.broker.tiering_tick().await;
    }
    let hot_min = n.broker.hot.existing_queue("t", 0).unwrap().min_offset();
    assert!(hot_min > 0, "segments were evicted");
    let q = &offsets(&n, "g", "t").await[0];
    assert_eq!((q.committed_offset, q.max_offset, q.lag), (0, 400, 400));
    assert_eq!(q.lag_cold, hot_min, "offsets below the hot tier are cold");
    assert_eq!(q.lag_hot, 400 - hot_min);
    assert_eq!(q.lag_hot + q.lag_cold, q.lag);

    // Consuming the cold part moves lag out of lag_cold only.
    let mut consumed = 0;
    while consumed < hot_min {
        let got = n.receive("g", "t", 64).await;
        let keep: Vec<_> = got
            .iter()
            .take(usize::try_from(hot_min - consumed).unwrap())
            .collect();
        consumed += keep.len() as u64;
        assert!(n.ack("g", "t", &keep).await.iter().all(is_ok));
        // Release the rest at once, so the next receive starts with them.
        for d in got.iter().skip(keep.len()) {
            let _ = n
                .broker
                .give_back("g", "t", &d.receipt_handle)
                .await
                .unwrap();
        }
    }
    let q = &offsets(&n, "g", "t").await[0];
    assert_eq!(q.committed_offset, hot_min);
    assert_eq!((q.lag_cold, q.lag_hot), (0, 400 - hot_min));

    let listed = n.broker.list_groups().await.unwrap();
    let (_, lag) = listed.iter().find(|(c, _)| c.name == "g").unwrap();
    assert_eq!(
        (lag.lag, lag.lag_hot, lag.lag_cold),
        (400 - hot_min, 400 - hot_min, 0)
    );
}

#[tokio::test]
async fn a_queue_served_only_from_the_object_store_has_only_cold_lag() {
    let n = Node::cold("t", "m", 5).await;
    n.group("g", earliest(16, vec![1000])).await;
    let q = &offsets(&n, "g", "t").await[0];
    assert_eq!((q.lag, q.lag_hot, q.lag_cold), (5, 0, 5));
}

#[tokio::test]
async fn retries_in_flight_and_acks_per_second_are_reported() {
    let n = Node::new();
    n.topic("t", 1, MessageType::Normal).await;
    n.group("g", earliest(16, vec![10_000])).await;
    n.produce_n("t", "m", 10).await;
    let q = &offsets(&n, "g", "t").await[0];
    // Nothing acked yet: no rate, so no estimate.
    assert_eq!((q.consume_rate_per_s, q.catch_up_ms), (None, None));

    let got = n
        .receive_with(
            "g",
            shale_broker::groups::api::ReceiveOptions {
                invisible_ms: Some(5_000),
                ..opts("t", 5)
            },
        )
        .await;
    assert_eq!(got.len(), 5);
    // 0..3 acked, 3 nacked, 4 stays in flight.
    assert!(
        n.ack("g", "t", &[&got[0], &got[1], &got[2]])
            .await
            .iter()
            .all(is_ok)
    );
    n.broker
        .change_invisibility("g", "t", &got[3].receipt_handle, 0, false)
        .await
        .unwrap();
    let q = &offsets(&n, "g", "t").await[0];
    assert_eq!((q.committed_offset, q.lag), (3, 7));
    assert_eq!((q.inflight, q.retrying), (1, 1));
    // 3 acks just now count over the shortest span, one second.
    assert_eq!(q.consume_rate_per_s, Some(3.0));
    assert_eq!(q.catch_up_ms, Some(2334), "ceil(7 / 3 s)");

    // The delivery of 4 times out: it waits for a retry too.
    n.clock.advance(5_000);
    let q = &offsets(&n, "g", "t").await[0];
    assert_eq!((q.inflight, q.retrying), (0, 2));
    // Over the 5 s since the acks, the rate is 3 / 5 s.
    assert_eq!(q.consume_rate_per_s, Some(0.6));
    // A minute without acks: no rate any more.
    n.clock.advance(61_000);
    let q = &offsets(&n, "g", "t").await[0];
    assert_eq!((q.consume_rate_per_s, q.catch_up_ms), (None, None));
}

#[tokio::test]
async fn pending_timers_of_the_queue_are_reported_outside_the_lag() {
    let n = Node::new();
    n.topic("later", 2, MessageType::Delay).await;
    n.group("g", earliest(16, vec![1000])).await;
    let delayed = |q: u32| MessageInput {
        body: Bytes::from_static(b"d"),
        queue: Some(q),
        delay: DelayInput {
            delay_ms: Some(60_000),
            ..Default::default()
        },
        ..Default::default()
    };
    n.produce("later", vec![delayed(1), delayed(1), delayed(0)])
        .await;
    let qs = offsets(&n, "g", "later").await;
    assert_eq!(
        qs.iter()
            .map(|q| (q.pending_timers, q.lag))
            .collect::<Vec<_>>(),
        [(1, 0), (2, 0)]
    );
}
