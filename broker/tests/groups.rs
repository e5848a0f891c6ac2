//! Consumer groups at the broker level (no HTTP): receive and ack, the
//! visibility timeout and backoff, nacks, dead-lettering, FIFO holds,
//! filters, resets, many concurrent receivers, and a slow object store
//! that holds up only the receive waiting on it.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use shale_broker::groups::api::{ReceiveOptions, ResetSpec};
use shale_broker::groups::deliver::AckOutcome;
use shale_broker::produce::MessageInput;
use shale_broker::{ErrorCode, MessageType};
use support::*;

fn expired(o: &AckOutcome) -> bool {
    matches!(o, AckOutcome::Err(e) if e.code() == ErrorCode::ReceiptHandleExpired)
}

#[tokio::test]
async fn received_messages_are_acked_once() {
    let n = Node::new();
    n.topic("orders", 1, MessageType::Normal).await;
    n.group("g", earliest(16, vec![1000])).await;
    n.produce_n("orders", "m", 3).await;
    let got = n.receive("g", "orders", 10).await;
    assert_eq!(bodies(&got), ["m0", "m1", "m2"]);
    assert!(got.iter().all(|d| d.attempt == 1 && d.queue == 0));
    let all: Vec<_> = got.iter().collect();
    assert!(n.ack("g", "orders", &all).await.iter().all(is_ok));
    assert!(n.ack("g", "orders", &all).await.iter().all(expired));
    assert!(n.receive("g", "orders", 10).await.is_empty());
    let off = n
        .broker
        .group_offsets("g", Some("orders"), None)
        .await
        .unwrap();
    assert_eq!(
        (off[0].committed_offset, off[0].lag, off[0].inflight),
        (3, 0, 0)
    );
    // A forged handle is invalid, not expired.
    let outcome = n
        .broker
        .ack("g", "orders", &["nope.nope".to_string()])
        .await
        .unwrap();
    assert!(
        matches!(&outcome[..], [AckOutcome::Err(e)] if e.code() == ErrorCode::InvalidReceiptHandle)
    );
}

#[tokio::test]
async fn an_unacked_message_comes_back_after_its_timeout_and_backoff() {
    let n = Node::new();
    n.topic("orders", 1, MessageType::Normal).await;
    n.group("g", earliest(16, vec![5000])).await;
    n.produce_n("orders", "m", 1).await;
    let first = n
        .receive_with(
            "g",
            ReceiveOptions {
                invisible_ms: Some(1000),
                ..opts("orders", 1)
            },
        )
        .await;
    assert_eq!(first.len(), 1);
    n.clock.advance(999);
    assert!(
        n.receive("g", "orders", 1).await.is_empty(),
        "still invisible"
    );
    n.clock.advance(1 + 5000 - 1);
    assert!(
        n.receive("g", "orders", 1).await.is_empty(),
        "in its backoff"
    );
    n.clock.advance(1);
    let again = n.receive("g", "orders", 1).await;
    assert_eq!((bodies(&again), again[0].attempt), (vec!["m0".into()], 2));
    assert!(expired(&n.ack("g", "orders", &[&first[0]]).await[0]));
    assert!(is_ok(&n.ack("g", "orders", &[&again[0]]).await[0]));
}

#[tokio::test]
async fn a_nack_gives_the_message_back_after_the_backoff() {
    let n = Node::new();
    n.topic("orders", 1, MessageType::Normal).await;
    n.group("g", earliest(16, vec![2000])).await;
    n.produce_n("orders", "m", 1).await;
    let got = n.receive("g", "orders", 1).await;
    let (handle, until) = n
        .broker
        .change_invisibility("g", "orders", &got[0].receipt_handle, 0, false)
        .await
        .unwrap();
    assert_eq!(until, n.clock_now());
    assert_ne!(handle, got[0].receipt_handle);
    assert!(n.receive("g", "orders", 1).await.is_empty());
    n.clock.advance(2000);
    let again = n.receive("g", "orders", 1).await;
    assert_eq!(again[0].attempt, 2);
    let err = n
        .broker
        .change_invisibility("g", "orders", &handle, 0, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReceiptHandleExpired);
}

