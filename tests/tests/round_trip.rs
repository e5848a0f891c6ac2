//! Every field of a message survives produce → read, through the real binary:
//! JSON batch and raw single message, text and binary bodies, tag, keys,
//! properties, FIFO `message_group` (DELAY topics are refused until timers exist), ids and times;
//! read by offset, NDJSON streaming, query by id and key, offset by timestamp.

use std::time::Duration;

use serde_json::{Value, json};
use shale_tests::api::{b64, body_bytes, is_message_id, qs, unb64};
use shale_tests::{Node, now_ms, pseudo_random_bytes, wait_until};

fn messages(v: &Value) -> Vec<Value> {
    v["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages array in {v}"))
        .clone()
}

#[tokio::test]
async fn json_batch_round_trips_every_field() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    node.create_topic("rt-normal", 2, "NORMAL", "SYNC").await?;

    let binary: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    assert!(std::str::from_utf8(&binary).is_err());
    let before = now_ms();
    let sent = json!([
        {"body": "hello, wörld ✓", "tag": "created", "keys": ["order-42", "customer-7"],
         "properties": {"region": "eu", "amount.total": "120", "x-y_z": ""}, "queue": 1},
        {"body_base64": b64(&binary), "tag": "bin", "queue": 1},
        {"body": "", "queue": 1},
        {"body_base64": b64(b"plain ascii via base64"), "keys": ["order-42"], "queue": 1},
    ]);
    let res = node.produce_ok("rt-normal", sent.clone()).await?;
    let after = now_ms();

    for (i, r) in res.iter().enumerate() {
        assert_eq!(r.queue, 1, "explicit queue honoured: {r:?}");
        assert_eq!(r.offset, i as u64, "contiguous offsets from 0: {res:?}");
        assert!(
            is_message_id(&r.message_id),
            "message id is 32 hex digits: {:?}",
            r.message_id
        );
    }
    for w in res.windows(2) {
        assert!(
            w[0].message_id < w[1].message_id,
            "ids increase within a queue: {res:?}"
        );
    }

    let page = node.read("rt-normal", 1, 0, 100).await?.ok_json(200);
    assert_eq!(page["next_offset"], 4, "{page}");
    assert_eq!(page["max_offset"], 4, "{page}");
    assert_eq!(page["min_offset"], 0, "{page}");
    let got = messages(&page);
    assert_eq!(got.len(), 4, "{page}");

    let m0 = &got[0];
    assert_eq!(m0["message_id"], res[0].message_id.as_str());
    assert_eq!(m0["topic"], "rt-normal");
    assert_eq!(m0["queue"], 1);
    assert_eq!(m0["offset"], 0);
    assert_eq!(m0["body"], "hello, wörld ✓");
    assert!(
        m0.get("body_base64").is_none(),
        "UTF-8 body comes back as text: {m0}"
    );
    assert_eq!(m0["tag"], "created");
    assert_eq!(m0["keys"], json!(["order-42", "customer-7"]));
    assert_eq!(
        m0["properties"],
        json!({"region": "eu", "amount.total": "120", "x-y_z": ""})
    );
    for m in &got {
        let store = m["store_ms"]
            .as_i64()
            .unwrap_or_else(|| panic!("store_ms in {m}"));
        let born = m["born_ms"]
            .as_i64()
            .unwrap_or_else(|| panic!("born_ms in {m}"));
        assert!(
            before <= store && store <= after,
            "store_ms {store} within [{before}, {after}]"
        );
        assert!(
            before - 1000 <= born && born <= store,
            "born_ms {born} sane (store {store})"
        );
        assert!(
            m.get("message_group").is_none_or(Value::is_null),
            "no group on NORMAL: {m}"
        );
        assert!(
            m.get("deliver_at_ms").is_none_or(Value::is_null),
            "no deliver_at on NORMAL: {m}"
        );
    }

    assert_eq!(got[1]["message_id"], res[1].message_id.as_str());
    assert!(
        got[1].get("body").is_none(),
        "non-UTF-8 body must come back as body_base64: {}",
        got[1]
    );
    assert_eq!(
        unb64(got[1]["body_base64"].as_str().unwrap_or_default()),
        binary
    );
    assert_eq!(got[1]["tag"], "bin");
    assert_eq!(body_bytes(&got[2]), b"");
    assert_eq!(
        got[3]["body"], "plain ascii via base64",
        "valid UTF-8 sent as base64 reads back as text"
    );
    assert_eq!(got[3]["keys"], json!(["order-42"]));

    // ?encoding=base64 forces body_base64.
    let forced = node
        .get("/v1/topics/rt-normal/queues/1/messages?offset=0&max_messages=1&encoding=base64")
        .await?;
    let forced = messages(&forced.ok_json(200));
    assert_eq!(forced.len(), 1);
    assert!(forced[0].get("body").is_none(), "{}", forced[0]);
    assert_eq!(
        unb64(forced[0]["body_base64"].as_str().unwrap_or_default()),
        "hello, wörld ✓".as_bytes()
    );

    // Query by id returns the same object.
    for (i, r) in res.iter().enumerate() {
        let by_id = node
            .get(&format!("/v1/topics/rt-normal/messages/{}", r.message_id))
            .await?
            .ok_json(200);
        assert_eq!(
            by_id, got[i],
            "query by id equals the read-by-offset object"
        );
    }

    // Query by key finds both messages with that key, and nothing else.
    let by_key = node
        .get("/v1/topics/rt-normal/messages?key=order-42")
        .await?
        .ok_json(200);
    let mut ids: Vec<String> = messages(&by_key)
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    let mut want = vec![res[0].message_id.clone(), res[3].message_id.clone()];
    want.sort();
    assert_eq!(ids, want, "query by key: {by_key}");
    let none = node
        .get("/v1/topics/rt-normal/messages?key=no-such-key")
        .await?
        .ok_json(200);
    assert!(messages(&none).is_empty(), "{none}");
    let one = node
        .get("/v1/topics/rt-normal/messages?key=customer-7")
        .await?
        .ok_json(200);
    assert_eq!(messages(&one).len(), 1, "{one}");
    assert_eq!(messages(&one)[0], got[0]);

    // Queue 0 was never written.
    let empty = node.read("rt-normal", 0, 0, 10).await?.ok_json(200);
    assert!(messages(&empty).is_empty(), "{empty}");
    assert_eq!(empty["max_offset"], 0);
    Ok(())
}

