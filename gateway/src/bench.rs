//! `shale bench`: the system benchmark of a node, over loopback HTTP.
//!
//! Three measurements, each repeated `--runs` times and reported as medians:
//!
//! - **throughput** (default): 1 KiB messages (`--message-bytes`) in batches
//!   of 1 and 100, topics with durability ASYNC and SYNC, `--clients`
//!   concurrent keep-alive HTTP clients for `--seconds` each. Per scenario:
//!   msgs/s, MB/s (payload bytes, 10^6), request latency p50/p99
//!   (hdrhistogram). In the same run and on the same file system, the
//!   **baseline**: the same payload bytes written by the same number of plain
//!   `std::fs::File` writers, each calling `sync_data()` after every batch.
//!   Each scenario's MB/s is reported as a ratio to the baseline of its batch
//!   size. Baseline and scenarios are interleaved run by run so that noise on
//!   a shared machine hits both alike.
//! - **restart** (`--restart-gb G`): a spawned `shale serve` is filled with G
//!   GiB of hot data, then restarted: time from process spawn to the
//!   `shale listening on` line, after a clean SIGTERM and after a kill -9.
//! - **memory** (`--memory-messages N`): a spawned node stores N messages;
//!   then `RssAnon` (anonymous memory: heap, not the page cache of the
//!   mmapped segments) is read from `/proc/<pid>/status`, and again after a
//!   restart.
//!
//! The node under test is built in-process from the library
//! ([`AppState::open`] + [`app`]) on a fresh directory under `--dir`, served
//! on `127.0.0.1:0`, unless `--url` names a running node. Restart and memory
//! spawn the binary (`--bin`, default: this executable). Output is a Markdown
//! report, or JSON with `--json`. No result is asserted: the machine may be
//! shared and noisy, so read medians and same-run ratios.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::app::app;
use crate::config::NodeConfig;
use crate::state::AppState;

/// Options of `shale bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Benchmark a running node at this base URL (`http://127.0.0.1:8080`)
    /// instead of an in-process one. The baseline still writes under `--dir`,
    /// which should then be on the node's disk.
    #[arg(long)]
    pub url: Option<String>,
    /// Where the in-process node, the baseline files and spawned nodes keep
    /// their data (a fresh subdirectory, removed at the end). Use the disk
    /// you want to measure, not a tmpfs.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Repetitions of every measurement; medians are reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Measured seconds per scenario and run (after a short warm-up).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Concurrent HTTP clients, and concurrent raw writers for the baseline.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Queues of each benchmark topic.
    #[arg(long, default_value_t = 4)]
    pub queues: u32,
    /// Body size of every message.
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Batch sizes (messages per request) to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    pub batches: Vec<usize>,
    /// Durabilities to measure.
    #[arg(long, value_delimiter = ',', default_value = "ASYNC,SYNC")]
    pub durabilities: Vec<String>,
    /// Skip the throughput scenarios (run only restart and/or memory).
    #[arg(long)]
    pub no_throughput: bool,
    /// Measure restart time with this many GiB of hot data (0 = skip).
    #[arg(long, default_value_t = 0.0)]
    pub restart_gb: f64,
    /// Measure RssAnon after storing this many messages (0 = skip).
    #[arg(long, default_value_t = 0)]
    pub memory_messages: u64,
    /// The `shale` binary spawned for restart and memory (default: this executable).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.runs > 0 && args.clients > 0 && args.seconds > 0.0,
        "--runs, --clients and --seconds must be positive"
    );
    ensure!(args.message_bytes > 0, "--message-bytes must be positive");
    let work = args.dir.join(format!("shale-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let work = work.canonicalize()?;
    let result = run_in(&args, &work).await;
    if let Err(e) = std::fs::remove_dir_all(&work) {
        eprintln!("bench: could not remove {}: {e}", work.display());
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_markdown(&args));
    }
    Ok(())
}

async fn run_in(args: &BenchArgs, work: &Path) -> anyhow::Result<Report> {
    let mut report = Report {
        machine: Machine::probe(work),
        ..Report::default()
    };
    if !args.no_throughput {
        report.throughput = Box::pin(throughput(args, work)).await?;
    }
    if args.restart_gb > 0.0 {
        report.restart = Some(Box::pin(restart(args, work)).await?);
    }
    if args.memory_messages > 0 {
        report.memory = Some(Box::pin(memory(args, work)).await?);
    }
    Ok(report)
}

