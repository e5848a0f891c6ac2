//! Reading: by offset (limits, long poll, tag filter, NDJSON, base64), offset
//! of a timestamp, and query by id and key.
#![allow(clippy::unwrap_used)]

mod api_support;

use std::sync::Arc;
use std::time::Duration;

use api_support::{Node, TIMEOUT};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

fn bodies(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect()
}

async fn ten(n: &Node) {
    n.topic("t", json!({"queues": 2})).await;
    let msgs: Vec<Value> = (0..10)
        .map(|i| json!({"body": format!("m{i}"), "queue": 0}))
        .collect();
    n.produce("t", json!(msgs)).await;
}

#[tokio::test]
async fn reads_by_offset_with_limits() {
    let n = Node::new();
    ten(&n).await;
    let a = n.get("/v1/topics/t/queues/0/messages").await;
    let b = a.assert_ok();
    assert_eq!(b["messages"].as_array().unwrap().len(), 10);
    assert_eq!(b["next_offset"], 10);
    assert_eq!(b["min_offset"], 0);
    assert_eq!(b["max_offset"], 10);
    assert_eq!(b["messages"][3]["offset"], 3);

    let a = n
        .get("/v1/topics/t/queues/0/messages?offset=4&max_messages=3")
        .await;
    assert_eq!(
        bodies(a.body["messages"].as_array().unwrap()),
        vec!["m4", "m5", "m6"]
    );
    assert_eq!(a.body["next_offset"], 7);

    // max_bytes smaller than one message still returns one.
    let a = n
        .get("/v1/topics/t/queues/0/messages?offset=2&max_bytes=1")
        .await;
    assert_eq!(a.body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(a.body["next_offset"], 3);

    let end = n.get("/v1/topics/t/queues/0/messages?offset=10").await;
    assert_eq!(end.body["messages"], json!([]));
    assert_eq!(end.body["next_offset"], 10);

    let empty = n.get("/v1/topics/t/queues/1/messages").await;
    assert_eq!(
        empty.body,
        json!({"messages": [], "next_offset": 0, "min_offset": 0, "max_offset": 0})
    );
}

#[tokio::test]
async fn read_errors() {
    let n = Node::new();
    ten(&n).await;
    let range = n.get("/v1/topics/t/queues/0/messages?offset=11").await;
    range.assert_error(416, "OFFSET_OUT_OF_RANGE");
    assert!(
        range.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[0, 10]")
    );
    n.get("/v1/topics/t/queues/1/messages?offset=1")
        .await
        .assert_error(416, "OFFSET_OUT_OF_RANGE");
    n.get("/v1/topics/t/queues/2/messages")
        .await
        .assert_error(404, "NOT_FOUND");
    n.get("/v1/topics/x/queues/0/messages")
        .await
        .assert_error(404, "TOPIC_NOT_FOUND");
    for q in [
        "max_messages=0",
        "max_messages=1025",
        "max_bytes=0",
        "max_bytes=33554433",
        "wait_ms=30001",
        "offset=abc",
        "offset=-1",
        "tag=a||",
        "encoding=hex",
    ] {
        n.get(&format!("/v1/topics/t/queues/0/messages?{q}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    n.get("/v1/topics/t/queues/zero/messages")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn tag_filter_skips_but_advances() {
    let n = Node::new();
    n.topic("t", json!({"queues": 1})).await;
    n.produce(
        "t",
        json!([{"body": "0", "tag": "a"}, {"body": "1", "tag": "b"}, {"body": "2", "tag": "c"}, {"body": "3"}, {"body": "4", "tag": "c"}]),
    )
    .await;
    let a = n.get("/v1/topics/t/queues/0/messages?tag=a||c").await;
    assert_eq!(
        bodies(a.body["messages"].as_array().unwrap()),
        vec!["0", "2", "4"]
    );
    assert_eq!(a.body["next_offset"], 5);
    let b = n.get("/v1/topics/t/queues/0/messages?tag=b&offset=2").await;
    assert_eq!(b.body["messages"], json!([]));
    assert_eq!(b.body["next_offset"], 5);
    let star = n.get("/v1/topics/t/queues/0/messages?tag=*").await;
    assert_eq!(star.body["messages"].as_array().unwrap().len(), 5);
    let two = n
        .get("/v1/topics/t/queues/0/messages?tag=c&max_messages=1")
        .await;
    assert_eq!(bodies(two.body["messages"].as_array().unwrap()), vec!["2"]);
    assert_eq!(two.body["next_offset"], 3);
}

#[tokio::test]
async fn base64_encoding_is_forced_on_request() {
    let n = Node::new();
    ten(&n).await;
    let a = n
        .get("/v1/topics/t/queues/0/messages?max_messages=1&encoding=base64")
        .await;
    assert_eq!(a.body["messages"][0]["body_base64"], "bTA=");
    assert!(a.body["messages"][0].get("body").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_when_a_message_arrives() {
    let n = Arc::new(Node::new());
    n.topic("t", json!({"queues": 2})).await;
    for queue in [0u32, 1] {
        // Queue 1 was never written: the poll must still wake up.
        if queue == 0 {
            n.produce("t", json!([{"body": "old", "queue": 0}])).await;
        }
        let offset = if queue == 0 { 1 } else { 0 };
        let mut poller = {
            let n = n.clone();
            tokio::spawn(async move {
                n.get(&format!(
                    "/v1/topics/t/queues/{queue}/messages?offset={offset}&wait_ms=30000"
                ))
                .await
            })
        };
        // The poll is waiting (not returning early with nothing)...
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut poller)
                .await
                .is_err()
        );
        // ...until a message arrives.
        n.produce("t", json!([{"body": "new", "queue": queue}]))
            .await;
        let started = std::time::Instant::now();
        let a = tokio::time::timeout(TIMEOUT, poller)
            .await
            .unwrap()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(bodies(a.body["messages"].as_array().unwrap()), vec!["new"]);
        assert_eq!(a.body["next_offset"], offset + 1);
    }
}

#[tokio::test]
async fn long_poll_times_out_empty_and_ends_on_drain() {
    let n = Arc::new(Node::new());
    n.topic("t", json!({"queues": 1})).await;
    let a = n.get("/v1/topics/t/queues/0/messages?wait_ms=50").await;
    assert_eq!(a.body["messages"], json!([]));
    let mut poller = {
        let n = n.clone();
        tokio::spawn(async move { n.get("/v1/topics/t/queues/0/messages?wait_ms=30000").await })
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut poller)
            .await
            .is_err()
    );
    n.state.set_draining();
    let a = tokio::time::timeout(TIMEOUT, poller)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["messages"], json!([]));
}

async fn ndjson(n: &Node, uri: &str) -> (StatusCode, Vec<Value>, Option<String>) {
    let req = Request::get(uri)
        .header("accept", "application/x-ndjson")
        .body(Body::empty())
        .unwrap();
    let a = n.send(req).await;
    let ct = a
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let lines = std::str::from_utf8(&a.bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (a.status, lines, ct)
}

#[tokio::test]
async fn ndjson_streams_the_range() {
    let n = Node::new();
    n.topic("t", json!({"queues": 1})).await;
    for chunk in 0..3 {
        let msgs: Vec<Value> = (0..400)
            .map(|i| {
                let i = chunk * 400 + i;
                json!({"body": format!("m{i}"), "tag": if i % 2 == 0 { "even" } else { "odd" }})
            })
            .collect();
        n.produce("t", json!(msgs)).await;
    }
    let (status, lines, ct) = ndjson(&n, "/v1/topics/t/queues/0/messages").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("application/x-ndjson"));
    assert_eq!(lines.len(), 1200, "no 1024 cap in NDJSON mode");
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(i, m)| m["offset"] == i && m["body"] == format!("m{i}"))
    );

    let (_, lines, _) = ndjson(
        &n,
        "/v1/topics/t/queues/0/messages?offset=100&max_messages=300&tag=odd",
    )
    .await;
    assert_eq!(lines.len(), 300);
    assert_eq!(lines[0]["offset"], 101);
    assert!(lines.iter().all(|m| m["tag"] == "odd"));

    let (_, lines, _) = ndjson(
        &n,
        "/v1/topics/t/queues/0/messages?offset=1198&encoding=base64",
    )
    .await;
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["body_base64"].is_string());

    let req = Request::get("/v1/topics/t/queues/0/messages?offset=5000")
        .header("accept", "application/x-ndjson")
        .body(Body::empty())
        .unwrap();
    n.send(req).await.assert_error(416, "OFFSET_OUT_OF_RANGE");
    let (_, lines, _) = ndjson(&n, "/v1/topics/t/queues/0/messages?offset=1200").await;
    assert!(lines.is_empty());
}

