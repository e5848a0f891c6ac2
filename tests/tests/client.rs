//! `shale-client` against the real binary: every call of the contract once,
//! with its answer checked (topics, produce JSON/raw/delay/transaction, reads
//! as a page and as an NDJSON stream, queries, timers and recall, groups,
//! transactions and check-back, cluster and health, error codes).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use shale_client::{
    Client, CreateTopic, Durability, MessageType, PatchTopic, ProduceMessage, ProduceRequest,
    RawMessage, ReadOptions, ReceiveRequest, ResetTo, TimerQuery, TransactionInput,
};
use shale_tests::Node;

fn start() -> (tempfile::TempDir, Node, Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(&dir.path().join("data"), &[]).expect("node");
    let client = Client::new(format!("{}/", node.base)).expect("client");
    (dir, node, client)
}

fn topic(name: &str, queues: u32, kind: MessageType) -> CreateTopic {
    CreateTopic {
        queues: Some(queues),
        message_type: Some(kind),
        ..CreateTopic::new(name)
    }
}

#[tokio::test]
async fn topics_produce_read_and_query() {
    let (_dir, _node, client) = start();
    assert_eq!(client.healthz().await.expect("healthz").status, "ok");
    assert_eq!(client.readyz().await.expect("readyz").status, "ok");
    let created = client
        .create_topic(&topic("t", 2, MessageType::Normal))
        .await
        .expect("create");
    assert_eq!((created.queues, created.durability), (2, Durability::Sync));
    assert_eq!(
        client
            .create_topic(&topic("t", 2, MessageType::Normal))
            .await
            .expect("same again"),
        created
    );
    let conflict = client
        .create_topic(&topic("t", 3, MessageType::Normal))
        .await
        .expect_err("409");
    assert_eq!(
        (conflict.code(), conflict.status()),
        (Some("ALREADY_EXISTS"), Some(409))
    );
    let patched = client
        .patch_topic(
            "t",
            &PatchTopic {
                queues: Some(3),
                retention_ms: None,
            },
        )
        .await
        .expect("patch");
    assert_eq!(patched.queues, 3);
    assert_eq!(client.list_topics().await.expect("list")[0].name, "t");

    let batch = ProduceRequest {
        messages: vec![
            ProduceMessage::text("hello")
                .with_tag("created")
                .with_key("order-42")
                .with_property("region", "eu")
                .with_queue(0),
            ProduceMessage::bytes(vec![0xff, 0x00, 0x01])
                .with_queue(0)
                .with_dedup_id("d-1"),
        ],
        durability: Some(Durability::Object),
        ..ProduceRequest::default()
    };
    let results = client.produce("t", &batch).await.expect("produce");
    assert_eq!(
        results
            .iter()
            .map(|r| (r.queue, r.offset))
            .collect::<Vec<_>>(),
        vec![(0, Some(0)), (0, Some(1))]
    );
    let page = client
        .read(
            "t",
            0,
            &ReadOptions {
                max_messages: Some(10),
                ..ReadOptions::default()
            },
        )
        .await
        .expect("read");
    assert_eq!(
        (page.messages.len(), page.next_offset, page.max_offset),
        (2, 2, 2)
    );
    assert_eq!(page.messages[1].body_bytes(), Some(vec![0xff, 0x00, 0x01]));
    let streamed: Vec<_> = client
        .read_stream("t", 0, &ReadOptions::default())
        .await
        .expect("stream")
        .try_collect()
        .await
        .expect("lines");
    assert_eq!(streamed, page.messages);
    let tagged = client
        .read(
            "t",
            0,
            &ReadOptions {
                tag: Some("created".into()),
                ..ReadOptions::default()
            },
        )
        .await
        .expect("tag");
    assert_eq!(tagged.messages.len(), 1);
    let beyond = client
        .read(
            "t",
            0,
            &ReadOptions {
                offset: 99,
                ..ReadOptions::default()
            },
        )
        .await
        .expect_err("416");
    assert_eq!(
        (beyond.code(), beyond.status()),
        (Some("OFFSET_OUT_OF_RANGE"), Some(416))
    );
    assert_eq!(
        client
            .offset_for_timestamp("t", 0, 0)
            .await
            .expect("offset"),
        0
    );
    assert_eq!(
        client
            .offset_for_timestamp("t", 0, i64::MAX / 2)
            .await
            .expect("offset"),
        2
    );
    let raw = RawMessage {
        body: "raw body".into(),
        content_type: Some("text/plain".into()),
        tag: Some("paid".into()),
        keys: vec!["order-42".into(), "k2".into()],
        properties: BTreeMap::from([("region".to_string(), "us".to_string())]),
        ..RawMessage::default()
    };
    let raw_result = client.produce_raw("t", &raw).await.expect("raw produce");
    let fetched = client
        .get_message("t", &raw_result.message_id)
        .await
        .expect("by id");
    assert_eq!(
        (fetched.body.as_deref(), fetched.tag.as_deref()),
        (Some("raw body"), Some("paid"))
    );
    assert_eq!(fetched.keys, vec!["order-42", "k2"]);
    assert_eq!(
        fetched.properties.get("region").map(String::as_str),
        Some("us")
    );

    let by_key = client
        .find_by_key("t", "order-42", &Default::default())
        .await
        .expect("by key");
    assert_eq!(by_key.len(), 2);
    let missing = client.get_topic("nope").await.expect_err("404");
    assert_eq!(missing.code(), Some("TOPIC_NOT_FOUND"));
    let detail = client.get_topic("t").await.expect("describe");
    let cluster = client.cluster().await.expect("cluster");
    assert_eq!(detail.queues[0].owner, cluster.self_id);
    assert_eq!(cluster.nodes.len(), 1);
    client.delete_topic("t").await.expect("delete");
    assert!(
        client
            .get_topic("t")
            .await
            .expect_err("gone")
            .is_code("TOPIC_NOT_FOUND")
    );
}

