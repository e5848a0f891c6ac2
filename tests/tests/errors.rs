//! Every API.md error code that applies without object store and consumer
//! groups, through the real binary: status, code and JSON shape — and, for
//! every rejected write, proof that nothing was stored.

use serde_json::{Value, json};
use shale_tests::api::{b64, body_bytes};
use shale_tests::{Node, Resp, expect_error, now_ms};

/// Messages stored in every listed topic, summed over queues.
async fn stored(node: &Node, topics: &[&str]) -> anyhow::Result<u64> {
    let mut n = 0;
    for t in topics {
        n += node.total_messages(t).await?;
    }
    Ok(n)
}

async fn post_topics(node: &Node, body: Value) -> anyhow::Result<Resp> {
    node.post_json("/v1/topics", &body).await
}

#[tokio::test]
async fn topic_creation_errors_create_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;

    let long = "x".repeat(128);
    for name in [
        "",
        "-lead",
        "_lead",
        ".lead",
        "a b",
        "a/b",
        "a:b",
        "é",
        long.as_str(),
        "%DLQ%g",
        "%sys",
    ] {
        let r = post_topics(&node, json!({"name": name, "queues": 1})).await?;
        expect_error(&r, 400, "INVALID_ARGUMENT");
    }
    for bad in [
        json!({"name": "t", "queues": 0}),
        json!({"name": "t", "queues": 1025}),
        json!({"name": "t", "queues": -1}),
        json!({"name": "t", "queues": "eight"}),
        json!({"name": "t", "retention_ms": 59_999}),
        json!({"name": "t", "message_type": "BOGUS"}),
        json!({"name": "t", "durability": "BOGUS"}),
        json!({"name": "t", "durability": "sync "}),
        json!({"queues": 1}),
        json!(["t"]),
    ] {
        let r = post_topics(&node, bad.clone()).await?;
        assert_eq!(r.status, 400, "{bad} → {} {}", r.status, r.text());
        expect_error(&r, 400, "INVALID_ARGUMENT");
    }
    // Malformed JSON is INVALID_ARGUMENT too, not axum's plain-text rejection.
    let r = node
        .post_raw(
            "/v1/topics",
            "application/json",
            &[],
            b"{\"name\": \"t\",".to_vec(),
        )
        .await?;
    expect_error(&r, 400, "INVALID_ARGUMENT");
    // A JSON endpoint with another content type: 415.
    let r = node
        .post_raw(
            "/v1/topics",
            "text/plain",
            &[],
            br#"{"name": "t415"}"#.to_vec(),
        )
        .await?;
    expect_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    let r = Resp::read(
        node.client
            .post(node.url("/v1/topics"))
            .body(r#"{"name": "t415"}"#)
            .send()
            .await?,
    )
    .await?;
    expect_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");

    assert!(
        node.topic_names().await?.is_empty(),
        "no rejected create left a topic behind"
    );
    assert!(
        !dir.path().join("hot").join("t").exists() && !dir.path().join("hot").join("t415").exists(),
        "no hot directory for rejected topics"
    );

    // The boundaries themselves are accepted.
    let max_name = "y".repeat(127);
    let r = post_topics(
        &node,
        json!({"name": max_name, "queues": 1024, "retention_ms": 60_000}),
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = post_topics(&node, json!({"name": "A.b_c-9", "queues": 1})).await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let t = node.get("/v1/topics/A.b_c-9").await?.ok_json(200);
    assert_eq!(t["message_type"], "NORMAL", "default message_type: {t}");
    assert_eq!(t["durability"], "SYNC", "default durability: {t}");
    assert_eq!(t["retention_ms"], 259_200_000, "default retention: {t}");
    Ok(())
}

#[tokio::test]
async fn already_exists_and_patch_rules() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    let cfg = json!({"name": "dup", "queues": 2, "message_type": "NORMAL", "durability": "SYNC", "retention_ms": 3_600_000});
    let created = post_topics(&node, cfg.clone()).await?.ok_json(201);
    assert_eq!(created["name"], "dup");
    assert_eq!(created["queues"], 2, "{created}");

    let same = post_topics(&node, cfg.clone()).await?.ok_json(200);
    assert_eq!(
        same["name"], "dup",
        "same config → 200 with the topic: {same}"
    );
    for change in [
        json!({"queues": 3}),
        json!({"message_type": "FIFO"}),
        json!({"durability": "ASYNC"}),
        json!({"retention_ms": 7_200_000}),
    ] {
        let mut c = cfg.clone();
        for (k, v) in change.as_object().into_iter().flatten() {
            c[k] = v.clone();
        }
        expect_error(&post_topics(&node, c).await?, 409, "ALREADY_EXISTS");
    }
    let t = node.get("/v1/topics/dup").await?.ok_json(200);
    assert_eq!(
        t["queues"].as_array().map(Vec::len),
        Some(2),
        "unchanged by the 409s: {t}"
    );
    assert_eq!(t["message_type"], "NORMAL");
    assert_eq!(t["durability"], "SYNC");

    // PATCH: queues only grow.
    let patch = |body: Value| {
        let node = &node;
        async move {
            Resp::read(
                node.client
                    .patch(node.url("/v1/topics/dup"))
                    .json(&body)
                    .send()
                    .await?,
            )
            .await
        }
    };
    expect_error(&patch(json!({"queues": 1})).await?, 400, "INVALID_ARGUMENT");
    expect_error(
        &patch(json!({"retention_ms": 5})).await?,
        400,
        "INVALID_ARGUMENT",
    );
    let r = Resp::read(
        node.client
            .patch(node.url("/v1/topics/dup"))
            .header("content-type", "text/plain")
            .body(r#"{"queues": 4}"#)
            .send()
            .await?,
    )
    .await?;
    expect_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(
        node.queues("dup").await?.len(),
        2,
        "rejected PATCHes changed nothing"
    );
    let r = patch(json!({"queues": 4})).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(node.queues("dup").await?.len(), 4);
    let r = node
        .produce_ok("dup", json!([{"body": "q3", "queue": 3}]))
        .await?;
    assert_eq!(r[0].queue, 3);
    Ok(())
}

#[tokio::test]
async fn produce_validation_stores_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    node.create_topic("e-normal", 2, "NORMAL", "SYNC").await?;
    node.create_topic("e-fifo", 2, "FIFO", "SYNC").await?;
    // DELAY topics are refused until the timer store exists (round_trip.rs).
    let all = ["e-normal", "e-fifo"];
    node.produce_ok(
        "e-normal",
        json!([{"body": "the one good message", "queue": 0}]),
    )
    .await?;

    let ok = json!({"body": "fine"});
    let big_key = "k".repeat(129);
    let keys33: Vec<String> = (0..33).map(|i| format!("k{i}")).collect();
    let props65: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("p{i}"), json!("v"))).collect();
    let fat_props: serde_json::Map<String, Value> = (0..4)
        .map(|i| (format!("p{i}"), json!("v".repeat(4200))))
        .collect();
    let invalid = [
        json!({"body": "x", "body_base64": b64(b"x")}),
        json!({"body_base64": "***not base64***"}),
        json!({"body": "x", "tag": "a|b"}),
        json!({"body": "x", "tag": "a*"}),
        json!({"body": "x", "tag": "a b"}),
        json!({"body": "x", "tag": "t".repeat(129)}),
        json!({"body": "x", "keys": keys33}),
        json!({"body": "x", "keys": [""]}),
        json!({"body": "x", "keys": [big_key]}),
        json!({"body": "x", "properties": props65}),
        json!({"body": "x", "properties": fat_props}),
        json!({"body": "x", "properties": {"shale.origin_topic": "forged"}}),
        json!({"body": "x", "properties": {"bad name": "v"}}),
        json!({"body": "x", "properties": {"n": 5}}),
        json!({"body": "x", "queue": 2}),
        json!({"body": "x", "queue": -1}),
        json!({"body": 42}),
    ];
    for bad in &invalid {
        // Alone, and hidden at the end of an otherwise valid batch.
        let r = node.produce("e-normal", json!([bad])).await?;
        assert_eq!(r.status, 400, "{bad} → {} {}", r.status, r.text());
        expect_error(&r, 400, "INVALID_ARGUMENT");
        let r = node.produce("e-normal", json!([ok, ok, bad])).await?;
        expect_error(&r, 400, "INVALID_ARGUMENT");
    }
    assert_eq!(
        stored(&node, &all).await?,
        1,
        "no rejected batch stored anything"
    );

    // Too many messages in one request; 1024 is the limit.
    let many: Vec<Value> = (0..1025)
        .map(|i| json!({"body": format!("m{i}")}))
        .collect();
    expect_error(
        &node.produce("e-normal", json!(many)).await?,
        400,
        "INVALID_ARGUMENT",
    );
    assert_eq!(stored(&node, &all).await?, 1);
    let r = node.produce("e-normal", json!([])).await?;
    assert!(
        r.status == 400 || r.status == 200,
        "empty batch: {} {}",
        r.status,
        r.text()
    );
    if r.status == 400 {
        expect_error(&r, 400, "INVALID_ARGUMENT");
    }
    let malformed = node
        .post_raw(
            "/v1/topics/e-normal/messages",
            "application/json",
            &[],
            b"{\"messages\": [".to_vec(),
        )
        .await?;
    expect_error(&malformed, 400, "INVALID_ARGUMENT");
    let wrong_shape = node
        .post_json(
            "/v1/topics/e-normal/messages",
            &json!({"messages": {"body": "x"}}),
        )
        .await?;
    expect_error(&wrong_shape, 400, "INVALID_ARGUMENT");

    // Message type mismatches (RocketMQ 5: a topic accepts only its own type).
    let far = now_ms() + 60_000;
    for (topic, bad) in [
        ("e-normal", json!({"body": "x", "delay_ms": 1000})),
        ("e-normal", json!({"body": "x", "deliver_at_ms": far})),
        ("e-normal", json!({"body": "x", "delay_level": 3})),
        ("e-fifo", json!({"body": "no group"})),
        (
            "e-fifo",
            json!({"body": "x", "message_group": "g", "delay_ms": 1000}),
        ),
    ] {
        let r = node.produce(topic, json!([bad])).await?;
        expect_error(&r, 400, "MESSAGE_TYPE_MISMATCH");
        let r = node
            .produce(topic, json!([{"body": "ok", "message_group": "g"}, bad]))
            .await?;
        assert_eq!(r.status, 400, "{topic} {bad}: {}", r.text());
    }
    let r = node
        .post_json("/v1/topics/e-normal/messages", &json!({"messages": [ok], "transaction": {"producer_group": "pg", "check_after_ms": 6000}}))
        .await?;
    expect_error(&r, 400, "MESSAGE_TYPE_MISMATCH");
    // FIFO field limits (the DELAY ones are checked by the broker's plan tests).
    let r = node
        .produce(
            "e-fifo",
            json!([{"body": "x", "message_group": "g".repeat(129)}]),
        )
        .await?;
    expect_error(&r, 400, "INVALID_ARGUMENT");
    let r = node
        .produce("e-fifo", json!([{"body": "x", "message_group": ""}]))
        .await?;
    expect_error(&r, 400, "INVALID_ARGUMENT");

    // Raw single messages: the same rules through Shale-* headers.
    let raw = |topic: &'static str, headers: Vec<(&'static str, String)>| {
        let node = &node;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            node.post_raw(
                &format!("/v1/topics/{topic}/messages"),
                "application/octet-stream",
                &h,
                b"raw".to_vec(),
            )
            .await
        }
    };
    expect_error(
        &raw("e-normal", vec![("Shale-Tag", "a|b".into())]).await?,
        400,
        "INVALID_ARGUMENT",
    );
    expect_error(
        &raw("e-normal", vec![("Shale-Property-shale.x", "v".into())]).await?,
        400,
        "INVALID_ARGUMENT",
    );
    expect_error(
        &raw("e-normal", vec![("Shale-Delay-Ms", "1000".into())]).await?,
        400,
        "MESSAGE_TYPE_MISMATCH",
    );
    expect_error(
        &raw("e-normal", vec![("Shale-Deliver-At-Ms", far.to_string())]).await?,
        400,
        "MESSAGE_TYPE_MISMATCH",
    );
    expect_error(
        &raw("e-normal", vec![("Shale-Delay-Ms", "soon".into())]).await?,
        400,
        "INVALID_ARGUMENT",
    );
    expect_error(&raw("e-fifo", vec![]).await?, 400, "MESSAGE_TYPE_MISMATCH");

    assert_eq!(
        stored(&node, &all).await?,
        1,
        "no rejected request stored anything"
    );
    Ok(())
}

