//! Delay timers (`broker/src/timers/`) in process, against a same-run NORMAL
//! baseline (docs/BENCHMARKS.md, "Delay timers"). Three scenarios, each run
//! in a fresh data directory, SYNC topics with `--queues` queues (8),
//! `--body`-byte bodies (100), `--batch` messages per produce call (100):
//!
//! - `produce`: `--messages` (1,000,000) delay messages, delays uniform over
//!   [1 h, 40 days] (40 days is the default `max_delay_ms`), from
//!   `--producers` (8) concurrent tasks, each pinned to a queue; then the same
//!   to a NORMAL topic (the order alternates run by run). msgs/s and call
//!   latency of both, and the ratio delay/normal.
//! - `pending`: `--pending` (10,000,000) delay messages scheduled the same
//!   way, then a restart. Each step runs in its own child process (this
//!   binary again) so RssAnon is not blurred by an earlier run: *fill*
//!   (RssAnon before/after, bytes per pending timer, one job tick with and
//!   without housekeeping), *restart* with the page cache warm (time of
//!   `Broker::open_with_clock`, of `pending_timers` (recovers every
//!   journal), of serving every queue, RssAnon after and its peak; then the
//!   split of recovery into journal read + decode and index build, redone on
//!   the same files), and *restart* again after dropping the journal's pages
//!   from the page cache (`dd iflag=nocache`).
//! - `fire`: the real clock, the node's own `timers` job (every
//!   `TIMER_TICK`, 5 ms). Baseline: the call latency of 200 sequential
//!   NORMAL SYNC produce calls of one batch. Then a steady `--steady-rate`
//!   (10,000) timers due per second for `--steady-seconds` (10), evenly
//!   spaced, scheduled ahead; then a burst of `--burst` (100,000) due in the
//!   same millisecond. Lateness = `store_ms - deliver_at_ms` of each fired
//!   message read back from its queue: p50/p99/max, and the burst's drain
//!   time (last `store_ms` - due time).
//! - `fire-loaded`: `fire` with `--background` (10,000,000) far-future
//!   timers pending in the steady topic's queues meanwhile (the job's
//!   housekeeping walks every pending timer once a second).
//!
//! Medians over `--runs` (3) runs are printed at the end of each scenario.
//! Nothing is asserted: read medians.
//!
//!   cargo bench -p shale-broker --bench timers -- --runs 3
//!   cargo bench -p shale-broker --bench timers -- --scenarios fire --runs 1

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use shale_broker::produce::plan::DEFAULT_MAX_DELAY_MS;
use shale_broker::produce::{DelayInput, MessageInput, ProduceBatch};
use shale_broker::read::ReadRequest;
use shale_broker::tasks::Background;
use shale_broker::timers::journal::{Entry, entry_of};
use shale_broker::timers::{FireState, Key, TimerIndex};
use shale_broker::topic_admin::NewTopic;
use shale_broker::{Broker, BrokerConfig, Clock, Durability, MessageType, SystemClock};
use shale_hot::{HotConfig, HotStore};
use shale_tiering::ObjectStoreUrl;

const HOUR_MS: i64 = 3_600_000;
/// Topic names.
const DELAY: &str = "delay";
const NORMAL: &str = "normal";

#[derive(Debug, Clone)]
struct Options {
    scenarios: Vec<String>,
    runs: usize,
    messages: u64,
    pending: u64,
    producers: u64,
    batch: u64,
    queues: u32,
    body: usize,
    steady_rate: u64,
    steady_seconds: u64,
    burst: u64,
    /// `fire-loaded`: far-future timers pending in the steady topic meanwhile.
    background: u64,
    /// Where the per-run temporary directories go.
    dir: PathBuf,
    /// Internal: run one step of `pending` in this process (`fill` or `restart`).
    child: Option<String>,
    /// Internal: the data directory of that step.
    child_dir: Option<PathBuf>,
    /// Internal: whether the restart step also splits recovery.
    split: bool,
}