// ---------------------------------------------------------------- results

/// One measured run of one scenario.
#[derive(Debug, Clone)]
struct Sample {
    messages: u64,
    payload_bytes: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

impl Sample {
    fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
    fn mb_per_s(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
    fn p_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// A scenario over all runs.
#[derive(Debug, Clone)]
struct Scenario {
    /// `ASYNC`, `SYNC` or `raw fsync` (the baseline).
    kind: String,
    batch: usize,
    samples: Vec<Sample>,
    /// Per run: this scenario's MB/s divided by the same run's baseline MB/s.
    ratios: Vec<f64>,
}

impl Scenario {
    fn median(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        median(self.samples.iter().map(f).collect())
    }
    fn to_json(&self) -> Value {
        json!({
            "kind": self.kind,
            "batch": self.batch,
            "median_msgs_per_s": self.median(Sample::msgs_per_s),
            "median_mb_per_s": self.median(Sample::mb_per_s),
            "median_p50_ms": self.median(|s| s.p_ms(0.5)),
            "median_p99_ms": self.median(|s| s.p_ms(0.99)),
            "median_ratio_to_baseline": (!self.ratios.is_empty()).then(|| median(self.ratios.clone())),
            "runs": self.samples.iter().zip(self.ratios.iter().map(Some).chain(std::iter::repeat(None))).map(|(s, r)| json!({
                "msgs_per_s": s.msgs_per_s(), "mb_per_s": s.mb_per_s(),
                "p50_ms": s.p_ms(0.5), "p99_ms": s.p_ms(0.99), "requests": s.hist.len(),
                "ratio_to_baseline": r,
            })).collect::<Vec<_>>(),
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Debug, Clone, Default)]
struct RestartResult {
    hot_bytes: u64,
    messages: u64,
    segments: usize,
    fill_mb_per_s: f64,
    clean_ms: Vec<f64>,
    crash_ms: Vec<f64>,
}

#[derive(Debug, Clone, Default)]
struct MemoryResult {
    messages: u64,
    rss_anon_kib: u64,
    vm_rss_kib: u64,
    rss_anon_after_restart_kib: u64,
}

#[derive(Debug, Clone, Default)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    disk: String,
    kernel: String,
}

impl Machine {
    fn probe(dir: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu_model,
            disk: disk_of(dir),
            kernel,
        }
    }
}

/// `device (fstype)` of the mount holding `dir`, plus whether it is rotational.
fn disk_of(dir: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let dir = dir.to_string_lossy();
    let best = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .filter(|(_, mnt, _)| dir.starts_with(mnt))
        .max_by_key(|(_, mnt, _)| mnt.len());
    let Some((dev, mnt, fstype)) = best else {
        return "unknown".into();
    };
    let name = dev.rsplit('/').next().unwrap_or(dev);
    let rotational = std::fs::read_to_string(format!("/sys/block/{name}/queue/rotational"))
        .map(|s| {
            if s.trim() == "1" {
                ", rotational"
            } else {
                ", non-rotational"
            }
        })
        .unwrap_or("");
    format!("{dev} on {mnt} ({fstype}{rotational})")
}

#[derive(Debug, Default)]
struct Report {
    machine: Machine,
    throughput: Vec<Scenario>,
    restart: Option<RestartResult>,
    memory: Option<MemoryResult>,
}

const TARGET_SYNC_RATIO: f64 = 0.5;
const TARGET_SYNC_P99_MS: f64 = 5.0;
const TARGET_RESTART_MS: f64 = 2000.0;
const TARGET_RSS_ANON_KIB: u64 = 200 * 1024;

impl Report {
    fn scenario(&self, kind: &str, batch: usize) -> Option<&Scenario> {
        self.throughput
            .iter()
            .find(|s| s.kind == kind && s.batch == batch)
    }

    /// Each target of the issue: (name, measured, met?) when measured.
    fn targets(&self) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        if let Some(s) = self.scenario("SYNC", 100) {
            let r = median(s.ratios.clone());
            out.push((
                "SYNC batch-100 MB/s ≥ 50% of raw fsync MB/s".into(),
                format!(
                    "{:.0}% ({:.1} vs {:.1} MB/s)",
                    r * 100.0,
                    s.median(Sample::mb_per_s),
                    self.baseline_mb(100)
                ),
                r >= TARGET_SYNC_RATIO,
            ));
        }
        if let Some(s) = self.scenario("SYNC", 1) {
            let p99 = s.median(|x| x.p_ms(0.99));
            out.push((
                "SYNC single-message p99 < 5 ms".into(),
                format!("{p99:.2} ms"),
                p99 < TARGET_SYNC_P99_MS,
            ));
        }
        if let Some(r) = &self.restart {
            let worst = median(r.clean_ms.clone()).max(median(r.crash_ms.clone()));
            out.push((
                format!(
                    "restart with {:.1} GB hot data < 2 s",
                    r.hot_bytes as f64 / 1e9
                ),
                format!(
                    "{:.0} ms clean, {:.0} ms after kill -9",
                    median(r.clean_ms.clone()),
                    median(r.crash_ms.clone())
                ),
                worst < TARGET_RESTART_MS,
            ));
        }
        if let Some(m) = &self.memory {
            out.push((
                format!("RssAnon after {} messages < 200 MiB", m.messages),
                format!("{:.1} MiB", m.rss_anon_kib as f64 / 1024.0),
                m.rss_anon_kib < TARGET_RSS_ANON_KIB,
            ));
        }
        out
    }

    fn baseline_mb(&self, batch: usize) -> f64 {
        self.scenario(BASELINE, batch)
            .map_or(f64::NAN, |s| s.median(Sample::mb_per_s))
    }

    fn to_json(&self) -> Value {
        json!({
            "machine": {"cpus": self.machine.cpus, "cpu_model": self.machine.cpu_model,
                        "disk": self.machine.disk, "kernel": self.machine.kernel},
            "throughput": self.throughput.iter().map(Scenario::to_json).collect::<Vec<_>>(),
            "restart": self.restart.as_ref().map(|r| json!({
                "hot_bytes": r.hot_bytes, "messages": r.messages, "segments": r.segments,
                "fill_mb_per_s": r.fill_mb_per_s,
                "clean_ms": r.clean_ms, "crash_ms": r.crash_ms,
                "median_clean_ms": median(r.clean_ms.clone()), "median_crash_ms": median(r.crash_ms.clone()),
            })),
            "memory": self.memory.as_ref().map(|m| json!({
                "messages": m.messages, "rss_anon_kib": m.rss_anon_kib, "vm_rss_kib": m.vm_rss_kib,
                "rss_anon_after_restart_kib": m.rss_anon_after_restart_kib,
            })),
            "targets": self.targets().into_iter().map(|(name, value, met)| json!({"target": name, "measured": value, "met": met})).collect::<Vec<_>>(),
        })
    }

    fn to_markdown(&self, args: &BenchArgs) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Machine: {} CPUs ({}), disk {}, kernel {}",
            m.cpus, m.cpu_model, m.disk, m.kernel
        );
        if !self.throughput.is_empty() {
            let _ = writeln!(
                s,
                "\nThroughput: {} B messages, {} clients, {} queues, {} s per scenario, medians of {} runs \
                 (MB = 10^6 payload bytes; latency per request)\n",
                args.message_bytes, args.clients, args.queues, args.seconds, args.runs
            );
            let _ = writeln!(
                s,
                "| scenario | batch | msgs/s | MB/s | p50 ms | p99 ms | vs raw fsync (same run) |"
            );
            let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
            for sc in &self.throughput {
                let ratio = if sc.ratios.is_empty() {
                    "—".into()
                } else {
                    format!("{:.0}%", median(sc.ratios.clone()) * 100.0)
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {} |",
                    sc.kind,
                    sc.batch,
                    sc.median(Sample::msgs_per_s),
                    sc.median(Sample::mb_per_s),
                    sc.median(|x| x.p_ms(0.5)),
                    sc.median(|x| x.p_ms(0.99)),
                    ratio
                );
            }
        }
        if let Some(r) = &self.restart {
            let _ = writeln!(
                s,
                "\nRestart: {:.2} GB of hot data ({} messages, {} segment files), filled at {:.0} MB/s; \
                 spawn → listening line, medians of {} runs: clean (after SIGTERM) {:.0} ms, after kill -9 {:.0} ms \
                 (all runs: clean {:?}, kill -9 {:?})",
                r.hot_bytes as f64 / 1e9,
                r.messages,
                r.segments,
                r.fill_mb_per_s,
                r.clean_ms.len(),
                median(r.clean_ms.clone()),
                median(r.crash_ms.clone()),
                r.clean_ms
                    .iter()
                    .map(|v| v.round() as u64)
                    .collect::<Vec<_>>(),
                r.crash_ms
                    .iter()
                    .map(|v| v.round() as u64)
                    .collect::<Vec<_>>(),
            );
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                s,
                "\nMemory: after storing {} messages: RssAnon {:.1} MiB (VmRSS {:.1} MiB incl. page cache of mapped segments); \
                 after a restart: RssAnon {:.1} MiB",
                m.messages,
                m.rss_anon_kib as f64 / 1024.0,
                m.vm_rss_kib as f64 / 1024.0,
                m.rss_anon_after_restart_kib as f64 / 1024.0
            );
        }
        let targets = self.targets();
        if !targets.is_empty() {
            let _ = writeln!(s, "\n| target | measured | met |\n| --- | --- | --- |");
            for (name, value, met) in targets {
                let _ = writeln!(
                    s,
                    "| {name} | {value} | {} |",
                    if met { "yes" } else { "**no**" }
                );
            }
        }
        s
    }
}