#[tokio::test]
async fn raw_single_message_with_headers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    node.create_topic("rt-raw", 1, "NORMAL", "ASYNC").await?;
    node.create_topic("rt-raw-fifo", 4, "FIFO", "SYNC").await?;

    let body = pseudo_random_bytes(7, 3000);
    let r = node
        .post_raw(
            "/v1/topics/rt-raw/messages",
            "application/octet-stream",
            &[
                ("Shale-Tag", "raw"),
                ("Shale-Keys", "k1,k2"),
                ("Shale-Property-region", "eu"),
                ("Shale-Property-trace.id", "abc-123"),
            ],
            body.clone(),
        )
        .await?
        .ok_json(200);
    let results = r["results"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(results.len(), 1, "{r}");
    let id = results[0]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(is_message_id(&id), "{r}");
    assert_eq!(results[0]["offset"], 0);

    let text = node
        .post_raw(
            "/v1/topics/rt-raw/messages",
            "text/plain; charset=utf-8",
            &[],
            b"just text".to_vec(),
        )
        .await?
        .ok_json(200);
    assert_eq!(text["results"][0]["offset"], 1, "{text}");

    let got = messages(&node.read("rt-raw", 0, 0, 10).await?.ok_json(200));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["message_id"], id.as_str());
    assert_eq!(body_bytes(&got[0]), body, "raw body bytes round trip");
    assert_eq!(got[0]["tag"], "raw");
    assert_eq!(got[0]["keys"], json!(["k1", "k2"]));
    // Header names are case-insensitive on the wire; the property name as sent is kept.
    let props = got[0]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{}", got[0]));
    assert_eq!(props.len(), 2, "{}", got[0]);
    assert_eq!(
        props.get("region").and_then(Value::as_str),
        Some("eu"),
        "{}",
        got[0]
    );
    assert_eq!(
        props.get("trace.id").and_then(Value::as_str),
        Some("abc-123"),
        "{}",
        got[0]
    );
    assert_eq!(got[1]["body"], "just text");

    // Raw to FIFO with Shale-Message-Group: same group → same queue, consecutive offsets.
    let mut placed = Vec::new();
    for i in 0..3 {
        let r = node
            .post_raw(
                "/v1/topics/rt-raw-fifo/messages",
                "application/octet-stream",
                &[("Shale-Message-Group", "order-9")],
                format!("step {i}").into_bytes(),
            )
            .await?
            .ok_json(200);
        placed.push((
            r["results"][0]["queue"].as_u64().unwrap_or(99),
            r["results"][0]["offset"].as_u64().unwrap_or(99),
        ));
    }
    let q = placed[0].0;
    assert!(
        placed.iter().all(|p| p.0 == q),
        "one group stays on one queue: {placed:?}"
    );
    let first = placed[0].1;
    assert_eq!(
        placed.iter().map(|p| p.1).collect::<Vec<_>>(),
        vec![first, first + 1, first + 2]
    );
    let got = messages(
        &node
            .read("rt-raw-fifo", q as u32, first, 10)
            .await?
            .ok_json(200),
    );
    assert_eq!(got.len(), 3);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m["message_group"], "order-9", "{m}");
        assert_eq!(m["body"], format!("step {i}"));
    }
    Ok(())
}