#[tokio::test]
async fn delay_messages_are_listed_and_recalled() {
    let (_dir, _node, client) = start();
    client
        .create_topic(&topic("later", 1, MessageType::Delay))
        .await
        .expect("create");
    let batch = ProduceRequest::new(vec![
        ProduceMessage::text("soon")
            .with_key("k")
            .with_delay_ms(3_600_000),
    ]);
    let result = client
        .produce("later", &batch)
        .await
        .expect("produce")
        .remove(0);
    assert!(
        result.offset.is_none() && result.deliver_at_ms.is_some(),
        "{result:?}"
    );
    let timers = client
        .list_timers("later", &TimerQuery::default())
        .await
        .expect("timers");
    assert_eq!(timers.timers[0].message_id, result.message_id);
    let pending = client
        .get_message("later", &result.message_id)
        .await
        .expect("pending");
    assert_eq!(pending.state.as_deref(), Some("SCHEDULED"));
    client
        .recall("later", &result.message_id)
        .await
        .expect("recall");
    assert!(
        client
            .list_timers("later", &TimerQuery::default())
            .await
            .expect("timers")
            .timers
            .is_empty()
    );
}

#[tokio::test]
async fn groups_receive_ack_nack_and_reset() {
    let (_dir, _node, client) = start();
    client
        .create_topic(&topic("t", 1, MessageType::Normal))
        .await
        .expect("create");
    let messages = (0..3)
        .map(|i| ProduceMessage::text(format!("m{i}")))
        .collect();
    client
        .produce("t", &ProduceRequest::new(messages))
        .await
        .expect("produce");
    let settings = shale_client::GroupSettings {
        consume_from: Some(shale_client::ConsumeFrom::Position(
            shale_client::Position::Earliest,
        )),
        ..Default::default()
    };
    assert_eq!(
        client.put_group("g", &settings).await.expect("put").name,
        "g"
    );
    assert_eq!(
        client.get_group("g").await.expect("get").consume_from,
        settings.consume_from.expect("set")
    );
    let request = ReceiveRequest {
        max_messages: Some(2),
        wait_ms: Some(5_000),
        ..ReceiveRequest::new("t")
    };
    let got = client.receive("g", &request).await.expect("receive");
    assert_eq!(got.len(), 2);
    let offsets = client
        .group_offsets("g", "t", None)
        .await
        .expect("offsets")
        .queues;
    assert_eq!((offsets[0].max_offset, offsets[0].inflight), (3, 2));
    let acked = client
        .ack("g", "t", &[got[0].receipt_handle.clone()])
        .await
        .expect("ack");
    assert!(acked[0].ok);
    let nacked = client
        .change_invisibility("g", "t", &got[1].receipt_handle, 0)
        .await
        .expect("nack");
    assert_ne!(nacked.receipt_handle, got[1].receipt_handle);
    let stale = client
        .ack("g", "t", &[got[1].receipt_handle.clone()])
        .await
        .expect("ack results");
    assert!(!stale[0].ok && stale[0].error.is_some(), "{stale:?}");
    let offsets = client
        .group_offsets("g", "t", None)
        .await
        .expect("offsets")
        .queues;
    assert_eq!(
        (offsets[0].committed_offset, offsets[0].inflight),
        (1, 0),
        "0 acked, 1 handed back"
    );
    let reset = client
        .reset_offsets("g", "t", &ResetTo::Offsets(BTreeMap::from([(0, 3)])), None)
        .await
        .expect("reset")
        .queues;
    assert_eq!((reset[0].committed_offset, reset[0].lag), (3, 0));
    let reset = client
        .reset_offsets("g", "t", &ResetTo::Earliest, None)
        .await
        .expect("reset")
        .queues;
    assert_eq!(reset[0].committed_offset, 0);
    assert!(
        client
            .list_groups()
            .await
            .expect("groups")
            .iter()
            .any(|g| g.group.name == "g")
    );
}

