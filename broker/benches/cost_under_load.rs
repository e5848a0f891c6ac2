//! Object-store requests of one node under produce and consume load, per
//! kind, scaled to an hour (docs/BENCHMARKS.md, "Cost under load").
//!
//! One broker with all its background jobs (flush, upload, checkpoints,
//! cluster heartbeat, write-ahead collection) over a request-counting store;
//! an OBJECT topic and a SYNC topic, `--queues` queues each; `--producers`
//! producers per topic sending batches of 10 × 1 KiB, `--consumers` consumers
//! of one group per topic receiving 16 and acking; `--seconds` of load. The
//! counts are of everything the node sent to the store in that time, scaled
//! to an hour; segments seal after `--segment-ms` (so uploads appear within
//! the window; the default `segment_ms` is 10 minutes, and `segment_bytes`
//! seals earlier under heavy load).
//!
//!   cargo bench -p shale-broker --bench cost_under_load -- --seconds 30
//!   cargo bench -p shale-broker --bench cost_under_load -- --seconds 30 --sync-only 1

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shale_broker::groups::api::{GroupSettings, ReceiveOptions};
use shale_broker::groups::config::{ConsumeFrom, Position};
use shale_broker::produce::{MessageInput, ProduceBatch};
use shale_broker::topic_admin::NewTopic;
use shale_broker::{Broker, BrokerConfig, Durability, MessageType, SystemClock};
use shale_tiering::{FaultStore, Faults, ObjectStoreUrl, Tier};

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let seconds = arg("--seconds", 30.0);
    let queues = arg("--queues", 8.0) as u32;
    let producers = arg("--producers", 4.0) as usize;
    let consumers = arg("--consumers", 2.0) as usize;
    let segment_ms = arg("--segment-ms", 10_000.0) as u64;
    // `--sync-only 1`: leave the OBJECT topic out (what its commits cost is the difference).
    let topics: &'static [&'static str] = if arg("--sync-only", 0.0) > 0.0 {
        &["sync"]
    } else {
        &["obj", "sync"]
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let faults = Faults::default();
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(FaultStore::new(
            Arc::new(object_store::memory::InMemory::new()),
            faults.clone(),
        ));
        let tier = Arc::new(Tier::new(store, object_store::path::Path::default(), 64 << 20));
        let dir = tempfile::tempdir().expect("tempdir");
        let config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            object_store: ObjectStoreUrl::Memory,
            segment_bytes: 64 << 20,
            segment_ms,
            hot_bytes: None,
            node_id: "n0".into(),
            cluster: Default::default(),
            object_commit_interval: shale_broker::wal::DEFAULT_INTERVAL,
            max_delay_ms: shale_broker::produce::plan::DEFAULT_MAX_DELAY_MS,
        };
        let broker = Broker::open_with(&config, Arc::new(SystemClock), tier).expect("broker");
        broker.cluster.join().await.expect("join");
        for (name, durability) in [("obj", Durability::Object), ("sync", Durability::Sync)] {
            broker
                .create_topic(NewTopic {
                    name: name.into(),
                    queues: Some(queues),
                    message_type: Some(MessageType::Normal),
                    retention_ms: None,
                    durability: Some(durability),
                })
                .await
                .expect("topic");
            for q in 0..queues {
                broker.serve_queue(name, q).await.expect("serve");
            }
        }
        let settings = GroupSettings {
            consume_from: Some(ConsumeFrom::Position(Position::Earliest)),
            ..Default::default()
        };
        broker.put_group("g", settings).await.expect("group");
        let background =
            shale_broker::tasks::Background::spawn(broker.jobs(Duration::from_secs(1)));
        faults.reset_counts();
        let stop = Arc::new(AtomicBool::new(false));
        let (produced, consumed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for &topic in topics {
            for _ in 0..producers {
                let (b, stop, produced) = (broker.clone(), stop.clone(), produced.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let batch = ProduceBatch {
                            messages: (0..10)
                                .map(|_| MessageInput {
                                    body: bytes::Bytes::from(vec![b'x'; 1024]),
                                    ..Default::default()
                                })
                                .collect(),
                            transaction: None,
                        };
                        if b.producer(topic).expect("producer").produce(batch).await.is_ok() {
                            produced.fetch_add(10, Ordering::Relaxed);
                        }
                    }
                }));
            }
            for _ in 0..consumers {
                let (b, stop, consumed) = (broker.clone(), stop.clone(), consumed.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let opts = ReceiveOptions {
                            topic: topic.into(),
                            max_messages: Some(16),
                            wait_ms: Some(200),
                            ..Default::default()
                        };
                        let Ok((_, got)) = b.receive("g", opts).await else {
                            continue;
                        };
                        let handles: Vec<String> =
                            got.iter().map(|d| d.receipt_handle.clone()).collect();
                        if !handles.is_empty() && b.ack("g", topic, &handles).await.is_ok() {
                            consumed.fetch_add(handles.len() as u64, Ordering::Relaxed);
                        }
                    }
                }));
            }
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::SeqCst);
        let counts = faults.counts();
        let elapsed = started.elapsed().as_secs_f64();
        for t in tasks {
            let _ = t.await;
        }
        background.stop().await;
        let per_hour = |n: u64| n as f64 * 3600.0 / elapsed;
        println!(
            "one node, topics {topics:?} (obj: OBJECT, sync: SYNC) x {queues} queues, {producers} producers and {consumers} consumers per topic, segment_ms {segment_ms}, {elapsed:.0} s of load"
        );
        println!(
            "produced {:.0} msgs/s, consumed {:.0} msgs/s\n",
            produced.load(Ordering::Relaxed) as f64 / elapsed,
            consumed.load(Ordering::Relaxed) as f64 / elapsed
        );
        println!("| request | in the run | per hour | $ per hour at S3 list prices |");
        println!("|---|---|---|---|");
        let price = |kind: &str, n: f64| match kind {
            "PUT" | "LIST" => n * 0.005 / 1000.0,
            "GET" | "HEAD" => n * 0.0004 / 1000.0,
            _ => 0.0,
        };
        let mut total = 0.0;
        for (kind, n) in [
            ("PUT", counts.puts),
            ("GET", counts.gets),
            ("HEAD", counts.heads),
            ("LIST", counts.lists),
            ("DELETE", counts.deletes),
        ] {
            let h = per_hour(n);
            total += price(kind, h);
            println!("| {kind} | {n} | {h:.0} | {:.3} |", price(kind, h));
        }
        println!("| all | | | {total:.3} (≈ ${:.1}/day) |", total * 24.0);
    });
}
