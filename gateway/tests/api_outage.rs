//! An object-store outage: producing keeps working from the hot tier while
//! the local budget allows, then answers 503 with Retry-After; nothing is
//! lost, and once the store is back the backlog uploads, the hot tier is
//! evicted back under budget and produce is accepted again.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use shale_gateway::config::NodeConfig;
use shale_gateway::state::AppState;
use shale_hot::SystemClock;
use shale_tiering::{Faults, Tier};
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_absorbed_by_the_hot_tier_then_refused_then_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        data_dir: dir.path().to_path_buf(),
        node_id: Some("node-outage".into()),
        segment_bytes: 64 * 1024,
        hot_bytes: Some(400_000),
        ..NodeConfig::default()
    };
    let faults = Faults::default();
    let tier = Arc::new(Tier::in_memory_with_faults(&faults, 1 << 20));
    let state = AppState::open_with(&config, Arc::new(SystemClock), tier).unwrap();
    let app = shale_gateway::app::app(state.clone());
    let (s, _, _) = call(
        &app,
        "POST",
        "/v1/topics",
        Some(json!({"name": "o", "queues": 1, "durability": "ASYNC"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    // A queue new to this node needs the store to know where its offsets
    // start: during an outage that first write is refused (503), not guessed.
    faults.set_down(true);
    let first = call(
        &app,
        "POST",
        "/v1/topics/o/messages",
        Some(json!({"messages": [{"body": "x"}]})),
    )
    .await;
    assert_eq!(first.0, StatusCode::SERVICE_UNAVAILABLE, "{:?}", first.2);
    faults.set_down(false);
    let body = "x".repeat(2000);
    let (s, _, _) = call(
        &app,
        "POST",
        "/v1/topics/o/messages",
        Some(json!({"messages": [{"body": body}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let mut acked = vec![0];
    faults.set_down(true);
    let refused = loop {
        let (s, retry, v) = call(
            &app,
            "POST",
            "/v1/topics/o/messages",
            Some(json!({"messages": [{"body": body}]})),
        )
        .await;
        if s == StatusCode::OK {
            acked.push(v["results"][0]["offset"].as_u64().unwrap());
            // The background loop would do this every second; here the test drives it.
            if acked.len() % 20 == 0 {
                state.maintenance_tick().await;
                state.tiering_tick().await;
            }
            assert!(acked.len() < 5000, "never refused");
            continue;
        }
        break (s, retry, v);
    };
    assert_eq!(
        refused.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        refused.2
    );
    assert_eq!(refused.2["error"]["code"], "UNAVAILABLE");
    assert!(refused.1.is_some(), "503 without Retry-After");
    assert!(
        acked.len() * 2000 > 400_000,
        "refused before the budget was used: {} messages",
        acked.len()
    );
    // Local data is still served while the store is down (with the manifest
    // no longer cached, so the object store really is asked and fails).
    state.tier.reader().invalidate("o", 0).await;
    let (s, _, v) = call(
        &app,
        "GET",
        "/v1/topics/o/queues/0/messages?offset=0&max_messages=5",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["messages"].as_array().unwrap().len(), 5);

    // The store comes back: the backlog uploads, the hot tier shrinks, produce resumes.
    faults.set_down(false);
    state.maintenance_tick().await;
    state.tiering_tick().await;
    assert!(
        !state.over_hot_budget(),
        "hot tier still over budget: {} bytes",
        state.hot.disk_bytes()
    );
    let (s, _, v) = call(
        &app,
        "POST",
        "/v1/topics/o/messages",
        Some(json!({"messages": [{"body": "after"}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["offset"].as_u64(), Some(acked.len() as u64));

    // Nothing acknowledged was lost, whichever tier holds it now.
    let mut offset = 0;
    let mut seen = 0;
    loop {
        let (s, _, v) = call(
            &app,
            "GET",
            &format!("/v1/topics/o/queues/0/messages?offset={offset}&max_messages=500"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        for m in v["messages"].as_array().unwrap() {
            assert_eq!(m["offset"].as_u64(), Some(offset));
            offset += 1;
            seen += 1;
        }
        if offset >= v["max_offset"].as_u64().unwrap() {
            break;
        }
    }
    assert_eq!(seen, acked.len() + 1);
    let (_, _, t) = call(&app, "GET", "/v1/topics/o", None).await;
    assert!(
        t["queues"][0]["cold_segments"].as_u64().unwrap() >= 3,
        "{t}"
    );
}
