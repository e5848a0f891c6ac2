//! Transactions (`broker/src/txn/`) in process, against same-run baselines
//! (docs/BENCHMARKS.md, "Transactions"). SYNC topics of `--queues` (8)
//! queues, `--body`-byte bodies (100), one message per transaction; the
//! object store is a local directory (`file://{run dir}/objects`, the
//! embedded default). The node's `cluster` and `timers` jobs run (spills,
//! check ticks), as on a node.
//!
//! - `latency`: `--calls` (2,000) sequential pairs, alternating a plain SYNC
//!   produce of one message to a NORMAL topic and a half (produce of one
//!   message with `transaction`) followed by its commit to a TRANSACTION
//!   topic; p50/p99 of each, and of the half and the commit alone.
//! - `throughput`: `--clients` (16) concurrent tasks for `--seconds` (5):
//!   plain SYNC produces of one message, then half+commit pairs (the order
//!   alternates run by run); pairs/s over produces/s.
//! - `pending`: `--pending` (1,000,000) transactions stored and left
//!   undecided (`check_after_ms` 1 h), from `--clients` tasks, in a child
//!   process (this binary again, so RssAnon is its own): RssAnon after the
//!   fill and after `Broker::spill_timers` + `malloc_trim(0)`; then another
//!   child restarts on the same directory: time until `pending_transactions`
//!   answers the full count, RssAnon then (and after `malloc_trim`).
//!
//! Each scenario runs `--runs` (3) times in a fresh directory; medians.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use shale_broker::produce::{MessageInput, ProduceBatch};
use shale_broker::topic_admin::NewTopic;
use shale_broker::txn::TxnSettings;
use shale_broker::txn::records::TxnId;
use shale_broker::txn::table::TxnDecision;
use shale_broker::{Broker, BrokerConfig, Durability, MessageType, SystemClock};

use common::{malloc_trim_now, mib, node_jobs, rss_anon_kib};

struct Options {
    scenarios: Vec<String>,
    runs: usize,
    calls: usize,
    clients: usize,
    seconds: f64,
    pending: u64,
    queues: u32,
    body: usize,
    dir: PathBuf,
    child: Option<String>,
    child_dir: Option<PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        scenarios: ["latency", "throughput", "pending"]
            .map(String::from)
            .to_vec(),
        runs: 3,
        calls: 2_000,
        clients: 16,
        seconds: 5.0,
        pending: 1_000_000,
        queues: 8,
        body: 100,
        dir: std::env::temp_dir(),
        child: None,
        child_dir: None,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--scenarios" => o.scenarios = v.split(',').map(str::to_string).collect(),
            "--runs" => o.runs = v.parse().expect("--runs N"),
            "--calls" => o.calls = v.parse().expect("--calls N"),
            "--clients" => o.clients = v.parse().expect("--clients N"),
            "--seconds" => o.seconds = v.parse().expect("--seconds S"),
            "--pending" => o.pending = v.parse().expect("--pending N"),
            "--queues" => o.queues = v.parse().expect("--queues N"),
            "--body" => o.body = v.parse().expect("--body BYTES"),
            "--dir" => o.dir = PathBuf::from(v),
            "--child" => o.child = Some(v),
            "--child-dir" => o.child_dir = Some(PathBuf::from(v)),
            // `cargo bench` passes `--bench`; ignore what is not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    assert!(o.runs > 0 && o.clients > 0 && o.queues > 0);
    o
}

fn config(dir: &Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.join("data"),
        object_store: format!("file://{}", dir.join("objects").display())
            .parse()
            .expect("file url"),
        segment_bytes: 64 << 20,
        segment_ms: 600_000,
        hot_bytes: None,
        node_id: "bench".into(),
        cluster: Default::default(),
        object_commit_interval: shale_broker::wal::DEFAULT_INTERVAL,
        max_delay_ms: shale_broker::produce::plan::DEFAULT_MAX_DELAY_MS,
    }
}

