//! `POST /v1/topics/{topic}/messages`: JSON and raw produce, limits, type
//! rules, queue choice, durability, dedup, draining. Every rejection checks
//! that nothing was stored.
#![allow(clippy::unwrap_used)]

mod api_support;

use std::sync::Arc;

use api_support::Node;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use shale_hot::ManualClock;

async fn rejected(n: &Node, topic: &str, body: Value, status: u16, code: &str) {
    let before = n.stored(topic).await;
    n.post(&format!("/v1/topics/{topic}/messages"), body.clone())
        .await
        .assert_error(status, code);
    assert_eq!(
        n.stored(topic).await,
        before,
        "something was stored for {body}"
    );
}

#[tokio::test]
async fn json_produce_returns_results_in_order_and_stores_the_message_object() {
    let n = Node::new();
    n.topic("t", json!({"queues": 4})).await;
    let results = n
        .produce(
            "t",
            json!([
                {"body": "hello", "tag": "created", "keys": ["order-42", "k2"], "properties": {"region": "eu"}},
                {"body_base64": "/wA="},
                {"body": "pinned", "queue": 3},
            ]),
        )
        .await;
    assert_eq!(results.len(), 3);
    let q = results[0]["queue"].as_u64().unwrap();
    assert_eq!(
        results[1]["queue"].as_u64().unwrap(),
        q,
        "un-pinned messages share a queue"
    );
    assert_eq!(
        results[1]["offset"].as_u64().unwrap(),
        results[0]["offset"].as_u64().unwrap() + 1
    );
    assert_eq!(results[2]["queue"], 3);
    assert!(results[0].get("deliver_at_ms").is_none());

    let id = results[0]["message_id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    let m = n.get(&format!("/v1/topics/t/messages/{id}")).await;
    let m = m.assert_ok();
    assert_eq!(m["message_id"], id);
    assert_eq!(m["topic"], "t");
    assert_eq!(m["queue"], q);
    assert_eq!(m["tag"], "created");
    assert_eq!(m["keys"], json!(["order-42", "k2"]));
    assert_eq!(m["properties"], json!({"region": "eu"}));
    assert_eq!(m["body"], "hello");
    assert!(m["born_ms"].as_i64().unwrap() <= m["store_ms"].as_i64().unwrap());
    for absent in ["message_group", "deliver_at_ms", "body_base64"] {
        assert!(m.get(absent).is_none(), "{absent}");
    }
    let bin = n
        .get(&format!(
            "/v1/topics/t/messages/{}",
            results[1]["message_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(bin.body["body_base64"], "/wA=");
    assert_eq!(bin.body["keys"], json!([]));
    assert_eq!(bin.body["properties"], json!({}));
}

#[tokio::test]
async fn raw_produce_uses_headers() {
    let n = Node::new();
    n.topic("t", json!({"queues": 1})).await;
    let req = Request::post("/v1/topics/t/messages")
        .header("content-type", "application/octet-stream")
        .header("Shale-Tag", "created")
        .header("Shale-Keys", "a, b")
        .header("Shale-Property-Region", "eu")
        .header("Shale-Dedup-Id", "d1")
        .body(Body::from(vec![0u8, 159, 146, 150]))
        .unwrap();
    let a = n.send(req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let r = &a.body["results"][0];
    assert_eq!(r["offset"], 0);
    let m = &n.read_all("t", 0).await[0];
    assert_eq!(m["tag"], "created");
    assert_eq!(m["keys"], json!(["a", "b"]));
    assert_eq!(
        m["properties"],
        json!({"region": "eu", "shale.dedup_id": "d1"})
    );
    assert_eq!(m["body_base64"], "AJ+Slg==");

    // No content type at all is raw too.
    let plain = n
        .send(
            Request::post("/v1/topics/t/messages")
                .body(Body::from("text"))
                .unwrap(),
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(n.read_all("t", 0).await[1]["body"], "text");

    for (name, value) in [
        ("Shale-Queue", "0"),
        ("Shale-Tag", "a b"),
        ("Shale-Delay-Ms", "soon"),
    ] {
        let req = Request::post("/v1/topics/t/messages")
            .header(name, value)
            .body(Body::from("x"))
            .unwrap();
        n.send(req).await.assert_error(400, "INVALID_ARGUMENT");
    }
    let req = Request::post("/v1/topics/t/messages")
        .header("Shale-Message-Group", "g")
        .body(Body::from("x"))
        .unwrap();
    n.send(req).await.assert_error(400, "MESSAGE_TYPE_MISMATCH");
    assert_eq!(n.stored("t").await, 2);
}

#[tokio::test]
async fn invalid_messages_reject_the_whole_request() {
    let n = Node::new();
    n.topic("t", json!({"queues": 2})).await;
    let ok = json!({"body": "fine"});
    let bad_messages = [
        json!({}),
        json!({"body": "a", "body_base64": "YQ=="}),
        json!({"body_base64": "not base64!"}),
        json!({"body": "a", "tag": ""}),
        json!({"body": "a", "tag": "a|b"}),
        json!({"body": "a", "tag": "t".repeat(129)}),
        json!({"body": "a", "keys": vec!["k"; 33]}),
        json!({"body": "a", "keys": [""]}),
        json!({"body": "a", "keys": ["k".repeat(129)]}),
        json!({"body": "a", "properties": {"shale.x": "1"}}),
        json!({"body": "a", "properties": {"bad name": "1"}}),
        json!({"body": "a", "properties": {"big": "v".repeat(16 * 1024)}}),
        json!({"body": "a", "dedup_id": ""}),
        json!({"body": "a", "queue": 2}),
        json!({"body": "a", "unknown": 1}),
    ];
    for bad in bad_messages {
        rejected(
            &n,
            "t",
            json!({"messages": [ok.clone(), bad]}),
            400,
            "INVALID_ARGUMENT",
        )
        .await;
    }
    let many: Vec<Value> = (0..65)
        .map(|i| (format!("p{i}"), json!("v")))
        .map(|(k, v)| json!({k: v}))
        .collect();
    let mut props = serde_json::Map::new();
    for p in many {
        props.extend(p.as_object().unwrap().clone());
    }
    rejected(
        &n,
        "t",
        json!({"messages": [{"body": "a", "properties": props}]}),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    rejected(&n, "t", json!({"messages": []}), 400, "INVALID_ARGUMENT").await;
    rejected(
        &n,
        "t",
        json!({"messages": vec![ok.clone(); 1025]}),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    rejected(&n, "t", json!({"messages": "no"}), 400, "INVALID_ARGUMENT").await;
    n.produce("t", json!(vec![ok; 1024])).await;
    n.post(
        "/v1/topics/none/messages",
        json!({"messages": [{"body": "a"}]}),
    )
    .await
    .assert_error(404, "TOPIC_NOT_FOUND");
}

#[tokio::test]
async fn size_limits_are_413() {
    let n = Node::new();
    n.topic("t", json!({"queues": 1})).await;
    let big = "x".repeat(4 * 1024 * 1024 + 1);
    rejected(
        &n,
        "t",
        json!({"messages": [{"body": "ok"}, {"body": big}]}),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
    let raw = n
        .send(
            Request::post("/v1/topics/t/messages")
                .body(Body::from(big.clone()))
                .unwrap(),
        )
        .await;
    raw.assert_error(413, "PAYLOAD_TOO_LARGE");
    // Nine bodies of just under 4 MiB: each fine, 36 MiB together.
    let body = "y".repeat(4 * 1024 * 1024 - 100);
    rejected(
        &n,
        "t",
        json!({"messages": vec![json!({"body": body}); 9]}),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
    // An HTTP body over the limit is refused while reading it.
    let huge = vec![b' '; shale_gateway::app::MAX_HTTP_BODY_BYTES + 1];
    let req = Request::post("/v1/topics/t/messages")
        .header("content-type", "application/json")
        .body(Body::from(huge))
        .unwrap();
    n.send(req).await.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(n.stored("t").await, 0);
    // Exactly 4 MiB is fine.
    n.produce("t", json!([{"body": "z".repeat(4 * 1024 * 1024)}]))
        .await;
}

#[tokio::test]
async fn type_rules() {
    let n = Node::new();
    n.topic("normal", json!({"queues": 2})).await;
    n.topic("fifo", json!({"queues": 4, "message_type": "FIFO"}))
        .await;
    n.topic("delay", json!({"queues": 2, "message_type": "DELAY"}))
        .await;
    let mismatch = "MESSAGE_TYPE_MISMATCH";
    // A DELAY message without a delay is delivered at once (API.md).
    let now = n
        .post(
            "/v1/topics/delay/messages",
            json!({"messages": [{"body": "a"}]}),
        )
        .await;
    assert!(now.assert_ok()["results"][0]["offset"].is_u64());
    rejected(
        &n,
        "delay",
        json!({"messages": [{"body": "a", "delay_ms": -1}]}),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    rejected(
        &n,
        "delay",
        json!({"messages": [{"body": "a", "delay_level": 19}]}),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    rejected(
        &n,
        "fifo",
        json!({"messages": [{"body": "a"}]}),
        400,
        mismatch,
    )
    .await;
    rejected(
        &n,
        "normal",
        json!({"messages": [{"body": "a", "message_group": "g"}]}),
        400,
        mismatch,
    )
    .await;
    rejected(
        &n,
        "normal",
        json!({"messages": [{"body": "a", "delay_ms": 10}]}),
        400,
        mismatch,
    )
    .await;
    rejected(
        &n,
        "normal",
        json!({"messages": [{"body": "a", "delay_level": 1}]}),
        400,
        mismatch,
    )
    .await;
    let tx = json!({"messages": [{"body": "a"}], "transaction": {"producer_group": "p", "check_after_ms": 6000}});
    rejected(&n, "normal", tx, 400, mismatch).await;

    // FIFO: one group always lands in one queue, in order.
    let msgs: Vec<Value> = (0..20)
        .map(|i| json!({"body": format!("{i}"), "message_group": format!("g{}", i % 3)}))
        .collect();
    let r = n.produce("fifo", json!(msgs)).await;
    for i in 0..20 {
        for j in 0..20 {
            if i % 3 == j % 3 {
                assert_eq!(r[i]["queue"], r[j]["queue"]);
            }
        }
    }
    let again = n
        .produce("fifo", json!([{"body": "x", "message_group": "g0"}]))
        .await;
    assert_eq!(again[0]["queue"], r[0]["queue"]);
    let m = n
        .get(&format!(
            "/v1/topics/fifo/messages/{}",
            r[0]["message_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(m.body["message_group"], "g0");
}

#[tokio::test]
async fn round_robin_spreads_requests() {
    let n = Node::new();
    n.topic("t", json!({"queues": 4})).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let r = n.produce("t", json!([{"body": "a"}, {"body": "b"}])).await;
        assert_eq!(r[0]["queue"], r[1]["queue"]);
        seen.insert(r[0]["queue"].as_u64().unwrap());
    }
    assert_eq!(seen.len(), 4);
}

#[tokio::test]
async fn durability_header() {
    let n = Node::new();
    n.topic("t", json!({"queues": 1, "durability": "ASYNC"}))
        .await;
    for (value, ok) in [
        ("SYNC", true),
        ("ASYNC", true),
        ("OBJECT", true),
        ("sometimes", false),
    ] {
        let req = Request::post("/v1/topics/t/messages")
            .header("content-type", "application/json")
            .header("Shale-Durability", value)
            .body(Body::from(r#"{"messages":[{"body":"x"}]}"#))
            .unwrap();
        let a = n.send(req).await;
        if ok {
            assert_eq!(a.status, StatusCode::OK, "{value}: {}", a.body);
        } else {
            a.assert_error(400, "INVALID_ARGUMENT");
        }
    }
    assert_eq!(n.stored("t").await, 3);
}

#[tokio::test]
async fn dedup_within_a_request_and_across_requests() {
    let n = Node::new();
    n.topic("t", json!({"queues": 4})).await;
    let r = n
        .produce(
            "t",
            json!([{"body": "a", "dedup_id": "x"}, {"body": "b"}, {"body": "a2", "dedup_id": "x"}]),
        )
        .await;
    assert_eq!(r[0], r[2]);
    assert_ne!(r[0], r[1]);
    assert_eq!(n.stored("t").await, 2);
    let again = n
        .produce("t", json!([{"body": "other", "dedup_id": "x", "queue": 3}]))
        .await;
    assert_eq!(again[0], r[0]);
    assert_eq!(n.stored("t").await, 2);
    // Another topic has its own ids.
    n.topic("u", json!({"queues": 1})).await;
    n.produce("u", json!([{"body": "a", "dedup_id": "x"}]))
        .await;
    assert_eq!(n.stored("u").await, 1);
}

#[tokio::test]
async fn dedup_survives_a_restart_and_expires_after_five_minutes() {
    let clock = ManualClock::new(1_700_000_000_000);
    let n = Node::with_clock(Arc::new(clock.clone()));
    n.topic("t", json!({"queues": 2})).await;
    let first = n
        .produce("t", json!([{"body": "a", "dedup_id": "x"}]))
        .await;
    clock.advance(60_000);
    let n = n.reopen();
    let repeat = n
        .produce("t", json!([{"body": "a", "dedup_id": "x"}]))
        .await;
    assert_eq!(repeat, first);
    assert_eq!(n.stored("t").await, 1);
    clock.advance(240_000);
    let later = n
        .produce("t", json!([{"body": "a", "dedup_id": "x"}]))
        .await;
    assert_ne!(later[0]["message_id"], first[0]["message_id"]);
    assert_eq!(n.stored("t").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_dedup_id_store_once() {
    let n = Arc::new(Node::new());
    n.topic("t", json!({"queues": 8})).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let n = n.clone();
            tokio::spawn(async move {
                n.produce(
                    "t",
                    json!([{"body": format!("{i}"), "dedup_id": "same"}, {"body": "extra"}]),
                )
                .await
            })
        })
        .collect();
    let mut first = None;
    for t in tasks {
        let r = tokio::time::timeout(api_support::TIMEOUT, t)
            .await
            .unwrap()
            .unwrap();
        let id = r[0]["message_id"].clone();
        assert_eq!(first.get_or_insert(id.clone()), &id);
    }
    assert_eq!(n.stored("t").await, 33);
}

#[tokio::test]
async fn draining_refuses_produce_with_retry_after() {
    let n = Node::new();
    n.topic("t", json!({"queues": 1})).await;
    assert_eq!(n.get("/readyz").await.status, StatusCode::OK);
    n.state.set_draining();
    let a = n
        .post(
            "/v1/topics/t/messages",
            json!({"messages": [{"body": "x"}]}),
        )
        .await;
    a.assert_error(503, "UNAVAILABLE");
    assert!(a.headers.contains_key("retry-after"));
    let r = n.get("/readyz").await;
    r.assert_error(503, "UNAVAILABLE");
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(n.stored("t").await, 0);
    assert_eq!(n.get("/healthz").await.status, StatusCode::OK);
}
