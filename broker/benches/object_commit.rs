//! OBJECT produce latency against the object store's own PUT latency, in the
//! same run (docs/BENCHMARKS.md, "OBJECT durability").
//!
//! Per store and per run: the **baseline** is `--puts` sequential 1 KiB PUTs
//! through the very store wrapper the broker uses; the **scenario** is
//! `--clients` concurrent producers, each sending single 1 KiB messages to an
//! OBJECT topic (8 queues) for `--seconds`, latency measured around the
//! produce call. Reported per run: PUT p50/p99, produce p50/p99, produce
//! messages/s and PUTs/s (the node's whole request rate), then the medians
//! over `--runs` and `produce p99 - PUT p99` (the target is ≤ 10 ms).
//!
//! Stores: an in-memory store behind the fault store with `--latency-ms`
//! (default 20) injected on every call, and S3 when `SHALE_BENCH_S3` names a
//! URL (`scripts/bench-object.sh` starts moto and sets it). Nothing is
//! asserted: read medians.
//!
//!   cargo bench -p shale-broker --bench object_commit -- --runs 5

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use object_store::ObjectStore;
use object_store::path::Path;
use shale_broker::produce::{MessageInput, ProduceBatch};
use shale_broker::topic_admin::NewTopic;
use shale_broker::{Broker, BrokerConfig, Durability, MessageType, SystemClock};
use shale_tiering::{FaultStore, Faults, ObjectStoreUrl, Tier, open_object_store};

struct Options {
    runs: usize,
    seconds: f64,
    clients: usize,
    puts: usize,
    latency_ms: u64,
    interval_ms: u64,
}