fn open(dir: &Path) -> Arc<Broker> {
    std::fs::create_dir_all(dir.join("objects")).expect("objects dir");
    Broker::open_with_clock(&config(dir), Arc::new(SystemClock)).expect("open")
}

async fn create(broker: &Arc<Broker>, name: &str, message_type: MessageType, queues: u32) {
    broker
        .create_topic(NewTopic {
            name: name.into(),
            queues: Some(queues),
            message_type: Some(message_type),
            durability: Some(Durability::Sync),
            ..Default::default()
        })
        .await
        .expect("create topic");
}

fn body(o: &Options) -> Bytes {
    Bytes::from(vec![b'x'; o.body])
}

async fn plain(broker: &Arc<Broker>, queue: u32, body: &Bytes) {
    let batch = ProduceBatch {
        messages: vec![MessageInput {
            body: body.clone(),
            queue: Some(queue),
            ..Default::default()
        }],
        transaction: None,
    };
    broker
        .producer("plain")
        .expect("producer")
        .produce(batch)
        .await
        .expect("produce");
}

/// Stores a one-message transaction; its id.
async fn half(broker: &Arc<Broker>, queue: u32, body: &Bytes, check_after_ms: u32) -> String {
    let batch = ProduceBatch {
        messages: vec![MessageInput {
            body: body.clone(),
            queue: Some(queue),
            ..Default::default()
        }],
        transaction: Some(TxnSettings {
            producer_group: "bench".into(),
            check_after_ms,
        }),
    };
    let got = broker
        .producer("txn")
        .expect("producer")
        .produce(batch)
        .await
        .expect("half");
    TxnId {
        first: got[0].message_id,
        topic: "txn".into(),
    }
    .to_string()
}

async fn commit(broker: &Arc<Broker>, id: &str) {
    let d = broker
        .decide_transaction(id, TxnDecision::Committed)
        .await
        .expect("commit");
    assert!(d.now);
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn tempdir(o: &Options) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shale-bench-txn-")
        .tempdir_in(&o.dir)
        .expect("tempdir")
}

#[derive(Debug, Default, Clone)]
struct Latency {
    plain: [f64; 2],
    pair: [f64; 2],
    half: [f64; 2],
    commit: [f64; 2],
}

async fn latency_once(o: &Options) -> Latency {
    let dir = tempdir(o);
    let broker = open(dir.path());
    let jobs = node_jobs(&broker);
    create(&broker, "plain", MessageType::Normal, o.queues).await;
    create(&broker, "txn", MessageType::Transaction, o.queues).await;
    let body = body(o);
    let new = || Histogram::<u64>::new(3).expect("histogram");
    let (mut hp, mut hpair, mut hh, mut hc) = (new(), new(), new(), new());
    for i in 0..o.calls {
        let q = i as u32 % o.queues;
        let t = Instant::now();
        plain(&broker, q, &body).await;
        hp.record(t.elapsed().as_micros() as u64).ok();
        let t = Instant::now();
        let id = half(&broker, q, &body, 60_000).await;
        let stored = t.elapsed();
        commit(&broker, &id).await;
        hh.record(stored.as_micros() as u64).ok();
        hc.record((t.elapsed() - stored).as_micros() as u64).ok();
        hpair.record(t.elapsed().as_micros() as u64).ok();
    }
    jobs.stop().await;
    let two = |h: &Histogram<u64>| [ms(h, 0.5), ms(h, 0.99)];
    Latency {
        plain: two(&hp),
        pair: two(&hpair),
        half: two(&hh),
        commit: two(&hc),
    }
}