// ---------------------------------------------------------------- throughput

const BASELINE: &str = "raw fsync";
const WARMUP: Duration = Duration::from_millis(500);

/// A node to benchmark: in-process, or a running one.
struct Target {
    base: String,
    client: reqwest::Client,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

async fn in_process_node(data_dir: &Path) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    std::fs::create_dir_all(data_dir)?;
    let config = NodeConfig {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        ..NodeConfig::default()
    };
    let open_config = config.clone();
    let state = tokio::task::spawn_blocking(move || AppState::open(&open_config)).await??;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = app(state.clone());
    let flush_every = Duration::from_millis(config.flush_interval_ms.max(1));
    let handle = tokio::spawn(async move {
        // ASYNC data is fsynced in the background, as in `shale serve`.
        let ticker = state.clone();
        let maintenance = tokio::spawn(async move {
            let mut tick = tokio::time::interval(flush_every);
            loop {
                tick.tick().await;
                ticker.maintenance_tick().await;
            }
        });
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("bench: in-process server failed: {e}");
        }
        maintenance.abort();
    });
    Ok((format!("http://{addr}"), handle))
}

fn http_client(clients: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()?)
}

async fn throughput(args: &BenchArgs, work: &Path) -> anyhow::Result<Vec<Scenario>> {
    let client = http_client(args.clients)?;
    let target = match &args.url {
        Some(url) => Target {
            base: url.trim_end_matches('/').to_string(),
            client,
            server: None,
        },
        None => {
            let (base, server) = in_process_node(&work.join("node")).await?;
            Target {
                base,
                client,
                server: Some(server),
            }
        }
    };
    let raw_dir = work.join("raw");
    std::fs::create_dir_all(&raw_dir)?;
    let duration = Duration::from_secs_f64(args.seconds);
    let durabilities: Vec<String> = args
        .durabilities
        .iter()
        .map(|d| d.trim().to_ascii_uppercase())
        .collect();

    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut slot = |kind: &str, batch: usize| -> usize {
        if let Some(i) = scenarios
            .iter()
            .position(|s| s.kind == kind && s.batch == batch)
        {
            return i;
        }
        scenarios.push(Scenario {
            kind: kind.into(),
            batch,
            samples: Vec::new(),
            ratios: Vec::new(),
        });
        scenarios.len() - 1
    };
    let mut order = Vec::new();
    for &batch in &args.batches {
        order.push((slot(BASELINE, batch), batch, None));
        for d in &durabilities {
            order.push((slot(d, batch), batch, Some(d.clone())));
        }
    }

    for run in 0..args.runs {
        let mut baseline_mb = std::collections::HashMap::new();
        for (idx, batch, durability) in &order {
            let sample = match durability {
                None => {
                    let dir = raw_dir.clone();
                    let (clients, batch, message_bytes) =
                        (args.clients, *batch, args.message_bytes);
                    let s = tokio::task::spawn_blocking(move || {
                        raw_fsync_writers(&dir, clients, batch, message_bytes, duration)
                    })
                    .await??;
                    baseline_mb.insert(batch, s.mb_per_s());
                    s
                }
                Some(d) => {
                    let topic = format!("bench-{}-{batch}-r{run}", d.to_ascii_lowercase());
                    let s = http_scenario(&target, args, &topic, d, *batch, duration).await?;
                    let ratio = s.mb_per_s() / baseline_mb.get(batch).copied().unwrap_or(f64::NAN);
                    scenarios[*idx].ratios.push(ratio);
                    s
                }
            };
            eprintln!(
                "bench run {}/{}: {:>9} batch {:>3}: {:>9.0} msgs/s {:>8.1} MB/s p50 {:>7.2} ms p99 {:>7.2} ms",
                run + 1,
                args.runs,
                durability.as_deref().unwrap_or(BASELINE),
                batch,
                sample.msgs_per_s(),
                sample.mb_per_s(),
                sample.p_ms(0.5),
                sample.p_ms(0.99)
            );
            scenarios[*idx].samples.push(sample);
        }
    }
    Ok(scenarios)
}