fn options() -> Options {
    let mut o = Options {
        runs: 5,
        seconds: 3.0,
        clients: 16,
        puts: 200,
        latency_ms: 20,
        interval_ms: 10,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--runs" => o.runs = v.parse().expect("--runs N"),
            "--seconds" => o.seconds = v.parse().expect("--seconds S"),
            "--clients" => o.clients = v.parse().expect("--clients N"),
            "--puts" => o.puts = v.parse().expect("--puts N"),
            "--latency-ms" => o.latency_ms = v.parse().expect("--latency-ms MS"),
            "--interval-ms" => o.interval_ms = v.parse().expect("--interval-ms MS"),
            // `cargo bench` passes `--bench`; ignore what is not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

#[derive(Debug, Clone, Copy)]
struct Run {
    put_p50: f64,
    put_p99: f64,
    produce_p50: f64,
    produce_p99: f64,
    messages_per_s: f64,
    puts_per_s: f64,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn baseline(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    n: usize,
    run: usize,
) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    let body = bytes::Bytes::from(vec![7u8; 1024]);
    for i in 0..n {
        let path = prefix.child("bench-put").child(format!("{run}-{i}"));
        let t = Instant::now();
        store
            .put(&path, body.clone().into())
            .await
            .expect("baseline PUT");
        h.record(t.elapsed().as_micros() as u64).expect("record");
    }
    h
}

async fn scenario(broker: &Arc<Broker>, topic: &str, o: &Options) -> (Histogram<u64>, u64) {
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds);
    let tasks: Vec<_> = (0..o.clients)
        .map(|c| {
            let b = broker.clone();
            let topic = topic.to_string();
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let batch = ProduceBatch {
                        messages: vec![MessageInput {
                            body: bytes::Bytes::from(vec![b'a' + (c % 26) as u8; 1024]),
                            queue: Some((c % 8) as u32),
                            ..Default::default()
                        }],
                        transaction: None,
                    };
                    let t = Instant::now();
                    b.producer(&topic)
                        .expect("producer")
                        .produce(batch)
                        .await
                        .expect("produce");
                    h.record(t.elapsed().as_micros() as u64).expect("record");
                    n += 1;
                }
                (h, n)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    let mut total = 0;
    for t in tasks {
        let (h, n) = t.await.expect("client");
        all.add(h).expect("add");
        total += n;
    }
    (all, total)
}

async fn bench_store(name: &str, store: Arc<dyn ObjectStore>, prefix: Path, o: &Options) {
    let faults = Faults::default();
    if name.starts_with("memory") {
        faults.set_latency(Duration::from_millis(o.latency_ms));
    }
    let counted: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(store, faults.clone()));
    let mut runs = Vec::new();
    for run in 0..o.runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_prefix = prefix.child(format!("run-{}-{run}", std::process::id()));
        let tier = Arc::new(Tier::new(counted.clone(), run_prefix.clone(), 64 << 20));
        let config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            object_store: ObjectStoreUrl::Memory,
            segment_bytes: 64 << 20,
            segment_ms: 3_600_000,
            hot_bytes: None,
            node_id: "bench".into(),
            cluster: Default::default(),
            object_commit_interval: Duration::from_millis(o.interval_ms),
            max_delay_ms: shale_broker::produce::plan::DEFAULT_MAX_DELAY_MS,
        };
        let broker = Broker::open_with(&config, Arc::new(SystemClock), tier).expect("broker");
        broker.cluster.join().await.expect("join");
        // The node's lease is renewed as its `cluster` job would: a node that
        // stops renewing stops writing (and its OBJECT commits fail).
        let renewing = {
            let b = broker.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    b.cluster_tick().await;
                }
            })
        };
        broker
            .create_topic(NewTopic {
                name: "t".into(),
                queues: Some(8),
                message_type: Some(MessageType::Normal),
                retention_ms: None,
                durability: Some(Durability::Object),
            })
            .await
            .expect("topic");
        for q in 0..8 {
            broker.serve_queue("t", q).await.expect("serve");
        }
        let puts = baseline(&counted, &run_prefix, o.puts, run).await;
        let before = faults.counts().puts;
        let started = Instant::now();
        let (produce, messages) = scenario(&broker, "t", o).await;
        let elapsed = started.elapsed().as_secs_f64();
        let r = Run {
            put_p50: ms(&puts, 0.5),
            put_p99: ms(&puts, 0.99),
            produce_p50: ms(&produce, 0.5),
            produce_p99: ms(&produce, 0.99),
            messages_per_s: messages as f64 / elapsed,
            puts_per_s: (faults.counts().puts - before) as f64 / elapsed,
        };
        println!(
            "| {name} | {run} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
            r.put_p50, r.put_p99, r.produce_p50, r.produce_p99, r.messages_per_s, r.puts_per_s
        );
        runs.push(r);
        renewing.abort();
    }
    let median = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (pp99, op99) = (median(|r| r.put_p99), median(|r| r.produce_p99));
    println!(
        "| {name} | **median** | {:.1} | {pp99:.1} | {:.1} | {op99:.1} | {:.0} | {:.0} |",
        median(|r| r.put_p50),
        median(|r| r.produce_p50),
        median(|r| r.messages_per_s),
        median(|r| r.puts_per_s)
    );
    println!(
        "\n{name}: produce p99 - PUT p99 = {:.1} ms (target <= 10 ms); produce p50 / PUT p50 = {:.2}\n",
        op99 - pp99,
        median(|r| r.produce_p50) / median(|r| r.put_p50)
    );
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "OBJECT produce vs PUT: {} runs, {} clients x {} s, 1 KiB messages, {} baseline PUTs, commit interval {} ms\n",
            o.runs, o.clients, o.seconds, o.puts, o.interval_ms
        );
        println!("| store | run | PUT p50 ms | PUT p99 ms | produce p50 ms | produce p99 ms | msgs/s | PUTs/s |");
        println!("|---|---|---|---|---|---|---|---|");
        let memory: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        bench_store(&format!("memory +{} ms", o.latency_ms), memory, Path::default(), &o).await;
        if let Ok(url) = std::env::var("SHALE_BENCH_S3") {
            let url = ObjectStoreUrl::parse(&url).expect("SHALE_BENCH_S3 must be s3://bucket/prefix");
            let (store, prefix) = open_object_store(&url).expect("S3 store");
            bench_store("s3 (moto)", store, prefix, &o).await;
        }
    });
}