async fn scenario_latency(o: &Options) {
    println!(
        "\n== latency: {} sequential pairs (plain SYNC produce | half + commit), {} B, {} queues",
        o.calls, o.body, o.queues
    );
    let mut runs = Vec::new();
    for r in 0..o.runs {
        let l = latency_once(o).await;
        println!(
            "  run {}: plain p50 {:.2} p99 {:.2} ms | half+commit p50 {:.2} p99 {:.2} ms (half p50 {:.2} p99 {:.2}, commit p50 {:.2} p99 {:.2})",
            r + 1,
            l.plain[0],
            l.plain[1],
            l.pair[0],
            l.pair[1],
            l.half[0],
            l.half[1],
            l.commit[0],
            l.commit[1]
        );
        runs.push(l);
    }
    let med = |f: &dyn Fn(&Latency) -> f64| median(runs.iter().map(f).collect());
    println!(
        "  median: plain p50 {:.2} p99 {:.2} ms | half+commit p50 {:.2} p99 {:.2} ms ({:.2}x / {:.2}x the plain produce)",
        med(&|l| l.plain[0]),
        med(&|l| l.plain[1]),
        med(&|l| l.pair[0]),
        med(&|l| l.pair[1]),
        med(&|l| l.pair[0] / l.plain[0]),
        med(&|l| l.pair[1] / l.plain[1]),
    );
}

/// Operations per second of `clients` tasks running `op` for `seconds`.
async fn rate<F, Fut>(o: &Options, op: F) -> f64
where
    F: Fn(u32) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..o.clients {
        let (stop, done, op) = (stop.clone(), done.clone(), op.clone());
        let q = c as u32 % o.queues;
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                op(q).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        t.await.expect("client");
    }
    n as f64 / elapsed
}

async fn scenario_throughput(o: &Options) {
    println!(
        "\n== throughput: {} clients x {} s, one message per call, {} B, {} queues",
        o.clients, o.seconds, o.body, o.queues
    );
    let mut ratios = Vec::new();
    let (mut plains, mut pairs) = (Vec::new(), Vec::new());
    for r in 0..o.runs {
        let dir = tempdir(o);
        let broker = open(dir.path());
        let jobs = node_jobs(&broker);
        create(&broker, "plain", MessageType::Normal, o.queues).await;
        create(&broker, "txn", MessageType::Transaction, o.queues).await;
        let b = body(o);
        let plain_op = {
            let (broker, b) = (broker.clone(), b.clone());
            move |q: u32| {
                let (broker, b) = (broker.clone(), b.clone());
                async move { plain(&broker, q, &b).await }
            }
        };
        let pair_op = {
            let (broker, b) = (broker.clone(), b.clone());
            move |q: u32| {
                let (broker, b) = (broker.clone(), b.clone());
                async move {
                    let id = half(&broker, q, &b, 60_000).await;
                    commit(&broker, &id).await;
                }
            }
        };
        let (p, t) = if r % 2 == 0 {
            let p = rate(o, plain_op).await;
            (p, rate(o, pair_op).await)
        } else {
            let t = rate(o, pair_op).await;
            (rate(o, plain_op).await, t)
        };
        jobs.stop().await;
        println!(
            "  run {}: plain {:.0} produces/s | {:.0} half+commit pairs/s ({:.0}% of plain)",
            r + 1,
            p,
            t,
            100.0 * t / p
        );
        plains.push(p);
        pairs.push(t);
        ratios.push(t / p);
    }
    println!(
        "  median: plain {:.0}/s, pairs {:.0}/s, ratio {:.0}% (target >= 40%)",
        median(plains),
        median(pairs),
        100.0 * median(ratios)
    );
}