#[tokio::test]
async fn not_found_codes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    node.create_topic("nf-a", 1, "NORMAL", "SYNC").await?;
    node.create_topic("nf-b", 1, "NORMAL", "SYNC").await?;
    let a = node
        .produce_ok("nf-a", json!([{"body": "in a", "keys": ["k"]}]))
        .await?;
    let b = node.produce_ok("nf-b", json!([{"body": "in b"}])).await?;

    // TOPIC_NOT_FOUND from every topic route, and nothing created on the way.
    let missing = "nf-missing";
    expect_error(
        &node.get(&format!("/v1/topics/{missing}")).await?,
        404,
        "TOPIC_NOT_FOUND",
    );
    expect_error(
        &node.produce(missing, json!([{"body": "x"}])).await?,
        404,
        "TOPIC_NOT_FOUND",
    );
    expect_error(
        &node
            .post_raw(
                &format!("/v1/topics/{missing}/messages"),
                "text/plain",
                &[],
                b"x".to_vec(),
            )
            .await?,
        404,
        "TOPIC_NOT_FOUND",
    );
    expect_error(&node.read(missing, 0, 0, 10).await?, 404, "TOPIC_NOT_FOUND");
    expect_error(
        &node
            .get(&format!(
                "/v1/topics/{missing}/queues/0/offset?timestamp_ms=0"
            ))
            .await?,
        404,
        "TOPIC_NOT_FOUND",
    );
    expect_error(
        &node
            .get(&format!(
                "/v1/topics/{missing}/messages/{}",
                a[0].message_id
            ))
            .await?,
        404,
        "TOPIC_NOT_FOUND",
    );
    expect_error(
        &node
            .get(&format!("/v1/topics/{missing}/messages?key=k"))
            .await?,
        404,
        "TOPIC_NOT_FOUND",
    );
    expect_error(
        &node.delete(&format!("/v1/topics/{missing}")).await?,
        404,
        "TOPIC_NOT_FOUND",
    );
    let r = Resp::read(
        node.client
            .patch(node.url(&format!("/v1/topics/{missing}")))
            .json(&json!({"queues": 4}))
            .send()
            .await?,
    )
    .await?;
    expect_error(&r, 404, "TOPIC_NOT_FOUND");
    let mut names = node.topic_names().await?;
    names.sort();
    assert_eq!(
        names,
        vec!["nf-a".to_string(), "nf-b".to_string()],
        "no topic created implicitly"
    );
    assert!(!dir.path().join("hot").join(missing).exists());

    // MESSAGE_NOT_FOUND: an unknown id, an id from another topic at the same
    // queue/offset, and a real id with its random bits changed.
    let zero = "0".repeat(32);
    expect_error(
        &node
            .get(&format!("/v1/topics/nf-a/messages/{zero}"))
            .await?,
        404,
        "MESSAGE_NOT_FOUND",
    );
    expect_error(
        &node
            .get(&format!("/v1/topics/nf-a/messages/{}", b[0].message_id))
            .await?,
        404,
        "MESSAGE_NOT_FOUND",
    );
    let mut forged = a[0].message_id.clone();
    let last = forged.pop().unwrap_or('0');
    forged.push(if last == '0' { '1' } else { '0' });
    expect_error(
        &node
            .get(&format!("/v1/topics/nf-a/messages/{forged}"))
            .await?,
        404,
        "MESSAGE_NOT_FOUND",
    );
    let found = node
        .get(&format!("/v1/topics/nf-a/messages/{}", a[0].message_id))
        .await?
        .ok_json(200);
    assert_eq!(body_bytes(&found), b"in a");

    // NOT_FOUND: routes that do not exist, in the contract's shape.
    for path in ["/v1/nope", "/nope", "/v1/topics/nf-a/nothing", "/v2/topics"] {
        expect_error(&node.get(path).await?, 404, "NOT_FOUND");
    }
    expect_error(
        &node
            .post_json("/v1/topics/nf-a/messages/extra/segments", &json!({}))
            .await?,
        404,
        "NOT_FOUND",
    );
    Ok(())
}

