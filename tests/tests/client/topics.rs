//! Topics, produce (JSON, raw, durability header), reads (page, stream), queries, cluster.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use shale_client::{
    Durability, MessageType, PatchTopic, ProduceMessage, ProduceRequest, RawMessage, ReadOptions,
};

use crate::{start, topic};

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