#[derive(Debug, Serialize, Deserialize)]
struct Fill {
    seconds: f64,
    rss_start_kib: u64,
    rss_filled_kib: u64,
    rss_spilled_trimmed_kib: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Restart {
    serving_ms: f64,
    rss_kib: u64,
    rss_trimmed_kib: u64,
}

async fn child_fill(o: &Options, dir: &Path) -> Fill {
    let rss_start_kib = rss_anon_kib();
    let broker = open(dir);
    let jobs = node_jobs(&broker);
    create(&broker, "txn", MessageType::Transaction, o.queues).await;
    let b = body(o);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..o.clients {
        let (broker, b, next) = (broker.clone(), b.clone(), next.clone());
        let total = o.pending;
        let q = c as u32 % o.queues;
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                half(&broker, q, &b, 3_600_000).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("filler");
    }
    let seconds = start.elapsed().as_secs_f64();
    let rss_filled_kib = rss_anon_kib();
    broker.spill_timers("txn").await.expect("spill");
    jobs.stop().await;
    let pending = broker.pending_transactions("txn").await.expect("pending");
    assert_eq!(pending, o.pending);
    let _ = malloc_trim_now();
    Fill {
        seconds,
        rss_start_kib,
        rss_filled_kib,
        rss_spilled_trimmed_kib: rss_anon_kib(),
    }
}

async fn child_restart(o: &Options, dir: &Path) -> Restart {
    let start = Instant::now();
    let broker = open(dir);
    broker.cluster_tick().await;
    for q in 0..o.queues {
        broker.serve_queue("txn", q).await.expect("serve");
    }
    let pending = broker.pending_transactions("txn").await.expect("pending");
    let serving_ms = start.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        pending, o.pending,
        "every transaction pending after the restart"
    );
    let rss_kib = rss_anon_kib();
    let _ = malloc_trim_now();
    Restart {
        serving_ms,
        rss_kib,
        rss_trimmed_kib: rss_anon_kib(),
    }
}

fn run_child(o: &Options, step: &str, dir: &Path) -> String {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args(["--child", step, "--child-dir"])
        .arg(dir)
        .args(["--pending", &o.pending.to_string()])
        .args(["--clients", &o.clients.to_string()])
        .args(["--queues", &o.queues.to_string()])
        .args(["--body", &o.body.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child");
    assert!(out.status.success(), "child {step} failed: {}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_string))
        .expect("child RESULT line")
}

fn scenario_pending(o: &Options) {
    println!(
        "\n== pending: {} undecided transactions (one {} B message each, {} queues), then a restart",
        o.pending, o.body, o.queues
    );
    let (mut serving, mut rss, mut filled) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..o.runs {
        let dir = tempdir(o);
        let fill: Fill = serde_json::from_str(&run_child(o, "fill", dir.path())).expect("fill");
        let restart: Restart =
            serde_json::from_str(&run_child(o, "restart", dir.path())).expect("restart");
        println!(
            "  run {}: fill {:.1} s ({:.0}/s), RssAnon {:.0} -> {:.0} MiB filled, {:.0} MiB spilled+trimmed | restart to serving {:.0} ms, RssAnon {:.0} MiB ({:.0} trimmed, {:.0} B per pending transaction)",
            r + 1,
            fill.seconds,
            o.pending as f64 / fill.seconds,
            mib(fill.rss_start_kib),
            mib(fill.rss_filled_kib),
            mib(fill.rss_spilled_trimmed_kib),
            restart.serving_ms,
            mib(restart.rss_kib),
            mib(restart.rss_trimmed_kib),
            restart.rss_trimmed_kib as f64 * 1024.0 / o.pending as f64
        );
        serving.push(restart.serving_ms);
        rss.push(mib(restart.rss_trimmed_kib));
        filled.push(mib(fill.rss_filled_kib));
    }
    println!(
        "  median: restart to serving {:.0} ms (target < 2000), RssAnon after restart {:.0} MiB trimmed, {:.0} MiB while filling",
        median(serving),
        median(rss),
        median(filled)
    );
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(step) = o.child.clone() {
        let dir = o.child_dir.clone().expect("--child-dir");
        let line = match step.as_str() {
            "fill" => serde_json::to_string(&rt.block_on(Box::pin(child_fill(&o, &dir)))),
            "restart" => serde_json::to_string(&rt.block_on(Box::pin(child_restart(&o, &dir)))),
            other => panic!("unknown --child {other}"),
        }
        .expect("json");
        println!("RESULT {line}");
        return;
    }
    println!(
        "Transactions: {} runs; scenarios {}",
        o.runs,
        o.scenarios.join(",")
    );
    for s in &o.scenarios {
        match s.as_str() {
            "latency" => rt.block_on(Box::pin(scenario_latency(&o))),
            "throughput" => rt.block_on(Box::pin(scenario_throughput(&o))),
            "pending" => scenario_pending(&o),
            other => panic!("unknown scenario {other} (latency, throughput, pending)"),
        }
    }
}