#[tokio::test]
async fn fifo_groups_round_trip_and_delay_topics_take_object() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    node.create_topic("rt-fifo", 8, "FIFO", "SYNC").await?;

    // Many groups spread over the queues; each group is always on the same queue.
    let mut batch = Vec::new();
    for i in 0..40 {
        batch.push(json!({"body": format!("m{i}"), "message_group": format!("g{}", i % 10)}));
    }
    let res = node.produce_ok("rt-fifo", json!(batch)).await?;
    let mut group_queue = std::collections::HashMap::new();
    for (i, r) in res.iter().enumerate() {
        let g = i % 10;
        let q = *group_queue.entry(g).or_insert(r.queue);
        assert_eq!(q, r.queue, "group g{g} moved queues: {res:?}");
    }
    let distinct: std::collections::HashSet<_> = group_queue.values().collect();
    assert!(
        distinct.len() > 1,
        "ten groups should hash to more than one of 8 queues: {group_queue:?}"
    );
    for r in &res {
        let m = node
            .get(&format!("/v1/topics/rt-fifo/messages/{}", r.message_id))
            .await?
            .ok_json(200);
        let i: usize = m["body"].as_str().unwrap_or_default()[1..].parse()?;
        assert_eq!(m["message_group"], format!("g{}", i % 10), "{m}");
        assert_eq!(m["queue"], r.queue);
        assert_eq!(m["offset"], r.offset);
    }

    // DELAY at OBJECT: timers go through the write-ahead commit.
    let r = node
        .post_json(
            "/v1/topics",
            &json!({"name": "rt-delay", "queues": 1, "message_type": "DELAY", "durability": "OBJECT"}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "{} {}", r.status, r.text());
    let r = node
        .produce("rt-delay", json!([{"body": "later", "delay_ms": 60_000}]))
        .await?
        .ok_json(200);
    anyhow::ensure!(r["results"][0].get("offset").is_none(), "{r}");
    Ok(())
}

