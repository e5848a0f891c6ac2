#![allow(clippy::unwrap_used)]
//! Consumer groups through the HTTP API, with a manual clock for
//! invisibility and backoff: receive/ack, redelivery, dead letters, receipt
//! handles, FIFO, filters, broadcasting, offsets and reset, long polling, and
//! concurrent receivers.

mod api_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use api_support::{Node, TIMEOUT};
use axum::http::StatusCode;
use serde_json::{Value, json};
use shale_hot::ManualClock;

const T0: i64 = 1_700_000_000_000;

fn node() -> (Node, ManualClock) {
    let clock = ManualClock::new(T0);
    (Node::with_clock(Arc::new(clock.clone())), clock)
}

async fn group(n: &Node, name: &str, body: Value) {
    let a = n
        .call(
            axum::http::Method::PUT,
            &format!("/v1/groups/{name}"),
            Some(body),
        )
        .await;
    assert!(
        a.status == StatusCode::CREATED || a.status == StatusCode::OK,
        "{}",
        a.body
    );
}

async fn receive(n: &Node, g: &str, body: Value) -> Vec<Value> {
    let a = n.post(&format!("/v1/groups/{g}/receive"), body).await;
    a.assert_ok()["messages"].as_array().unwrap().clone()
}

async fn ack(n: &Node, g: &str, topic: &str, handles: &[&str]) -> Vec<Value> {
    let a = n
        .post(
            &format!("/v1/groups/{g}/ack"),
            json!({"topic": topic, "receipt_handles": handles}),
        )
        .await;
    a.assert_ok()["results"].as_array().unwrap().clone()
}

fn handle(m: &Value) -> &str {
    m["receipt_handle"].as_str().unwrap()
}

