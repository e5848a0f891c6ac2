//! `/v1/topics`: create, list, describe, patch, delete, restart, and their errors.
#![allow(clippy::unwrap_used)]

mod api_support;

use api_support::Node;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use shale_broker::{Durability, MessageType, TopicConfig};

#[tokio::test]
async fn create_is_idempotent_and_conflicts_on_other_settings() {
    let n = Node::new();
    let a = n.post("/v1/topics", json!({"name": "orders"})).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.body["queues"], 8);
    assert_eq!(a.body["message_type"], "NORMAL");
    assert_eq!(a.body["retention_ms"], 259_200_000u64);
    assert_eq!(a.body["durability"], "SYNC");
    assert!(a.body["created_ms"].as_i64().unwrap() > 0);

    let same = n
        .post(
            "/v1/topics",
            json!({"name": "orders", "queues": 8, "durability": "SYNC"}),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.body["created_ms"], a.body["created_ms"]);

    n.post("/v1/topics", json!({"name": "orders", "queues": 4}))
        .await
        .assert_error(409, "ALREADY_EXISTS");
    n.post(
        "/v1/topics",
        json!({"name": "orders", "message_type": "FIFO"}),
    )
    .await
    .assert_error(409, "ALREADY_EXISTS");
}

#[tokio::test]
async fn create_rejects_bad_requests() {
    let n = Node::new();
    for body in [
        json!({"name": ""}),
        json!({"name": ".x"}),
        json!({"name": "a/b"}),
        json!({"name": "x".repeat(128)}),
        json!({"name": "%DLQ%g"}),
        json!({"name": "t", "queues": 0}),
        json!({"name": "t", "queues": 1025}),
        json!({"name": "t", "queues": -1}),
        json!({"name": "t", "retention_ms": 59_999}),
        json!({"name": "t", "message_type": "BATCH"}),
        json!({"name": "t", "colour": "red"}),
        json!({"queues": 1}),
    ] {
        let a = n.post("/v1/topics", body.clone()).await;
        a.assert_error(400, "INVALID_ARGUMENT");
    }
    let malformed = Request::post("/v1/topics")
        .header("content-type", "application/json")
        .body(Body::from("{\"name\":"))
        .unwrap();
    n.send(malformed)
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    let text = Request::post("/v1/topics")
        .header("content-type", "text/plain")
        .body(Body::from("x"))
        .unwrap();
    n.send(text)
        .await
        .assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(n.get("/v1/topics").await.body["topics"], json!([]));
}