#[tokio::test]
async fn ndjson_streaming_paging_and_offset_by_timestamp() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;
    node.create_topic("rt-stream", 1, "NORMAL", "ASYNC").await?;

    // Three produce calls separated in time, so offset-by-timestamp has edges to find.
    let mut all = Vec::new();
    let mut edges = Vec::new();
    for round in 0..3u64 {
        let batch: Vec<Value> = (0..50u64)
            .map(|i| json!({"body": format!("r{round}-{i:03}"), "tag": format!("t{}", i % 3)}))
            .collect();
        let t0 = now_ms();
        wait_until(Duration::from_secs(2), "the clock to tick", || async move {
            now_ms() > t0
        })
        .await?;
        edges.push(now_ms());
        all.extend(node.produce_ok("rt-stream", json!(batch)).await?);
        let t1 = now_ms();
        wait_until(Duration::from_secs(2), "the clock to tick", || async move {
            now_ms() > t1
        })
        .await?;
    }
    assert_eq!(all.len(), 150);
    assert!(
        all.iter().enumerate().all(|(i, r)| r.offset == i as u64),
        "contiguous: {all:?}"
    );

    // Paging with max_messages and next_offset.
    let p = node.read("rt-stream", 0, 10, 7).await?.ok_json(200);
    let ms = messages(&p);
    assert_eq!(ms.len(), 7, "{p}");
    assert_eq!(p["next_offset"], 17);
    assert_eq!(p["max_offset"], 150);
    assert_eq!(ms[0]["offset"], 10);
    assert_eq!(ms[6]["body"], "r0-016");

    // max_bytes stops early but always returns at least one message.
    let small = node
        .get("/v1/topics/rt-stream/queues/0/messages?offset=0&max_messages=100&max_bytes=1")
        .await?
        .ok_json(200);
    assert_eq!(
        messages(&small).len(),
        1,
        "max_bytes=1 still returns one message: {small}"
    );
    assert_eq!(small["next_offset"], 1);

    // tag filter: a||b.
    let tagged = node
        .get(&format!(
            "/v1/topics/rt-stream/queues/0/messages?offset=0&max_messages=1000&tag={}",
            qs("t0||t2")
        ))
        .await?
        .ok_json(200);
    let tm = messages(&tagged);
    assert!(!tm.is_empty(), "{tagged}");
    assert!(
        tm.iter().all(|m| m["tag"] == "t0" || m["tag"] == "t2"),
        "tag filter: {tagged}"
    );

    // NDJSON: one message object per line, in offset order, same objects as JSON reads.
    let r = node
        .get_with(
            "/v1/topics/rt-stream/queues/0/messages?offset=0&max_messages=1000",
            &[("accept", "application/x-ndjson")],
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/x-ndjson"),
        "content-type {ct:?}"
    );
    let text = r.text();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 150, "one line per message");
    for (i, m) in lines.iter().enumerate() {
        assert_eq!(m["offset"], i as u64);
        assert_eq!(m["message_id"], all[i].message_id.as_str());
    }
    let json_page = node.read("rt-stream", 0, 0, 1000).await?.ok_json(200);
    assert_eq!(
        messages(&json_page),
        lines,
        "NDJSON lines equal the JSON read"
    );
    let limited = node
        .get_with(
            "/v1/topics/rt-stream/queues/0/messages?offset=140&max_messages=5",
            &[("accept", "application/x-ndjson")],
        )
        .await?;
    let n = limited
        .text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(n, 5, "NDJSON honours max_messages: {}", limited.text());

    // Offset by timestamp: first message with store_ms >= T.
    let store: Vec<i64> = lines
        .iter()
        .map(|m| m["store_ms"].as_i64().unwrap_or(0))
        .collect();
    let offset_at = |t: i64| {
        let node = &node;
        async move {
            let v = node
                .get(&format!(
                    "/v1/topics/rt-stream/queues/0/offset?timestamp_ms={t}"
                ))
                .await?
                .ok_json(200);
            anyhow::Ok(v["offset"].as_u64().unwrap_or_else(|| panic!("{v}")))
        }
    };
    assert_eq!(offset_at(0).await?, 0);
    assert_eq!(
        offset_at(now_ms() + 3_600_000).await?,
        150,
        "future timestamp → max_offset"
    );
    for t in edges
        .iter()
        .copied()
        .chain([store[75], store[149], store[0] + 1])
    {
        let want = store.iter().position(|&s| s >= t).unwrap_or(150) as u64;
        assert_eq!(offset_at(t).await?, want, "offset for timestamp {t}");
    }
    Ok(())
}