fn options() -> Options {
    let mut o = Options {
        scenarios: ["produce", "pending", "fire", "fire-loaded"]
            .map(String::from)
            .to_vec(),
        runs: 3,
        messages: 1_000_000,
        pending: 10_000_000,
        producers: 8,
        batch: 100,
        queues: 8,
        body: 100,
        steady_rate: 10_000,
        steady_seconds: 10,
        burst: 100_000,
        background: 10_000_000,
        dir: std::env::temp_dir(),
        child: None,
        child_dir: None,
        split: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--scenarios" => o.scenarios = v.split(',').map(str::to_string).collect(),
            "--runs" => o.runs = v.parse().expect("--runs N"),
            "--messages" => o.messages = v.parse().expect("--messages N"),
            "--pending" => o.pending = v.parse().expect("--pending N"),
            "--producers" => o.producers = v.parse().expect("--producers N"),
            "--batch" => o.batch = v.parse().expect("--batch N"),
            "--queues" => o.queues = v.parse().expect("--queues N"),
            "--body" => o.body = v.parse().expect("--body BYTES"),
            "--steady-rate" => o.steady_rate = v.parse().expect("--steady-rate PER_S"),
            "--steady-seconds" => o.steady_seconds = v.parse().expect("--steady-seconds S"),
            "--burst" => o.burst = v.parse().expect("--burst N"),
            "--background" => o.background = v.parse().expect("--background N"),
            "--dir" => o.dir = PathBuf::from(v),
            "--child" => o.child = Some(v),
            "--child-dir" => o.child_dir = Some(PathBuf::from(v)),
            "--split" => o.split = v == "1",
            // `cargo bench` passes `--bench`; ignore what is not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    assert!(o.runs > 0 && o.batch > 0 && o.producers > 0 && o.queues > 0);
    o
}

/// The process's `RssAnon` in KiB (heap and other anonymous memory, not the
/// page cache of the mapped segments).
fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon line")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn config(dir: &Path) -> BrokerConfig {
    let objects = dir.join("objects");
    std::fs::create_dir_all(&objects).expect("objects dir");
    BrokerConfig {
        data_dir: dir.join("data"),
        object_store: ObjectStoreUrl::File(objects),
        segment_bytes: 64 << 20,
        segment_ms: 600_000,
        hot_bytes: None,
        node_id: "bench".into(),
        cluster: Default::default(),
        object_commit_interval: shale_broker::wal::DEFAULT_INTERVAL,
        max_delay_ms: DEFAULT_MAX_DELAY_MS,
    }
}

fn open(dir: &Path) -> Arc<Broker> {
    Broker::open_with_clock(&config(dir), Arc::new(SystemClock)).expect("broker")
}

/// The node's own `cluster` (lease renewal) and `timers` jobs, nothing else
/// (uploads would fill the process with object-store state).
fn node_jobs(broker: &Arc<Broker>) -> Background {
    let jobs = broker
        .jobs(Duration::from_secs(1))
        .into_iter()
        .filter(|j| j.name == "cluster" || j.name == "timers")
        .collect();
    Background::spawn(jobs)
}

async fn create(broker: &Arc<Broker>, name: &str, message_type: MessageType, queues: u32) {
    broker
        .create_topic(NewTopic {
            name: name.into(),
            queues: Some(queues),
            message_type: Some(message_type),
            retention_ms: None,
            durability: Some(Durability::Sync),
        })
        .await
        .expect("topic");
    for q in 0..queues {
        broker.serve_queue(name, q).await.expect("serve");
    }
}

/// The delay of message `i` (of the whole load); `None`: a NORMAL message.
type Delays = Arc<dyn Fn(u64) -> Option<DelayInput> + Send + Sync>;

fn uniform_delays() -> Delays {
    Arc::new(|_| {
        Some(DelayInput {
            delay_ms: Some(rand::random_range(HOUR_MS..=DEFAULT_MAX_DELAY_MS)),
            ..Default::default()
        })
    })
}

/// What a load gave: messages stored, wall time, call latency (µs).
struct Load {
    messages: u64,
    seconds: f64,
    calls: Histogram<u64>,
}