#[tokio::test]
async fn offset_out_of_range() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    node.create_topic("oor", 2, "NORMAL", "SYNC").await?;
    node.produce_ok(
        "oor",
        json!([{"body": "a", "queue": 0}, {"body": "b", "queue": 0}]),
    )
    .await?;

    let at_end = node.read("oor", 0, 2, 10).await?.ok_json(200);
    assert_eq!(
        at_end["messages"].as_array().map(Vec::len),
        Some(0),
        "offset == max_offset is an empty read: {at_end}"
    );
    assert_eq!(at_end["next_offset"], 2);
    expect_error(
        &node.read("oor", 0, 3, 10).await?,
        416,
        "OFFSET_OUT_OF_RANGE",
    );
    expect_error(
        &node.read("oor", 0, u64::MAX / 2, 10).await?,
        416,
        "OFFSET_OUT_OF_RANGE",
    );
    expect_error(
        &node.read("oor", 1, 1, 10).await?,
        416,
        "OFFSET_OUT_OF_RANGE",
    );
    let r = node
        .get_with(
            "/v1/topics/oor/queues/0/messages?offset=5&max_messages=10",
            &[("accept", "application/x-ndjson")],
        )
        .await?;
    expect_error(&r, 416, "OFFSET_OUT_OF_RANGE");
    // Bad read parameters are INVALID_ARGUMENT.
    for q in [
        "offset=-1",
        "offset=abc",
        "offset=0&max_messages=abc",
        "offset=0&wait_ms=30001",
    ] {
        let r = node
            .get(&format!("/v1/topics/oor/queues/0/messages?{q}"))
            .await?;
        expect_error(&r, 400, "INVALID_ARGUMENT");
    }
    assert_eq!(node.total_messages("oor").await?, 2);
    Ok(())
}

