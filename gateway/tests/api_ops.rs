//! Operational endpoints, fallbacks and the OpenAPI document.
#![allow(clippy::unwrap_used)]

mod api_support;

use api_support::Node;
use axum::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn health_and_readiness() {
    let n = Node::new();
    let h = n.get("/healthz").await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body, json!({"status": "ok"}));
    assert_eq!(n.get("/readyz").await.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let n = Node::new();
    n.get("/nope").await.assert_error(404, "NOT_FOUND");
    n.get("/v1/topics/t/queues")
        .await
        .assert_error(404, "NOT_FOUND");
    n.call(Method::PUT, "/v1/topics", None)
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");
    n.call(Method::DELETE, "/healthz", None)
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn metrics_count_traffic_by_route_template() {
    let n = Node::new();
    n.topic("metrics-t", json!({"queues": 1})).await;
    n.produce("metrics-t", json!([{"body": "hello"}, {"body": "world"}]))
        .await;
    n.read_all("metrics-t", 0).await;
    let m = n.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    let text = m.body.as_str().unwrap();
    assert!(
        text.contains("shale_produce_messages_total{topic=\"metrics-t\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("shale_produce_bytes_total{topic=\"metrics-t\"} 10"),
        "{text}"
    );
    assert!(
        text.contains("shale_read_messages_total{topic=\"metrics-t\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("shale_read_bytes_total{topic=\"metrics-t\"} 10"),
        "{text}"
    );
    assert!(
        text.contains("shale_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        text.contains("route=\"/v1/topics/{topic}/queues/{queue}/messages\""),
        "{text}"
    );
    assert!(
        !text.contains("route=\"/v1/topics/metrics-t"),
        "raw paths must not be labels"
    );
    assert!(
        text.contains("shale_produce_duration_seconds_bucket{durability=\"SYNC\""),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_lists_every_route_and_error_code() {
    let n = Node::new();
    let doc = n.get("/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().unwrap();
    let expected = [
        ("/v1/topics", vec!["get", "post"]),
        ("/v1/topics/{topic}", vec!["get", "patch", "delete"]),
        ("/v1/topics/{topic}/messages", vec!["get", "post"]),
        (
            "/v1/topics/{topic}/messages/{message_id}",
            vec!["delete", "get"],
        ),
        ("/v1/topics/{topic}/queues/{queue}/messages", vec!["get"]),
        ("/v1/topics/{topic}/queues/{queue}/offset", vec!["get"]),
        ("/v1/groups", vec!["get"]),
        ("/v1/groups/{group}", vec!["get", "put"]),
        ("/v1/groups/{group}/receive", vec!["post"]),
        ("/v1/groups/{group}/ack", vec!["post"]),
        ("/v1/groups/{group}/change-invisibility", vec!["post"]),
        ("/v1/groups/{group}/offsets", vec!["get"]),
        ("/v1/groups/{group}/offsets/reset", vec!["post"]),
        ("/v1/topics/{topic}/timers", vec!["get"]),
        ("/v1/transactions/{transaction_id}/commit", vec!["post"]),
        ("/v1/transactions/{transaction_id}/rollback", vec!["post"]),
        ("/v1/producer-groups/{producer_group}", vec!["get"]),
        (
            "/v1/producer-groups/{producer_group}/transaction-checks",
            vec!["get"],
        ),
        ("/v1/cluster", vec!["get"]),
        ("/healthz", vec!["get"]),
        ("/readyz", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/openapi.json", vec!["get"]),
        ("/", vec!["get"]),
        ("/console/{file}", vec!["get"]),
        (
            "/v1/topics/{topic}/messages/{message_id}/send-back",
            vec!["get", "post"],
        ),
    ];
    assert_eq!(
        paths.len(),
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, methods) in expected {
        for m in methods {
            assert!(paths[path].get(m).is_some(), "{m} {path}");
        }
    }
    let codes = &doc.body["components"]["schemas"]["ErrorCode"]["enum"];
    for code in [
        "INVALID_ARGUMENT",
        "MESSAGE_TYPE_MISMATCH",
        "INVALID_RECEIPT_HANDLE",
        "RECEIPT_HANDLE_EXPIRED",
        "MESSAGE_ALREADY_DELIVERED",
        "TRANSACTION_NOT_FOUND",
        "TRANSACTION_ALREADY_RESOLVED",
        "GROUP_NOT_FOUND",
        "OFFSET_OUT_OF_RANGE",
        "METHOD_NOT_ALLOWED",
    ] {
        assert!(codes.as_array().unwrap().contains(&json!(code)), "{code}");
    }
    let create = doc.body["paths"]["/v1/topics"]["post"]["description"]
        .as_str()
        .unwrap();
    assert!(create.contains("TRANSACTION") && create.contains("OBJECT"));
}

#[tokio::test]
async fn maintenance_and_shutdown_flush_make_async_writes_durable() {
    let n = Node::new();
    n.topic("t", json!({"queues": 1, "durability": "ASYNC"}))
        .await;
    n.produce("t", json!([{"body": "a"}, {"body": "b"}])).await;
    n.state.maintenance_tick().await;
    n.produce("t", json!([{"body": "c"}])).await;
    n.state.shutdown_flush().await.unwrap();
    let log = n.state.hot.existing_queue("t", 0).unwrap();
    assert_eq!(log.durable_offset(), 3);
    let n = n.reopen();
    assert_eq!(n.read_all("t", 0).await.len(), 3);
}