#[tokio::test]
async fn list_and_describe() {
    let n = Node::new();
    n.topic(
        "b",
        json!({"queues": 2, "message_type": "FIFO", "durability": "ASYNC"}),
    )
    .await;
    n.topic("a", json!({})).await;
    let list = n.get("/v1/topics").await;
    let names: Vec<_> = list.body["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("a"), json!("b")]);

    n.produce(
        "b",
        json!([{"body": "x", "message_group": "g", "queue": 1}]),
    )
    .await;
    let d = n.get("/v1/topics/b").await;
    d.assert_ok();
    assert_eq!(d.body["queue_count"], 2);
    assert_eq!(d.body["message_type"], "FIFO");
    let queues = d.body["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0]["min_offset"], 0);
    assert_eq!(queues[0]["max_offset"], 0);
    assert_eq!(queues[1]["max_offset"], 1);
    assert!(queues[1]["hot_bytes"].as_u64().unwrap() > 0);
    assert_eq!(queues[1]["cold_bytes"], 0);
    assert_eq!(queues[1]["cold_segments"], 0);
    assert_eq!(queues[1]["owner"], "node-test");

    n.get("/v1/topics/nope")
        .await
        .assert_error(404, "TOPIC_NOT_FOUND");
}

#[tokio::test]
async fn patch_grows_only() {
    let n = Node::new();
    n.topic("t", json!({"queues": 2})).await;
    let p = n
        .call(
            Method::PATCH,
            "/v1/topics/t",
            Some(json!({"queues": 4, "retention_ms": 60_000})),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.body["queues"], 4);
    assert_eq!(p.body["retention_ms"], 60_000);
    assert_eq!(n.get("/v1/topics/t").await.body["queue_count"], 4);
    n.call(Method::PATCH, "/v1/topics/t", Some(json!({"queues": 3})))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    n.call(
        Method::PATCH,
        "/v1/topics/t",
        Some(json!({"retention_ms": 1})),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
    n.call(
        Method::PATCH,
        "/v1/topics/t",
        Some(json!({"durability": "ASYNC"})),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
    n.call(Method::PATCH, "/v1/topics/x", Some(json!({"queues": 9})))
        .await
        .assert_error(404, "TOPIC_NOT_FOUND");
    // The new queue is usable at once and the change survives a restart.
    n.produce("t", json!([{"body": "x", "queue": 3}])).await;
    let n = n.reopen();
    assert_eq!(n.get("/v1/topics/t").await.body["queue_count"], 4);
    assert_eq!(n.read_all("t", 3).await.len(), 1);
}

#[tokio::test]
async fn delete_removes_metadata_and_data() {
    let n = Node::new();
    n.topic("t", json!({"queues": 1})).await;
    n.produce("t", json!([{"body": "x"}, {"body": "y"}])).await;
    let d = n.call(Method::DELETE, "/v1/topics/t", None).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    n.get("/v1/topics/t")
        .await
        .assert_error(404, "TOPIC_NOT_FOUND");
    n.call(Method::DELETE, "/v1/topics/t", None)
        .await
        .assert_error(404, "TOPIC_NOT_FOUND");
    n.post(
        "/v1/topics/t/messages",
        json!({"messages": [{"body": "z"}]}),
    )
    .await
    .assert_error(404, "TOPIC_NOT_FOUND");
    // A new topic of the same name starts empty, also after a restart.
    n.topic("t", json!({"queues": 1})).await;
    assert_eq!(n.stored("t").await, 0);
    let n = n.reopen();
    assert_eq!(n.stored("t").await, 0);
}

#[tokio::test]
async fn restart_keeps_topics_and_messages() {
    let n = Node::new();
    n.topic(
        "t",
        json!({"queues": 2, "message_type": "FIFO", "durability": "ASYNC"}),
    )
    .await;
    let r = n
        .produce("t", json!([{"body": "hello", "message_group": "g"}]))
        .await;
    let n = n.reopen();
    let t = n.get("/v1/topics/t").await;
    assert_eq!(t.body["message_type"], "FIFO");
    assert_eq!(t.body["durability"], "ASYNC");
    let m = n
        .get(&format!(
            "/v1/topics/t/messages/{}",
            r[0]["message_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(m.body["body"], "hello");
    assert_eq!(m.body["message_group"], "g");
}

#[tokio::test]
async fn corrupt_metadata_is_skipped() {
    let n = Node::new();
    n.topic("good", json!({})).await;
    let meta = n.dir.path().join("meta/topics");
    std::fs::write(meta.join("bad.json"), b"{\"version\": 1, \"name\": ").unwrap();
    std::fs::write(meta.join("worse.json"), b"{\"version\": 99}").unwrap();
    let n = n.reopen();
    let names: Vec<_> = n.get("/v1/topics").await.body["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["good"]);
}

#[tokio::test]
async fn system_names_are_percent_decoded() {
    let n = Node::new();
    // Users cannot create `%` topics; the system can (dead-letter topics).
    n.state
        .topics
        .put_blocking(TopicConfig {
            name: "%DLQ%g".into(),
            queues: 1,
            message_type: MessageType::Normal,
            retention_ms: 60_000,
            durability: Durability::Sync,
            created_ms: 1,
        })
        .unwrap();
    let t = n.get("/v1/topics/%25DLQ%25g").await;
    assert_eq!(t.body["name"], "%DLQ%g");
    n.produce("%25DLQ%25g", json!([{"body": "dead"}])).await;
    assert_eq!(n.read_all("%25DLQ%25g", 0).await[0]["topic"], "%DLQ%g");
}