/// `total` messages (rounded down to whole batches per producer) to
/// `topic`: producer `t` sends messages `t, t + P, t + 2P, ...` in batches
/// of `o.batch`, message `i` to queue `i % queues`.
async fn produce_load(
    broker: &Arc<Broker>,
    topic: &str,
    total: u64,
    o: &Options,
    delays: Delays,
) -> Load {
    let per_producer = total / o.producers / o.batch * o.batch;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..o.producers)
        .map(|t| {
            let (b, topic, delays, done) = (
                broker.clone(),
                topic.to_string(),
                delays.clone(),
                done.clone(),
            );
            let (producers, batch, queues) = (o.producers, o.batch, o.queues);
            let body = Bytes::from(vec![b'a' + (t % 26) as u8; o.body]);
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                let mut k = 0;
                while k < per_producer {
                    let messages = (k..k + batch)
                        .map(|j| {
                            let i = t + j * producers;
                            MessageInput {
                                body: body.clone(),
                                queue: Some((i % u64::from(queues)) as u32),
                                delay: delays(i).unwrap_or_default(),
                                ..Default::default()
                            }
                        })
                        .collect();
                    let call = Instant::now();
                    let out = b
                        .producer(&topic)
                        .expect("producer")
                        .produce(ProduceBatch {
                            messages,
                            transaction: false,
                        })
                        .await
                        .expect("produce");
                    h.record(call.elapsed().as_micros() as u64).expect("record");
                    k += out.len() as u64;
                    done.fetch_add(out.len() as u64, Ordering::Relaxed);
                }
                h
            })
        })
        .collect();
    let progress = {
        let done = done.clone();
        let every = (total / 10).max(1);
        tokio::spawn(async move {
            let mut shown = every;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let d = done.load(Ordering::Relaxed);
                if d >= shown {
                    eprintln!(
                        "    {d} / {total} after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    shown = (d / every + 1) * every;
                }
            }
        })
    };
    let mut calls = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        calls.add(t.await.expect("producer task")).expect("add");
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.abort();
    Load {
        messages: done.load(Ordering::Relaxed),
        seconds,
        calls,
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Column `f` of every run, its median.
fn med<T>(runs: &[T], f: impl Fn(&T) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

fn tempdir(o: &Options) -> tempfile::TempDir {
    std::fs::create_dir_all(&o.dir).expect("bench dir");
    tempfile::Builder::new()
        .prefix("shale-bench-timers-")
        .tempdir_in(&o.dir)
        .expect("tempdir")
}

// ---------------------------------------------------------------- produce

#[derive(Debug, Clone, Copy)]
struct ProduceRun {
    normal: f64,
    delay: f64,
    normal_p50: f64,
    normal_p99: f64,
    delay_p50: f64,
    delay_p99: f64,
}

async fn produce_once(o: &Options, message_type: MessageType) -> Load {
    let dir = tempdir(o);
    let broker = open(dir.path());
    let jobs = node_jobs(&broker);
    let (topic, delays) = match message_type {
        MessageType::Delay => (DELAY, uniform_delays()),
        _ => (NORMAL, Arc::new(|_| None) as Delays),
    };
    create(&broker, topic, message_type, o.queues).await;
    let load = produce_load(&broker, topic, o.messages, o, delays).await;
    jobs.stop().await;
    load
}

async fn scenario_produce(o: &Options) {
    println!(
        "\n### produce: {} messages x {} B per run, batches of {}, {} producers, {} queues, SYNC; delays uniform over [1 h, 40 d]\n",
        o.messages, o.body, o.batch, o.producers, o.queues
    );
    println!(
        "| run | NORMAL msgs/s | NORMAL call p50 / p99 ms | DELAY msgs/s | DELAY call p50 / p99 ms | DELAY / NORMAL |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut runs = Vec::new();
    for run in 0..o.runs {
        // Alternate which goes first (ABBA over the runs).
        let order = if run % 2 == 0 {
            [MessageType::Normal, MessageType::Delay]
        } else {
            [MessageType::Delay, MessageType::Normal]
        };
        let mut got = BTreeMap::new();
        for t in order {
            eprintln!("produce run {run}: {t:?}");
            let load = Box::pin(produce_once(o, t)).await;
            got.insert(t == MessageType::Delay, load);
        }
        let (n, d) = (&got[&false], &got[&true]);
        let r = ProduceRun {
            normal: n.messages as f64 / n.seconds,
            delay: d.messages as f64 / d.seconds,
            normal_p50: ms(&n.calls, 0.5),
            normal_p99: ms(&n.calls, 0.99),
            delay_p50: ms(&d.calls, 0.5),
            delay_p99: ms(&d.calls, 0.99),
        };
        println!(
            "| {run} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {:.0}% |",
            r.normal,
            r.normal_p50,
            r.normal_p99,
            r.delay,
            r.delay_p50,
            r.delay_p99,
            100.0 * r.delay / r.normal
        );
        runs.push(r);
    }
    println!(
        "| **median** | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {:.0}% (median of per-run ratios) |",
        med(&runs, |r| r.normal),
        med(&runs, |r| r.normal_p50),
        med(&runs, |r| r.normal_p99),
        med(&runs, |r| r.delay),
        med(&runs, |r| r.delay_p50),
        med(&runs, |r| r.delay_p99),
        100.0 * med(&runs, |r| r.delay / r.normal)
    );
}

// ---------------------------------------------------------------- pending

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Fill {
    pending: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    fill_seconds: f64,
    /// One `fire_timers` call that housekeeps (saves states, trims journals).
    housekeep_tick_ms: f64,
    /// One right after (nothing due, no housekeeping).
    plain_tick_ms: f64,
    journal_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Restart {
    pending: u64,
    rss_start_kib: u64,
    open_ms: f64,
    recover_ms: f64,
    serve_ms: f64,
    rss_after_kib: u64,
    rss_peak_kib: u64,
    /// The split, redone on the same journal files after the broker is dropped.
    read_decode_ms: f64,
    index_build_ms: f64,
}

impl Restart {
    fn total_ms(&self) -> f64 {
        self.open_ms + self.recover_ms + self.serve_ms
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&e.path(), out),
            Ok(_) => out.push(e.path()),
            Err(_) => {}
        }
    }
}

/// Step `fill` (in a child process): schedules `o.pending` timers on a fresh node.
async fn child_fill(o: &Options, dir: &Path) -> Fill {
    let broker = open(dir);
    create(&broker, DELAY, MessageType::Delay, o.queues).await;
    let rss_before_kib = rss_anon_kib();
    // Lease renewal only: the housekeeping tick is timed below on its own.
    let jobs = Background::spawn(
        broker
            .jobs(Duration::from_secs(1))
            .into_iter()
            .filter(|j| j.name == "cluster")
            .collect(),
    );
    let load = produce_load(&broker, DELAY, o.pending, o, uniform_delays()).await;
    let rss_after_kib = rss_anon_kib();
    let t = Instant::now();
    broker.fire_timers().await; // the first call housekeeps
    let housekeep_tick_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    broker.fire_timers().await;
    let plain_tick_ms = t.elapsed().as_secs_f64() * 1e3;
    jobs.stop().await;
    let pending = broker.pending_timers(DELAY).await.expect("pending");
    drop(broker);
    Fill {
        pending,
        rss_before_kib,
        rss_after_kib,
        fill_seconds: load.seconds,
        housekeep_tick_ms,
        plain_tick_ms,
        journal_bytes: dir_bytes(&dir.join("data").join("timers").join("journal")),
    }
}

/// Samples RssAnon until stopped; the peak seen.
struct PeakSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakSampler {
    fn start() -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = rss_anon_kib();
            while !s.load(Ordering::Relaxed) {
                peak = peak.max(rss_anon_kib());
                std::thread::sleep(Duration::from_millis(2));
            }
            peak.max(rss_anon_kib())
        });
        PeakSampler { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler")
    }
}

