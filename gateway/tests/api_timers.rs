//! Delay messages over HTTP with an injected clock: the produce answer (no
//! offset), raw headers, `state: SCHEDULED`, the timer list, recall, the
//! topic's pending count, and a restart of the node in between.
#![allow(clippy::unwrap_used)]

mod api_support;

use std::sync::Arc;

use api_support::Node;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use shale_hot::ManualClock;

const START_MS: i64 = 1_800_000_000_000;

#[tokio::test]
async fn delay_messages_over_http_from_produce_to_delivery() {
    let clock = ManualClock::new(START_MS);
    let n = Node::with_clock(Arc::new(clock.clone()));
    n.topic("later", json!({"queues": 1, "message_type": "DELAY"}))
        .await;
    let r = n
        .produce(
            "later",
            json!([
                {"body": "b", "delay_ms": 2000, "keys": ["order-2"]},
                {"body": "a", "deliver_at_ms": START_MS + 1000, "tag": "t"},
                {"body": "now", "delay_ms": 0},
            ]),
        )
        .await;
    assert!(r[0].get("offset").is_none(), "{}", r[0]);
    assert_eq!(r[0]["deliver_at_ms"], START_MS + 2000);
    assert_eq!(r[2]["offset"], 0, "delivered at once");
    // Raw produce with the delay header.
    let raw = Request::builder()
        .method(Method::POST)
        .uri("/v1/topics/later/messages")
        .header("content-type", "text/plain")
        .header("shale-delay-ms", "3000")
        .body(Body::from("c"))
        .unwrap();
    let raw = n.send(raw).await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.body);
    let c_id = raw.body["results"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(raw.body["results"][0].get("offset").is_none());

    assert_eq!(n.read_all("later", 0).await.len(), 1);
    let topic = n.get("/v1/topics/later").await;
    assert_eq!(topic.assert_ok()["pending_timers"], 3);
    let a_id = r[1]["message_id"].as_str().unwrap();
    let got = n.get(&format!("/v1/topics/later/messages/{a_id}")).await;
    let m = got.assert_ok();
    assert_eq!(m["state"], "SCHEDULED");
    assert!(
        m.get("offset").is_none() && m.get("store_ms").is_none(),
        "{m}"
    );
    assert_eq!(m["body"], "a");

    let list = n.get("/v1/topics/later/timers?limit=2").await;
    let list = list.assert_ok();
    let ids: Vec<&str> = list["timers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a_id, r[0]["message_id"].as_str().unwrap()]);
    assert_eq!(list["timers"][0]["tag"], "t");
    let next = list["next"].as_str().unwrap();
    let rest = n
        .get(&format!("/v1/topics/later/timers?limit=2&after={next}"))
        .await;
    let rest = rest.assert_ok();
    assert_eq!(rest["timers"][0]["message_id"], c_id.as_str());
    assert!(rest["next"].is_null());
    let by_key = n.get("/v1/topics/later/timers?key=order-2").await;
    assert_eq!(by_key.assert_ok()["timers"].as_array().unwrap().len(), 1);
    n.get("/v1/topics/later/timers?limit=0")
        .await
        .assert_error(400, "INVALID_ARGUMENT");

    // Recall c; restart; the rest fire when due, once.
    let recall = n
        .call(
            Method::DELETE,
            &format!("/v1/topics/later/messages/{c_id}"),
            None,
        )
        .await;
    assert_eq!(recall.status, StatusCode::NO_CONTENT, "{}", recall.body);
    n.call(
        Method::DELETE,
        &format!("/v1/topics/later/messages/{c_id}"),
        None,
    )
    .await
    .assert_error(404, "MESSAGE_NOT_FOUND");
    let n = n.reopen();
    clock.advance(1000);
    n.state.broker.fire_timers().await;
    let q = n.read_all("later", 0).await;
    let bodies: Vec<&str> = q.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["now", "a"]);
    assert_eq!(q[1]["message_id"], a_id);
    assert_eq!(q[1]["offset"], 1);
    assert!(q[1].get("state").is_none());
    n.call(
        Method::DELETE,
        &format!("/v1/topics/later/messages/{a_id}"),
        None,
    )
    .await
    .assert_error(409, "MESSAGE_ALREADY_DELIVERED");
    let got = n.get(&format!("/v1/topics/later/messages/{a_id}")).await;
    assert_eq!(got.assert_ok()["offset"], 1);
    clock.advance(10_000);
    n.state.broker.fire_timers().await;
    n.state.broker.fire_timers().await;
    let q = n.read_all("later", 0).await;
    let bodies: Vec<&str> = q.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["now", "a", "b"]);
    let topic = n.get("/v1/topics/later").await;
    assert_eq!(topic.assert_ok()["pending_timers"], 0);
}
