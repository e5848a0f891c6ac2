//! The web console through the real binary: `/` and its assets with their
//! content types and caching, and the data it shows that other brokers do
//! not have: a group's tier-aware lag (with its total) and a dead letter
//! sent back to its origin topic exactly once.

use serde_json::json;
use shale_tests::{Node, expect_error};

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_types() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    let page = node.get("/").await?;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.text()
            .contains("<script type=\"module\" src=\"/console/app.js\">")
    );
    assert_eq!(page.header("cache-control").as_deref(), Some("no-cache"));
    assert!(page.header("content-security-policy").is_some());
    let etag = page.header("etag").expect("an ETag");
    let again = node.get_with("/", &[("If-None-Match", &etag)]).await?;
    assert_eq!(again.status, 304);

    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        let r = node.get(&format!("/console/{file}")).await?;
        assert_eq!(r.status, 200, "{file}");
        assert_eq!(r.header("content-type").as_deref(), Some(kind), "{file}");
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
    }
    expect_error(&node.get("/console/index.html").await?, 404, "NOT_FOUND");
    expect_error(&node.get("/console/secret.txt").await?, 404, "NOT_FOUND");
    Ok(())
}

#[tokio::test]
async fn the_console_needs_no_token_but_its_data_calls_do() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let auth = dir.path().join("auth.toml");
    let out = std::process::Command::new(shale_tests::shale_bin())
        .args([
            "token",
            "--principal",
            "ops",
            "--actions",
            "ADMIN",
            "--topics",
            "*",
            "--groups",
            "*",
        ])
        .output()?;
    std::fs::write(&auth, &out.stdout)?;
    let data = dir.path().join("data");
    let node = Node::start(&data, &["--auth-file", auth.to_str().unwrap_or_default()])?;
    assert_eq!(node.get("/").await?.status, 200);
    assert_eq!(node.get("/console/app.js").await?.status, 200);
    expect_error(&node.get("/v1/topics").await?, 401, "UNAUTHENTICATED");
    Ok(())
}