#[tokio::test]
async fn a_kept_handle_stays_good_until_the_message_is_delivered_again() {
    let n = Node::new();
    n.topic("orders", 1, MessageType::Normal).await;
    n.group("g", earliest(16, vec![0])).await;
    n.produce_n("orders", "m", 1).await;
    let got = n.receive("g", "orders", 1).await;
    let first = got[0].receipt_handle.clone();
    let first_delivery = &got[0];
    let (handle, until) = n
        .broker
        .change_invisibility("g", "orders", &first, 5000, true)
        .await
        .unwrap();
    assert_eq!(
        (handle.as_str(), until),
        (first.as_str(), n.clock_now() + 5000)
    );
    n.clock.advance(4000);
    assert!(
        n.receive("g", "orders", 1).await.is_empty(),
        "extended, still invisible"
    );
    // Extended again with the same handle, then let it run out: redelivered,
    // and the first handle is over.
    n.broker
        .change_invisibility("g", "orders", &first, 1000, true)
        .await
        .unwrap();
    n.clock.advance(1000);
    let again = n.receive("g", "orders", 1).await;
    assert_eq!(again[0].attempt, 2);
    assert!(expired(&n.ack("g", "orders", &[first_delivery]).await[0]));
    assert!(is_ok(&n.ack("g", "orders", &[&again[0]]).await[0]));
}