/// A JSON produce request of `batch` messages with `message_bytes` text bodies.
fn produce_body(batch: usize, message_bytes: usize, seed: u64) -> anyhow::Result<Bytes> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let messages: Vec<Value> = (0..batch)
        .map(|_| {
            let body: String = (0..message_bytes)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
                })
                .collect();
            json!({ "body": body })
        })
        .collect();
    Ok(Bytes::from(serde_json::to_vec(
        &json!({ "messages": messages }),
    )?))
}

async fn create_topic(
    target: &Target,
    topic: &str,
    queues: u32,
    durability: &str,
) -> anyhow::Result<()> {
    let r = target
        .client
        .post(format!("{}/v1/topics", target.base))
        .json(&json!({"name": topic, "queues": queues, "message_type": "NORMAL", "durability": durability}))
        .send()
        .await?;
    let status = r.status();
    ensure!(
        status.is_success(),
        "creating topic {topic}: {status} {}",
        r.text().await.unwrap_or_default()
    );
    Ok(())
}

async fn http_scenario(
    target: &Target,
    args: &BenchArgs,
    topic: &str,
    durability: &str,
    batch: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    create_topic(target, topic, args.queues, durability).await?;
    let url = format!("{}/v1/topics/{topic}/messages", target.base);
    let sample = drive_http(
        &target.client,
        &url,
        args.clients,
        batch,
        args.message_bytes,
        WARMUP,
        duration,
    )
    .await;
    // Keep the disk from filling up over many runs.
    let _ = target
        .client
        .delete(format!("{}/v1/topics/{topic}", target.base))
        .send()
        .await;
    sample
}

