//! kill -9 (or SIGTERM) while four producers write: every acknowledged
//! message survives with its offset, id and bytes, and each queue's offsets
//! stay contiguous from 0 (no holes, no acknowledged offset reused).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use shale_tests::api::{Produced, b64, body_bytes};
use shale_tests::{Node, pseudo_random_bytes, wait_until};

const QUEUES: u32 = 3;
const PRODUCERS: u64 = 4;

#[derive(Debug, Clone)]
struct Acked {
    id: String,
    body: Vec<u8>,
}

type AckLog = Arc<Mutex<BTreeMap<(u32, u64), Acked>>>;

fn body_for(round: u64, producer: u64, seq: u64) -> Vec<u8> {
    let mut b = format!("r{round}-p{producer}-s{seq}|").into_bytes();
    b.extend(pseudo_random_bytes(
        round * 1_000_000 + producer * 100_000 + seq,
        100 + (seq as usize % 7) * 150,
    ));
    b
}

/// One producer: batches of 1–8 messages until the node dies.
async fn produce_until_killed(
    client: reqwest::Client,
    url: String,
    round: u64,
    producer: u64,
    acked: AckLog,
) {
    let mut seq = 0u64;
    loop {
        let n = 1 + (seq % 8);
        let bodies: Vec<Vec<u8>> = (0..n).map(|i| body_for(round, producer, seq + i)).collect();
        let msgs: Vec<Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut m = json!({"body_base64": b64(b)});
                // Half the batches pick a queue, half let the node round-robin.
                if seq.is_multiple_of(2) {
                    m["queue"] = json!((producer + i as u64) % QUEUES as u64);
                }
                m
            })
            .collect();
        seq += n;
        let Ok(resp) = client
            .post(&url)
            .json(&json!({"messages": msgs}))
            .send()
            .await
        else {
            return;
        };
        if resp.status().as_u16() != 200 {
            return;
        }
        let Ok(v) = resp.json::<Value>().await else {
            return;
        };
        let Some(results) = v["results"].as_array() else {
            return;
        };
        assert_eq!(results.len(), bodies.len(), "one result per message: {v}");
        let mut log = acked.lock().unwrap_or_else(|e| e.into_inner());
        for (r, body) in results.iter().zip(bodies) {
            let p = Produced::from_json(r);
            let prev = log.insert(
                (p.queue, p.offset),
                Acked {
                    id: p.message_id.clone(),
                    body,
                },
            );
            assert!(
                prev.is_none(),
                "offset {}/{} acknowledged twice",
                p.queue,
                p.offset
            );
        }
    }
}

async fn verify(
    node: &Node,
    topic: &str,
    acked: &BTreeMap<(u32, u64), Acked>,
) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut seen_bodies: HashMap<Vec<u8>, (u32, u64)> = HashMap::new();
    for q in 0..QUEUES {
        let msgs = node.read_all(topic, q).await?;
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(
                m["offset"], i as u64,
                "queue {q}: offsets contiguous from 0 (hole or reorder at index {i})"
            );
            let body = body_bytes(m);
            if let Some(prev) = seen_bodies.insert(body.clone(), (q, i as u64)) {
                panic!("message stored twice: at {prev:?} and {q}/{i}");
            }
        }
        let max = node.max_offset(topic, q).await?;
        assert_eq!(
            max,
            msgs.len() as u64,
            "queue {q}: max_offset equals the number of readable messages"
        );
        total += msgs.len() as u64;
        for ((aq, off), a) in acked.range((q, 0)..(q + 1, 0)) {
            assert_eq!(*aq, q);
            let m = msgs.get(*off as usize).unwrap_or_else(|| {
                panic!(
                    "acknowledged {q}/{off} lost: queue has only {} messages after kill -9",
                    msgs.len()
                )
            });
            assert_eq!(
                body_bytes(m),
                a.body,
                "acknowledged {q}/{off}: bytes differ"
            );
            assert_eq!(
                m["message_id"],
                a.id.as_str(),
                "acknowledged {q}/{off}: id differs"
            );
        }
    }
    Ok(total)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// kill -9: SYNC data is on disk, ASYNC data in the page cache; both survive a process crash.
    Kill9,
    /// SIGTERM: the node drains; nothing acknowledged may be lost, whatever the durability.
    Sigterm,
}

async fn stop_under_load(durability: &str, stop: Stop) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path();
    // Small segments so the stop can also land near a seal.
    let args = ["--segment-bytes", "65536"];
    let topic = "under-load";
    let acked: AckLog = Arc::new(Mutex::new(BTreeMap::new()));

    let mut node = Node::start(data, &args)?;
    node.create_topic(topic, QUEUES, "NORMAL", durability)
        .await?;

    // Two rounds: the second one stops a node that itself recovered.
    for round in 0..2u64 {
        let url = node.url(&format!("/v1/topics/{topic}/messages"));
        let before = acked.lock().unwrap_or_else(|e| e.into_inner()).len();
        let tasks: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                tokio::spawn(produce_until_killed(
                    node.client.clone(),
                    url.clone(),
                    round,
                    p,
                    acked.clone(),
                ))
            })
            .collect();
        // Let the producers get well under way, then stop the node mid-flight.
        let log = acked.clone();
        wait_until(
            Duration::from_secs(60),
            "1500 acknowledged messages",
            || {
                let log = log.clone();
                async move { log.lock().unwrap_or_else(|e| e.into_inner()).len() >= before + 1500 }
            },
        )
        .await?;
        match stop {
            Stop::Kill9 => node.kill9()?,
            Stop::Sigterm => node.stop_clean()?,
        }
        for t in tasks {
            t.await?;
        }
        let snapshot = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
        eprintln!(
            "{durability} {stop:?} round {round}: {} acknowledged before the stop",
            snapshot.len()
        );

        node = Node::start(data, &args)?;
        let total = verify(&node, topic, &snapshot).await?;
        assert!(total >= snapshot.len() as u64);
        eprintln!(
            "{durability} {stop:?} round {round}: {total} stored after restart (acknowledged {})",
            snapshot.len()
        );

        // The recovered queues accept writes at the next contiguous offset.
        for q in 0..QUEUES {
            let max = node.max_offset(topic, q).await?;
            let r = node
                .produce_ok(
                    topic,
                    json!([{"body": format!("probe {round} {q}"), "queue": q}]),
                )
                .await?;
            assert_eq!(r[0].offset, max, "queue {q}: first write after recovery");
            acked.lock().unwrap_or_else(|e| e.into_inner()).insert(
                (q, max),
                Acked {
                    id: r[0].message_id.clone(),
                    body: format!("probe {round} {q}").into_bytes(),
                },
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_under_sync_load_loses_nothing_acknowledged() -> anyhow::Result<()> {
    stop_under_load("SYNC", Stop::Kill9).await
}

/// ASYNC writes are in the page cache once acknowledged: a process crash
/// (unlike a machine crash) must not lose them either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_under_async_load_loses_nothing_acknowledged() -> anyhow::Result<()> {
    stop_under_load("ASYNC", Stop::Kill9).await
}

/// SIGTERM drains: in-flight requests finish, nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_async_load_loses_nothing_acknowledged() -> anyhow::Result<()> {
    stop_under_load("ASYNC", Stop::Sigterm).await
}
