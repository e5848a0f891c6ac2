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
//! - **consumer groups** (`--groups`, instead of the produce throughput):
//!   receive + ack throughput of `--group-consumers` consumers against
//!   read-by-offset of the same messages in the same run, and the end-to-end
//!   latency (produce returns → a long-polling receive returns the message)
//!   with `--e2e-consumers` waiting consumers. See `groups.rs`.
//! - **cold replay** (`--cold`, instead of the produce throughput): a queue
//!   handed over to the object store as on SIGTERM is streamed as NDJSON over
//!   HTTP by a fresh node with an empty disk, against plain GETs of the same
//!   segment objects in the same run; MB/s of object bytes, msgs/s, ratio.
//!   See `cold.rs`.
//!
//! The node under test is built in-process from the library
//! ([`AppState::open`] + [`app`]) on a fresh directory under `--dir`, served
//! on `127.0.0.1:0`, unless `--url` names a running node. Restart and memory
//! spawn the binary (`--bin`, default: this executable). Output is a Markdown
//! report, or JSON with `--json`. No result is asserted: the machine may be
//! shared and noisy, so read medians and same-run ratios.
//!
//! [`AppState::open`]: crate::state::AppState::open
//! [`app`]: crate::app::app

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};

use report::{Machine, Report};
use spawned::{memory, restart};
use throughput::throughput;

mod cold;
mod groups;
mod report;
mod spawned;
mod throughput;

#[cfg(test)]
mod tests;

/// Options of `shale bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Benchmark a running node at this base URL (`http://127.0.0.1:8080`)
    /// instead of an in-process one. The baseline still writes under `--dir`,
    /// which should then be on the node's disk.
    #[arg(long)]
    pub url: Option<String>,
    /// With `--url`: more nodes of the same cluster; the throughput clients
    /// are spread over `--url` and these (client `c` posts to node
    /// `c mod n`), the topic being created through `--url`.
    #[arg(long, value_delimiter = ',')]
    pub also_url: Vec<String>,
    /// Throughput: every client names a queue in its requests (client `c`:
    /// queue `c mod queues`) instead of letting the node choose (which, in
    /// a cluster, prefers queues the receiving node serves). Through one
    /// entry node of a cluster, most requests are then forwarded.
    #[arg(long)]
    pub pin_queues: bool,
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
    /// Run the consumer-group benchmark instead of the produce throughput
    /// scenarios (restart and memory still run when asked for).
    #[arg(long)]
    pub groups: bool,
    /// Groups: messages pre-filled (evenly over `--queues`) per run.
    #[arg(long, default_value_t = 50_000)]
    pub group_messages: u64,
    /// Groups: concurrent receive+ack consumers (the readers of the baseline
    /// are one per queue).
    #[arg(long, default_value_t = 4)]
    pub group_consumers: usize,
    /// Groups: `max_messages` per receive and per read-by-offset GET (1-64).
    #[arg(long, default_value_t = 32)]
    pub group_batch: usize,
    /// Groups: messages sent one at a time for the end-to-end latency.
    #[arg(long, default_value_t = 2000)]
    pub e2e_messages: u64,
    /// Groups: pause between two end-to-end produce calls, in ms.
    #[arg(long, default_value_t = 2.0)]
    pub e2e_interval_ms: f64,
    /// Groups: numbers of waiting consumers to measure end-to-end latency with.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub e2e_consumers: Vec<usize>,
    /// Groups: durability of the end-to-end topic.
    #[arg(long, default_value = "SYNC")]
    pub e2e_durability: String,
    /// Run the cold replay benchmark instead of the produce throughput
    /// scenarios (restart and memory still run when asked for).
    #[arg(long)]
    pub cold: bool,
    /// Cold: messages (~260 B JSON orders) in the replayed queue.
    #[arg(long, default_value_t = 200_000)]
    pub cold_messages: u64,
    /// Cold: the object store (any `--object-store` URL of `shale serve`,
    /// e.g. `s3://bucket/prefix` with the `AWS_*` variables); a fresh random
    /// prefix inside it is used and deleted at the end. Default: a `file://`
    /// directory under the bench work directory.
    #[arg(long)]
    pub cold_object_store: Option<String>,
    /// Cold: `segment_bytes` of the node that fills the queue (bytes).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub cold_segment_bytes: u64,
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
    if !args.no_throughput && !args.groups && !args.cold {
        report.throughput = Box::pin(throughput(args, work)).await?;
    }
    if args.groups {
        report.groups = Some(Box::pin(groups::groups(args, work)).await?);
    }
    if args.cold {
        report.cold = Some(Box::pin(cold::cold(args, work)).await?);
    }
    if args.restart_gb > 0.0 {
        report.restart = Some(Box::pin(restart(args, work)).await?);
    }
    if args.memory_messages > 0 {
        report.memory = Some(Box::pin(memory(args, work)).await?);
    }
    Ok(report)
}