/// `clients` keep-alive clients post the same pre-serialized batch in a loop
/// for `warmup + duration`; only requests started after the warm-up count.
async fn drive_http(
    client: &reqwest::Client,
    url: &str,
    clients: usize,
    batch: usize,
    message_bytes: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let body = produce_body(batch, message_bytes, c as u64 + 1)?;
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut requests = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                let status = r.status();
                let text = r.bytes().await?;
                if !status.is_success() {
                    bail!("produce: {status} {}", String::from_utf8_lossy(&text));
                }
                let done = Instant::now();
                if t0 >= measure_from && done <= until {
                    hist.record((done - t0).as_micros().max(1) as u64)?;
                    requests += 1;
                }
            }
            anyhow::Ok((hist, requests))
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut requests = 0;
    for t in tasks {
        let (h, n) = t.await??;
        hist.add(h)?;
        requests += n;
    }
    let messages = requests * batch as u64;
    Ok(Sample {
        messages,
        payload_bytes: messages * message_bytes as u64,
        elapsed: duration,
        hist,
    })
}

/// The baseline: `writers` threads, each appending a batch of `batch`
/// messages (`batch × message_bytes` bytes, one `write`) to its own file and
/// calling `sync_data()` after every batch.
fn raw_fsync_writers(
    dir: &Path,
    writers: usize,
    batch: usize,
    message_bytes: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let batch_bytes = batch * message_bytes;
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let until = measure_from + duration;
    let results: Vec<anyhow::Result<(Histogram<u64>, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                scope.spawn(move || {
                    let path = dir.join(format!("raw-{w}.dat"));
                    let mut file = std::fs::File::create(&path)?;
                    let buf = vec![b'x'; batch_bytes];
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                    let mut batches = 0u64;
                    loop {
                        let t0 = Instant::now();
                        if t0 >= until {
                            break;
                        }
                        file.write_all(&buf)?;
                        file.sync_data()?;
                        let done = Instant::now();
                        if t0 >= measure_from && done <= until {
                            hist.record((done - t0).as_micros().max(1) as u64)?;
                            batches += 1;
                        }
                    }
                    drop(file);
                    std::fs::remove_file(&path)?;
                    anyhow::Ok((hist, batches))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("raw writer thread panicked")))
            })
            .collect()
    });
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut batches = 0;
    for r in results {
        let (h, n) = r?;
        hist.add(h)?;
        batches += n;
    }
    Ok(Sample {
        messages: batches * batch as u64,
        payload_bytes: batches * batch_bytes as u64,
        elapsed: duration,
        hist,
    })
}

