//! Delay messages against the real binary: invisible until due, then in
//! their queue exactly once, through a kill -9 in the middle of the fires
//! and a clean restart, with recall and the timer list over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use shale_tests::api::expect_error;
use shale_tests::{Node, wait_until};

/// Every message of `topic`'s queues, in queue order.
async fn all_messages(node: &Node, topic: &str, queues: u32) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for q in 0..queues {
        out.extend(node.read_all(topic, q).await?);
    }
    Ok(out)
}

async fn pending(node: &Node, topic: &str) -> anyhow::Result<u64> {
    let t = node.get(&format!("/v1/topics/{topic}")).await?.ok_json(200);
    Ok(t["pending_timers"].as_u64().unwrap_or(u64::MAX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_messages_fire_once_through_kill9_and_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = Node::start(dir.path(), &[])?;
    node.create_topic("later", 2, "DELAY", "SYNC").await?;

    // 300 messages due between 1.5 s and 4.5 s from now, acknowledged at SYNC.
    let mut scheduled: BTreeMap<String, i64> = BTreeMap::new();
    for chunk in 0..10 {
        let batch: Vec<Value> = (0..30)
            .map(|i| {
                let n = chunk * 30 + i;
                json!({"body": format!("m{n}"), "delay_ms": 1_500 + (n * 7_919 % 300) * 10,
                       "keys": [format!("k{n}")], "queue": n % 2})
            })
            .collect();
        let r = node.produce("later", json!(batch)).await?.ok_json(200);
        for res in r["results"].as_array().into_iter().flatten() {
            anyhow::ensure!(
                res.get("offset").is_none(),
                "scheduled with an offset: {res}"
            );
            let id = res["message_id"].as_str().unwrap_or_default().to_string();
            scheduled.insert(id, res["deliver_at_ms"].as_i64().unwrap_or_default());
        }
    }
    anyhow::ensure!(scheduled.len() == 300);
    let seen_early = all_messages(&node, "later", 2).await?;
    let early_ok = seen_early.iter().all(|m| {
        let due = m["deliver_at_ms"].as_i64().unwrap_or(i64::MAX);
        m["store_ms"].as_i64().unwrap_or(0) >= due
    });
    anyhow::ensure!(early_ok, "a message entered its queue before its time");
    let (first_id, _) = scheduled.iter().max_by_key(|(_, at)| **at).unwrap();
    let m = node
        .get(&format!("/v1/topics/later/messages/{first_id}"))
        .await?
        .ok_json(200);
    anyhow::ensure!(m["state"] == "SCHEDULED", "{m}");
    let list = node
        .get("/v1/topics/later/timers?limit=1000")
        .await?
        .ok_json(200);
    let listed = list["timers"].as_array().map_or(0, |t| t.len());
    anyhow::ensure!(listed + seen_early.len() == 300, "listed {listed}");

    // Recall one due last, then crash while the others are coming due.
    let recalled = first_id.clone();
    let r = node
        .delete(&format!("/v1/topics/later/messages/{recalled}"))
        .await?;
    anyhow::ensure!(r.status == 204, "recall: {} {}", r.status, r.text());
    wait_until(Duration::from_secs(20), "some timers to fire", || async {
        pending(&node, "later").await.is_ok_and(|p| p < 250)
    })
    .await?;
    node.kill9()?;
    let mut node = Node::start(dir.path(), &[])?;
    wait_until(Duration::from_secs(30), "every timer to fire", || async {
        pending(&node, "later").await.is_ok_and(|p| p == 0)
    })
    .await?;
    node.stop_clean()?;
    let node = Node::start(dir.path(), &[])?;
    anyhow::ensure!(
        pending(&node, "later").await? == 0,
        "timers came back after a clean restart"
    );

    let got = all_messages(&node, "later", 2).await?;
    let mut ids = BTreeSet::new();
    for m in &got {
        let id = m["message_id"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(ids.insert(id.clone()), "{id} entered its queue twice");
        let due = scheduled.get(&id).copied();
        anyhow::ensure!(due.is_some(), "an unknown message {m}");
        anyhow::ensure!(
            m["store_ms"].as_i64().unwrap_or(0) >= due.unwrap_or_default(),
            "{id} entered before its time: {m}"
        );
    }
    anyhow::ensure!(
        !ids.contains(&recalled),
        "the recalled message was delivered"
    );
    anyhow::ensure!(got.len() == 299, "{} of 299 delivered", got.len());
    let late = got
        .iter()
        .filter_map(|m| Some(m["store_ms"].as_i64()? - m["deliver_at_ms"].as_i64()?))
        .max()
        .unwrap_or(0);
    eprintln!("latest fire: {late} ms after its time (a kill -9 and a restart in between)");
    let r = node
        .delete(&format!(
            "/v1/topics/later/messages/{}",
            got[0]["message_id"].as_str().unwrap_or("")
        ))
        .await?;
    expect_error(&r, 409, "MESSAGE_ALREADY_DELIVERED");
    Ok(())
}

/// A node's timers reach another node with an empty disk on the same object
/// store through a clean shutdown (a hand-over spills them): the due ones
/// fire there once, the far ones stay pending, none is early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_messages_move_to_a_node_with_an_empty_disk() -> anyhow::Result<()> {
    let objects = tempfile::tempdir()?;
    let store = format!("file://{}", objects.path().display());
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut a = Node::start(dir_a.path(), &["--object-store", &store])?;
    a.create_topic("moved", 2, "DELAY", "SYNC").await?;
    let batch: Vec<Value> = (0..100)
        .map(|n| {
            // Half due in 3-5 s, half in 1-2 days.
            let delay = if n % 2 == 0 {
                3_000 + n * 20
            } else {
                86_400_000 + n * 1_000
            };
            json!({"body": format!("m{n}"), "delay_ms": delay, "queue": n % 2})
        })
        .collect();
    let r = a.produce("moved", json!(batch)).await?.ok_json(200);
    let due: BTreeMap<String, i64> = r["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|res| {
            (
                res["message_id"].as_str().unwrap_or_default().to_string(),
                res["deliver_at_ms"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    anyhow::ensure!(due.len() == 100);
    a.stop_clean()?;

    let b = Node::start(
        dir_b.path(),
        &["--object-store", &store, "--node-id", "node-b"],
    )?;
    anyhow::ensure!(pending(&b, "moved").await? == 100, "pending after the move");
    wait_until(
        Duration::from_secs(30),
        "the near timers to fire",
        || async { pending(&b, "moved").await.is_ok_and(|p| p == 50) },
    )
    .await?;
    let fired = all_messages(&b, "moved", 2).await?;
    let ids: BTreeSet<&str> = fired
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    anyhow::ensure!(ids.len() == fired.len(), "a timer fired twice");
    anyhow::ensure!(fired.len() == 50, "fired {}", fired.len());
    for m in &fired {
        let id = m["message_id"].as_str().unwrap_or_default();
        let at = *due
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("unknown id {id}"))?;
        anyhow::ensure!(
            m["store_ms"].as_i64().unwrap_or(0) >= at,
            "{id} fired early"
        );
        anyhow::ensure!(
            at - due.values().min().copied().unwrap_or(0) < 10_000,
            "a far timer fired"
        );
    }
    Ok(())
}
