//! Several real `shale` processes on one bucket form one cluster: each queue
//! has one owner, any node serves any request (forwarding to the owner), and
//! nothing acknowledged is lost, duplicated or given two offsets. Run against
//! a local directory and, when `scripts/test.sh` started moto, against S3.
//!
//! Short cluster timings (heartbeat 200 ms, lease 2 s) keep the tests quick;
//! every wait is bounded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shale_tests::Node;
use shale_tests::api::Resp;

const NODES: usize = 3;
const QUEUES: u32 = 8;

fn cluster_args(store: &str, i: usize) -> Vec<String> {
    [
        "--object-store",
        store,
        "--node-id",
        &format!("node-{i}"),
        "--cluster-heartbeat-ms",
        "200",
        "--cluster-lease-ms",
        "2000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Starts `NODES` nodes on `store` and waits until each sees all of them live.
async fn start_cluster(store: &str) -> anyhow::Result<(Vec<tempfile::TempDir>, Vec<Node>)> {
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let dir = tempfile::tempdir()?;
        let args = cluster_args(store, i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Node::start(dir.path(), &args)?);
        dirs.push(dir);
    }
    wait_until("every node sees every node live", || async {
        for n in &nodes {
            let v = n.get("/v1/cluster").await?.ok_json(200);
            let live = v["nodes"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|x| x["live"] == true).count());
            if live != NODES {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    Ok((dirs, nodes))
}

/// Polls `check` every 50 ms until it holds, for at most 30 s.
async fn wait_until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if check().await? {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates `topic` through the first node and waits until every node knows it.
async fn create_everywhere(nodes: &[Node], topic: &str, kind: &str) -> anyhow::Result<()> {
    nodes[0].create_topic(topic, QUEUES, kind, "SYNC").await?;
    wait_until("every node knows the topic", || async {
        for n in nodes {
            if n.get(&format!("/v1/topics/{topic}")).await?.status != 200 {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
}

/// Sends a request until it is not a 503 (which must carry Retry-After), for at most 30 s.
async fn retrying<F, Fut>(mut send: F) -> anyhow::Result<Resp>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Resp>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = send().await?;
        if r.status != 503 {
            return Ok(r);
        }
        anyhow::ensure!(
            r.header("retry-after").is_some(),
            "503 without Retry-After: {}",
            r.text()
        );
        anyhow::ensure!(
            Instant::now() < deadline,
            "still 503 after 30 s: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An acknowledged message: where the cluster said it is, and its body.
#[derive(Debug, Clone)]
struct Ack {
    queue: u32,
    offset: u64,
    message_id: String,
    body: String,
}

/// Produces through node `i`: round-robin singles and batches, and batches
/// to an explicit queue, all with unique bodies.
async fn produce_through(
    node: &Node,
    i: usize,
    topic: &str,
    requests: usize,
) -> anyhow::Result<Vec<Ack>> {
    let mut acks = Vec::new();
    for r in 0..requests {
        let bodies: Vec<String> = (0..3).map(|m| format!("n{i}-r{r}-m{m}")).collect();
        let messages: Vec<Value> = match r % 3 {
            0 => vec![json!({"body": bodies[0]})],
            1 => bodies
                .iter()
                .map(|b| json!({"body": b, "queue": (r as u32 + i as u32) % QUEUES}))
                .collect(),
            _ => bodies.iter().map(|b| json!({"body": b})).collect(),
        };
        let sent = Value::Array(messages.clone());
        let resp = retrying(|| node.produce(topic, sent.clone())).await?;
        let v = resp.ok_json(200);
        let results = v["results"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(results.len() == messages.len(), "{v}");
        for (m, res) in messages.iter().zip(results) {
            acks.push(Ack {
                queue: res["queue"].as_u64().unwrap_or(u64::MAX) as u32,
                offset: res["offset"].as_u64().unwrap_or(u64::MAX),
                message_id: res["message_id"].as_str().unwrap_or_default().to_string(),
                body: m["body"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    Ok(acks)
}

async fn three_nodes_store_every_acknowledged_message_once(store: &str) -> anyhow::Result<()> {
    let (_dirs, nodes) = start_cluster(store).await?;
    create_everywhere(&nodes, "orders", "NORMAL").await?;
    // Concurrently through every node (one task, many requests in flight).
    let producers = (0..NODES).map(|i| produce_through(&nodes[i], i, "orders", 45));
    let mut acks = Vec::new();
    for part in futures::future::join_all(producers).await {
        acks.extend(part?);
    }

    // No two answers for one offset.
    let mut at: HashMap<(u32, u64), &Ack> = HashMap::new();
    for a in &acks {
        if let Some(prev) = at.insert((a.queue, a.offset), a) {
            anyhow::bail!(
                "two messages were given {}/{}: {prev:?} and {a:?}",
                a.queue,
                a.offset
            );
        }
    }
    // Every queue read through a node that does not own it (forwarded) and one that may.
    let mut stored = 0;
    for q in 0..QUEUES {
        let via = &nodes[q as usize % NODES];
        let messages = via.read_all("orders", q).await?;
        for (i, m) in messages.iter().enumerate() {
            anyhow::ensure!(
                m["offset"] == i as u64,
                "queue {q} is not contiguous at {i}: {m}"
            );
            let Some(a) = at.get(&(q, i as u64)) else {
                anyhow::bail!("queue {q} offset {i} holds a message nobody was told about: {m}");
            };
            anyhow::ensure!(
                m["body"] == a.body.as_str(),
                "queue {q} offset {i}: {m} vs {a:?}"
            );
            anyhow::ensure!(m["message_id"] == a.message_id.as_str(), "{m} vs {a:?}");
        }
        stored += messages.len();
    }
    anyhow::ensure!(
        stored == acks.len(),
        "{stored} stored vs {} acknowledged",
        acks.len()
    );
    // Queries by id through every node find the message at its acknowledged place.
    for (k, a) in acks.iter().enumerate().step_by(17) {
        let via = &nodes[k % NODES];
        let m = via
            .get(&format!("/v1/topics/orders/messages/{}", a.message_id))
            .await?
            .ok_json(200);
        anyhow::ensure!(
            m["queue"] == a.queue && m["offset"] == a.offset,
            "{m} vs {a:?}"
        );
    }
    // The cluster view: three live nodes, and the queues split among them.
    let view = nodes[0].get("/v1/cluster").await?.ok_json(200);
    anyhow::ensure!(view["self"] == "node-0", "{view}");
    let mut owned = 0;
    for n in &nodes {
        let v = n.get("/v1/cluster").await?.ok_json(200);
        let me = v["self"].clone();
        let mine = v["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == me))
            .map_or(0, |x| x["queues_owned"].as_u64().unwrap_or(0));
        owned += mine;
    }
    anyhow::ensure!(owned == u64::from(QUEUES), "queues owned in all: {owned}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_a_local_store_keep_every_acknowledged_message_once() -> anyhow::Result<()> {
    let objects = tempfile::tempdir()?;
    three_nodes_store_every_acknowledged_message_once(&format!(
        "file://{}",
        objects.path().display()
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_s3_keep_every_acknowledged_message_once() -> anyhow::Result<()> {
    let Ok(bucket) = std::env::var("SHALE_TEST_S3_BUCKET") else {
        assert!(
            std::env::var("SHALE_REQUIRE_S3").is_err(),
            "SHALE_REQUIRE_S3 is set but SHALE_TEST_S3_BUCKET is not"
        );
        eprintln!("SKIPPED: no S3 server (run scripts/test.sh, which starts moto)");
        return Ok(());
    };
    let prefix = format!("cluster-{}", std::process::id());
    three_nodes_store_every_acknowledged_message_once(&format!("s3://{bucket}/{prefix}")).await
}

/// Eight consumers spread over three nodes share one CLUSTERING group on a
/// FIFO topic whose queues live on all three: every message is delivered and
/// acknowledged exactly once, and each message group in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_consumed_through_every_node_gets_each_message_once_in_group_order()
-> anyhow::Result<()> {
    const GROUPS: usize = 12;
    const PER_GROUP: usize = 15;
    let objects = tempfile::tempdir()?;
    let store = format!("file://{}", objects.path().display());
    let (_dirs, nodes) = start_cluster(&store).await?;
    create_everywhere(&nodes, "fifo", "FIFO").await?;
    for seq in 0..PER_GROUP {
        let batch: Vec<Value> = (0..GROUPS)
            .map(|g| json!({"body": format!("g{g}:{seq}"), "message_group": format!("g{g}")}))
            .collect();
        let batch = Value::Array(batch);
        // One request per message group keeps each request on one node's queues.
        for m in batch.as_array().into_iter().flatten() {
            let one = Value::Array(vec![m.clone()]);
            retrying(|| nodes[seq % NODES].produce("fifo", one.clone()))
                .await?
                .ok_json(200);
        }
    }
    // Created through one node; the others find its settings in the object store.
    let put = nodes[1]
        .put_json("/v1/groups/workers", &json!({"consume_from": "EARLIEST"}))
        .await?;
    anyhow::ensure!(put.status == 201 || put.status == 200, "{}", put.text());
    let total = GROUPS * PER_GROUP;
    let clock = AtomicU64::new(0);
    let acked = AtomicU64::new(0);
    let (clock, acked, nodes) = (&clock, &acked, &nodes);
    let consumers = (0..8).map(|c| async move {
        let node = &nodes[c % NODES];
        let mut seen: Vec<(u64, String)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::SeqCst) < total as u64 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "consumer {c} timed out with {} of {total} acked",
                acked.load(Ordering::SeqCst)
            );
            let body =
                json!({"topic": "fifo", "max_messages": 4, "wait_ms": 300, "invisible_ms": 60000});
            let got = retrying(|| node.post_json("/v1/groups/workers/receive", &body))
                .await?
                .ok_json(200);
            let msgs = got["messages"].as_array().cloned().unwrap_or_default();
            if msgs.is_empty() {
                continue;
            }
            let handles: Vec<Value> = msgs.iter().map(|m| m["receipt_handle"].clone()).collect();
            for m in &msgs {
                let at = clock.fetch_add(1, Ordering::SeqCst);
                seen.push((at, m["body"].as_str().unwrap_or_default().to_string()));
            }
            let ack = json!({"topic": "fifo", "receipt_handles": handles});
            let answer = retrying(|| node.post_json("/v1/groups/workers/ack", &ack))
                .await?
                .ok_json(200);
            for r in answer["results"].as_array().into_iter().flatten() {
                anyhow::ensure!(r["ok"] == true, "ack failed: {r}");
                acked.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok::<_, anyhow::Error>(seen)
    });
    let mut deliveries: Vec<(u64, String)> = Vec::new();
    let parts = futures::future::join_all(consumers).await;
    if parts.iter().any(|p| p.is_err()) {
        for n in nodes {
            let o = n.get("/v1/groups/workers/offsets?topic=fifo").await?;
            eprintln!("DIAG offsets via {}: {} {}", n.url(""), o.status, o.text());
        }
        let mut got: Vec<String> = parts
            .iter()
            .flatten()
            .flatten()
            .map(|(_, b)| b.clone())
            .collect();
        got.sort();
        eprintln!("DIAG delivered: {got:?}");
    }
    for part in parts {
        deliveries.extend(part?);
    }
    deliveries.sort();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut last: HashMap<String, i64> = HashMap::new();
    for (_, body) in &deliveries {
        *count.entry(body.as_str()).or_default() += 1;
        let (g, seq) = body.split_once(':').unwrap_or(("?", "0"));
        let seq: i64 = seq.parse().unwrap_or(-1);
        let prev = last.insert(g.to_string(), seq).unwrap_or(-1);
        anyhow::ensure!(seq == prev + 1, "group {g}: {seq} delivered after {prev}");
    }
    anyhow::ensure!(count.len() == total, "{} distinct of {total}", count.len());
    anyhow::ensure!(
        count.values().all(|n| *n == 1),
        "some message was delivered twice"
    );
    Ok(())
}