#[tokio::test]
async fn offset_for_timestamp() {
    let n = Node::new();
    n.topic("t", json!({"queues": 2})).await;
    let before = n.now_ms();
    n.produce(
        "t",
        json!([{"body": "a", "queue": 0}, {"body": "b", "queue": 0}]),
    )
    .await;
    let o = n
        .get(&format!(
            "/v1/topics/t/queues/0/offset?timestamp_ms={before}"
        ))
        .await;
    assert_eq!(o.body, json!({"offset": 0}));
    let o = n
        .get(&format!(
            "/v1/topics/t/queues/0/offset?timestamp_ms={}",
            n.now_ms() + 1000
        ))
        .await;
    assert_eq!(o.body, json!({"offset": 2}));
    let o = n.get("/v1/topics/t/queues/1/offset?timestamp_ms=0").await;
    assert_eq!(o.body, json!({"offset": 0}));
    n.get("/v1/topics/t/queues/0/offset")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    n.get("/v1/topics/t/queues/0/offset?timestamp_ms=soon")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    n.get("/v1/topics/t/queues/9/offset?timestamp_ms=0")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn query_by_id() {
    let n = Node::new();
    n.topic("t", json!({"queues": 2})).await;
    n.topic("u", json!({"queues": 2})).await;
    let r = n.produce("t", json!([{"body": "a"}])).await;
    let id = r[0]["message_id"].as_str().unwrap();
    let m = n
        .get(&format!("/v1/topics/t/messages/{id}?encoding=base64"))
        .await;
    assert_eq!(m.body["body_base64"], "YQ==");
    n.get("/v1/topics/t/messages/xyz")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    n.get(&format!("/v1/topics/u/messages/{id}"))
        .await
        .assert_error(404, "MESSAGE_NOT_FOUND");
    n.get(&format!("/v1/topics/x/messages/{id}"))
        .await
        .assert_error(404, "TOPIC_NOT_FOUND");
    // Same queue and offset, other random bits.
    let mut forged = id.to_string();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(31.., last);
    n.get(&format!("/v1/topics/t/messages/{forged}"))
        .await
        .assert_error(404, "MESSAGE_NOT_FOUND");
    // An id naming queue 1000 of a 2-queue topic.
    let far = shale_hot::MessageId::new(1, 1000, 0, 0).to_string();
    n.get(&format!("/v1/topics/t/messages/{far}"))
        .await
        .assert_error(404, "MESSAGE_NOT_FOUND");
}

#[tokio::test]
async fn query_by_key_merges_queues_by_time() {
    let n = Node::new();
    n.topic("t", json!({"queues": 4})).await;
    for q in [2, 0, 3, 1] {
        n.produce("t", json!([{"body": format!("q{q}"), "keys": ["k", format!("other{q}")], "queue": q}, {"body": "no key", "queue": q}]))
            .await;
    }
    let a = n.get("/v1/topics/t/messages?key=k").await;
    let msgs = a.body["messages"].as_array().unwrap();
    assert_eq!(bodies(msgs), vec!["q2", "q0", "q3", "q1"]);
    let stores: Vec<i64> = msgs
        .iter()
        .map(|m| m["store_ms"].as_i64().unwrap())
        .collect();
    assert!(stores.windows(2).all(|w| w[0] <= w[1]));
    let two = n.get("/v1/topics/t/messages?key=k&max_messages=2").await;
    assert_eq!(
        bodies(two.body["messages"].as_array().unwrap()),
        vec!["q2", "q0"]
    );
    let none = n
        .get(&format!(
            "/v1/topics/t/messages?key=k&begin_ms={}",
            n.now_ms() + 10_000
        ))
        .await;
    assert_eq!(none.body["messages"], json!([]));
    let other = n.get("/v1/topics/t/messages?key=other3").await;
    assert_eq!(
        bodies(other.body["messages"].as_array().unwrap()),
        vec!["q3"]
    );
    n.get("/v1/topics/t/messages")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    n.get("/v1/topics/t/messages?key=k&max_messages=0")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    n.get("/v1/topics/t/messages?key=k&max_messages=1025")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    n.get("/v1/topics/t/messages?key=k&begin_ms=5&end_ms=4")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    n.get("/v1/topics/x/messages?key=k")
        .await
        .assert_error(404, "TOPIC_NOT_FOUND");
}

#[tokio::test]
async fn corrupt_records_are_500_internal_never_returned() {
    use std::os::unix::fs::FileExt;
    let n = Node::new();
    n.topic("t", json!({"queues": 1})).await;
    let r = n
        .produce(
            "t",
            json!([{"body": "fine"}, {"body": "CORRUPT-ME-PLEASE"}, {"body": "after"}]),
        )
        .await;
    let seg_dir = n.dir.path().join("hot/t/0");
    let mut flipped = false;
    for entry in std::fs::read_dir(&seg_dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".log.partial")
            && path.extension().is_none_or(|e| e != "log")
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if let Some(pos) = bytes.windows(7).position(|w| w == b"CORRUPT") {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_at(b"X", pos as u64).unwrap();
            flipped = true;
        }
    }
    assert!(flipped, "marker not found under {}", seg_dir.display());
    let a = n.get("/v1/topics/t/queues/0/messages?offset=1").await;
    a.assert_error(500, "INTERNAL");
    assert!(!a.bytes.windows(7).any(|w| w == b"XORRUPT"));
    let id = r[1]["message_id"].as_str().unwrap();
    n.get(&format!("/v1/topics/t/messages/{id}"))
        .await
        .assert_error(500, "INTERNAL");
    // Intact neighbours are still served.
    let first = n
        .get("/v1/topics/t/queues/0/messages?offset=0&max_messages=1")
        .await;
    assert_eq!(first.body["messages"][0]["body"], "fine");
}