async fn offsets(n: &Node, g: &str, topic: &str) -> Vec<Value> {
    n.get(&format!("/v1/groups/{g}/offsets?topic={topic}"))
        .await
        .assert_ok()["queues"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn receive_ack_and_committed_offsets() {
    let (n, _clock) = node();
    n.topic("t", json!({"queues": 1})).await;
    n.produce("t", json!([{"body": "a"}, {"body": "b"}, {"body": "c"}]))
        .await;
    group(&n, "g", json!({"consume_from": "EARLIEST"})).await;
    let got = receive(&n, "g", json!({"topic": "t", "max_messages": 10})).await;
    assert_eq!(
        got.iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(
        got.iter()
            .all(|m| m["delivery_attempt"] == 1 && m["invisible_until_ms"] == T0 + 30_000)
    );
    assert!(
        receive(&n, "g", json!({"topic": "t"})).await.is_empty(),
        "in flight to one receiver only"
    );
    let r = ack(&n, "g", "t", &[handle(&got[1])]).await;
    assert_eq!(r[0]["ok"], true);
    let o = offsets(&n, "g", "t").await;
    assert_eq!(
        (
            o[0]["committed_offset"].as_u64(),
            o[0]["lag"].as_u64(),
            o[0]["inflight"].as_u64()
        ),
        (Some(0), Some(3), Some(2))
    );
    ack(&n, "g", "t", &[handle(&got[0]), handle(&got[2])]).await;
    let o = offsets(&n, "g", "t").await;
    assert_eq!(
        (o[0]["committed_offset"].as_u64(), o[0]["lag"].as_u64()),
        (Some(3), Some(0))
    );
    // A second ack of the same delivery: expired.
    let r = ack(&n, "g", "t", &[handle(&got[0])]).await;
    assert_eq!(r[0]["error"]["code"], "RECEIPT_HANDLE_EXPIRED");
    // Groups are listed with their lag; a group created on first use starts at LATEST.
    let list = n.get("/v1/groups").await.assert_ok().clone();
    assert_eq!(list["groups"][0]["name"], "g");
    assert!(receive(&n, "fresh", json!({"topic": "t"})).await.is_empty());
    n.produce("t", json!([{"body": "d"}])).await;
    assert_eq!(
        receive(&n, "fresh", json!({"topic": "t"})).await[0]["body"],
        "d"
    );
}

#[tokio::test]
async fn unacked_messages_come_back_after_the_backoff_then_go_to_the_dead_letter_topic() {
    let (n, clock) = node();
    n.topic("t", json!({"queues": 1})).await;
    n.produce("t", json!([{"body": "x", "tag": "tg", "keys": ["k1"]}]))
        .await;
    group(
        &n,
        "g",
        json!({"consume_from": "EARLIEST", "max_delivery_attempts": 2, "retry_backoff_ms": [5000]}),
    )
    .await;
    let first = receive(&n, "g", json!({"topic": "t", "invisible_ms": 1000})).await;
    assert_eq!(first.len(), 1);
    clock.advance(1000 + 4999);
    assert!(
        receive(&n, "g", json!({"topic": "t"})).await.is_empty(),
        "backoff not over"
    );
    clock.advance(1);
    let second = receive(&n, "g", json!({"topic": "t", "invisible_ms": 1000})).await;
    assert_eq!(second[0]["delivery_attempt"], 2);
    assert_eq!(second[0]["message_id"], first[0]["message_id"]);
    assert_eq!(
        ack(&n, "g", "t", &[handle(&first[0])]).await[0]["error"]["code"],
        "RECEIPT_HANDLE_EXPIRED"
    );
    clock.advance(6000);
    assert!(
        receive(&n, "g", json!({"topic": "t"})).await.is_empty(),
        "dead-lettered, not delivered"
    );
    let dlq = n.read_all("%25DLQ%25g", 0).await;
    assert_eq!(dlq.len(), 1);
    let p = &dlq[0]["properties"];
    assert_eq!(
        (
            p["shale.origin_topic"].as_str(),
            p["shale.delivery_attempts"].as_str()
        ),
        (Some("t"), Some("2"))
    );
    assert_eq!(p["shale.origin_message_id"], first[0]["message_id"]);
    assert_eq!(
        (dlq[0]["body"].as_str(), dlq[0]["tag"].as_str()),
        (Some("x"), Some("tg"))
    );
    assert_eq!(
        offsets(&n, "g", "t").await[0]["committed_offset"],
        1,
        "acked in the origin"
    );
    // The DLQ can be consumed like any topic.
    let from_dlq = receive(&n, "dlq-reader", json!({"topic": "%DLQ%g"})).await;
    assert!(from_dlq.is_empty(), "LATEST by default");
}

#[tokio::test]
async fn nack_and_extend_and_receipt_handle_checks() {
    let (n, clock) = node();
    n.topic("t", json!({"queues": 1})).await;
    n.topic("other", json!({"queues": 1})).await;
    n.produce("t", json!([{"body": "x"}])).await;
    group(
        &n,
        "g",
        json!({"consume_from": "EARLIEST", "retry_backoff_ms": [2000]}),
    )
    .await;
    let m = receive(&n, "g", json!({"topic": "t"})).await;
    let h = handle(&m[0]).to_string();
    // Forged, for another topic, for another group.
    // Change the first character of the MAC to a different one.
    let dot = h.find('.').unwrap();
    let mut forged = h.clone();
    let c = forged.as_bytes()[dot + 1];
    forged.replace_range(dot + 1..dot + 2, if c == b'A' { "B" } else { "A" });
    let r = ack(&n, "g", "t", &[&forged, "nonsense"]).await;
    assert_eq!(r[0]["error"]["code"], "INVALID_RECEIPT_HANDLE");
    assert_eq!(r[1]["error"]["code"], "INVALID_RECEIPT_HANDLE");
    assert_eq!(
        ack(&n, "g", "other", &[&h]).await[0]["error"]["code"],
        "INVALID_RECEIPT_HANDLE"
    );
    assert_eq!(
        ack(&n, "g2", "t", &[&h]).await[0]["error"]["code"],
        "INVALID_RECEIPT_HANDLE"
    );
    // Extend: a new handle; the old one is over.
    let a = n
        .post(
            "/v1/groups/g/change-invisibility",
            json!({"topic": "t", "receipt_handle": h, "invisible_ms": 60000}),
        )
        .await;
    let h2 = a.assert_ok()["receipt_handle"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.body["invisible_until_ms"], T0 + 60_000);
    let stale = n
        .post(
            "/v1/groups/g/change-invisibility",
            json!({"topic": "t", "receipt_handle": h, "invisible_ms": 0}),
        )
        .await;
    stale.assert_error(409, "RECEIPT_HANDLE_EXPIRED");
    // Nack: back after the backoff of attempt 1.
    let a = n
        .post(
            "/v1/groups/g/change-invisibility",
            json!({"topic": "t", "receipt_handle": h2, "invisible_ms": 0}),
        )
        .await;
    a.assert_ok();
    clock.advance(1999);
    assert!(receive(&n, "g", json!({"topic": "t"})).await.is_empty());
    clock.advance(1);
    assert_eq!(
        receive(&n, "g", json!({"topic": "t"})).await[0]["delivery_attempt"],
        2
    );
    // Bad inputs.
    n.post(
        "/v1/groups/g/receive",
        json!({"topic": "t", "invisible_ms": 10}),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
    n.post(
        "/v1/groups/g/receive",
        json!({"topic": "t", "wait_ms": 30001}),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
    n.post("/v1/groups/g/receive", json!({"topic": "nope"}))
        .await
        .assert_error(404, "TOPIC_NOT_FOUND");
    n.post(
        "/v1/groups/g/receive",
        json!({"topic": "t", "filter": {"type": "SQL92", "expression": "a >"}}),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
    n.get("/v1/groups/none/offsets?topic=t")
        .await
        .assert_error(404, "GROUP_NOT_FOUND");
    n.call(
        axum::http::Method::PUT,
        "/v1/groups/g",
        Some(json!({"max_delivery_attempts": 0})),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn fifo_delivers_a_message_group_in_order_and_groups_in_parallel() {
    let (n, _clock) = node();
    n.topic("f", json!({"queues": 1, "message_type": "FIFO"}))
        .await;
    let msgs: Vec<Value> = ["a1", "b1", "a2", "b2", "a3"]
        .iter()
        .map(|b| json!({"body": b, "message_group": &b[..1]}))
        .collect();
    n.produce("f", Value::Array(msgs)).await;
    group(&n, "g", json!({"consume_from": "EARLIEST"})).await;
    let first = receive(&n, "g", json!({"topic": "f", "max_messages": 10})).await;
    assert_eq!(
        first
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a1", "b1"]
    );
    ack(&n, "g", "f", &[handle(&first[0])]).await;
    let next = receive(&n, "g", json!({"topic": "f", "max_messages": 10})).await;
    assert_eq!(
        next.iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a2"]
    );
    ack(&n, "g", "f", &[handle(&first[1]), handle(&next[0])]).await;
    let rest = receive(&n, "g", json!({"topic": "f", "max_messages": 10})).await;
    assert_eq!(
        rest.iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["b2", "a3"]
    );
}

#[tokio::test]
async fn filters_select_on_the_server_and_the_rest_counts_as_consumed() {
    let (n, _clock) = node();
    n.topic("t", json!({"queues": 1})).await;
    n.produce(
        "t",
        json!([
            {"body": "1", "tag": "created", "properties": {"region": "eu", "amount": "150"}},
            {"body": "2", "tag": "paid", "properties": {"region": "us", "amount": "500"}},
            {"body": "3", "tag": "created", "properties": {"region": "eu", "amount": "50"}},
            {"body": "4", "properties": {"amount": "999"}}
        ]),
    )
    .await;
    group(&n, "tags", json!({"consume_from": "EARLIEST"})).await;
    let got = receive(&n, "tags", json!({"topic": "t", "max_messages": 10, "filter": {"type": "TAG", "expression": "paid||created"}})).await;
    assert_eq!(
        got.iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    group(&n, "sql", json!({"consume_from": "EARLIEST"})).await;
    let filter =
        json!({"type": "SQL92", "expression": "region = 'eu' AND amount > 100 OR TAGS = 'paid'"});
    let got = receive(
        &n,
        "sql",
        json!({"topic": "t", "max_messages": 10, "filter": filter}),
    )
    .await;
    assert_eq!(
        got.iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    ack(&n, "sql", "t", &[handle(&got[0]), handle(&got[1])]).await;
    assert_eq!(
        offsets(&n, "sql", "t").await[0]["committed_offset"],
        4,
        "filtered messages count as consumed"
    );
}

#[tokio::test]
async fn broadcasting_gives_every_consumer_every_message() {
    let (n, _clock) = node();
    n.topic("t", json!({"queues": 2})).await;
    n.produce(
        "t",
        json!([{"body": "a", "queue": 0}, {"body": "b", "queue": 1}]),
    )
    .await;
    group(
        &n,
        "b",
        json!({"consume_mode": "BROADCASTING", "consume_from": "EARLIEST"}),
    )
    .await;
    n.post("/v1/groups/b/receive", json!({"topic": "t"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    for c in ["c1", "c2"] {
        let got = receive(
            &n,
            "b",
            json!({"topic": "t", "max_messages": 10, "consumer_id": c}),
        )
        .await;
        let bodies: BTreeSet<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
        assert_eq!(bodies, BTreeSet::from(["a", "b"]), "consumer {c}");
    }
}

#[tokio::test]
async fn reset_moves_the_group_back_and_forth() {
    let (n, clock) = node();
    n.topic("t", json!({"queues": 1})).await;
    for i in 0..5 {
        clock.advance(1000);
        n.produce("t", json!([{"body": format!("m{i}")}])).await;
    }
    group(&n, "g", json!({"consume_from": "EARLIEST"})).await;
    let got = receive(&n, "g", json!({"topic": "t", "max_messages": 10})).await;
    let handles: Vec<&str> = got.iter().map(handle).collect();
    ack(&n, "g", "t", &handles).await;
    let a = n
        .post(
            "/v1/groups/g/offsets/reset",
            json!({"topic": "t", "timestamp_ms": T0 + 3000}),
        )
        .await;
    assert_eq!(a.assert_ok()["queues"][0]["committed_offset"], 2);
    let again = receive(&n, "g", json!({"topic": "t", "max_messages": 10})).await;
    assert_eq!(
        again
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["m2", "m3", "m4"]
    );
    assert_eq!(ack(&n, "g", "t", &[handle(&again[0])]).await[0]["ok"], true);
    let a = n
        .post(
            "/v1/groups/g/offsets/reset",
            json!({"topic": "t", "to": "EARLIEST"}),
        )
        .await;
    assert_eq!(a.assert_ok()["queues"][0]["committed_offset"], 0);
    assert_eq!(
        ack(&n, "g", "t", &[handle(&again[1])]).await[0]["error"]["code"],
        "RECEIPT_HANDLE_EXPIRED",
        "a reset forgets deliveries"
    );
    let a = n
        .post(
            "/v1/groups/g/offsets/reset",
            json!({"topic": "t", "offsets": {"0": 4}}),
        )
        .await;
    assert_eq!(a.assert_ok()["queues"][0]["committed_offset"], 4);
    n.post(
        "/v1/groups/g/offsets/reset",
        json!({"topic": "t", "offsets": {"0": 99}}),
    )
    .await
    .assert_error(416, "OFFSET_OUT_OF_RANGE");
    n.post(
        "/v1/groups/g/offsets/reset",
        json!({"topic": "t", "to": "LATEST", "timestamp_ms": 1}),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
    let a = n
        .post(
            "/v1/groups/g/offsets/reset",
            json!({"topic": "t", "to": "LATEST"}),
        )
        .await;
    assert_eq!(a.assert_ok()["queues"][0]["committed_offset"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_receive_returns_as_soon_as_a_message_arrives() {
    let n = Node::new();
    n.topic("t", json!({"queues": 2})).await;
    group(&n, "g", json!({"consume_from": "LATEST"})).await;
    assert!(receive(&n, "g", json!({"topic": "t"})).await.is_empty());
    let app = n.app.clone();
    let started = std::time::Instant::now();
    let waiter = tokio::spawn(async move {
        use tower::ServiceExt;
        let req = axum::http::Request::post("/v1/groups/g/receive")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({"topic": "t", "wait_ms": 20000}).to_string(),
            ))
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    });
    // The receive is waiting (no message yet), then one arrives.
    tokio::task::yield_now().await;
    n.produce("t", json!([{"body": "late", "queue": 1}])).await;
    let got = tokio::time::timeout(TIMEOUT, waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["messages"][0]["body"], "late");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the wait was not cut short"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_receivers_each_get_every_message_once() {
    let n = Arc::new(Node::new());
    n.topic("t", json!({"queues": 4})).await;
    let total = 2000;
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        let msgs: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"body": format!("{i}"), "queue": i % 4}))
            .collect();
        n.produce("t", Value::Array(msgs)).await;
    }
    group(&n, "g", json!({"consume_from": "EARLIEST"})).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let n = n.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = receive(
                    &n,
                    "g",
                    json!({"topic": "t", "max_messages": 32, "invisible_ms": 600000}),
                )
                .await;
                if got.is_empty() {
                    return mine;
                }
                let handles: Vec<&str> = got.iter().map(handle).collect();
                for r in ack(&n, "g", "t", &handles).await {
                    assert_eq!(r["ok"], true, "{r}");
                }
                mine.extend(got.iter().map(|m| m["body"].as_str().unwrap().to_string()));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(tokio::time::timeout(TIMEOUT * 6, t).await.unwrap().unwrap());
    }
    all.sort_by_key(|b| b.parse::<u32>().unwrap());
    assert_eq!(
        all,
        (0..total).map(|i| i.to_string()).collect::<Vec<_>>(),
        "each message exactly once"
    );
    let o = offsets(&n, "g", "t").await;
    assert!(o.iter().all(|q| q["lag"] == 0));
}

#[tokio::test]
async fn group_state_survives_a_restart_from_its_checkpoint() {
    let (n, clock) = node();
    n.topic("t", json!({"queues": 1})).await;
    let msgs: Vec<Value> = (0..6).map(|i| json!({"body": format!("m{i}")})).collect();
    n.produce("t", Value::Array(msgs)).await;
    group(
        &n,
        "g",
        json!({"consume_from": "EARLIEST", "retry_backoff_ms": [10000]}),
    )
    .await;
    let got = receive(
        &n,
        "g",
        json!({"topic": "t", "max_messages": 4, "invisible_ms": 60000}),
    )
    .await;
    assert_eq!(got.len(), 4);
    ack(&n, "g", "t", &[handle(&got[0]), handle(&got[1])]).await;
    n.state.tiering_tick().await; // the checkpoint (once a second on a running node)
    // An ack after the last checkpoint, then a crash (no hand-over).
    ack(&n, "g", "t", &[handle(&got[2])]).await;
    let n = n.reopen();
    let o = offsets(&n, "g", "t").await;
    assert_eq!(
        (o[0]["committed_offset"].as_u64(), o[0]["inflight"].as_u64()),
        (Some(2), Some(2))
    );
    // A handle from before the restart still acks its delivery.
    assert_eq!(ack(&n, "g", "t", &[handle(&got[3])]).await[0]["ok"], true);
    // New messages continue where the group was; nothing acked comes back.
    let next = receive(&n, "g", json!({"topic": "t", "max_messages": 10})).await;
    assert_eq!(
        next.iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["m4", "m5"]
    );
    // The ack lost with the crash: offset 2 is delivered again after its invisibility and backoff.
    clock.advance(70_000);
    let again = receive(&n, "g", json!({"topic": "t", "max_messages": 10})).await;
    let bodies: Vec<&str> = again.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert!(
        bodies.contains(&"m2")
            && !bodies.contains(&"m0")
            && !bodies.contains(&"m1")
            && !bodies.contains(&"m3"),
        "{bodies:?}"
    );
}

#[tokio::test]
async fn group_metrics_report_ready_inflight_lag_and_dead_letters() {
    let (n, clock) = node();
    n.topic("metrics-groups", json!({"queues": 1})).await;
    let msgs: Vec<Value> = (0..5).map(|i| json!({"body": format!("m{i}")})).collect();
    n.produce("metrics-groups", Value::Array(msgs)).await;
    group(
        &n,
        "mg",
        json!({"consume_from": "EARLIEST", "max_delivery_attempts": 1, "retry_backoff_ms": [0]}),
    )
    .await;
    let got = receive(
        &n,
        "mg",
        json!({"topic": "metrics-groups", "max_messages": 2, "invisible_ms": 1000}),
    )
    .await;
    assert_eq!(got.len(), 2);
    clock.advance(10_000);
    n.state.tiering_tick().await;
    let text = n.get("/metrics").await.bytes;
    let text = String::from_utf8_lossy(&text);
    let line = |name: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(name)
                    && l.contains("group=\"mg\"")
                    && l.contains("topic=\"metrics-groups\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("{name} missing in {text}"))
    };
    assert_eq!(line("shale_group_ready"), "3");
    assert_eq!(
        line("shale_group_inflight"),
        "0",
        "their invisibility ran out"
    );
    assert_eq!(line("shale_group_lag"), "5");
    assert_eq!(line("shale_group_oldest_unacked_age_seconds"), "10");
    // One attempt allowed: the next receive dead-letters both.
    receive(
        &n,
        "mg",
        json!({"topic": "metrics-groups", "max_messages": 2}),
    )
    .await;
    let text = String::from_utf8_lossy(&n.get("/metrics").await.bytes).to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with("shale_group_dead_lettered_total")
                && l.contains("group=\"mg\"")
                && l.ends_with(" 2")),
        "{text}"
    );
}
