//! Disk full: a node whose data dir is on a 2 MiB tmpfs answers 507
//! INSUFFICIENT_STORAGE once the disk fills, keeps every earlier message
//! intact, stores nothing of the failed request, and writes the next
//! contiguous offset once space returns. Needs `mount` (root); skipped loudly
//! otherwise.

use serde_json::json;
use shale_tests::api::{b64, body_bytes};
use shale_tests::tmpfs::Tmpfs;
use shale_tests::{Node, expect_error, pseudo_random_bytes};

const FILLER_BYTES: usize = 768 * 1024;

async fn disk_full_case(durability: &str) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mnt = tmp.path().join("mnt");
    // Declared before the node: dropped (unmounted) after the node is killed.
    let fs = match Tmpfs::mount(&mnt, "2m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "\n!!!!!!!! SKIPPED disk-full test ({durability}): cannot mount a tmpfs: {why} !!!!!!!!\n"
            );
            return Ok(());
        }
    };
    // Space we can give back later: real pages, not a sparse file.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, pseudo_random_bytes(99, FILLER_BYTES))?;
    let data = fs.path().join("data");
    // The object store lives off the tmpfs: this test is about the hot tier's
    // disk. (On the tmpfs, the upload of the segments sealed while the disk
    // was full could take back the freed space before the produce below, at
    // random.)
    let objects = format!("file://{}", tmp.path().join("objects").display());
    let args = [
        "--segment-bytes",
        "131072",
        "--object-store",
        objects.as_str(),
    ];
    let topic = "full";

    let mut node = Node::start(&data, &args)?;
    node.create_topic(topic, 1, "NORMAL", durability).await?;

    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut full = None;
    for i in 0..2000u64 {
        let body = pseudo_random_bytes(i, 4096);
        let r = node
            .produce(topic, json!([{"body_base64": b64(&body), "queue": 0}]))
            .await?;
        if r.status == 200 {
            assert_eq!(
                r.json()["results"][0]["offset"],
                bodies.len() as u64,
                "contiguous offsets while filling"
            );
            bodies.push(body);
            continue;
        }
        full = Some(r);
        break;
    }
    let full = full.unwrap_or_else(|| panic!("2000 × 4 KiB never filled a 2 MiB tmpfs"));
    expect_error(&full, 507, "INSUFFICIENT_STORAGE");
    let stored = bodies.len() as u64;
    eprintln!("{durability}: disk full after {stored} messages");
    assert!(stored > 10, "only {stored} messages fit before 507");

    // The failed request left nothing behind, and the node is still serving.
    assert_eq!(
        node.max_offset(topic, 0).await?,
        stored,
        "max_offset unchanged by the failed request"
    );
    let batch: Vec<_> = (0..5)
        .map(|i| json!({"body_base64": b64(&pseudo_random_bytes(10_000 + i, 4096)), "queue": 0}))
        .collect();
    let again = node.produce(topic, json!(batch)).await?;
    expect_error(&again, 507, "INSUFFICIENT_STORAGE");
    assert_eq!(
        node.max_offset(topic, 0).await?,
        stored,
        "a failed batch stores none of its messages"
    );
    assert_eq!(node.get("/healthz").await?.status, 200);
    let all = node.read_all(topic, 0).await?;
    assert_eq!(all.len() as u64, stored);
    for (i, m) in all.iter().enumerate() {
        assert_eq!(m["offset"], i as u64);
        assert_eq!(
            body_bytes(m),
            bodies[i],
            "message {i} intact after disk full"
        );
    }

    // Space returns: the queue writes the next contiguous offset.
    std::fs::remove_file(&filler)?;
    for k in 0..20u64 {
        let body = pseudo_random_bytes(50_000 + k, 4096);
        let r = node
            .produce(topic, json!([{"body_base64": b64(&body), "queue": 0}]))
            .await?;
        assert_eq!(r.status, 200, "produce after freeing space: {}", r.text());
        assert_eq!(
            r.json()["results"][0]["offset"],
            stored + k,
            "next contiguous offset after disk full"
        );
        bodies.push(body);
    }
    let all = node.read_all(topic, 0).await?;
    assert_eq!(all.len(), bodies.len());
    for (i, m) in all.iter().enumerate() {
        assert_eq!(body_bytes(m), bodies[i], "message {i}");
    }

    // And it all survives a restart.
    node.stop_clean()?;
    let node = Node::start(&data, &args)?;
    let all = node.read_all(topic, 0).await?;
    assert_eq!(all.len(), bodies.len(), "after restart");
    for (i, m) in all.iter().enumerate() {
        assert_eq!(body_bytes(m), bodies[i], "message {i} after restart");
    }
    drop(node);
    drop(fs);
    Ok(())
}

#[tokio::test]
async fn disk_full_sync_topic() -> anyhow::Result<()> {
    disk_full_case("SYNC").await
}

#[tokio::test]
async fn disk_full_async_topic() -> anyhow::Result<()> {
    disk_full_case("ASYNC").await
}
