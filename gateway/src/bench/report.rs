//! The results of `shale bench` (samples, scenarios, restart, memory,
//! consumer-group and cold-replay figures, the machine) and their rendering as a Markdown or JSON report,
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

/// One half of a consumer-group throughput run (read by offset, or receive + ack).
#[derive(Debug, Clone)]
pub(super) struct Half {
    pub(super) messages: u64,
    /// Until the last message was read (acked).
    pub(super) elapsed: Duration,
    /// CPU time of the whole process (node and load generator) meanwhile.
    pub(super) cpu_secs: f64,
    /// Duration of each GET (read) or receive call, µs.
    pub(super) calls: Histogram<u64>,
    /// Duration of each ack call, µs (receive + ack only).
    pub(super) acks: Option<Histogram<u64>>,
}

impl Default for Half {
    fn default() -> Self {
        Half {
            messages: 0,
            elapsed: Duration::ZERO,
            cpu_secs: 0.0,
            calls: Histogram::new(3)
                .unwrap_or_else(|_| unreachable!("3 significant digits are valid")),
            acks: None,
        }
    }
}

impl Half {
    pub(super) fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
    /// CPU cores busy on average.
    fn cores(&self) -> f64 {
        self.cpu_secs / self.elapsed.as_secs_f64()
    }
    /// CPU µs per message.
    fn cpu_us_per_msg(&self) -> f64 {
        self.cpu_secs * 1e6 / self.messages as f64
    }
    fn call_ms(&self, q: f64) -> f64 {
        self.calls.value_at_quantile(q) as f64 / 1000.0
    }
    fn ack_ms(&self, q: f64) -> f64 {
        self.acks
            .as_ref()
            .map_or(f64::NAN, |h| h.value_at_quantile(q) as f64 / 1000.0)
    }
    fn to_json(&self) -> Value {
        json!({
            "messages": self.messages, "seconds": self.elapsed.as_secs_f64(),
            "msgs_per_s": self.msgs_per_s(), "cpu_cores": self.cores(),
            "cpu_us_per_msg": self.cpu_us_per_msg(),
            "call_p50_ms": self.call_ms(0.5), "call_p99_ms": self.call_ms(0.99),
            "ack_p50_ms": self.acks.as_ref().map(|_| self.ack_ms(0.5)),
            "ack_p99_ms": self.acks.as_ref().map(|_| self.ack_ms(0.99)),
        })
    }
}

/// One run of the consumer-group throughput comparison.
#[derive(Debug, Clone)]
pub(super) struct GroupsRun {
    pub(super) read: Half,
    pub(super) recv: Half,
}

impl GroupsRun {
    /// Receive + ack msgs/s over read-by-offset msgs/s of the same run.
    pub(super) fn ratio(&self) -> f64 {
        self.recv.msgs_per_s() / self.read.msgs_per_s()
    }
}

/// One end-to-end latency run.
#[derive(Debug, Clone)]
pub(super) struct E2eRun {
    /// Produce returned → receive returned, µs.
    pub(super) hist: Histogram<u64>,
    /// Produce call started → receive returned, µs.
    pub(super) from_send: Histogram<u64>,
    /// Duration of the produce calls, µs.
    pub(super) produce_hist: Histogram<u64>,
    /// Messages received before their produce call returned (counted as 0).
    pub(super) early: u64,
    /// Messages produced per second (the pace actually achieved).
    pub(super) produce_rate: f64,
}