#[tokio::test]
async fn offsets_split_the_lag_by_tier_and_total_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(
        dir.path(),
        &[
            "--segment-bytes",
            "64KiB",
            "--hot-bytes",
            "256KiB",
            "--flush-interval-ms",
            "200ms",
        ],
    )?;
    node.create_topic("orders", 2, "NORMAL", "SYNC").await?;
    let body = "y".repeat(1000);
    for _ in 0..20 {
        let msgs: Vec<_> = (0..40).map(|_| json!({"body": body})).collect();
        loop {
            let r = node.produce("orders", json!(msgs)).await?;
            if r.status == 503 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
            assert_eq!(r.status, 200, "{}", r.text());
            break;
        }
    }
    node.put_json("/v1/groups/g", &json!({"consume_from": "EARLIEST"}))
        .await?
        .ok_json(201);
    let got = node
        .post_json(
            "/v1/groups/g/receive",
            &json!({"topic": "orders", "max_messages": 10}),
        )
        .await?
        .ok_json(200);
    let handles: Vec<_> = got["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["receipt_handle"].clone())
        .collect();
    node.post_json(
        "/v1/groups/g/ack",
        &json!({"topic": "orders", "receipt_handles": handles}),
    )
    .await?
    .ok_json(200);
    // Uploads and eviction run every flush interval: wait for cold lag.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let answer = loop {
        let a = node
            .get("/v1/groups/g/offsets?topic=orders")
            .await?
            .ok_json(200);
        if a["total"]["lag_cold"].as_u64().unwrap_or(0) > 0 {
            break a;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no cold lag: {a}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let queues = answer["queues"].as_array().cloned().unwrap_or_default();
    let mut lag = 0;
    for q in &queues {
        let n = |f: &str| q[f].as_u64().unwrap_or(u64::MAX);
        assert_eq!(n("lag_hot") + n("lag_cold"), n("lag"), "{q}");
        assert_eq!(n("retrying"), 0, "{q}");
        assert_eq!(n("pending_timers"), 0, "{q}");
        lag += n("lag");
    }
    let total = &answer["total"];
    assert_eq!(total["lag"], json!(lag));
    assert_eq!(total["lag"], json!(800 - 10));
    // Ten acks just now: a rate, and an estimate from it.
    assert!(
        total["consume_rate_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{total}"
    );
    assert!(total["catch_up_ms"].as_u64().unwrap_or(0) > 0, "{total}");
    let listed = node.get("/v1/groups").await?.ok_json(200);
    // The list counts the queues the group has consumed from (here the
    // one its receive read), split the same way.
    let g = &listed["groups"][0];
    let n = |f: &str| g[f].as_u64().unwrap_or(u64::MAX);
    assert_eq!(n("lag_hot") + n("lag_cold"), n("lag"), "{g}");
    assert!(n("lag") > 0 && n("lag") <= lag, "{g}");
    Ok(())
}

#[tokio::test]
async fn a_dead_letter_is_sent_back_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    node.create_topic("orders", 1, "NORMAL", "SYNC").await?;
    node.produce_ok(
        "orders",
        json!([{"body": "b", "tag": "t", "keys": ["k"], "properties": {"p": "v"}}]),
    )
    .await?;
    node.put_json(
        "/v1/groups/g",
        &json!({"consume_from": "EARLIEST", "max_delivery_attempts": 1, "retry_backoff_ms": [0]}),
    )
    .await?
    .ok_json(201);
    let receive = json!({"topic": "orders", "max_messages": 1});
    let got = node
        .post_json("/v1/groups/g/receive", &receive)
        .await?
        .ok_json(200);
    let handle = got["messages"][0]["receipt_handle"].clone();
    node.post_json(
        "/v1/groups/g/change-invisibility",
        &json!({"topic": "orders", "receipt_handle": handle, "invisible_ms": 0}),
    )
    .await?
    .ok_json(200);
    node.post_json("/v1/groups/g/receive", &receive)
        .await?
        .ok_json(200);
    let dead = node.read_all("%DLQ%g", 0).await?;
    anyhow::ensure!(dead.len() == 1, "{dead:?}");
    let id = dead[0]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let path = format!("/v1/topics/%25DLQ%25g/messages/{id}/send-back");

    expect_error(&node.get(&path).await?, 404, "MESSAGE_NOT_FOUND");
    let first = node.post_json(&path, &json!({})).await?.ok_json(201);
    assert_eq!(first["topic"], "orders");
    assert_eq!(first["dlq_message_id"], json!(id));
    let again = node.post_json(&path, &json!({})).await?.ok_json(200);
    assert_eq!(again, first, "a second send-back repeats the first");
    assert_eq!(node.get(&path).await?.ok_json(200), first);
    let copy = node
        .get(&format!(
            "/v1/topics/orders/messages/{}",
            first["message_id"].as_str().unwrap_or_default()
        ))
        .await?
        .ok_json(200);
    assert_eq!(
        (copy["body"].as_str(), copy["tag"].as_str()),
        (Some("b"), Some("t"))
    );
    assert_eq!(copy["keys"], json!(["k"]));
    assert_eq!(copy["properties"]["p"], "v");
    assert_eq!(copy["properties"]["shale.sent_back_from"], json!(id));
    assert!(copy["properties"].get("shale.origin_topic").is_none());
    assert_eq!(node.total_messages("orders").await?, 2);
    // Only dead-letter topics: another topic's message is 400.
    let plain = format!(
        "/v1/topics/orders/messages/{}/send-back",
        first["message_id"].as_str().unwrap_or_default()
    );
    expect_error(
        &node.post_json(&plain, &json!({})).await?,
        400,
        "INVALID_ARGUMENT",
    );
    Ok(())
}
