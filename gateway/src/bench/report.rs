//! The results of `shale bench` (samples, scenarios, restart and memory
//! figures, the machine) and their rendering as a Markdown or JSON report,
//! with the targets they are checked against.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::BenchArgs;
use super::throughput::BASELINE;

/// One measured run of one scenario.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    pub(super) messages: u64,
    pub(super) payload_bytes: u64,
    pub(super) elapsed: Duration,
    pub(super) hist: Histogram<u64>,
}

impl Sample {
    pub(super) fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
    pub(super) fn mb_per_s(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
    pub(super) fn p_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// A scenario over all runs.
#[derive(Debug, Clone)]
pub(super) struct Scenario {
    /// `ASYNC`, `SYNC` or `raw fsync` (the baseline).
    pub(super) kind: String,
    pub(super) batch: usize,
    pub(super) samples: Vec<Sample>,
    /// Per run: this scenario's MB/s divided by the same run's baseline MB/s.
    pub(super) ratios: Vec<f64>,
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

pub(super) fn median(mut v: Vec<f64>) -> f64 {
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
pub(super) struct RestartResult {
    pub(super) hot_bytes: u64,
    pub(super) messages: u64,
    pub(super) segments: usize,
    pub(super) fill_mb_per_s: f64,
    pub(super) clean_ms: Vec<f64>,
    pub(super) crash_ms: Vec<f64>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct MemoryResult {
    pub(super) messages: u64,
    pub(super) rss_anon_kib: u64,
    pub(super) vm_rss_kib: u64,
    pub(super) rss_anon_after_restart_kib: u64,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Machine {
    cpus: usize,
    cpu_model: String,
    disk: String,
    kernel: String,
}

impl Machine {
    pub(super) fn probe(dir: &Path) -> Machine {
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
pub(super) struct Report {
    pub(super) machine: Machine,
    pub(super) throughput: Vec<Scenario>,
    pub(super) restart: Option<RestartResult>,
    pub(super) memory: Option<MemoryResult>,
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

    pub(super) fn to_json(&self) -> Value {
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

    pub(super) fn to_markdown(&self, args: &BenchArgs) -> String {
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
