//! A message damaged on local disk before its segment was uploaded is lost:
//! reading it is 500 INTERNAL (never wrong bytes), a read that reaches it
//! stops just before it, and a consumer group steps over it (counted in
//! `shale_group_lost_skipped_total`) instead of failing every receive. The
//! segment still goes up, with a `shale.lost` marker in the message's place
//! (counted in `shale_lost_messages_total`), and a fresh node reading it from
//! the object store answers the same way.
#![allow(clippy::unwrap_used)]

mod api_support;

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api_support::Node;
use serde_json::{Value, json};
use shale_gateway::config::NodeConfig;

const TOPIC: &str = "lossy";
const MESSAGES: u64 = 60;

fn body(i: u64) -> String {
    format!("message {i:03} ").repeat(200)
}

fn config(data_dir: &Path, objects: &Path) -> NodeConfig {
    NodeConfig {
        data_dir: data_dir.to_path_buf(),
        object_store: format!("file://{}", objects.display()),
        node_id: Some("node-lost".into()),
        segment_bytes: 64 * 1024,
        ..Default::default()
    }
}

/// Sealed segment files (`*.log`) under `dir`, by name.
fn sealed_logs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Offsets whose single-message read fails; checks every other one reads back intact.
async fn lost_offsets(n: &Node) -> Vec<u64> {
    let mut lost = Vec::new();
    for o in 0..MESSAGES {
        let a = n
            .get(&format!(
                "/v1/topics/{TOPIC}/queues/0/messages?offset={o}&max_messages=1"
            ))
            .await;
        if a.status.as_u16() == 500 {
            a.assert_error(500, "INTERNAL");
            lost.push(o);
        } else {
            let m = &a.assert_ok()["messages"][0];
            assert_eq!(m["offset"], o);
            assert_eq!(m["body"], body(o), "offset {o}");
        }
    }
    lost
}

/// Receives and acks everything a fresh group gets; returns the offsets delivered.
async fn drain_group(n: &Node, group: &str) -> Vec<u64> {
    let created = n
        .call(
            axum::http::Method::PUT,
            &format!("/v1/groups/{group}"),
            Some(json!({"consume_from": "EARLIEST"})),
        )
        .await;
    created.assert_ok();
    let mut got = Vec::new();
    for _ in 0..100 {
        let a = n
            .post(
                &format!("/v1/groups/{group}/receive"),
                json!({"topic": TOPIC, "max_messages": 32, "wait_ms": 0}),
            )
            .await;
        let msgs = a.assert_ok()["messages"].as_array().unwrap().clone();
        if msgs.is_empty() {
            return got;
        }
        let handles: Vec<&str> = msgs
            .iter()
            .map(|m| m["receipt_handle"].as_str().unwrap())
            .collect();
        let acked = n
            .post(
                &format!("/v1/groups/{group}/ack"),
                json!({"topic": TOPIC, "receipt_handles": handles}),
            )
            .await;
        for r in acked.assert_ok()["results"].as_array().unwrap() {
            assert_eq!(r["ok"], true, "{r}");
        }
        for m in &msgs {
            assert_eq!(m["body"], body(m["offset"].as_u64().unwrap()));
            got.push(m["offset"].as_u64().unwrap());
        }
    }
    panic!("group {group} never drained");
}

async fn committed(n: &Node, group: &str) -> Value {
    n.get(&format!("/v1/groups/{group}/offsets?topic={TOPIC}"))
        .await
        .assert_ok()["queues"][0]["committed_offset"]
        .clone()
}

fn metric(name: &str, group: Option<&str>) -> Option<f64> {
    let text = shale_gateway::metrics::install()?.render();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("topic=\"{TOPIC}\"")))
        .filter(|l| group.is_none_or(|g| l.contains(&format!("group=\"{g}\""))))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_damaged_before_upload_is_stepped_over_by_groups() {
    // Nothing else in this test binary installs a recorder.
    assert!(shale_gateway::metrics::install().is_some());
    let objects = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir.path().join("data"), objects.path());
    let n = Node::with_config(dir, &cfg);
    n.topic(TOPIC, json!({"queues": 1, "durability": "SYNC"}))
        .await;
    for i in 0..MESSAGES {
        n.produce(TOPIC, json!([{"body": body(i), "queue": 0}]))
            .await;
    }
    // No tiering tick has run: nothing is uploaded yet. Damage the middle of
    // the first sealed segment, as bit rot would.
    let logs = sealed_logs(&cfg.data_dir);
    assert!(!logs.is_empty(), "60 × 2.6 KB seals 64 KiB segments");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&logs[0])
        .unwrap();
    let at = file.metadata().unwrap().len() / 2;
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
    drop(file);

    let lost = lost_offsets(&n).await;
    assert_eq!(
        lost.len(),
        1,
        "one flipped byte loses one message: {lost:?}"
    );
    let bad = lost[0];
    // A page stops just before the damage and the next one starts after it.
    let page = n
        .get(&format!(
            "/v1/topics/{TOPIC}/queues/0/messages?offset=0&max_messages=100"
        ))
        .await;
    assert_eq!(
        page.assert_ok()["messages"].as_array().unwrap().len() as u64,
        bad
    );

    // A group gets every other message once, and commits past the lost one.
    let got = drain_group(&n, "g").await;
    let want: Vec<u64> = (0..MESSAGES).filter(|o| *o != bad).collect();
    assert_eq!(got, want);
    assert_eq!(committed(&n, "g").await, MESSAGES);
    assert_eq!(
        metric("shale_group_lost_skipped_total", Some("g")),
        Some(1.0)
    );

    // The segment is uploaded anyway, with a marker for the lost offset; a
    // fresh node with an empty disk answers the same from the object store.
    n.state
        .leave_cluster(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(metric("shale_lost_messages_total", None), Some(1.0));
    let dir2 = tempfile::tempdir().unwrap();
    let cfg2 = NodeConfig {
        node_id: Some("node-lost-2".into()),
        ..config(&dir2.path().join("data"), objects.path())
    };
    drop(n);
    let fresh = Node::with_config(dir2, &cfg2);
    fresh.state.load_topics_from_store().await.unwrap();
    assert!(sealed_logs(&cfg2.data_dir).is_empty());
    assert_eq!(lost_offsets(&fresh).await, vec![bad]);
    let got = drain_group(&fresh, "g2").await;
    assert_eq!(got, want);
    assert_eq!(committed(&fresh, "g2").await, MESSAGES);
    let delivered: BTreeSet<u64> = got.into_iter().collect();
    assert!(!delivered.contains(&bad));
}