/// Step `restart` (in a child process): reopens `dir` and recovers its timers.
async fn child_restart(o: &Options, dir: &Path) -> Restart {
    let rss_start_kib = rss_anon_kib();
    let peak = PeakSampler::start();
    let t = Instant::now();
    let broker = open(dir);
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let pending = broker.pending_timers(DELAY).await.expect("pending");
    let recover_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    for q in 0..o.queues {
        broker.serve_queue(DELAY, q).await.expect("serve");
    }
    let serve_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_after_kib = rss_anon_kib();
    let rss_peak_kib = peak.stop();
    drop(broker);
    let mut r = Restart {
        pending,
        rss_start_kib,
        open_ms,
        recover_ms,
        serve_ms,
        rss_after_kib,
        rss_peak_kib,
        ..Default::default()
    };
    if o.split {
        (r.read_decode_ms, r.index_build_ms) = split_recovery(dir);
    }
    r
}

/// Recovery redone by hand on the journal files: reading and decoding every
/// record as `recover::read_journal` does, then building the index from the
/// keys as `TimerIndex::restore` does; summed over the queues (the broker
/// recovers them one after another).
fn split_recovery(dir: &Path) -> (f64, f64) {
    let root = dir.join("data").join("timers").join("journal");
    let config = HotConfig {
        segment_bytes: 64 << 20,
        indexed_properties: vec![shale_broker::dedup::DEDUP_PROPERTY.to_string()],
        ..Default::default()
    };
    let journals = HotStore::open(&root, config, Arc::new(SystemClock)).expect("journals");
    let (mut read, mut build) = (Duration::ZERO, Duration::ZERO);
    for j in journals.queues() {
        let t = Instant::now();
        let mut keys: Vec<Key> = Vec::new();
        let (mut at, end) = (j.min_offset(), j.max_offset());
        while at < end {
            let records = j.read(at, 4096, 16 << 20).expect("journal read");
            let Some(last) = records.last() else { break };
            at = last.offset + 1;
            keys.extend(records.iter().filter_map(|r| match entry_of(r) {
                Some(Entry::Timer(k)) => Some(k),
                _ => None,
            }));
        }
        read += t.elapsed();
        let t = Instant::now();
        let index = TimerIndex::restore(keys, Vec::new(), &FireState::default(), &[], 0, end, 0, 0);
        build += t.elapsed();
        assert!(index.pending_count() as u64 <= end);
    }
    (read.as_secs_f64() * 1e3, build.as_secs_f64() * 1e3)
}

