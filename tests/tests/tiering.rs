//! The object store as the system of record: a node seals and uploads its
//! segments, and a *new node with an empty disk* on the same object store
//! serves every acknowledged message (same offsets, ids and bytes), finds
//! every topic, and continues each queue's offsets. Run against a local
//! directory and, when `scripts/test.sh` started moto, against S3.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shale_tests::api::{b64, body_bytes};
use shale_tests::{Node, pseudo_random_bytes};

const TOPIC: &str = "handover";

/// Produces `n` messages over two queues; a 503 (the hot tier over its
/// budget while uploads catch up) is retried as a client would, within a bound.
async fn produce_some(node: &Node, n: usize) -> anyhow::Result<Vec<(u32, u64, String, Vec<u8>)>> {
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..n {
        let body = pseudo_random_bytes(i as u64, 200 + (i * 37) % 900);
        let msg = json!([{"body_base64": b64(&body), "keys": [format!("k{i}")], "queue": (i % 2) as u32}]);
        loop {
            let r = node.produce(TOPIC, msg.clone()).await?;
            if r.status == 503 {
                assert!(r.header("retry-after").is_some(), "503 without Retry-After");
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "still 503 after 60 s: {}",
                    r.text()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let v = r.ok_json(200);
            let p = &v["results"][0];
            acked.push((
                p["queue"].as_u64().unwrap_or(9) as u32,
                p["offset"].as_u64().unwrap_or(u64::MAX),
                p["message_id"].as_str().unwrap_or_default().to_string(),
                body,
            ));
            break;
        }
    }
    Ok(acked)
}

async fn check_serves_everything(
    node: &Node,
    acked: &[(u32, u64, String, Vec<u8>)],
) -> anyhow::Result<()> {
    let mut by_queue: [Vec<Value>; 2] = [
        node.read_all(TOPIC, 0).await?,
        node.read_all(TOPIC, 1).await?,
    ];
    for (queue, offset, id, body) in acked {
        let msgs = &mut by_queue[*queue as usize];
        let m = msgs
            .iter()
            .find(|m| m["offset"].as_u64() == Some(*offset))
            .unwrap_or_else(|| panic!("{queue}/{offset} missing"));
        assert_eq!(m["message_id"].as_str(), Some(id.as_str()));
        assert_eq!(&body_bytes(m), body);
    }
    for (q, msgs) in by_queue.iter().enumerate() {
        let offsets: Vec<u64> = msgs.iter().filter_map(|m| m["offset"].as_u64()).collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as u64).collect::<Vec<_>>(),
            "queue {q} is not contiguous"
        );
    }
    // Query by id and offset by timestamp answer from cold data too.
    let (_, _, id, body) = &acked[acked.len() / 3];
    let got = node
        .get(&format!("/v1/topics/{TOPIC}/messages/{id}"))
        .await?
        .ok_json(200);
    assert_eq!(&body_bytes(&got), body);
    let idx = acked.len() / 3;
    let by_key = node
        .get(&format!("/v1/topics/{TOPIC}/messages?key=k{idx}"))
        .await?
        .ok_json(200);
    let found = by_key["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(found.len(), 1, "query by key k{idx}: {by_key}");
    assert_eq!(found[0]["message_id"].as_str(), Some(id.as_str()));
    let first = node
        .get(&format!(
            "/v1/topics/{TOPIC}/queues/0/messages?offset=0&max_messages=1"
        ))
        .await?
        .ok_json(200);
    let ts = first["messages"][0]["store_ms"].as_i64().unwrap_or(0);
    let at = node
        .get(&format!(
            "/v1/topics/{TOPIC}/queues/0/offset?timestamp_ms={ts}"
        ))
        .await?
        .ok_json(200);
    assert_eq!(at["offset"], 0);
    Ok(())
}

async fn hand_over(store_url: &str) -> anyhow::Result<()> {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let args = ["--segment-bytes", "65536", "--object-store", store_url];
    let mut a = Node::start(dir_a.path(), &args)?;
    a.create_topic(TOPIC, 2, "NORMAL", "SYNC").await?;
    let acked = produce_some(&a, 300).await?;
    a.stop_clean()?;

    let mut b = Node::start(dir_b.path(), &args)?;
    let topic = b.get(&format!("/v1/topics/{TOPIC}")).await?.ok_json(200);
    assert_eq!(topic["queue_count"], 2, "{topic}");
    assert!(
        topic["queues"][0]["cold_segments"].as_u64().unwrap_or(0) >= 1,
        "{topic}"
    );
    check_serves_everything(&b, &acked).await?;

    // Offsets continue where the cold data ends.
    let max0 = topic["queues"][0]["max_offset"].as_u64().unwrap_or(0);
    let r = b
        .produce_ok(TOPIC, json!([{"body": "after the move", "queue": 0}]))
        .await?;
    assert_eq!(r[0].offset, max0);
    b.stop_clean()?;
    Ok(())
}

#[tokio::test]
async fn a_node_with_an_empty_disk_serves_everything_from_a_local_object_store()
-> anyhow::Result<()> {
    let objects = tempfile::tempdir()?;
    hand_over(&format!("file://{}", objects.path().display())).await
}

#[tokio::test]
async fn a_node_with_an_empty_disk_serves_everything_from_s3() -> anyhow::Result<()> {
    let Ok(bucket) = std::env::var("SHALE_TEST_S3_BUCKET") else {
        assert!(
            std::env::var("SHALE_REQUIRE_S3").is_err(),
            "SHALE_REQUIRE_S3 is set but SHALE_TEST_S3_BUCKET is not"
        );
        eprintln!("SKIPPED: no S3 server (run scripts/test.sh, which starts moto)");
        return Ok(());
    };
    let prefix = format!("handover-{}", std::process::id());
    hand_over(&format!("s3://{bucket}/{prefix}")).await
}

/// Past `--hot-bytes`, uploaded segments leave the local disk and reads are
/// served from the object store without the caller noticing.
#[tokio::test]
async fn evicted_segments_are_read_from_the_object_store() -> anyhow::Result<()> {
    let (dir, objects) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let store = format!("file://{}", objects.path().display());
    let args = [
        "--segment-bytes",
        "65536",
        "--hot-bytes",
        "200000",
        "--segment-ms",
        "1000",
        "--object-store",
        &store,
    ];
    let node = Node::start(dir.path(), &args)?;
    node.create_topic(TOPIC, 2, "NORMAL", "SYNC").await?;
    // About 1 MB of messages against a 200 kB budget: most must leave the disk.
    let acked = produce_some(&node, 1500).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = node.get(&format!("/v1/topics/{TOPIC}")).await?.ok_json(200);
        let hot: u64 = (0..2)
            .map(|q| t["queues"][q]["hot_bytes"].as_u64().unwrap_or(u64::MAX))
            .sum();
        let cold: u64 = (0..2)
            .map(|q| t["queues"][q]["cold_segments"].as_u64().unwrap_or(0))
            .sum();
        if hot <= 400_000 && cold >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "never evicted: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_serves_everything(&node, &acked).await
}
