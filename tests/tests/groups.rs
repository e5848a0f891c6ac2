//! Consumer groups through the real binary: many receivers over many
//! messages each delivered once, and a kill -9 in the middle of consumption —
//! after the restart nothing acked before the last checkpoint comes back and
//! nothing unacked is lost.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shale_tests::Node;

/// A client that can move between tasks (the harness's `Node` owns the process).
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn of(node: &Node) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: node.url(""),
        }
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let v: Value = r.json().await?;
        anyhow::ensure!(status == 200, "POST {path}: {status} {v}");
        Ok(v)
    }
}

async fn receive(api: &Api, body: Value) -> anyhow::Result<Vec<Value>> {
    let v = api.post("/v1/groups/g/receive", body).await?;
    Ok(v["messages"].as_array().cloned().unwrap_or_default())
}

async fn ack(api: &Api, handles: &[String]) -> anyhow::Result<Vec<Value>> {
    let v = api
        .post(
            "/v1/groups/g/ack",
            json!({"topic": "t", "receipt_handles": handles}),
        )
        .await?;
    Ok(v["results"].as_array().cloned().unwrap_or_default())
}

fn body_index(m: &Value) -> u64 {
    m["body"]
        .as_str()
        .and_then(|b| b.parse().ok())
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn kill_9_in_the_middle_of_consumption_loses_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Group state is checkpointed by the background loop every flush interval.
    let args = ["--flush-interval-ms", "200"];
    let mut node = Node::start(dir.path(), &args)?;
    node.create_topic("t", 4, "NORMAL", "SYNC").await?;
    let total = 4000u64;
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        let msgs: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"body": i.to_string(), "queue": i % 4}))
            .collect();
        node.produce_ok("t", Value::Array(msgs)).await?;
    }
    let put = reqwest::Client::new()
        .put(node.url("/v1/groups/g"))
        .json(&json!({"consume_from": "EARLIEST", "retry_backoff_ms": [0]}))
        .send()
        .await?;
    anyhow::ensure!(put.status().as_u16() == 201, "put group: {}", put.status());

    // Consume about half, acking everything received.
    let api = Api::of(&node);
    let mut acked = BTreeSet::new();
    while acked.len() < (total / 2) as usize {
        let got = receive(
            &api,
            json!({"topic": "t", "max_messages": 64, "invisible_ms": 2000}),
        )
        .await?;
        let handles: Vec<String> = got
            .iter()
            .map(|m| m["receipt_handle"].as_str().unwrap_or_default().to_string())
            .collect();
        for (m, r) in got.iter().zip(ack(&api, &handles).await?) {
            anyhow::ensure!(r["ok"] == true, "ack failed: {r}");
            acked.insert(body_index(m));
        }
    }
    // Let at least one checkpoint pass (every 200 ms here), then crash.
    tokio::time::sleep(Duration::from_millis(600)).await;
    node.kill9()?;

    let node = Node::start(dir.path(), &args)?;
    let api = Api::of(&node);
    // Drain with 4 concurrent receivers; redeliveries of acks newer than the
    // last checkpoint are allowed, losses are not.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut empty_in_a_row = 0;
            while empty_in_a_row < 3 {
                anyhow::ensure!(Instant::now() < deadline, "not drained within 60 s");
                let got = receive(&api, json!({"topic": "t", "max_messages": 64, "invisible_ms": 60000, "wait_ms": 500})).await?;
                if got.is_empty() {
                    empty_in_a_row += 1;
                    continue;
                }
                empty_in_a_row = 0;
                let handles: Vec<String> = got.iter().map(|m| m["receipt_handle"].as_str().unwrap_or_default().to_string()).collect();
                for (m, r) in got.iter().zip(ack(&api, &handles).await?) {
                    anyhow::ensure!(r["ok"] == true, "ack failed: {r}");
                    seen.push(body_index(m));
                }
            }
            Ok::<_, anyhow::Error>(seen)
        }));
    }
    let mut after = Vec::new();
    for t in tasks {
        after.extend(t.await??);
    }
    let after_set: BTreeSet<u64> = after.iter().copied().collect();
    assert_eq!(
        after.len(),
        after_set.len(),
        "a message was delivered twice after the restart"
    );
    let all: BTreeSet<u64> = acked.union(&after_set).copied().collect();
    assert_eq!(all, (0..total).collect::<BTreeSet<u64>>(), "messages lost");
    let redelivered = acked.intersection(&after_set).count();
    assert!(
        redelivered < 1000,
        "{redelivered} acked messages came back: more than the last second's acks"
    );
    let offsets = node.get("/v1/groups/g/offsets?topic=t").await?.ok_json(200);
    for q in offsets["queues"].as_array().cloned().unwrap_or_default() {
        assert_eq!(q["lag"], 0, "{offsets}");
    }
    Ok(())
}