#[tokio::test]
async fn payload_limits() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    node.create_topic("big", 1, "NORMAL", "ASYNC").await?;
    const MIB: usize = 1024 * 1024;

    // Exactly 4 MiB is a valid body, raw or JSON.
    let four = vec![b'a'; 4 * MIB];
    let r = node
        .post_raw(
            "/v1/topics/big/messages",
            "application/octet-stream",
            &[],
            four.clone(),
        )
        .await?;
    assert_eq!(r.status, 200, "4 MiB raw body: {}", r.text());
    let r = node
        .produce("big", json!([{"body": String::from_utf8(four.clone())?}]))
        .await?;
    assert_eq!(r.status, 200, "4 MiB JSON body: {}", r.text());
    assert_eq!(node.total_messages("big").await?, 2);

    // One byte more is too large, raw, JSON text and base64.
    let over = vec![b'b'; 4 * MIB + 1];
    let r = node
        .post_raw(
            "/v1/topics/big/messages",
            "application/octet-stream",
            &[],
            over.clone(),
        )
        .await?;
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let r = node
        .produce(
            "big",
            json!([{"body": "small"}, {"body": String::from_utf8(over.clone())?}]),
        )
        .await?;
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let r = node
        .produce("big", json!([{"body_base64": b64(&over)}]))
        .await?;
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(
        node.total_messages("big").await?,
        2,
        "nothing stored by a 413"
    );

    // A request may carry up to 32 MiB: 6 × 1 MiB is fine, 33 × 1 MiB is not.
    let one = "c".repeat(MIB);
    let six: Vec<Value> = (0..6).map(|_| json!({"body": one})).collect();
    let r = node.produce("big", json!(six)).await?;
    assert_eq!(
        r.status,
        200,
        "a 6 MiB request of 1 MiB messages: {}",
        r.text()
    );
    let many: Vec<Value> = (0..33).map(|_| json!({"body": one})).collect();
    let r = node.produce("big", json!(many)).await?;
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(
        node.total_messages("big").await?,
        8,
        "nothing stored by the 33 MiB request"
    );

    let got = node.read("big", 0, 0, 1).await?.ok_json(200);
    assert_eq!(body_bytes(&got["messages"][0]).len(), 4 * MIB);
    Ok(())
}
