//! A clean restart (SIGTERM, then a new process on the same data dir) keeps
//! every topic and every message byte for byte, with the same offsets and ids,
//! across several sealed segments.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shale_tests::api::{b64, body_bytes};
use shale_tests::segments::{queue_dir, sealed_segments};
use shale_tests::{Node, pseudo_random_bytes};

const SEGMENT_BYTES: &str = "65536";

async fn snapshot(
    node: &Node,
    topics: &[(&str, u32)],
) -> anyhow::Result<BTreeMap<(String, u32), Vec<Value>>> {
    let mut out = BTreeMap::new();
    for &(t, queues) in topics {
        for q in 0..queues {
            out.insert((t.to_string(), q), node.read_all(t, q).await?);
        }
    }
    Ok(out)
}

async fn topic_configs(node: &Node) -> anyhow::Result<BTreeMap<String, Value>> {
    let v = node.get("/v1/topics").await?.ok_json(200);
    let mut out = BTreeMap::new();
    for t in v["topics"].as_array().unwrap_or_else(|| panic!("{v}")) {
        out.insert(
            t["name"].as_str().unwrap_or_default().to_string(),
            t.clone(),
        );
    }
    Ok(out)
}

#[tokio::test]
async fn restart_keeps_topics_and_every_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path();
    let args = ["--segment-bytes", SEGMENT_BYTES];
    let topics = [("keep-orders", 3u32), ("keep-fifo", 2), ("keep-empty", 4)];

    let mut node = Node::start(data, &args)?;
    node.create_topic("keep-orders", 3, "NORMAL", "ASYNC")
        .await?;
    node.create_topic("keep-fifo", 2, "FIFO", "SYNC").await?;
    node.create_topic("keep-empty", 4, "NORMAL", "SYNC").await?;

    // ~700 KB over 3 queues with 64 KiB segments: each queue seals several segments.
    let mut sent: BTreeMap<(u32, u64), (Vec<u8>, String)> = BTreeMap::new();
    for round in 0..14u64 {
        let mut batch = Vec::new();
        for i in 0..50u64 {
            let n = round * 50 + i;
            let body = pseudo_random_bytes(n, 200 + (n as usize * 37) % 1500);
            batch.push(
                json!({"body_base64": b64(&body), "tag": format!("t{}", n % 5),
                              "keys": [format!("k{n}")], "properties": {"n": n.to_string()}}),
            );
        }
        let res = node
            .produce_ok("keep-orders", Value::Array(batch.clone()))
            .await?;
        for (r, m) in res.iter().zip(&batch) {
            let body = shale_tests::api::unb64(m["body_base64"].as_str().unwrap_or_default());
            assert!(
                sent.insert((r.queue, r.offset), (body, r.message_id.clone()))
                    .is_none(),
                "offset reused: {r:?}"
            );
        }
    }
    for g in 0..20 {
        node.produce_ok(
            "keep-fifo",
            json!([{"body": format!("fifo {g}"), "message_group": format!("g{g}")}]),
        )
        .await?;
    }

    let before_cfg = topic_configs(&node).await?;
    let before = snapshot(&node, &topics).await?;
    let before_queues: Vec<Value> = node.queues("keep-orders").await?;
    assert_eq!(
        before[&("keep-orders".to_string(), 0)].len()
            + before[&("keep-orders".to_string(), 1)].len()
            + before[&("keep-orders".to_string(), 2)].len(),
        700
    );
    for ((q, offset), (body, id)) in &sent {
        let m = &before[&("keep-orders".to_string(), *q)][*offset as usize];
        assert_eq!(m["offset"], *offset);
        assert_eq!(&body_bytes(m), body, "bytes before restart at {q}/{offset}");
        assert_eq!(m["message_id"], id.as_str());
    }

    node.stop_clean()?;
    for q in 0..3 {
        let sealed = sealed_segments(&queue_dir(data, "keep-orders", q))?;
        assert!(
            sealed.len() >= 2,
            "queue {q}: expected several sealed segments with --segment-bytes {SEGMENT_BYTES}, found {sealed:?}"
        );
    }

    // Twice: a restart of a restarted node must be just as lossless.
    for round in 0..2 {
        let mut node = Node::start(data, &args)?;
        assert_eq!(
            topic_configs(&node).await?,
            before_cfg,
            "topic configs after restart {round}"
        );
        let after = snapshot(&node, &topics).await?;
        for (k, msgs) in &before {
            assert_eq!(
                after[k].len(),
                msgs.len(),
                "{k:?} count after restart {round}"
            );
            for (a, b) in after[k].iter().zip(msgs) {
                assert_eq!(a, b, "{k:?} message differs after restart {round}");
            }
        }
        let qs = node.queues("keep-orders").await?;
        for (a, b) in qs.iter().zip(&before_queues) {
            assert_eq!(a["min_offset"], b["min_offset"]);
            assert_eq!(a["max_offset"], b["max_offset"]);
        }
        // Lookups still work after recovery (indexes rebuilt or reloaded).
        let (q, off) = (1u32, 5u64);
        let id = sent[&(q, off)].1.clone();
        let by_id = node
            .get(&format!("/v1/topics/keep-orders/messages/{id}"))
            .await?
            .ok_json(200);
        assert_eq!(body_bytes(&by_id), sent[&(q, off)].0);
        let n = before[&("keep-orders".to_string(), q)][off as usize]["properties"]["n"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let by_key = node
            .get(&format!("/v1/topics/keep-orders/messages?key=k{n}"))
            .await?
            .ok_json(200);
        assert_eq!(
            by_key["messages"].as_array().map(Vec::len),
            Some(1),
            "{by_key}"
        );
        assert_eq!(by_key["messages"][0]["message_id"], id.as_str());
        node.stop_clean()?;
    }

    // New writes continue each queue where it ended.
    let node = Node::start(data, &args)?;
    for q in 0..3u32 {
        let max = before[&("keep-orders".to_string(), q)].len() as u64;
        let r = node
            .produce_ok(
                "keep-orders",
                json!([{"body": "after restart", "queue": q}]),
            )
            .await?;
        assert_eq!(r[0].offset, max, "queue {q} continues at its max_offset");
        let prev = &before[&("keep-orders".to_string(), q)];
        if let Some(last) = prev.last() {
            assert!(
                r[0].message_id.as_str() > last["message_id"].as_str().unwrap_or_default(),
                "ids keep increasing after restart"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn deleted_topic_stays_deleted_after_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = Node::start(dir.path(), &[])?;
    node.create_topic("doomed", 2, "NORMAL", "SYNC").await?;
    node.create_topic("kept", 1, "NORMAL", "SYNC").await?;
    node.produce_ok("doomed", json!([{"body": "x"}, {"body": "y"}]))
        .await?;
    node.produce_ok("kept", json!([{"body": "z"}])).await?;
    let r = node.delete("/v1/topics/doomed").await?;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(
        !dir.path().join("hot").join("doomed").exists(),
        "hot data of a deleted topic is removed"
    );
    node.stop_clean()?;

    let node = Node::start(dir.path(), &[])?;
    assert_eq!(node.topic_names().await?, vec!["kept".to_string()]);
    shale_tests::expect_error(
        &node.get("/v1/topics/doomed").await?,
        404,
        "TOPIC_NOT_FOUND",
    );
    // Re-creating it starts from offset 0 again.
    node.create_topic("doomed", 2, "NORMAL", "SYNC").await?;
    let r = node
        .produce_ok("doomed", json!([{"body": "fresh", "queue": 0}]))
        .await?;
    assert_eq!(r[0].offset, 0);
    Ok(())
}

#[tokio::test]
async fn segments_seal_by_age_and_indexes_survive_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path();
    let args = ["--segment-ms", "300", "--flush-interval-ms", "50"];
    let mut node = Node::start(data, &args)?;
    node.create_topic("aged", 1, "NORMAL", "ASYNC").await?;
    let first = node
        .produce_ok("aged", json!([{"body": "old", "keys": ["a"]}]))
        .await?;
    let qdir = queue_dir(data, "aged", 0);
    let sealed = shale_tests::wait_for(
        std::time::Duration::from_secs(15),
        "a segment sealed by age",
        || {
            let qdir = qdir.clone();
            async move { sealed_segments(&qdir).ok().filter(|s| !s.is_empty()) }
        },
    )
    .await?;
    assert_eq!(sealed.len(), 1, "{sealed:?}");
    let second = node
        .produce_ok("aged", json!([{"body": "new", "keys": ["b"]}]))
        .await?;
    assert_eq!(second[0].offset, 1);
    let before = node.read_all("aged", 0).await?;
    assert_eq!(before.len(), 2);
    let ts: Vec<i64> = before
        .iter()
        .map(|m| m["store_ms"].as_i64().unwrap_or(0))
        .collect();
    let before_ts = offsets_for(&node, &ts).await?;
    node.stop_clean()?;

    let node = Node::start(data, &args)?;
    assert_eq!(node.read_all("aged", 0).await?, before);
    assert_eq!(
        offsets_for(&node, &ts).await?,
        before_ts,
        "offset by timestamp after restart"
    );
    for (key, id) in [("a", &first[0].message_id), ("b", &second[0].message_id)] {
        let v = node
            .get(&format!("/v1/topics/aged/messages?key={key}"))
            .await?
            .ok_json(200);
        assert_eq!(
            v["messages"][0]["message_id"],
            id.as_str(),
            "key {key} after restart: {v}"
        );
    }
    Ok(())
}

/// `offset?timestamp_ms=` around each of two store times.
async fn offsets_for(node: &Node, ts: &[i64]) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for t in [0, ts[0], ts[0] + 1, ts[1], ts[1] + 1] {
        let v = node
            .get(&format!("/v1/topics/aged/queues/0/offset?timestamp_ms={t}"))
            .await?
            .ok_json(200);
        out.push(v["offset"].as_u64().unwrap_or(u64::MAX));
    }
    Ok(out)
}