// ---------------------------------------------------------------- spawned nodes

/// A `shale serve` child process.
struct Spawned {
    child: tokio::process::Child,
    base: String,
    startup: Duration,
}

impl Spawned {
    async fn start(bin: &Path, data_dir: &Path, log: &Path) -> anyhow::Result<Spawned> {
        std::fs::create_dir_all(data_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .current_dir(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
            .await
            .context("no listening line within 300 s")??
            .context("the node exited before its listening line")?;
        let startup = started.elapsed();
        let base = line
            .strip_prefix("shale listening on ")
            .with_context(|| format!("unexpected first stdout line {line:?}"))?
            .trim()
            .to_string();
        // Keep draining stdout so the child never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Spawned {
            child,
            base,
            startup,
        })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("child already reaped")
    }

    async fn sigterm(mut self) -> anyhow::Result<()> {
        let pid = self.pid()? as libc::pid_t;
        // SAFETY: kill(2) on our own child.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        ensure!(
            rc == 0,
            "kill(SIGTERM): {}",
            std::io::Error::last_os_error()
        );
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .context("drain timed out")??;
        ensure!(status.success(), "node exited with {status} after SIGTERM");
        Ok(())
    }

    async fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

fn shale_bin(args: &BenchArgs) -> anyhow::Result<PathBuf> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("locating this executable")?,
    };
    // Spawned nodes run in their data directory: a relative path would miss.
    bin.canonicalize()
        .with_context(|| format!("locating {}", bin.display()))
}

/// `(files, bytes)` of segment files (`*.log`, `*.log.partial`) under `dir`.
fn segment_usage(dir: &Path) -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.to_string_lossy();
            if name.ends_with(".log") || name.ends_with(".log.partial") {
                files += 1;
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    (files, bytes)
}

/// Produces at least `target_bytes` of payload (ASYNC topic) with batches of
/// 100; returns (messages, elapsed).
async fn fill(
    base: &str,
    topic: &str,
    args: &BenchArgs,
    target_messages: u64,
) -> anyhow::Result<(u64, Duration)> {
    let client = http_client(args.clients)?;
    let url = format!("{base}/v1/topics/{topic}/messages");
    let batch = 100usize;
    let requests = target_messages.div_ceil(batch as u64);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let body = produce_body(batch, args.message_bytes, 1000 + c as u64)?;
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return anyhow::Ok(());
                }
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                let status = r.status();
                let text = r.bytes().await?;
                ensure!(
                    status.is_success(),
                    "fill: {status} {}",
                    String::from_utf8_lossy(&text)
                );
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((requests * batch as u64, started.elapsed()))
}

async fn create_topic_at(base: &str, topic: &str, queues: u32) -> anyhow::Result<()> {
    let client = http_client(1)?;
    let target = Target {
        base: base.to_string(),
        client,
        server: None,
    };
    create_topic(&target, topic, queues, "ASYNC").await
}

