//! Transactions against the real binary: half messages invisible until
//! committed, repeated and opposite decisions, check-back with short
//! `check_after_ms` and the check limit, and a kill -9 in the middle of a
//! batch of commits and rollbacks: afterwards every acknowledged commit is
//! in its queue once, no rollback ever is, and every other transaction is
//! still pending (and commits once) or decided.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shale_tests::api::expect_error;
use shale_tests::{Node, wait_for, wait_until};

/// Stores one transaction of `bodies`; its id.
async fn half(
    node: &Node,
    topic: &str,
    bodies: &[String],
    check_after_ms: u64,
) -> anyhow::Result<String> {
    let messages: Vec<Value> = bodies.iter().map(|b| json!({"body": b})).collect();
    let r = node
        .post_json(
            &format!("/v1/topics/{topic}/messages"),
            &json!({"messages": messages,
                    "transaction": {"producer_group": "pg", "check_after_ms": check_after_ms}}),
        )
        .await?
        .ok_json(200);
    let results = r["results"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(results.len() == bodies.len(), "{r}");
    let id = results[0]["transaction_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for res in &results {
        anyhow::ensure!(
            res.get("offset").is_none(),
            "a half message with an offset: {res}"
        );
        anyhow::ensure!(
            res["transaction_id"] == id.as_str(),
            "one request, one transaction: {r}"
        );
        anyhow::ensure!(
            res["queue"] == results[0]["queue"],
            "one transaction, one queue: {r}"
        );
    }
    Ok(id)
}

/// Every body in `topic`'s queues, with how often it is there.
async fn bodies(node: &Node, topic: &str, queues: u32) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for q in 0..queues {
        for m in node.read_all(topic, q).await? {
            *out.entry(m["body"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rollback_and_check_back_over_http() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &["--transaction-max-checks", "2"])?;
    node.create_topic("pay", 2, "TRANSACTION", "SYNC").await?;
    let plain = node.produce("pay", json!([{"body": "x"}])).await?;
    expect_error(&plain, 400, "MESSAGE_TYPE_MISMATCH");

    let a = half(&node, "pay", &["a1".into(), "a2".into()], 60_000).await?;
    let b = half(&node, "pay", &["b".into()], 60_000).await?;
    anyhow::ensure!(
        bodies(&node, "pay", 2).await?.is_empty(),
        "a half message is visible"
    );
    let first = a.split('.').next().unwrap_or_default();
    let hidden = node
        .get(&format!("/v1/topics/pay/messages/{first}"))
        .await?;
    expect_error(&hidden, 404, "MESSAGE_NOT_FOUND");
    let topic = node.get("/v1/topics/pay").await?.ok_json(200);
    anyhow::ensure!(topic["pending_transactions"] == 2, "{topic}");

    let r = node
        .post_json(&format!("/v1/transactions/{a}/commit"), &json!({}))
        .await?
        .ok_json(200);
    anyhow::ensure!(r["state"] == "COMMITTED", "{r}");
    node.post_json(&format!("/v1/transactions/{a}/commit"), &json!({}))
        .await?
        .ok_json(200);
    let opposite = node
        .post_json(&format!("/v1/transactions/{a}/rollback"), &json!({}))
        .await?;
    expect_error(&opposite, 409, "TRANSACTION_ALREADY_RESOLVED");
    node.post_json(&format!("/v1/transactions/{b}/rollback"), &json!({}))
        .await?
        .ok_json(200);
    let opposite = node
        .post_json(&format!("/v1/transactions/{b}/commit"), &json!({}))
        .await?;
    expect_error(&opposite, 409, "TRANSACTION_ALREADY_RESOLVED");
    for unknown in ["00000000000000000000000000000000.pay", "nope"] {
        let r = node
            .post_json(&format!("/v1/transactions/{unknown}/commit"), &json!({}))
            .await?;
        expect_error(&r, 404, "TRANSACTION_NOT_FOUND");
    }
    let seen = bodies(&node, "pay", 2).await?;
    anyhow::ensure!(
        seen == BTreeMap::from([("a1".to_string(), 1), ("a2".to_string(), 1)]),
        "{seen:?}"
    );
    let m = node
        .get(&format!("/v1/topics/pay/messages/{first}"))
        .await?
        .ok_json(200);
    anyhow::ensure!(
        m["body"] == "a1" && m["properties"]["shale.transaction_id"] == a.as_str(),
        "{m}"
    );

    // Check-back: offered after check_after_ms, again each check_after_ms,
    // then rolled back after 2 checks.
    let c = half(&node, "pay", &["c".into()], 1000).await?;
    let pg = node.get("/v1/producer-groups/pg").await?.ok_json(200);
    anyhow::ensure!(pg["pending_transactions"] == 1, "{pg}");
    for count in 1..=2 {
        let checks = wait_for(Duration::from_secs(10), "a check", || async {
            let r = node
                .get("/v1/producer-groups/pg/transaction-checks?wait_ms=3000&max=4")
                .await
                .ok()?
                .ok_json(200);
            let checks = r["checks"].as_array()?.clone();
            (!checks.is_empty()).then_some(checks)
        })
        .await?;
        anyhow::ensure!(checks.len() == 1, "{checks:?}");
        anyhow::ensure!(checks[0]["transaction_id"] == c.as_str(), "{checks:?}");
        anyhow::ensure!(checks[0]["check_count"] == count, "{checks:?}");
        anyhow::ensure!(checks[0]["message"]["body"] == "c", "{checks:?}");
        anyhow::ensure!(checks[0]["message"].get("offset").is_none(), "{checks:?}");
    }
    wait_until(
        Duration::from_secs(10),
        "the check limit to roll back",
        || async {
            node.get("/v1/topics/pay")
                .await
                .is_ok_and(|r| r.json()["pending_transactions"] == 0)
        },
    )
    .await?;
    let late = node
        .post_json(&format!("/v1/transactions/{c}/commit"), &json!({}))
        .await?;
    expect_error(&late, 409, "TRANSACTION_ALREADY_RESOLVED");
    let pg = node.get("/v1/producer-groups/pg").await?.ok_json(200);
    anyhow::ensure!(pg["pending_transactions"] == 0, "{pg}");
    anyhow::ensure!(
        !bodies(&node, "pay", 2).await?.contains_key("c"),
        "a rolled back message is visible"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill9_in_the_middle_of_commits_appends_each_commit_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = Node::start(dir.path(), &[])?;
    node.create_topic("kp", 4, "TRANSACTION", "SYNC").await?;
    let mut txns: Vec<(String, Vec<String>)> = Vec::new();
    for i in 0..240 {
        let body: Vec<String> = (0..1 + i % 3).map(|j| format!("t{i}-{j}")).collect();
        txns.push((half(&node, "kp", &body, 3_600_000).await?, body));
    }
    // Even ones are committed, odd ones rolled back, 8 at a time; the node
    // dies while they are under way.
    let client = node.client.clone();
    let base = node.base.clone();
    let acked = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let work = {
        let (txns, acked) = (txns.clone(), acked.clone());
        tokio::spawn(async move {
            use futures::StreamExt;
            futures::stream::iter(txns.into_iter().enumerate())
                .for_each_concurrent(8, |(i, (id, _))| {
                    let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
                    async move {
                        let action = if i % 2 == 0 { "commit" } else { "rollback" };
                        let url = format!("{base}/v1/transactions/{id}/{action}");
                        if let Ok(r) = client.post(url).json(&json!({})).send().await
                            && r.status() == 200
                        {
                            acked.lock().unwrap().insert(i);
                        }
                    }
                })
                .await;
        })
    };
    wait_until(Duration::from_secs(30), "some decisions", || async {
        acked.lock().unwrap().len() >= 60
    })
    .await?;
    node.kill9()?;
    let _ = tokio::time::timeout(Duration::from_secs(30), work).await;
    let acked = acked.lock().unwrap().clone();
    anyhow::ensure!(
        acked.len() < txns.len(),
        "the kill came too late to test anything"
    );

    let node = Node::start(dir.path(), &[])?;
    let seen = bodies(&node, "kp", 4).await?;
    for (body, n) in &seen {
        anyhow::ensure!(*n == 1, "{body} is in its queue {n} times");
    }
    for (i, (id, body)) in txns.iter().enumerate() {
        let visible = body.iter().filter(|b| seen.contains_key(*b)).count();
        anyhow::ensure!(
            visible == 0 || visible == body.len(),
            "transaction {i} is half visible"
        );
        if i % 2 == 1 {
            anyhow::ensure!(visible == 0, "rolled back transaction {i} is visible");
        } else if acked.contains(&i) {
            anyhow::ensure!(visible == body.len(), "acknowledged commit {i} is missing");
        }
        // Deciding again: an acknowledged decision is remembered, any other
        // was made or is still pending; either way it is 200 now.
        let action = if i % 2 == 0 { "commit" } else { "rollback" };
        let r = node
            .post_json(&format!("/v1/transactions/{id}/{action}"), &json!({}))
            .await?;
        anyhow::ensure!(
            r.status == 200,
            "{action} {i} again: {} {}",
            r.status,
            r.text()
        );
    }
    let seen = bodies(&node, "kp", 4).await?;
    let want: BTreeMap<String, usize> = txns
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .flat_map(|(_, (_, b))| b.clone())
        .map(|b| (b, 1))
        .collect();
    anyhow::ensure!(
        seen == want,
        "after deciding everything: {} bodies, want {}",
        seen.len(),
        want.len()
    );
    let topic = node.get("/v1/topics/kp").await?.ok_json(200);
    anyhow::ensure!(topic["pending_transactions"] == 0, "{topic}");
    eprintln!(
        "{} of {} decisions acknowledged before the kill",
        acked.len(),
        txns.len()
    );
    Ok(())
}