impl E2eRun {
    pub(super) fn p_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
    pub(super) fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }
    fn send_to_receive_p_ms(&self, q: f64) -> f64 {
        self.from_send.value_at_quantile(q) as f64 / 1000.0
    }
    fn produce_p_ms(&self, q: f64) -> f64 {
        self.produce_hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// End-to-end latency with a number of waiting consumers, over all runs.
#[derive(Debug, Clone)]
pub(super) struct E2eScenario {
    pub(super) consumers: usize,
    pub(super) durability: String,
    pub(super) messages: u64,
    pub(super) interval_ms: f64,
    pub(super) runs: Vec<E2eRun>,
}

impl E2eScenario {
    fn median(&self, f: impl Fn(&E2eRun) -> f64) -> f64 {
        median(self.runs.iter().map(f).collect())
    }
}

/// The consumer-group benchmark (`--groups`).
#[derive(Debug, Clone)]
pub(super) struct GroupsResult {
    pub(super) messages: u64,
    pub(super) consumers: usize,
    pub(super) queues: u32,
    pub(super) batch: usize,
    pub(super) message_bytes: usize,
    pub(super) runs: Vec<GroupsRun>,
    pub(super) e2e: Vec<E2eScenario>,
}

impl GroupsResult {
    fn median(&self, f: impl Fn(&GroupsRun) -> f64) -> f64 {
        median(self.runs.iter().map(f).collect())
    }

    fn to_json(&self) -> Value {
        json!({
            "messages": self.messages, "consumers": self.consumers, "queues": self.queues,
            "max_messages": self.batch, "message_bytes": self.message_bytes,
            "median_read_msgs_per_s": self.median(|r| r.read.msgs_per_s()),
            "median_receive_ack_msgs_per_s": self.median(|r| r.recv.msgs_per_s()),
            "median_ratio": self.median(GroupsRun::ratio),
            "runs": self.runs.iter().map(|r| json!({
                "read": r.read.to_json(), "receive_ack": r.recv.to_json(), "ratio": r.ratio(),
            })).collect::<Vec<_>>(),
            "end_to_end": self.e2e.iter().map(|e| json!({
                "consumers": e.consumers, "durability": e.durability, "messages": e.messages,
                "interval_ms": e.interval_ms,
                "median_p50_ms": e.median(|r| r.p_ms(0.5)),
                "median_p99_ms": e.median(|r| r.p_ms(0.99)),
                "median_max_ms": e.median(E2eRun::max_ms),
                "median_from_send_p50_ms": e.median(|r| r.send_to_receive_p_ms(0.5)),
                "median_from_send_p99_ms": e.median(|r| r.send_to_receive_p_ms(0.99)),
                "runs": e.runs.iter().map(|r| json!({
                    "p50_ms": r.p_ms(0.5), "p99_ms": r.p_ms(0.99), "max_ms": r.max_ms(),
                    "received_before_produce_returned": r.early,
                    "from_send_p50_ms": r.send_to_receive_p_ms(0.5), "from_send_p99_ms": r.send_to_receive_p_ms(0.99),
                    "produce_p50_ms": r.produce_p_ms(0.5), "produce_p99_ms": r.produce_p_ms(0.99),
                    "produce_msgs_per_s": r.produce_rate,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    fn to_markdown(&self, s: &mut String, runs: usize, cpus: usize) {
        let per_run = |f: &dyn Fn(&GroupsRun) -> String| {
            self.runs.iter().map(f).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            s,
            "\nConsumer groups: {} messages of {} B on a NORMAL ASYNC topic with {} queues, filled \
             before each run; group `consume_from: EARLIEST`; medians of {runs} runs; msgs/s = \
             messages / wall time until the last one is read (acked); CPU = the whole process \
             (node and load generator) during that half, on {} CPUs\n",
            self.messages, self.message_bytes, self.queues, cpus
        );
        let _ = writeln!(
            s,
            "| measurement | msgs/s | msgs/s per run | CPU cores busy | CPU µs / msg | call p50 / p99 ms | ack p50 / p99 ms |"
        );
        let _ = writeln!(s, "| --- | ---: | --- | ---: | ---: | ---: | ---: |");
        type Pick = fn(&GroupsRun) -> &Half;
        let halves: [(String, Pick); 2] = [
            (
                format!(
                    "read by offset (baseline): 1 reader per queue, `max_messages` {} per GET",
                    self.batch
                ),
                |r| &r.read,
            ),
            (
                format!(
                    "receive + ack: {} consumers, `max_messages` {}, `invisible_ms` 60000",
                    self.consumers, self.batch
                ),
                |r| &r.recv,
            ),
        ];
        for (name, half) in halves {
            let m = |f: &dyn Fn(&Half) -> f64| self.median(|r| f(half(r)));
            let acks = if self.runs.first().is_some_and(|r| half(r).acks.is_some()) {
                format!(
                    "{:.2} / {:.2}",
                    m(&|h| h.ack_ms(0.5)),
                    m(&|h| h.ack_ms(0.99))
                )
            } else {
                "—".into()
            };
            let _ = writeln!(
                s,
                "| {name} | {:.0} | {} | {:.2} | {:.1} | {:.2} / {:.2} | {acks} |",
                m(&Half::msgs_per_s),
                per_run(&|r| format!("{:.0}", half(r).msgs_per_s())),
                m(&Half::cores),
                m(&Half::cpu_us_per_msg),
                m(&|h| h.call_ms(0.5)),
                m(&|h| h.call_ms(0.99)),
            );
        }
        let _ = writeln!(
            s,
            "| **receive + ack / read by offset (same run)** | **{:.0}%** | {} | | | | |",
            self.median(GroupsRun::ratio) * 100.0,
            per_run(&|r| format!("{:.0}%", r.ratio() * 100.0))
        );
        if let Some(first) = self.e2e.first() {
            let _ = writeln!(
                s,
                "\nEnd to end: 1 producer sends {} single {} B messages to a {} topic with {} queues, \
                 one every {} ms; consumers long-poll `receive` (`wait_ms` 20000, `max_messages` 32) \
                 and ack; latency = produce call returned → receive call returned, matched by \
                 `message_id`; medians over {runs} runs of each run's percentile\n",
                first.messages,
                self.message_bytes,
                first.durability,
                self.queues,
                first.interval_ms
            );
            let _ = writeln!(
                s,
                "| consumers | p50 ms | p99 ms | max ms | p99 per run | received before produce returned | produce sent → received p50 / p99 ms | produce call p50 / p99 ms | produced msgs/s |"
            );
            let _ = writeln!(
                s,
                "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
            );
            for e in &self.e2e {
                let _ = writeln!(
                    s,
                    "| {} | {:.2} | {:.2} | {:.2} | {} | {} of {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.0} |",
                    e.consumers,
                    e.median(|r| r.p_ms(0.5)),
                    e.median(|r| r.p_ms(0.99)),
                    e.median(E2eRun::max_ms),
                    e.runs
                        .iter()
                        .map(|r| format!("{:.2}", r.p_ms(0.99)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    e.runs.iter().map(|r| r.early).sum::<u64>(),
                    e.messages * e.runs.len() as u64,
                    e.median(|r| r.send_to_receive_p_ms(0.5)),
                    e.median(|r| r.send_to_receive_p_ms(0.99)),
                    e.median(|r| r.produce_p_ms(0.5)),
                    e.median(|r| r.produce_p_ms(0.99)),
                    e.median(|r| r.produce_rate),
                );
            }
        }
    }
}

/// One NDJSON replay of a whole queue.
#[derive(Debug, Clone)]
pub(super) struct Replay {
    /// Message lines received (checked against the messages produced).
    pub(super) lines: u64,
    /// Bytes of the NDJSON stream.
    pub(super) ndjson_bytes: u64,
    /// Request sent → last byte received.
    pub(super) elapsed: Duration,
}

impl Replay {
    pub(super) fn msgs_per_s(&self) -> f64 {
        self.lines as f64 / self.elapsed.as_secs_f64()
    }
}

/// One run of the cold replay comparison.
#[derive(Debug, Clone)]
pub(super) struct ColdRun {
    /// Bytes of the queue's segment objects (what the baseline read).
    pub(super) object_bytes: u64,
    /// Sequential GETs of every segment object.
    pub(super) baseline: Duration,
    /// A fresh node streaming the queue as NDJSON.
    pub(super) replay: Replay,
}

impl ColdRun {
    pub(super) fn baseline_mb_per_s(&self) -> f64 {
        self.object_bytes as f64 / 1e6 / self.baseline.as_secs_f64()
    }
    /// Segment object bytes over the replay's seconds.
    pub(super) fn replay_mb_per_s(&self) -> f64 {
        self.object_bytes as f64 / 1e6 / self.replay.elapsed.as_secs_f64()
    }
    /// Replay MB/s over baseline MB/s of the same run.
    pub(super) fn ratio(&self) -> f64 {
        self.replay_mb_per_s() / self.baseline_mb_per_s()
    }
}

/// The cold replay benchmark (`--cold`).
#[derive(Debug, Clone)]
pub(super) struct ColdResult {
    pub(super) messages: u64,
    /// Total body bytes produced.
    pub(super) body_bytes: u64,
    pub(super) segment_bytes: u64,
    /// Segment objects of the queue after the hand-over.
    pub(super) segments: usize,
    /// The object store URL, with the bench's prefix.
    pub(super) store: String,
    pub(super) fill_secs: f64,
    pub(super) hand_over_secs: f64,
    /// Hot NDJSON replays of the filling node (reference).
    pub(super) hot: Vec<Replay>,
    pub(super) runs: Vec<ColdRun>,
}

impl ColdResult {
    fn median(&self, f: impl Fn(&ColdRun) -> f64) -> f64 {
        median(self.runs.iter().map(f).collect())
    }
    fn object_bytes(&self) -> u64 {
        self.runs.first().map_or(0, |r| r.object_bytes)
    }
    fn hot_msgs_per_s(&self) -> f64 {
        median(self.hot.iter().map(Replay::msgs_per_s).collect())
    }

    fn to_json(&self) -> Value {
        json!({
            "messages": self.messages, "body_bytes": self.body_bytes,
            "segment_bytes": self.segment_bytes, "segments": self.segments,
            "object_bytes": self.object_bytes(), "object_store": self.store,
            "fill_seconds": self.fill_secs, "hand_over_seconds": self.hand_over_secs,
            "median_baseline_mb_per_s": self.median(ColdRun::baseline_mb_per_s),
            "median_replay_mb_per_s": self.median(ColdRun::replay_mb_per_s),
            "median_replay_msgs_per_s": self.median(|r| r.replay.msgs_per_s()),
            "median_ratio_to_baseline": self.median(ColdRun::ratio),
            "median_hot_replay_msgs_per_s": self.hot_msgs_per_s(),
            "runs": self.runs.iter().map(|r| json!({
                "baseline_seconds": r.baseline.as_secs_f64(),
                "baseline_mb_per_s": r.baseline_mb_per_s(),
                "replay_seconds": r.replay.elapsed.as_secs_f64(),
                "replay_mb_per_s": r.replay_mb_per_s(),
                "replay_msgs_per_s": r.replay.msgs_per_s(),
                "replay_lines": r.replay.lines, "ndjson_bytes": r.replay.ndjson_bytes,
                "ratio_to_baseline": r.ratio(),
            })).collect::<Vec<_>>(),
            "hot_runs": self.hot.iter().map(|r| json!({
                "seconds": r.elapsed.as_secs_f64(), "msgs_per_s": r.msgs_per_s(),
                "lines": r.lines, "ndjson_bytes": r.ndjson_bytes,
            })).collect::<Vec<_>>(),
        })
    }

    fn to_markdown(&self, s: &mut String, runs: usize) {
        let per_run =
            |f: &dyn Fn(&ColdRun) -> String| self.runs.iter().map(f).collect::<Vec<_>>().join(", ");
        let ndjson_mb = self
            .runs
            .first()
            .map_or(f64::NAN, |r| r.replay.ndjson_bytes as f64 / 1e6);
        let _ = writeln!(
            s,
            "\nCold replay: {} JSON order messages (bodies {:.0} B on average, one key and a tag each) \
             in 1 queue, filled over HTTP in {:.1} s, handed over as on SIGTERM in {:.1} s to {} \
             segment objects of {:.1} MB in total (`segment_bytes` {} MiB) on `{}`. Each run: \
             baseline = sequential GETs of those objects; then a fresh node with an empty data dir \
             streams the queue as NDJSON over HTTP to 1 client ({:.1} MB of NDJSON). MB/s = segment \
             object bytes (10^6) / seconds for both; medians of {runs} runs\n",
            self.messages,
            self.body_bytes as f64 / self.messages as f64,
            self.fill_secs,
            self.hand_over_secs,
            self.segments,
            self.object_bytes() as f64 / 1e6,
            self.segment_bytes / (1024 * 1024),
            self.store,
            ndjson_mb,
        );
        let _ = writeln!(
            s,
            "| measurement | MB/s (object bytes) | msgs/s | seconds | MB/s per run |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | --- |");
        let _ = writeln!(
            s,
            "| GET segment objects (baseline) | {:.1} | — | {:.3} | {} |",
            self.median(ColdRun::baseline_mb_per_s),
            self.median(|r| r.baseline.as_secs_f64()),
            per_run(&|r| format!("{:.1}", r.baseline_mb_per_s())),
        );
        let _ = writeln!(
            s,
            "| cold NDJSON replay, fresh node | {:.1} | {:.0} | {:.3} | {} |",
            self.median(ColdRun::replay_mb_per_s),
            self.median(|r| r.replay.msgs_per_s()),
            self.median(|r| r.replay.elapsed.as_secs_f64()),
            per_run(&|r| format!("{:.1}", r.replay_mb_per_s())),
        );
        let _ = writeln!(
            s,
            "| **cold replay / GET (same run)** | **{:.0}%** | | | {} |",
            self.median(ColdRun::ratio) * 100.0,
            per_run(&|r| format!("{:.0}%", r.ratio() * 100.0)),
        );
        if !self.hot.is_empty() {
            let _ = writeln!(
                s,
                "| hot NDJSON replay, filling node (reference) | — | {:.0} | {:.3} | |",
                self.hot_msgs_per_s(),
                median(self.hot.iter().map(|r| r.elapsed.as_secs_f64()).collect()),
            );
        }
    }
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
    pub(super) groups: Option<GroupsResult>,
    pub(super) cold: Option<ColdResult>,
}

const TARGET_SYNC_RATIO: f64 = 0.5;
const TARGET_SYNC_P99_MS: f64 = 5.0;
const TARGET_RESTART_MS: f64 = 2000.0;
const TARGET_RSS_ANON_KIB: u64 = 200 * 1024;
const TARGET_GROUP_RATIO: f64 = 0.5;
const TARGET_E2E_P99_MS: f64 = 20.0;

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
        if let Some(g) = &self.groups {
            let r = g.median(GroupsRun::ratio);
            out.push((
                format!(
                    "receive+ack with {} consumers ≥ 50% of read-by-offset msgs/s (same run)",
                    g.consumers
                ),
                format!(
                    "{:.0}% ({:.0} vs {:.0} msgs/s)",
                    r * 100.0,
                    g.median(|x| x.recv.msgs_per_s()),
                    g.median(|x| x.read.msgs_per_s())
                ),
                r >= TARGET_GROUP_RATIO,
            ));
            for e in &g.e2e {
                let p99 = e.median(|x| x.p_ms(0.99));
                out.push((
                    format!(
                        "end-to-end p99 < 20 ms, {} waiting consumer(s), {}",
                        e.consumers, e.durability
                    ),
                    format!("{p99:.2} ms (p50 {:.2} ms)", e.median(|x| x.p_ms(0.5))),
                    p99 < TARGET_E2E_P99_MS,
                ));
            }
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
            "groups": self.groups.as_ref().map(GroupsResult::to_json),
            "cold": self.cold.as_ref().map(ColdResult::to_json),
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
        if let Some(g) = &self.groups {
            g.to_markdown(&mut s, args.runs, self.machine.cpus);
        }
        if let Some(c) = &self.cold {
            c.to_markdown(&mut s, args.runs);
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