#[tokio::test]
async fn transactions_commit_rollback_and_check_back() {
    let (_dir, _node, client) = start();
    client
        .create_topic(&topic("tx", 1, MessageType::Transaction))
        .await
        .expect("create");
    let half = |body: &str| ProduceRequest {
        messages: vec![ProduceMessage::text(body)],
        transaction: Some(TransactionInput {
            producer_group: "pg".into(),
            check_after_ms: Some(1_000),
        }),
        ..ProduceRequest::default()
    };
    let commit = client
        .produce("tx", &half("yes"))
        .await
        .expect("half")
        .remove(0);
    let rollback = client
        .produce("tx", &half("no"))
        .await
        .expect("half")
        .remove(0);
    let asked = client
        .produce("tx", &half("ask me"))
        .await
        .expect("half")
        .remove(0);
    let id = |r: &shale_client::ProduceResult| r.transaction_id.clone().expect("transaction id");
    client.commit(&id(&commit)).await.expect("commit");
    client
        .commit(&id(&commit))
        .await
        .expect("the same decision again is fine");
    client.rollback(&id(&rollback)).await.expect("rollback");
    let opposite = client.commit(&id(&rollback)).await.expect_err("409");
    assert_eq!(opposite.code(), Some("TRANSACTION_ALREADY_RESOLVED"));
    // Unresolved after check_after_ms: offered to the producer group (bounded long polls).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let check = loop {
        let checks = client
            .transaction_checks("pg", Some(5_000), Some(16))
            .await
            .expect("checks");
        if let Some(check) = checks.into_iter().find(|c| c.transaction_id == id(&asked)) {
            break check;
        }
        assert!(std::time::Instant::now() < deadline, "no check-back");
    };
    assert_eq!(check.message.body.as_deref(), Some("ask me"));
    assert!(
        client
            .producer_group("pg")
            .await
            .expect("pg")
            .pending_transactions
            >= 1
    );
    client
        .commit(&check.transaction_id)
        .await
        .expect("commit after check");
    let page = client
        .read("tx", 0, &ReadOptions::default())
        .await
        .expect("read");
    let bodies: Vec<_> = page
        .messages
        .iter()
        .filter_map(|m| m.body.clone())
        .collect();
    assert_eq!(bodies, vec!["yes", "ask me"]);
}

#[tokio::test]
async fn dead_letters_are_sent_back_once() {
    let (_dir, _node, client) = start();
    client
        .create_topic(&topic("t", 1, MessageType::Normal))
        .await
        .expect("create");
    let settings = shale_client::GroupSettings {
        consume_from: Some(shale_client::ConsumeFrom::Position(
            shale_client::Position::Earliest,
        )),
        max_delivery_attempts: Some(1),
        retry_backoff_ms: Some(vec![0]),
        ..Default::default()
    };
    client.put_group("g", &settings).await.expect("group");
    client
        .produce(
            "t",
            &ProduceRequest::new(vec![ProduceMessage::text("poison").with_key("p")]),
        )
        .await
        .expect("produce");
    // One delivery, handed back: its attempts are used up, so it moves to %DLQ%g.
    let request = ReceiveRequest {
        wait_ms: Some(5_000),
        ..ReceiveRequest::new("t")
    };
    let got = client.receive("g", &request).await.expect("receive");
    client
        .change_invisibility("g", "t", &got[0].receipt_handle, 0)
        .await
        .expect("nack");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let dead = loop {
        let quick = ReceiveRequest {
            wait_ms: Some(200),
            ..ReceiveRequest::new("t")
        };
        assert!(
            client
                .receive("g", &quick)
                .await
                .expect("receive")
                .is_empty()
        );
        let page = client.read("%DLQ%g", 0, &ReadOptions::default()).await;
        if let Ok(page) = page
            && let Some(message) = page.messages.into_iter().next()
        {
            break message;
        }
        assert!(std::time::Instant::now() < deadline, "no dead letter");
    };
    assert_eq!(
        dead.properties
            .get("shale.origin_topic")
            .map(String::as_str),
        Some("t")
    );
    let sent = client
        .send_back("%DLQ%g", &dead.message_id)
        .await
        .expect("send back");
    assert_eq!((sent.topic.as_str(), sent.offset), ("t", 1));
    let again = client
        .send_back("%DLQ%g", &dead.message_id)
        .await
        .expect("again");
    assert_eq!(again, sent, "a second send-back answers the first record");
    assert_eq!(
        client
            .get_send_back("%DLQ%g", &dead.message_id)
            .await
            .expect("record"),
        sent
    );
    let copy = client
        .get_message("t", &sent.message_id)
        .await
        .expect("the copy");
    assert_eq!(copy.body.as_deref(), Some("poison"));
}