#[tokio::test]
async fn the_last_attempt_goes_to_the_dead_letter_topic_with_its_origin() {
    let n = Node::new();
    n.topic("orders", 1, MessageType::Normal).await;
    n.group("g", earliest(2, vec![1000])).await;
    n.produce(
        "orders",
        vec![MessageInput {
            properties: vec![("region".into(), "eu".into())],
            ..body("m0")
        }],
    )
    .await;
    let first = n.receive("g", "orders", 1).await;
    n.clock.advance(30_000 + 1000);
    let second = n.receive("g", "orders", 1).await;
    assert_eq!(second[0].attempt, 2);
    n.clock.advance(30_000 + 1000);
    assert!(
        n.receive("g", "orders", 1).await.is_empty(),
        "dead-lettered"
    );
    let off = n
        .broker
        .group_offsets("g", Some("orders"), None)
        .await
        .unwrap();
    assert_eq!(off[0].committed_offset, 1, "acked in its origin");

    n.group("dlq-reader", earliest(16, vec![1000])).await;
    let dead = n.receive("dlq-reader", "%DLQ%g", 10).await;
    assert_eq!(bodies(&dead), ["m0"]);
    let props = &dead[0].record.properties;
    let prop = |k: &str| {
        props
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(prop("shale.origin_topic"), Some("orders"));
    assert_eq!(
        prop("shale.origin_message_id"),
        Some(first[0].record.message_id.to_string().as_str())
    );
    assert_eq!(prop("shale.delivery_attempts"), Some("2"));
    assert_eq!(prop("region"), Some("eu"));
}

#[tokio::test]
async fn a_dead_letter_topic_of_the_group_receives_its_dead_letters() {
    let n = Node::new();
    n.topic("jobs", 2, MessageType::Fifo).await;
    n.topic("jobs-dlq", 4, MessageType::Fifo).await;
    n.topic("txn", 1, MessageType::Transaction).await;
    let mut settings = earliest(1, vec![0]);
    settings.dead_letter_topic = Some("nope".into());
    let err = n.broker.put_group("g", settings.clone()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TopicNotFound);
    settings.dead_letter_topic = Some("txn".into());
    assert!(n.broker.put_group("g", settings.clone()).await.is_err());
    settings.dead_letter_topic = Some("jobs-dlq".into());
    n.group("g", settings).await;
    n.produce(
        "jobs",
        vec![MessageInput {
            message_group: Some("order-7".into()),
            ..body("m0")
        }],
    )
    .await;
    assert_eq!(n.receive("g", "jobs", 1).await.len(), 1);
    n.clock.advance(30_000 + 1);
    assert!(n.receive("g", "jobs", 1).await.is_empty(), "dead-lettered");
    n.group("reader", earliest(16, vec![1000])).await;
    let dead = n.receive("reader", "jobs-dlq", 10).await;
    assert_eq!(bodies(&dead), ["m0"]);
    // On a FIFO dead-letter topic the message keeps its group (and its queue follows it).
    assert_eq!(dead[0].record.message_group.as_deref(), Some("order-7"));
    assert!(
        n.broker.topics.get("%DLQ%g").is_none(),
        "no %DLQ% topic was made"
    );
}

#[tokio::test]
async fn fifo_holds_a_message_group_until_the_previous_one_is_acked() {
    let n = Node::new();
    n.topic("fifo", 1, MessageType::Fifo).await;
    n.group("g", earliest(16, vec![1000])).await;
    let in_group = |g: &str, text: &str| MessageInput {
        message_group: Some(g.into()),
        ..body(text)
    };
    n.produce(
        "fifo",
        vec![
            in_group("a", "a0"),
            in_group("a", "a1"),
            in_group("b", "b0"),
        ],
    )
    .await;
    let got = n.receive("g", "fifo", 10).await;
    assert_eq!(bodies(&got), ["a0", "b0"], "a1 waits for a0");
    assert!(n.receive("g", "fifo", 10).await.is_empty());
    assert!(is_ok(&n.ack("g", "fifo", &[&got[1]]).await[0]));
    assert!(
        n.receive("g", "fifo", 10).await.is_empty(),
        "b0 frees nothing of a"
    );
    assert!(is_ok(&n.ack("g", "fifo", &[&got[0]]).await[0]));
    assert_eq!(bodies(&n.receive("g", "fifo", 10).await), ["a1"]);
}

#[tokio::test]
async fn tag_and_sql92_filters_pick_what_the_group_receives() {
    let n = Node::new();
    n.topic("orders", 1, MessageType::Normal).await;
    let msg = |text: &str, tag: &str, region: &str, amount: u32| MessageInput {
        tag: Some(tag.into()),
        properties: vec![
            ("region".into(), region.into()),
            ("amount".into(), amount.to_string()),
        ],
        ..body(text)
    };
    n.produce(
        "orders",
        vec![
            msg("m0", "created", "eu", 50),
            msg("m1", "paid", "eu", 500),
            msg("m2", "shipped", "us", 900),
        ],
    )
    .await;
    for g in ["tags", "sql"] {
        n.group(g, earliest(16, vec![1000])).await;
    }
    let tags = n
        .receive_with(
            "tags",
            ReceiveOptions {
                filter: filter("TAG", "created||paid"),
                ..opts("orders", 10)
            },
        )
        .await;
    assert_eq!(bodies(&tags), ["m0", "m1"]);
    let sql = n
        .receive_with(
            "sql",
            ReceiveOptions {
                filter: filter("SQL92", "region = 'eu' AND amount > 100"),
                ..opts("orders", 10)
            },
        )
        .await;
    assert_eq!(bodies(&sql), ["m1"]);
    // Filtered-out messages count as consumed.
    let all: Vec<_> = sql.iter().collect();
    assert!(n.ack("sql", "orders", &all).await.iter().all(is_ok));
    let off = n
        .broker
        .group_offsets("sql", Some("orders"), None)
        .await
        .unwrap();
    assert_eq!(off[0].committed_offset, 3);
    let bad = n
        .broker
        .receive(
            "sql",
            ReceiveOptions {
                filter: filter("SQL92", "region = "),
                ..opts("orders", 10)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn a_reset_to_earliest_delivers_everything_again() {
    let n = Node::new();
    n.topic("orders", 2, MessageType::Normal).await;
    n.group("g", earliest(16, vec![1000])).await;
    n.produce_n("orders", "m", 6).await;
    let got = n.receive("g", "orders", 10).await;
    assert_eq!(got.len(), 6);
    let all: Vec<_> = got.iter().collect();
    assert!(n.ack("g", "orders", &all).await.iter().all(is_ok));
    let spec = ResetSpec {
        to: Some("EARLIEST".into()),
        ..Default::default()
    };
    let off = n
        .broker
        .reset_offsets("g", "orders", spec, None)
        .await
        .unwrap();
    assert!(off.iter().all(|q| q.committed_offset == 0));
    assert_eq!(off.iter().map(|q| q.lag).sum::<u64>(), 6);
    let mut again = bodies(&n.receive("g", "orders", 10).await);
    again.sort();
    assert_eq!(again, ["m0", "m1", "m2", "m3", "m4", "m5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_receivers_get_each_message_exactly_once() {
    const MESSAGES: usize = 2000;
    const RECEIVERS: usize = 8;
    let n = Arc::new(Node::new());
    n.topic("orders", 4, MessageType::Normal).await;
    n.group("g", earliest(16, vec![1000])).await;
    for batch in 0..MESSAGES / 100 {
        n.produce_n("orders", &format!("b{batch}-"), 100).await;
    }
    let seen = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for _ in 0..RECEIVERS {
        let (n, seen) = (n.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            while seen.lock().len() < MESSAGES {
                let got = n
                    .receive_with(
                        "g",
                        ReceiveOptions {
                            wait_ms: Some(50),
                            ..opts("orders", 32)
                        },
                    )
                    .await;
                for d in &got {
                    let fresh = seen.lock().insert(d.record.body.clone());
                    assert!(fresh, "delivered twice: {:?}", d.record.body);
                    assert_eq!(d.attempt, 1);
                }
                let all: Vec<_> = got.iter().collect();
                if !all.is_empty() {
                    assert!(n.ack("g", "orders", &all).await.iter().all(is_ok));
                }
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(seen.lock().len(), MESSAGES);
    let off = n
        .broker
        .group_offsets("g", Some("orders"), None)
        .await
        .unwrap();
    assert_eq!(
        off.iter().map(|q| q.committed_offset).sum::<u64>(),
        MESSAGES as u64
    );
    assert!(off.iter().all(|q| q.lag == 0 && q.inflight == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_cold_read_of_one_group_does_not_hold_up_another() {
    // A node with an empty disk serves "cold" from the object store only,
    // and topic "hot" from its disk.
    let n = Node::cold("cold", "c", 3).await;
    let faults = n.faults.clone();
    n.topic("hot", 1, MessageType::Normal).await;
    n.produce_n("hot", "h", 2).await;
    // Warm up every store call but A's data read: group settings, cursors,
    // the receipt key, the manifests.
    n.group("a", earliest(16, vec![1000])).await;
    n.group("b", earliest(16, vec![1000])).await;
    let spec = ResetSpec {
        to: Some("EARLIEST".into()),
        ..Default::default()
    };
    n.broker
        .reset_offsets("a", "cold", spec, None)
        .await
        .unwrap();
    let warm = n.receive("b", "hot", 1).await;
    assert_eq!(bodies(&warm), ["h0"]);

    faults.set_latency(Duration::from_secs(5));
    let before = faults.counts();
    let slow = {
        let n = n.clone();
        tokio::spawn(async move { n.broker.receive("a", opts("cold", 10)).await })
    };
    // Wait until A is inside its object-store read.
    tokio::time::timeout(TIMEOUT, async {
        while faults.counts() == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let fast = tokio::time::timeout(TIMEOUT, n.broker.receive("b", opts("hot", 10)))
        .await
        .unwrap()
        .unwrap()
        .1;
    assert_eq!(bodies(&fast), ["h1"]);
    assert!(
        !slow.is_finished(),
        "B finished while A still waits on the store"
    );
    faults.set_latency(Duration::ZERO);
    let (_, got) = tokio::time::timeout(Duration::from_secs(60), slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&got), ["c0", "c1", "c2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_poll_waits_for_another_receivers_read_instead_of_answering_empty() {
    let n = Node::cold("cold", "c", 3).await;
    let faults = n.faults.clone();
    n.group("a", earliest(16, vec![1000])).await;
    let spec = ResetSpec {
        to: Some("EARLIEST".into()),
        ..Default::default()
    };
    n.broker
        .reset_offsets("a", "cold", spec, None)
        .await
        .unwrap();

    // Receiver 1 reads the cold queue slowly, holding the queue's read claim.
    faults.set_latency(Duration::from_millis(300));
    let before = faults.counts();
    let first_receiver = {
        let n = n.clone();
        tokio::spawn(async move { n.broker.receive("a", opts("cold", 1)).await })
    };
    tokio::time::timeout(TIMEOUT, async {
        while faults.counts() == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    // Receiver 2 short-polls (wait_ms 0) meanwhile: it gets the next message,
    // not an empty answer while two more are there.
    let second = tokio::time::timeout(TIMEOUT, n.broker.receive("a", opts("cold", 1)))
        .await
        .unwrap()
        .unwrap()
        .1;
    let (_, first_got) = tokio::time::timeout(TIMEOUT, first_receiver)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut all = bodies(&first_got);
    all.extend(bodies(&second));
    all.sort();
    assert_eq!(
        all,
        ["c0", "c1"],
        "each receiver got one message, none twice"
    );
}

/// A delay message is not received before it is due; once fired it is
/// received like any other message of its queue.
#[tokio::test]
async fn fired_delay_messages_are_received_like_any_other() {
    let n = Node::new();
    n.topic("later", 2, MessageType::Delay).await;
    n.group("g", earliest(3, vec![1_000])).await;
    let mut due_later = body("later");
    due_later.delay.delay_ms = Some(2_000);
    due_later.queue = Some(0);
    let mut due_now = body("now");
    due_now.delay.delay_ms = Some(0);
    due_now.queue = Some(0);
    n.produce("later", vec![due_later, due_now]).await;
    let got = n.receive("g", "later", 10).await;
    assert_eq!(bodies(&got), ["now"]);
    assert!(n.ack("g", "later", &[&got[0]]).await.iter().all(is_ok));
    assert!(n.receive("g", "later", 10).await.is_empty());

    n.clock.advance(2_000);
    n.broker.fire_timers().await;
    let got = n.receive("g", "later", 10).await;
    assert_eq!(bodies(&got), ["later"]);
    assert_eq!(got[0].record.offset, 1);
    assert!(n.ack("g", "later", &[&got[0]]).await.iter().all(is_ok));
}