/// Runs this binary as a child for one step; its `RESULT` line.
fn run_child(o: &Options, step: &str, dir: &Path, split: bool) -> String {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args(["--child", step, "--child-dir"])
        .arg(dir)
        .args(["--split", if split { "1" } else { "0" }])
        .args(["--pending", &o.pending.to_string()])
        .args(["--producers", &o.producers.to_string()])
        .args(["--batch", &o.batch.to_string()])
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

/// Drops the page cache of every journal file (clean pages, after fsync).
fn drop_page_cache(dir: &Path) -> bool {
    let mut files = Vec::new();
    files_under(&dir.join("data").join("timers").join("journal"), &mut files);
    files.iter().all(|f| {
        Command::new("dd")
            .arg(format!("if={}", f.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status()
            .is_ok_and(|s| s.success())
    })
}

struct PendingRun {
    fill: Fill,
    warm: Restart,
    cold: Restart,
}

fn scenario_pending(o: &Options) {
    println!(
        "\n### pending: {} delay messages x {} B, batches of {}, {} producers, {} queues, SYNC; delays uniform over [1 h, 40 d]; each step in its own process\n",
        o.pending, o.body, o.batch, o.producers, o.queues
    );
    println!(
        "| run | fill msgs/s | journal GiB | RssAnon before / after MiB | B per timer | tick with housekeeping / plain ms | restart warm: open + recover + serve ms | RssAnon after / peak MiB | split: read+decode / index build ms | restart cold: open + recover + serve ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut runs = Vec::new();
    for run in 0..o.runs {
        let dir = tempdir(o);
        eprintln!("pending run {run}: fill");
        let fill: Fill =
            serde_json::from_str(&run_child(o, "fill", dir.path(), false)).expect("fill result");
        eprintln!("pending run {run}: restart (warm page cache)");
        let warm: Restart = serde_json::from_str(&run_child(o, "restart", dir.path(), true))
            .expect("restart result");
        eprintln!("pending run {run}: restart (journal pages dropped from the page cache)");
        let dropped = drop_page_cache(dir.path());
        let cold: Restart = serde_json::from_str(&run_child(o, "restart", dir.path(), false))
            .expect("restart result");
        let p = fill.pending.max(1) as f64;
        println!(
            "| {run} | {:.0} | {:.2} | {:.1} / {:.1} | {:.1} | {:.1} / {:.2} | {:.0} + {:.0} + {:.0} = **{:.0}** | {:.1} / {:.1} | {:.0} / {:.0} | {}{:.0} + {:.0} + {:.0} = **{:.0}** |",
            fill.pending as f64 / fill.fill_seconds,
            fill.journal_bytes as f64 / (1u64 << 30) as f64,
            mib(fill.rss_before_kib),
            mib(fill.rss_after_kib),
            (fill.rss_after_kib.saturating_sub(fill.rss_before_kib) * 1024) as f64 / p,
            fill.housekeep_tick_ms,
            fill.plain_tick_ms,
            warm.open_ms,
            warm.recover_ms,
            warm.serve_ms,
            warm.total_ms(),
            mib(warm.rss_after_kib),
            mib(warm.rss_peak_kib),
            warm.read_decode_ms,
            warm.index_build_ms,
            if dropped { "" } else { "(cache not dropped) " },
            cold.open_ms,
            cold.recover_ms,
            cold.serve_ms,
            cold.total_ms(),
        );
        assert_eq!(
            warm.pending, fill.pending,
            "the restart recovered a different number of timers"
        );
        runs.push(PendingRun { fill, warm, cold });
    }
    let per_timer = |r: &PendingRun| {
        (r.fill.rss_after_kib.saturating_sub(r.fill.rss_before_kib) * 1024) as f64
            / r.fill.pending.max(1) as f64
    };
    println!(
        "| **median** | {:.0} | {:.2} | {:.1} / {:.1} | {:.1} | {:.1} / {:.2} | {:.0} + {:.0} + {:.0} = **{:.0}** | {:.1} / {:.1} | {:.0} / {:.0} | {:.0} + {:.0} + {:.0} = **{:.0}** |",
        med(&runs, |r| r.fill.pending as f64 / r.fill.fill_seconds),
        med(&runs, |r| r.fill.journal_bytes as f64 / (1u64 << 30) as f64),
        med(&runs, |r| mib(r.fill.rss_before_kib)),
        med(&runs, |r| mib(r.fill.rss_after_kib)),
        med(&runs, per_timer),
        med(&runs, |r| r.fill.housekeep_tick_ms),
        med(&runs, |r| r.fill.plain_tick_ms),
        med(&runs, |r| r.warm.open_ms),
        med(&runs, |r| r.warm.recover_ms),
        med(&runs, |r| r.warm.serve_ms),
        med(&runs, |r| r.warm.total_ms()),
        med(&runs, |r| mib(r.warm.rss_after_kib)),
        med(&runs, |r| mib(r.warm.rss_peak_kib)),
        med(&runs, |r| r.warm.read_decode_ms),
        med(&runs, |r| r.warm.index_build_ms),
        med(&runs, |r| r.cold.open_ms),
        med(&runs, |r| r.cold.recover_ms),
        med(&runs, |r| r.cold.serve_ms),
        med(&runs, |r| r.cold.total_ms()),
    );
    let pending = runs[0].fill.pending as f64;
    if pending < 10_000_000.0 {
        let scale = 10_000_000.0 / pending;
        println!(
            "\nExtrapolated linearly to 10,000,000 pending (x{scale:.2}, NOT measured): RssAnon growth {:.0} MiB, warm restart {:.0} ms, cold restart {:.0} ms",
            med(&runs, |r| mib(r.fill.rss_after_kib - r.fill.rss_before_kib)) * scale,
            med(&runs, |r| r.warm.total_ms()) * scale,
            med(&runs, |r| r.cold.total_ms()) * scale,
        );
    }
}

// ---------------------------------------------------------------- fire

/// Lateness of every fired message of `topic` (ms), per queue the first and
/// last `store_ms`, and how many were read back.
struct Fired {
    lateness: Histogram<u64>,
    spans: Vec<(i64, i64)>,
    count: u64,
    last_store_ms: i64,
}

async fn read_fired(broker: &Arc<Broker>, topic: &str, queues: u32) -> Fired {
    let mut lateness = Histogram::<u64>::new(3).expect("histogram");
    let mut spans = Vec::new();
    let (mut count, mut last_store_ms) = (0, i64::MIN);
    for q in 0..queues {
        let mut at = 0;
        let mut span = (i64::MAX, i64::MIN);
        loop {
            let req = ReadRequest {
                offset: Some(at),
                max_messages: Some(1024),
                max_bytes: Some(32 << 20),
                ..Default::default()
            };
            let got = broker.read_queue(topic, q, req).await.expect("read");
            let Some(last) = got.records.last() else {
                break;
            };
            at = last.offset + 1;
            for r in &got.records {
                let due = r.deliver_at_ms.expect("a fired message has deliver_at_ms");
                lateness
                    .record((r.store_ms - due).max(0) as u64)
                    .expect("record");
                span = (span.0.min(r.store_ms), span.1.max(r.store_ms));
                last_store_ms = last_store_ms.max(r.store_ms);
                count += 1;
            }
        }
        spans.push(span);
    }
    Fired {
        lateness,
        spans,
        count,
        last_store_ms,
    }
}

/// Waits until `topic` has at most `left` pending, at most until `deadline`; whether it drained.
async fn wait_drained(broker: &Arc<Broker>, topic: &str, left: u64, deadline: Instant) -> bool {
    loop {
        if broker.pending_timers(topic).await.expect("pending") <= left {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Debug, Clone, Copy)]
struct FireRun {
    base_p50: f64,
    base_p99: f64,
    steady_p50: f64,
    steady_p99: f64,
    steady_max: f64,
    burst_p50: f64,
    burst_p99: f64,
    burst_max: f64,
    burst_drain: f64,
}

/// Schedules `n` timers, message `i` due at `due(i)`; how long before the
/// first due time the schedule was done (negative: it overran).
async fn schedule(
    broker: &Arc<Broker>,
    topic: &str,
    n: u64,
    o: &Options,
    due: impl Fn(u64) -> i64 + Send + Sync + 'static,
    first_due: i64,
) -> i64 {
    let delays: Delays = Arc::new(move |i| {
        Some(DelayInput {
            deliver_at_ms: Some(due(i)),
            ..Default::default()
        })
    });
    let load = produce_load(broker, topic, n, o, delays).await;
    assert_eq!(
        load.messages, n,
        "use counts divisible by producers x batch"
    );
    first_due - SystemClock.now_ms()
}

/// One run; `background` far-future timers are scheduled in the steady
/// topic first (they stay pending throughout).
async fn fire_once(o: &Options, run: usize, background: u64) -> FireRun {
    let dir = tempdir(o);
    let broker = open(dir.path());
    let jobs = node_jobs(&broker);
    create(&broker, NORMAL, MessageType::Normal, o.queues).await;
    create(&broker, "steady", MessageType::Delay, o.queues).await;
    create(&broker, "burst", MessageType::Delay, o.queues).await;

    // Baseline: one producer, sequential NORMAL SYNC calls of one batch.
    let base = {
        let one = Options {
            producers: 1,
            ..o.clone()
        };
        produce_load(&broker, NORMAL, 200 * o.batch, &one, Arc::new(|_| None)).await
    };

    if background > 0 {
        eprintln!("fire run {run}: scheduling {background} background timers");
        produce_load(&broker, "steady", background, o, uniform_delays()).await;
    }
    let background = broker.pending_timers("steady").await.expect("pending");

    // Steady: evenly spaced over the window, starting 3 s from now.
    let n = o.steady_rate * o.steady_seconds;
    let window_ms = (o.steady_seconds * 1000) as i64;
    let t0 = SystemClock.now_ms() + 3_000;
    let ahead = schedule(
        &broker,
        "steady",
        n,
        o,
        move |i| t0 + (i as i64 * window_ms) / n as i64,
        t0,
    )
    .await;
    eprintln!("fire run {run}: steady: {n} scheduled {ahead} ms before the first is due");
    let deadline = Instant::now() + Duration::from_millis((ahead.max(0) + window_ms) as u64);
    let drained = wait_drained(
        &broker,
        "steady",
        background,
        deadline + Duration::from_secs(60),
    )
    .await;
    let steady = read_fired(&broker, "steady", o.queues).await;
    eprintln!(
        "fire run {run}: steady: {} fired{}",
        steady.count,
        if drained {
            ""
        } else {
            " (NOT drained within 60 s)"
        }
    );

    // Burst: all in the same millisecond, 3 s from now.
    let t1 = SystemClock.now_ms() + 3_000;
    let ahead = schedule(&broker, "burst", o.burst, o, move |_| t1, t1).await;
    eprintln!(
        "fire run {run}: burst: {} scheduled {ahead} ms before due",
        o.burst
    );
    let deadline = Instant::now() + Duration::from_millis(ahead.max(0) as u64);
    let drained = wait_drained(&broker, "burst", 0, deadline + Duration::from_secs(60)).await;
    let burst = read_fired(&broker, "burst", o.queues).await;
    let spans: Vec<String> = burst
        .spans
        .iter()
        .enumerate()
        .map(|(q, (a, b))| format!("q{q} {}..{}", a - t1, b - t1))
        .collect();
    eprintln!(
        "fire run {run}: burst: {} fired{}; per queue, store_ms - due of its first..last: {}",
        burst.count,
        if drained {
            ""
        } else {
            " (NOT drained within 60 s)"
        },
        spans.join(", ")
    );
    jobs.stop().await;
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64;
    FireRun {
        base_p50: ms(&base.calls, 0.5),
        base_p99: ms(&base.calls, 0.99),
        steady_p50: q(&steady.lateness, 0.5),
        steady_p99: q(&steady.lateness, 0.99),
        steady_max: steady.lateness.max() as f64,
        burst_p50: q(&burst.lateness, 0.5),
        burst_p99: q(&burst.lateness, 0.99),
        burst_max: burst.lateness.max() as f64,
        burst_drain: (burst.last_store_ms - t1) as f64,
    }
}

async fn scenario_fire(o: &Options, background: u64) {
    println!(
        "\n### fire: SystemClock, the node's `timers` job (every 5 ms); {} queues, SYNC, {} B bodies; steady {}/s for {} s, burst {} in one ms; {background} other timers pending (due in [1 h, 40 d]) in the steady topic\n",
        o.queues, o.body, o.steady_rate, o.steady_seconds, o.burst
    );
    println!(
        "| run | baseline: NORMAL SYNC call of {} msgs p50 / p99 ms | steady lateness p50 / p99 / max ms | burst lateness p50 / p99 / max ms | burst drain ms | steady p99 / baseline p99 |",
        o.batch
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut runs = Vec::new();
    for run in 0..o.runs {
        let r = Box::pin(fire_once(o, run, background)).await;
        println!(
            "| {run} | {:.2} / {:.2} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.0} | {:.1} |",
            r.base_p50,
            r.base_p99,
            r.steady_p50,
            r.steady_p99,
            r.steady_max,
            r.burst_p50,
            r.burst_p99,
            r.burst_max,
            r.burst_drain,
            r.steady_p99 / r.base_p99
        );
        runs.push(r);
    }
    println!(
        "| **median** | {:.2} / {:.2} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.0} | {:.1} |",
        med(&runs, |r| r.base_p50),
        med(&runs, |r| r.base_p99),
        med(&runs, |r| r.steady_p50),
        med(&runs, |r| r.steady_p99),
        med(&runs, |r| r.steady_max),
        med(&runs, |r| r.burst_p50),
        med(&runs, |r| r.burst_p99),
        med(&runs, |r| r.burst_max),
        med(&runs, |r| r.burst_drain),
        med(&runs, |r| r.steady_p99 / r.base_p99),
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
        "Delay timers: {} runs; scenarios {}",
        o.runs,
        o.scenarios.join(",")
    );
    for s in &o.scenarios {
        match s.as_str() {
            "produce" => rt.block_on(Box::pin(scenario_produce(&o))),
            "pending" => scenario_pending(&o),
            "fire" => rt.block_on(Box::pin(scenario_fire(&o, 0))),
            "fire-loaded" => rt.block_on(Box::pin(scenario_fire(&o, o.background))),
            other => panic!("unknown scenario {other} (produce, pending, fire, fire-loaded)"),
        }
    }
}