/// Produces one small message to every queue (so each active segment has a fresh tail).
async fn touch_queues(base: &str, topic: &str, queues: u32) -> anyhow::Result<()> {
    let client = http_client(1)?;
    for q in 0..queues {
        let r = client
            .post(format!("{base}/v1/topics/{topic}/messages"))
            .json(&json!({"messages": [{"body": "tail", "queue": q}]}))
            .send()
            .await?;
        ensure!(r.status().is_success(), "touch queue {q}: {}", r.status());
    }
    Ok(())
}

async fn restart(args: &BenchArgs, work: &Path) -> anyhow::Result<RestartResult> {
    let bin = shale_bin(args)?;
    let data = work.join("restart");
    let log = work.join("restart-node.log");
    let topic = "restart";
    let queues = 8;
    let target_bytes = (args.restart_gb * (1u64 << 30) as f64) as u64;
    let messages = target_bytes.div_ceil(args.message_bytes as u64);

    let node = Spawned::start(&bin, &data, &log).await?;
    create_topic_at(&node.base, topic, queues).await?;
    eprintln!(
        "bench restart: filling {:.2} GiB ({messages} messages)…",
        args.restart_gb
    );
    let (stored, took) = fill(&node.base, topic, args, messages).await?;
    let fill_mb_per_s = (stored * args.message_bytes as u64) as f64 / 1e6 / took.as_secs_f64();
    node.sigterm().await?;
    let (segments, hot_bytes) = segment_usage(&data.join("hot"));
    eprintln!(
        "bench restart: {hot_bytes} bytes in {segments} segment files, filled at {fill_mb_per_s:.0} MB/s"
    );

    let mut result = RestartResult {
        hot_bytes,
        messages: stored,
        segments,
        fill_mb_per_s,
        ..Default::default()
    };
    for run in 0..args.runs {
        // Clean: the previous process drained on SIGTERM.
        let node = Spawned::start(&bin, &data, &log).await?;
        result.clean_ms.push(node.startup.as_secs_f64() * 1000.0);
        // Crash: fresh tails in every queue, then kill -9.
        touch_queues(&node.base, topic, queues).await?;
        node.kill9().await?;
        let node = Spawned::start(&bin, &data, &log).await?;
        result.crash_ms.push(node.startup.as_secs_f64() * 1000.0);
        eprintln!(
            "bench restart run {}/{}: clean {:.0} ms, after kill -9 {:.0} ms",
            run + 1,
            args.runs,
            result.clean_ms[run],
            result.crash_ms[run]
        );
        node.sigterm().await?;
    }
    Ok(result)
}

/// `(RssAnon, VmRSS)` in KiB from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in status"))?;
        Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
    };
    Ok((field("RssAnon:")?, field("VmRSS:")?))
}

async fn memory(args: &BenchArgs, work: &Path) -> anyhow::Result<MemoryResult> {
    let bin = shale_bin(args)?;
    let data = work.join("memory");
    let log = work.join("memory-node.log");
    let topic = "memory";
    let node = Spawned::start(&bin, &data, &log).await?;
    create_topic_at(&node.base, topic, 8).await?;
    eprintln!("bench memory: storing {} messages…", args.memory_messages);
    let (stored, _) = fill(&node.base, topic, args, args.memory_messages).await?;
    let (rss_anon_kib, vm_rss_kib) = rss_kib(node.pid()?)?;
    node.sigterm().await?;
    let node = Spawned::start(&bin, &data, &log).await?;
    let (rss_anon_after_restart_kib, _) = rss_kib(node.pid()?)?;
    node.sigterm().await?;
    Ok(MemoryResult {
        messages: stored,
        rss_anon_kib,
        vm_rss_kib,
        rss_anon_after_restart_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn produce_body_has_the_requested_shape() -> anyhow::Result<()> {
        let b = produce_body(3, 1024, 1)?;
        let v: Value = serde_json::from_slice(&b)?;
        let msgs = v["messages"].as_array().context("messages")?;
        assert_eq!(msgs.len(), 3);
        assert!(
            msgs.iter()
                .all(|m| m["body"].as_str().map(str::len) == Some(1024))
        );
        Ok(())
    }
}
