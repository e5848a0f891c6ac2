//! Delay timers (`broker/src/timers/`) in process, against same-run
//! baselines (docs/BENCHMARKS.md, "Delay timers"). Each scenario runs in a
//! fresh data directory, SYNC topics with `--queues` queues (8),
//! `--body`-byte bodies (100), `--batch` messages per produce call (100).
//! The broker is opened as the node opens it (`Broker::open_with` over a
//! tier built like `Tier::open`: the store of `--object-store`, behind the
//! same retries) with one difference: a request-counting wrapper sits
//! between the retries and the store (`Counting`, below), so every request
//! the node sends to the object store is counted by kind and by what it is
//! for (timer runs, timer checkpoints, cluster leases, other). The object
//! store is a local-filesystem store (`file://{run dir}/objects`, as the
//! embedded default) unless `--object-store s3://bucket/prefix` is given
//! (each run then uses its own sub-prefix).
//!
//! - `produce`: `--messages` (1,000,000) delay messages, delays uniform over
//!   [1 h, `--horizon-days`] (365; `max_delay_ms` is set to it), from
//!   `--producers` (8) concurrent tasks, each pinned to a queue; then the same
//!   to a NORMAL topic (the order alternates run by run), with the node's
//!   `cluster` and `timers` jobs running (so delay timers are spilled to the
//!   object store meanwhile, as on a node). msgs/s and call latency of both,
//!   and the ratio delay/normal.
//! - `pending`: `--pending` (10,000,000) delay messages scheduled the same
//!   way, then restarts. Each step runs in its own child process (this
//!   binary again) so RssAnon is not blurred by an earlier step:
//!   - *fill*: the node's `cluster` and `timers` jobs run (spills by count
//!     and age happen during the fill); then `Broker::spill_timers` (what the
//!     job would do within 10 s), RssAnon before, after the fill, after the
//!     spill (and after `malloc_trim(0)`, to tell live memory from memory
//!     the allocator keeps), its peak, bytes per pending timer;
//!   - *restart*, page cache warm: the node's start sequence (open,
//!     topics from the store, join + ownership pass, `open_timers`) until
//!     `pending_timers` answers the full count; RssAnon after and its peak,
//!     the object-store requests of the start; then `--rest-seconds` (120) at
//!     rest with every node job running: the requests, by kind and purpose,
//!     scaled to an hour, and RssAnon at the end;
//!   - *restart* again after dropping every file of the run directory
//!     (journal, hot tier, and the objects when local) from the page cache
//!     (`dd iflag=nocache`);
//!   - *due*: a start with the clock moved `--due-offset-hours` (1) ahead, so
//!     that the filled timers come due at their natural rate (10 M over a
//!     year: ~0.3/s), then `--rest-seconds` with every job running: the
//!     requests per hour while timers come due.
//! - `fire`: the real clock, the node's own `timers` job (every
//!   `TIMER_TICK`, 5 ms). Baseline: the call latency of 200 sequential
//!   NORMAL SYNC produce calls of one batch. Then a steady `--steady-rate`
//!   (10,000) timers due per second for `--steady-seconds` (10), evenly
//!   spaced, scheduled ahead; then a burst of `--burst` (100,000) due in the
//!   same millisecond. Lateness of each fired message: *visible* = when a
//!   reader long-polling its queue (one per queue, `wait_ms`) got it, minus
//!   `deliver_at_ms` (the definition: visible in its queue minus
//!   `deliver_at_ms`); *stored* = its `store_ms - deliver_at_ms` (the append,
//!   before the SYNC fsync that makes it visible). p50/p99/max, and the
//!   burst's drain time (last visible - due time).
//! - `fire-loaded`: `fire` with `--background` (10,000,000) far-future
//!   timers pending in the steady topic's queues meanwhile (spilled to the
//!   object store before the steady phase starts).
//!
//! `--timeline 1` also prints, per run of `fire`/`fire-loaded`, the worst
//! lateness per 500 ms of the steady phase next to the timer-run requests
//! (PUT/GET bytes, DELETEs) sent in the same 500 ms: where a late stretch
//! comes from.
//!
//! Medians over `--runs` (3) runs are printed at the end of each scenario.
//! Nothing is asserted but the counts: read medians.
//!
//!   cargo bench -p shale-broker --bench timers -- --runs 3
//!   cargo bench -p shale-broker --bench timers -- --scenarios fire --runs 1

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::BoxStream;
use hdrhistogram::Histogram;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use serde::{Deserialize, Serialize};
use shale_broker::produce::plan::MAX_MAX_DELAY_MS;
use shale_broker::produce::{DelayInput, MessageInput, ProduceBatch};
use shale_broker::read::ReadRequest;
use shale_broker::tasks::Background;
use shale_broker::topic_admin::NewTopic;
use shale_broker::{Broker, BrokerConfig, Clock, Durability, MessageType, SystemClock};
use shale_tiering::{ObjectStoreUrl, RetryPolicy, RetryStore, Tier};

use common::{malloc_trim_now, mib, node_jobs, rss_anon_kib};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The node's cold-read cache (`broker.rs`, `COLD_CACHE_BYTES`).
const COLD_CACHE_BYTES: u64 = 256 << 20;
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
    /// Delays are uniform over [1 h, this many days]; also `max_delay_ms`.
    horizon_days: i64,
    steady_rate: u64,
    steady_seconds: u64,
    burst: u64,
    /// `fire-loaded`: far-future timers pending in the steady topic meanwhile.
    background: u64,
    /// `pending`: seconds at rest (and while timers come due) counting requests.
    rest_seconds: u64,
    /// `pending`, step *due*: how far ahead the clock is moved.
    due_offset_hours: i64,
    /// `None`: `file://{run dir}/objects`.
    object_store: Option<ObjectStoreUrl>,
    /// `fire`: print, per run, lateness over time next to the timer-run
    /// requests of the same moments (where a late stretch comes from).
    timeline: bool,
    /// Where the per-run temporary directories go.
    dir: PathBuf,
    /// Internal: run one step of `pending` in this process (`fill`, `restart`, `due`).
    child: Option<String>,
    /// Internal: the data directory of that step.
    child_dir: Option<PathBuf>,
    /// Internal: the restart step also measures requests at rest.
    rest: bool,
    /// Internal: how many timers the restart must find.
    expect: u64,
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
        horizon_days: 365,
        steady_rate: 10_000,
        steady_seconds: 10,
        burst: 100_000,
        background: 10_000_000,
        rest_seconds: 120,
        due_offset_hours: 1,
        object_store: None,
        timeline: false,
        dir: std::env::temp_dir(),
        child: None,
        child_dir: None,
        rest: false,
        expect: 0,
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
            "--horizon-days" => o.horizon_days = v.parse().expect("--horizon-days D"),
            "--steady-rate" => o.steady_rate = v.parse().expect("--steady-rate PER_S"),
            "--steady-seconds" => o.steady_seconds = v.parse().expect("--steady-seconds S"),
            "--burst" => o.burst = v.parse().expect("--burst N"),
            "--background" => o.background = v.parse().expect("--background N"),
            "--rest-seconds" => o.rest_seconds = v.parse().expect("--rest-seconds S"),
            "--due-offset-hours" => o.due_offset_hours = v.parse().expect("--due-offset-hours H"),
            "--object-store" => {
                o.object_store = Some(ObjectStoreUrl::parse(&v).expect("--object-store URL"))
            }
            "--timeline" => o.timeline = v == "1",
            "--dir" => o.dir = PathBuf::from(v),
            "--child" => o.child = Some(v),
            "--child-dir" => o.child_dir = Some(PathBuf::from(v)),
            "--rest" => o.rest = v == "1",
            "--expect" => o.expect = v.parse().expect("--expect N"),
            // `cargo bench` passes `--bench`; ignore what is not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    assert!(o.runs > 0 && o.batch > 0 && o.producers > 0 && o.queues > 0);
    assert!(
        (1..=MAX_MAX_DELAY_MS / DAY_MS).contains(&o.horizon_days),
        "--horizon-days must be 1-365"
    );
    o
}

// ---------------------------------------------------------------- object-store requests

/// Request kinds, as S3 bills them (a copy is a PUT; a ranged GET is a GET).
const KINDS: [&str; 5] = ["GET", "PUT", "LIST", "DELETE", "HEAD"];
const GET: usize = 0;
const PUT: usize = 1;
const LIST: usize = 2;
const DELETE: usize = 3;
const HEAD: usize = 4;
/// What a request was for, by its key.
const PURPOSES: [&str; 4] = ["timer runs", "timer checkpoints", "cluster leases", "other"];

/// Requests sent by this process, by purpose and kind.
static COUNTS: [AtomicU64; 20] = [const { AtomicU64::new(0) }; 20];

/// The purpose of a request on `path` (a key or a listed prefix), from the
/// layout of `shale_tiering::paths`.
fn purpose_of(path: &ObjectPath) -> usize {
    let parts: Vec<&str> = path.as_ref().split('/').collect();
    if let Some(i) = parts.iter().position(|p| *p == "topics")
        && parts.get(i + 2) == Some(&"timers")
    {
        return match parts.get(i + 4) {
            Some(&"runs") => 0,
            _ => 1,
        };
    }
    if parts.windows(2).any(|w| w == ["cluster", "nodes"]) {
        return 2;
    }
    3
}

fn count(path: &ObjectPath, kind: usize) {
    COUNTS[purpose_of(path) * KINDS.len() + kind].fetch_add(1, Ordering::Relaxed);
}

/// Whether [`EVENTS`] records (`--timeline 1`).
static TRACING: AtomicBool = AtomicBool::new(false);
/// Timer-run requests as `(wall ms, kind, bytes)` while [`TRACING`].
static EVENTS: parking_lot::Mutex<Vec<(i64, usize, u64)>> = parking_lot::Mutex::new(Vec::new());

fn trace_run(path: &ObjectPath, kind: usize, bytes: u64) {
    if TRACING.load(Ordering::Relaxed) && purpose_of(path) == 0 {
        EVENTS.lock().push((SystemClock.now_ms(), kind, bytes));
    }
}

/// A snapshot of [`COUNTS`] (or a difference of two).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Requests([[u64; 5]; 4]);

impl Requests {
    fn now() -> Requests {
        let mut r = Requests::default();
        for (p, row) in r.0.iter_mut().enumerate() {
            for (k, c) in row.iter_mut().enumerate() {
                *c = COUNTS[p * KINDS.len() + k].load(Ordering::Relaxed);
            }
        }
        r
    }

    fn since(self, earlier: Requests) -> Requests {
        let mut r = self;
        for (row, old) in r.0.iter_mut().zip(earlier.0) {
            for (c, o) in row.iter_mut().zip(old) {
                *c -= o;
            }
        }
        r
    }

    fn kind(&self, kind: usize) -> u64 {
        self.0.iter().map(|row| row[kind]).sum()
    }

    fn purpose(&self, purpose: usize) -> u64 {
        self.0[purpose].iter().sum()
    }

    fn total(&self) -> u64 {
        self.0.iter().flatten().sum()
    }

    /// `GET a / PUT b / LIST c / DELETE d / HEAD e`, of the counts times `scale`.
    fn kinds(&self, scale: f64) -> String {
        KINDS
            .iter()
            .enumerate()
            .map(|(k, name)| format!("{name} {:.0}", self.kind(k) as f64 * scale))
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Counts every request to the wrapped store in [`COUNTS`]: `get_ranges`
/// is left to the trait's default, which coalesces and calls `get_range`,
/// so each real request is counted once; a `list` counts once per call
/// (one request per 1,000 keys on S3: the listings here are short).
///
/// `object_store` declares the trait with `#[async_trait]`, which this crate
/// does not depend on: the methods are written as the macro expands them.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

impl ObjectStore for Counting {
    fn put_opts<'a, 'b, 't>(
        &'a self,
        location: &'b ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'t, object_store::Result<PutResult>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(async move {
            count(location, PUT);
            trace_run(location, PUT, payload.content_length() as u64);
            self.inner.put_opts(location, payload, opts).await
        })
    }

    fn put_multipart_opts<'a, 'b, 't>(
        &'a self,
        location: &'b ObjectPath,
        opts: PutMultipartOptions,
    ) -> BoxFut<'t, object_store::Result<Box<dyn MultipartUpload>>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(async move {
            count(location, PUT);
            self.inner.put_multipart_opts(location, opts).await
        })
    }

    fn get_opts<'a, 'b, 't>(
        &'a self,
        location: &'b ObjectPath,
        options: GetOptions,
    ) -> BoxFut<'t, object_store::Result<GetResult>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(async move {
            count(location, if options.head { HEAD } else { GET });
            self.inner.get_opts(location, options).await
        })
    }

    fn get_range<'a, 'b, 't>(
        &'a self,
        location: &'b ObjectPath,
        range: Range<u64>,
    ) -> BoxFut<'t, object_store::Result<Bytes>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(async move {
            count(location, GET);
            trace_run(location, GET, range.end - range.start);
            self.inner.get_range(location, range).await
        })
    }

    fn head<'a, 'b, 't>(
        &'a self,
        location: &'b ObjectPath,
    ) -> BoxFut<'t, object_store::Result<ObjectMeta>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(async move {
            count(location, HEAD);
            self.inner.head(location).await
        })
    }

    fn delete<'a, 'b, 't>(
        &'a self,
        location: &'b ObjectPath,
    ) -> BoxFut<'t, object_store::Result<()>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(async move {
            count(location, DELETE);
            trace_run(location, DELETE, 0);
            self.inner.delete(location).await
        })
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        count(prefix.unwrap_or(&ObjectPath::default()), LIST);
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'a, 'b, 't>(
        &'a self,
        prefix: Option<&'b ObjectPath>,
    ) -> BoxFut<'t, object_store::Result<ListResult>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(async move {
            count(prefix.unwrap_or(&ObjectPath::default()), LIST);
            self.inner.list_with_delimiter(prefix).await
        })
    }

    fn copy<'a, 'b, 'c, 't>(
        &'a self,
        from: &'b ObjectPath,
        to: &'c ObjectPath,
    ) -> BoxFut<'t, object_store::Result<()>>
    where
        'a: 't,
        'b: 't,
        'c: 't,
        Self: 't,
    {
        Box::pin(async move {
            count(to, PUT);
            self.inner.copy(from, to).await
        })
    }

    fn copy_if_not_exists<'a, 'b, 'c, 't>(
        &'a self,
        from: &'b ObjectPath,
        to: &'c ObjectPath,
    ) -> BoxFut<'t, object_store::Result<()>>
    where
        'a: 't,
        'b: 't,
        'c: 't,
        Self: 't,
    {
        Box::pin(async move {
            count(to, PUT);
            self.inner.copy_if_not_exists(from, to).await
        })
    }
}

/// The store of run directory `dir`: `--object-store` (under a sub-prefix
/// named after the run directory) or `file://{dir}/objects`.
fn store_url(o: &Options, dir: &Path) -> ObjectStoreUrl {
    let name = dir
        .file_name()
        .map_or_else(|| "run".to_string(), |n| n.to_string_lossy().into_owned());
    match &o.object_store {
        Some(ObjectStoreUrl::S3 { bucket, prefix }) => ObjectStoreUrl::S3 {
            bucket: bucket.clone(),
            prefix: if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            },
        },
        Some(other) => other.clone(),
        None => ObjectStoreUrl::File(dir.join("objects")),
    }
}

fn config(o: &Options, dir: &Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.join("data"),
        object_store: store_url(o, dir),
        segment_bytes: 64 << 20,
        segment_ms: 600_000,
        hot_bytes: None,
        node_id: "bench".into(),
        cluster: Default::default(),
        object_commit_interval: shale_broker::wal::DEFAULT_INTERVAL,
        max_delay_ms: o.horizon_days * DAY_MS,
    }
}

/// A tier as `Tier::open` builds it (retries around the store), with
/// [`Counting`] between the retries and the store.
fn counted_tier(url: &ObjectStoreUrl) -> Arc<Tier> {
    let (store, prefix) = shale_tiering::open_object_store(url).expect("object store");
    let counted: Arc<dyn ObjectStore> = Arc::new(Counting { inner: store });
    let retried: Arc<dyn ObjectStore> = Arc::new(RetryStore::new(counted, RetryPolicy::default()));
    Arc::new(Tier::new(retried, prefix, COLD_CACHE_BYTES))
}

/// The system clock moved `offset_ms` ahead (step *due*).
#[derive(Debug)]
struct AheadClock(i64);

impl Clock for AheadClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0
    }
}

fn open_at(o: &Options, dir: &Path, clock: Arc<dyn Clock>) -> Arc<Broker> {
    let config = config(o, dir);
    Broker::open_with(&config, clock, counted_tier(&config.object_store)).expect("broker")
}

fn open(o: &Options, dir: &Path) -> Arc<Broker> {
    open_at(o, dir, Arc::new(SystemClock))
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

fn uniform_delays(o: &Options) -> Delays {
    let max = o.horizon_days * DAY_MS;
    Arc::new(move |_| {
        Some(DelayInput {
            delay_ms: Some(rand::random_range(HOUR_MS..=max)),
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
                    let messages: Vec<MessageInput> = (k..k + batch)
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
                    // A queue whose spills fall behind refuses more (503): as a
                    // client honouring Retry-After would, wait and send again.
                    let out = loop {
                        let batch = ProduceBatch {
                            messages: messages.clone(),
                            transaction: None,
                        };
                        match b.producer(&topic).expect("producer").produce(batch).await {
                            Ok(out) => break out,
                            Err(e) if e.code() == shale_broker::ErrorCode::Unavailable => {
                                REFUSED.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Err(e) => panic!("produce: {e}"),
                        }
                    };
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
                        "    {d} / {total} after {:.1} s (RssAnon {:.0} MiB)",
                        started.elapsed().as_secs_f64(),
                        mib(rss_anon_kib())
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

/// Produce calls refused (503) while spills caught up, over the process.
static REFUSED: AtomicU64 = AtomicU64::new(0);

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

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
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
    let broker = open(o, dir.path());
    let jobs = node_jobs(&broker);
    let (topic, delays) = match message_type {
        MessageType::Delay => (DELAY, uniform_delays(o)),
        _ => (NORMAL, Arc::new(|_| None) as Delays),
    };
    create(&broker, topic, message_type, o.queues).await;
    let load = produce_load(&broker, topic, o.messages, o, delays).await;
    jobs.stop().await;
    load
}

async fn scenario_produce(o: &Options) {
    println!(
        "\n### produce: {} messages x {} B per run, batches of {}, {} producers, {} queues, SYNC; delays uniform over [1 h, {} d]; the `cluster` and `timers` jobs run (delay timers are spilled meanwhile)\n",
        o.messages, o.body, o.batch, o.producers, o.queues, o.horizon_days
    );
    println!(
        "| run | load 1/5/15 min before → after | NORMAL msgs/s | NORMAL call p50 / p99 ms | DELAY msgs/s | DELAY call p50 / p99 ms | DELAY / NORMAL |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut runs = Vec::new();
    for run in 0..o.runs {
        // Alternate which goes first (ABBA over the runs).
        let order = if run % 2 == 0 {
            [MessageType::Normal, MessageType::Delay]
        } else {
            [MessageType::Delay, MessageType::Normal]
        };
        let mut got = BTreeMap::new();
        let load_before = load_avg();
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
            "| {run} | {load_before} → {} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {:.0}% |",
            load_avg(),
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
        "| **median** | | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {:.0}% (median of per-run ratios) |",
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

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Fill {
    pending: u64,
    rss_before_kib: u64,
    /// Right after the last produce call returned.
    rss_filled_kib: u64,
    /// After `spill_timers`.
    rss_spilled_kib: u64,
    /// After `malloc_trim(0)` (diagnostic).
    rss_trimmed_kib: u64,
    rss_peak_kib: u64,
    fill_seconds: f64,
    spill_ms: f64,
    /// Timers in memory after the spill, over the queues.
    in_memory: u64,
    /// Runs in the object store and their bytes (local store only).
    runs: u64,
    run_bytes: u64,
    /// Requests during the fill and the spill.
    requests: Requests,
    /// Bytes of the local journal files once the housekeeping trimmed them.
    journal_bytes: u64,
    /// Produce calls refused (503) while spills caught up.
    #[serde(default)]
    refused: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Restart {
    pending: u64,
    rss_start_kib: u64,
    /// `Broker::open_with`.
    open_ms: f64,
    /// `load_topics_from_store`.
    topics_ms: f64,
    /// `cluster.join` + `rebalance` (takes every queue; a DELAY queue's
    /// timers are recovered before its gate opens).
    join_ms: f64,
    /// `open_timers` (what is left; the node calls it before serving).
    timers_ms: f64,
    /// Until `pending_timers` answers the full count.
    count_ms: f64,
    rss_after_kib: u64,
    rss_peak_kib: u64,
    /// Requests of the start.
    requests: Requests,
    /// At rest afterwards (`--rest-seconds`, every job running).
    rest_seconds: f64,
    rest: Requests,
    rss_rest_kib: u64,
    /// Timers fired during the rest (step *due*).
    fired: u64,
}

impl Restart {
    fn total_ms(&self) -> f64 {
        self.open_ms + self.topics_ms + self.join_ms + self.timers_ms + self.count_ms
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
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

/// Step `fill` (in a child process): schedules `o.pending` timers on a
/// fresh node running its `cluster` and `timers` jobs, then spills them.
async fn child_fill(o: &Options, dir: &Path) -> Fill {
    let broker = open(o, dir);
    create(&broker, DELAY, MessageType::Delay, o.queues).await;
    let jobs = node_jobs(&broker);
    let requests_before = Requests::now();
    let rss_before_kib = rss_anon_kib();
    let peak = PeakSampler::start();
    let load = produce_load(&broker, DELAY, o.pending, o, uniform_delays(o)).await;
    let rss_filled_kib = rss_anon_kib();
    let t = Instant::now();
    broker.spill_timers(DELAY).await.expect("spill");
    let spill_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_spilled_kib = rss_anon_kib();
    let rss_peak_kib = peak.stop();
    // The job's housekeeping (every second) then deletes the journal
    // segments the runs now hold, as it would on a node.
    tokio::time::sleep(shale_broker::timers::fire::HOUSEKEEP_PERIOD * 3).await;
    let requests = Requests::now().since(requests_before);
    jobs.stop().await;
    let journal_bytes = dir_bytes(&dir.join("data").join("timers").join("journal"));
    let pending = broker.pending_timers(DELAY).await.expect("pending");
    let in_memory = (0..o.queues)
        .filter_map(|q| broker.timers.get(DELAY, q))
        .map(|q| q.index.lock().in_memory() as u64)
        .sum();
    malloc_trim_now();
    let rss_trimmed_kib = rss_anon_kib();
    let mut run_files = Vec::new();
    files_under(
        &dir.join("objects")
            .join("topics")
            .join(DELAY)
            .join("timers"),
        &mut run_files,
    );
    let run_files: Vec<_> = run_files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "run"))
        .collect();
    drop(broker);
    Fill {
        pending,
        rss_before_kib,
        rss_filled_kib,
        rss_spilled_kib,
        rss_trimmed_kib,
        rss_peak_kib,
        fill_seconds: load.seconds,
        spill_ms,
        in_memory,
        runs: run_files.len() as u64,
        run_bytes: run_files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum(),
        requests,
        journal_bytes,
        refused: REFUSED.load(Ordering::Relaxed),
    }
}

/// Steps `restart` and `due` (in a child process): starts a node on `dir`
/// as `shale serve` does before it serves, until `pending_timers` answers
/// `o.expect`; then, with `o.rest`, `o.rest_seconds` with every job running.
async fn child_restart(o: &Options, dir: &Path, clock: Arc<dyn Clock>, wait_full: bool) -> Restart {
    let rss_start_kib = rss_anon_kib();
    let requests_before = Requests::now();
    let peak = PeakSampler::start();
    let t = Instant::now();
    let broker = open_at(o, dir, clock);
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    broker.load_topics_from_store().await.expect("topics");
    let topics_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    broker.cluster.join().await.expect("join");
    broker.rebalance().await;
    let join_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    broker.open_timers().await;
    let timers_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending = broker.pending_timers(DELAY).await.expect("pending");
    // (Step `due` does not wait: timers due at once may fire meanwhile.)
    while wait_full && pending < o.expect && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
        broker.open_timers().await;
        pending = broker.pending_timers(DELAY).await.expect("pending");
    }
    let count_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_after_kib = rss_anon_kib();
    let rss_peak_kib = peak.stop();
    let requests = Requests::now().since(requests_before);
    let mut r = Restart {
        pending,
        rss_start_kib,
        open_ms,
        topics_ms,
        join_ms,
        timers_ms,
        count_ms,
        rss_after_kib,
        rss_peak_kib,
        requests,
        ..Default::default()
    };
    if o.rest {
        let jobs = Background::spawn(broker.jobs(Duration::from_secs(1)));
        let before = Requests::now();
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(o.rest_seconds)).await;
        r.rest = Requests::now().since(before);
        r.rest_seconds = t.elapsed().as_secs_f64();
        r.rss_rest_kib = rss_anon_kib();
        jobs.stop().await;
        r.fired = pending.saturating_sub(broker.pending_timers(DELAY).await.expect("pending"));
    }
    r
}

/// Runs this binary as a child for one step; its `RESULT` line.
fn run_child(o: &Options, step: &str, dir: &Path, rest: bool, expect: u64) -> String {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.args(["--child", step, "--child-dir"])
        .arg(dir)
        .args(["--rest", if rest { "1" } else { "0" }])
        .args(["--expect", &expect.to_string()])
        .args(["--pending", &o.pending.to_string()])
        .args(["--producers", &o.producers.to_string()])
        .args(["--batch", &o.batch.to_string()])
        .args(["--queues", &o.queues.to_string()])
        .args(["--body", &o.body.to_string()])
        .args(["--horizon-days", &o.horizon_days.to_string()])
        .args(["--rest-seconds", &o.rest_seconds.to_string()])
        .args(["--due-offset-hours", &o.due_offset_hours.to_string()]);
    if let Some(url) = &o.object_store {
        cmd.args(["--object-store", &url.to_string()]);
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child");
    assert!(out.status.success(), "child {step} failed: {}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_string))
        .expect("child RESULT line")
}

/// Drops every file under `dir` from the page cache (clean pages, after fsync).
fn drop_page_cache(dir: &Path) -> bool {
    let mut files = Vec::new();
    files_under(dir, &mut files);
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
    due: Restart,
    load: (String, String),
}

/// One of a run's restarts.
type PickRestart = fn(&PendingRun) -> &Restart;

fn per_timer(r: &PendingRun) -> f64 {
    (r.fill.rss_spilled_kib.saturating_sub(r.fill.rss_before_kib) * 1024) as f64
        / r.fill.pending.max(1) as f64
}

fn scenario_pending(o: &Options) {
    let store = match &o.object_store {
        Some(url) => format!("{url}/<run>"),
        None => "file://<run dir>/objects (local filesystem)".to_string(),
    };
    println!(
        "\n### pending: {} delay messages x {} B, batches of {}, {} producers, {} queues, SYNC; delays uniform over [1 h, {} d]; object store {store}; each step in its own process\n",
        o.pending, o.body, o.batch, o.producers, o.queues, o.horizon_days
    );
    println!(
        "| run | load 1/5/15 min before → after | fill msgs/s | spill_timers ms | runs / GiB | RssAnon before / filled / spilled / peak MiB | B per pending timer (spilled − before) | RssAnon after malloc_trim MiB | restart warm: open + topics + join + timers + count = total ms | warm RssAnon after / peak MiB | restart cold (page cache dropped): total ms | cold RssAnon after / peak MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut runs = Vec::new();
    for run in 0..o.runs {
        let dir = tempdir(o);
        let load_before = load_avg();
        eprintln!("pending run {run}: fill (load {load_before})");
        let fill: Fill =
            serde_json::from_str(&run_child(o, "fill", dir.path(), false, 0)).expect("fill result");
        eprintln!(
            "pending run {run}: restart (warm page cache), then {} s at rest",
            o.rest_seconds
        );
        let warm: Restart =
            serde_json::from_str(&run_child(o, "restart", dir.path(), true, fill.pending))
                .expect("restart result");
        eprintln!("pending run {run}: restart (run directory dropped from the page cache)");
        let dropped = drop_page_cache(dir.path());
        let cold: Restart =
            serde_json::from_str(&run_child(o, "restart", dir.path(), false, fill.pending))
                .expect("restart result");
        eprintln!(
            "pending run {run}: clock {} h ahead, {} s while timers come due",
            o.due_offset_hours, o.rest_seconds
        );
        let due: Restart =
            serde_json::from_str(&run_child(o, "due", dir.path(), true, fill.pending))
                .expect("due result");
        let load = (load_before, load_avg());
        eprintln!(
            "fill run {run}: {} produce calls refused (503) while spills caught up",
            fill.refused
        );
        println!(
            "| {run} | {} → {} | {:.0} | {:.0} | {} / {:.2} | {:.1} / {:.1} / {:.1} / {:.1} | {:.1} | {:.1} | {:.0} + {:.0} + {:.0} + {:.0} + {:.0} = **{:.0}** | {:.1} / {:.1} | {}**{:.0}** | {:.1} / {:.1} |",
            load.0,
            load.1,
            fill.pending as f64 / fill.fill_seconds,
            fill.spill_ms,
            fill.runs,
            fill.run_bytes as f64 / (1u64 << 30) as f64,
            mib(fill.rss_before_kib),
            mib(fill.rss_filled_kib),
            mib(fill.rss_spilled_kib),
            mib(fill.rss_peak_kib),
            (fill.rss_spilled_kib.saturating_sub(fill.rss_before_kib) * 1024) as f64
                / fill.pending.max(1) as f64,
            mib(fill.rss_trimmed_kib),
            warm.open_ms,
            warm.topics_ms,
            warm.join_ms,
            warm.timers_ms,
            warm.count_ms,
            warm.total_ms(),
            mib(warm.rss_after_kib),
            mib(warm.rss_peak_kib),
            if dropped { "" } else { "(cache not dropped) " },
            cold.total_ms(),
            mib(cold.rss_after_kib),
            mib(cold.rss_peak_kib),
        );
        assert_eq!(
            warm.pending, fill.pending,
            "the restart recovered a different number of timers"
        );
        assert_eq!(
            cold.pending, fill.pending,
            "the restart recovered a different number of timers"
        );
        runs.push(PendingRun {
            fill,
            warm,
            cold,
            due,
            load,
        });
    }
    println!(
        "| **median** | | {:.0} | {:.0} | {:.0} / {:.2} | {:.1} / {:.1} / {:.1} / {:.1} | {:.1} | {:.1} | {:.0} + {:.0} + {:.0} + {:.0} + {:.0} = **{:.0}** | {:.1} / {:.1} | **{:.0}** | {:.1} / {:.1} |",
        med(&runs, |r| r.fill.pending as f64 / r.fill.fill_seconds),
        med(&runs, |r| r.fill.spill_ms),
        med(&runs, |r| r.fill.runs as f64),
        med(&runs, |r| r.fill.run_bytes as f64 / (1u64 << 30) as f64),
        med(&runs, |r| mib(r.fill.rss_before_kib)),
        med(&runs, |r| mib(r.fill.rss_filled_kib)),
        med(&runs, |r| mib(r.fill.rss_spilled_kib)),
        med(&runs, |r| mib(r.fill.rss_peak_kib)),
        med(&runs, per_timer),
        med(&runs, |r| mib(r.fill.rss_trimmed_kib)),
        med(&runs, |r| r.warm.open_ms),
        med(&runs, |r| r.warm.topics_ms),
        med(&runs, |r| r.warm.join_ms),
        med(&runs, |r| r.warm.timers_ms),
        med(&runs, |r| r.warm.count_ms),
        med(&runs, |r| r.warm.total_ms()),
        med(&runs, |r| mib(r.warm.rss_after_kib)),
        med(&runs, |r| mib(r.warm.rss_peak_kib)),
        med(&runs, |r| r.cold.total_ms()),
        med(&runs, |r| mib(r.cold.rss_after_kib)),
        med(&runs, |r| mib(r.cold.rss_peak_kib)),
    );

    println!(
        "\nIn memory after the spill (timers held by the indexes, median): {:.0} of {:.0} pending; local journal files left after the housekeeping: {:.1} MiB..",
        med(&runs, |r| r.fill.in_memory as f64),
        med(&runs, |r| r.fill.pending as f64),
        med(&runs, |r| r.fill.journal_bytes as f64 / (1 << 20) as f64),
    );
    println!(
        "\nObject-store requests of the fill and spill, and of one start (warm / cold), per run:\n"
    );
    for (i, r) in runs.iter().enumerate() {
        println!(
            "- run {i}: fill + spill {}; start warm {} ({} in all); cold {} ({} in all); RssAnon after {:.0} s at rest {:.1} MiB",
            r.fill.requests.kinds(1.0),
            r.warm.requests.kinds(1.0),
            r.warm.requests.total(),
            r.cold.requests.kinds(1.0),
            r.cold.requests.total(),
            r.warm.rest_seconds,
            mib(r.warm.rss_rest_kib),
        );
    }

    // Requests per hour, by purpose and kind: at rest, and while timers come due.
    println!(
        "\n### pending: object-store requests per hour with {} timers pending (every node job running, {} s counted per run, scaled to an hour; median of the runs per cell)\n",
        runs[0].fill.pending, o.rest_seconds
    );
    println!("| state | purpose | GET/h | PUT/h | LIST/h | DELETE/h | HEAD/h | all/h |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let states: [(&str, PickRestart); 2] = [
        ("at rest (nothing due for 1 h)", |r| &r.warm),
        ("timers coming due (clock moved ahead)", |r| &r.due),
    ];
    for (state, pick) in states {
        for p in 0..PURPOSES.len() + 1 {
            let cell = |k: Option<usize>| {
                med(&runs, |r| {
                    let s = pick(r);
                    let per_hour = 3600.0 / s.rest_seconds.max(1e-9);
                    let n = match (p, k) {
                        (p, Some(k)) if p < PURPOSES.len() => s.rest.0[p][k],
                        (p, None) if p < PURPOSES.len() => s.rest.purpose(p),
                        (_, Some(k)) => s.rest.kind(k),
                        (_, None) => s.rest.total(),
                    };
                    n as f64 * per_hour
                })
            };
            println!(
                "| {state} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                PURPOSES.get(p).copied().unwrap_or("**all**"),
                cell(Some(GET)),
                cell(Some(PUT)),
                cell(Some(LIST)),
                cell(Some(DELETE)),
                cell(Some(HEAD)),
                cell(None),
            );
        }
    }
    println!(
        "\nTimers fired while coming due, per run: {} (over {} s each); load average per run (1/5/15 min, before → after): {}",
        runs.iter()
            .map(|r| r.due.fired.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        o.rest_seconds,
        runs.iter()
            .map(|r| format!("{} → {}", r.load.0, r.load.1))
            .collect::<Vec<_>>()
            .join("; "),
    );
}

// ---------------------------------------------------------------- fire

/// Lateness of every fired message of `topic` by its `store_ms` (ms), per
/// queue the first and last `store_ms`, and how many were read back.
struct Fired {
    lateness: Histogram<u64>,
    spans: Vec<(i64, i64)>,
    count: u64,
}

async fn read_fired(broker: &Arc<Broker>, topic: &str, queues: u32) -> Fired {
    let mut lateness = Histogram::<u64>::new(3).expect("histogram");
    let mut spans = Vec::new();
    let mut count = 0;
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
                count += 1;
            }
        }
        spans.push(span);
    }
    Fired {
        lateness,
        spans,
        count,
    }
}

/// What the readers of a topic saw: lateness at the moment each message
/// became readable (ms), how many, and when the last one was read.
struct Seen {
    lateness: Histogram<u64>,
    count: u64,
    last_ms: i64,
    /// `(deliver_at_ms, seen ms)` of every message.
    each: Vec<(i64, i64)>,
}

/// One reader per queue of `topic`, long-polling from offset 0 (as a
/// consumer waiting for the next message would), until `stop` is set and
/// it has caught up.
struct Watchers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Seen>>,
}

impl Watchers {
    fn start(broker: &Arc<Broker>, topic: &str, queues: u32) -> Watchers {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..queues)
            .map(|q| {
                let (b, topic, stop) = (broker.clone(), topic.to_string(), stop.clone());
                tokio::spawn(async move {
                    let mut seen = Seen {
                        lateness: Histogram::<u64>::new(3).expect("histogram"),
                        count: 0,
                        last_ms: i64::MIN,
                        each: Vec::new(),
                    };
                    let mut at = 0;
                    loop {
                        let req = ReadRequest {
                            offset: Some(at),
                            max_messages: Some(1024),
                            max_bytes: Some(32 << 20),
                            wait_ms: Some(100),
                            ..Default::default()
                        };
                        let got = b.read_queue(&topic, q, req).await.expect("read");
                        let now = SystemClock.now_ms();
                        let Some(last) = got.records.last() else {
                            if stop.load(Ordering::SeqCst) {
                                return seen;
                            }
                            continue;
                        };
                        at = last.offset + 1;
                        for r in &got.records {
                            let due = r.deliver_at_ms.expect("a fired message has deliver_at_ms");
                            seen.lateness
                                .record((now - due).max(0) as u64)
                                .expect("record");
                            seen.count += 1;
                            seen.each.push((due, now));
                        }
                        seen.last_ms = seen.last_ms.max(now);
                    }
                })
            })
            .collect();
        Watchers { stop, tasks }
    }

    async fn stop(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Seen {
            lateness: Histogram::<u64>::new(3).expect("histogram"),
            count: 0,
            last_ms: i64::MIN,
            each: Vec::new(),
        };
        for t in self.tasks {
            let s = t.await.expect("watcher");
            all.lateness.add(s.lateness).expect("add");
            all.count += s.count;
            all.last_ms = all.last_ms.max(s.last_ms);
            all.each.extend(s.each);
        }
        all
    }
}

/// Prints, per 500 ms of due time of the steady phase (starting at `t0`),
/// the worst visible lateness, and the timer-run requests sent meanwhile.
fn timeline(run: usize, t0: i64, window_ms: i64, each: &[(i64, i64)]) {
    TRACING.store(false, Ordering::Relaxed);
    let events = std::mem::take(&mut *EVENTS.lock());
    println!(
        "\nrun {run}, steady phase: worst lateness per 500 ms of due time, and timer-run requests sent then (ms from the first due time; PUT/GET MiB)\n"
    );
    let step = 500;
    let mut at = -6 * step;
    while at < window_ms + 3 * step {
        let worst = each
            .iter()
            .filter(|(due, _)| (t0 + at..t0 + at + step).contains(due))
            .map(|(due, seen)| seen - due)
            .max();
        let mut puts = (0, 0u64);
        let mut gets = (0, 0u64);
        let mut deletes = 0;
        for (t, kind, bytes) in &events {
            if (t0 + at..t0 + at + step).contains(t) {
                match *kind {
                    PUT => puts = (puts.0 + 1, puts.1 + bytes),
                    GET => gets = (gets.0 + 1, gets.1 + bytes),
                    _ => deletes += 1,
                }
            }
        }
        println!(
            "- {at:>6}..{:<6} worst {:>5} ms | run PUT {} ({:.1} MiB) GET {} ({:.1} MiB) DELETE {}",
            at + step,
            worst.map_or("-".to_string(), |w| w.to_string()),
            puts.0,
            puts.1 as f64 / (1 << 20) as f64,
            gets.0,
            gets.1 as f64 / (1 << 20) as f64,
            deletes
        );
        at += step;
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

#[derive(Debug, Clone)]
struct FireRun {
    base_p50: f64,
    base_p99: f64,
    steady: [f64; 3],
    steady_stored: [f64; 3],
    burst: [f64; 3],
    burst_stored: [f64; 3],
    burst_drain: f64,
    /// Object-store requests from the steady phase's scheduling to the burst's drain.
    requests: Requests,
    requests_seconds: f64,
    load: (String, String),
    notes: Vec<String>,
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

fn quantiles(h: &Histogram<u64>) -> [f64; 3] {
    [
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
        h.max() as f64,
    ]
}

/// One run; `background` far-future timers are scheduled in the steady
/// topic first (they stay pending throughout).
async fn fire_once(o: &Options, run: usize, background: u64) -> FireRun {
    let load_before = load_avg();
    let dir = tempdir(o);
    let broker = open(o, dir.path());
    let jobs = node_jobs(&broker);
    create(&broker, NORMAL, MessageType::Normal, o.queues).await;
    create(&broker, "steady", MessageType::Delay, o.queues).await;
    create(&broker, "burst", MessageType::Delay, o.queues).await;
    let mut notes = Vec::new();

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
        produce_load(&broker, "steady", background, o, uniform_delays(o)).await;
        broker.spill_timers("steady").await.expect("spill");
    }
    let background = broker.pending_timers("steady").await.expect("pending");
    let requests_before = Requests::now();
    let requests_started = Instant::now();
    TRACING.store(o.timeline, Ordering::Relaxed);
    EVENTS.lock().clear();

    // Steady: evenly spaced over the window, starting 3 s from now.
    let n = o.steady_rate * o.steady_seconds;
    let window_ms = (o.steady_seconds * 1000) as i64;
    let t0 = SystemClock.now_ms() + 3_000;
    let watchers = Watchers::start(&broker, "steady", o.queues);
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
    if ahead < 0 {
        notes.push(format!("steady scheduled {} ms late", -ahead));
    }
    let deadline = Instant::now() + Duration::from_millis((ahead.max(0) + window_ms) as u64);
    let drained = wait_drained(
        &broker,
        "steady",
        background,
        deadline + Duration::from_secs(60),
    )
    .await;
    let steady_seen = watchers.stop().await;
    if o.timeline {
        timeline(run, t0, window_ms, &steady_seen.each);
    }
    let steady = read_fired(&broker, "steady", o.queues).await;
    eprintln!(
        "fire run {run}: steady: {} fired, {} seen{}",
        steady.count,
        steady_seen.count,
        if drained {
            ""
        } else {
            " (NOT drained within 60 s)"
        }
    );
    if !drained {
        notes.push("steady NOT drained within 60 s".into());
    }

    // Burst: all in the same millisecond, 3 s from now.
    let t1 = SystemClock.now_ms() + 3_000;
    let watchers = Watchers::start(&broker, "burst", o.queues);
    let ahead = schedule(&broker, "burst", o.burst, o, move |_| t1, t1).await;
    eprintln!(
        "fire run {run}: burst: {} scheduled {ahead} ms before due",
        o.burst
    );
    if ahead < 0 {
        notes.push(format!("burst scheduled {} ms late", -ahead));
    }
    let deadline = Instant::now() + Duration::from_millis(ahead.max(0) as u64);
    let drained = wait_drained(&broker, "burst", 0, deadline + Duration::from_secs(60)).await;
    let burst_seen = watchers.stop().await;
    let requests = Requests::now().since(requests_before);
    let requests_seconds = requests_started.elapsed().as_secs_f64();
    let burst = read_fired(&broker, "burst", o.queues).await;
    let spans: Vec<String> = burst
        .spans
        .iter()
        .enumerate()
        .map(|(q, (a, b))| format!("q{q} {}..{}", a - t1, b - t1))
        .collect();
    eprintln!(
        "fire run {run}: burst: {} fired, {} seen{}; per queue, store_ms - due of its first..last: {}",
        burst.count,
        burst_seen.count,
        if drained {
            ""
        } else {
            " (NOT drained within 60 s)"
        },
        spans.join(", ")
    );
    if !drained {
        notes.push("burst NOT drained within 60 s".into());
    }
    for (what, fired, seen, want) in [
        ("steady", steady.count, steady_seen.count, n),
        ("burst", burst.count, burst_seen.count, o.burst),
    ] {
        if fired != want || seen != want {
            notes.push(format!("{what}: {fired} fired, {seen} seen of {want}"));
        }
    }
    jobs.stop().await;
    FireRun {
        base_p50: ms(&base.calls, 0.5),
        base_p99: ms(&base.calls, 0.99),
        steady: quantiles(&steady_seen.lateness),
        steady_stored: quantiles(&steady.lateness),
        burst: quantiles(&burst_seen.lateness),
        burst_stored: quantiles(&burst.lateness),
        burst_drain: (burst_seen.last_ms - t1) as f64,
        requests,
        requests_seconds,
        load: (load_before, load_avg()),
        notes,
    }
}

async fn scenario_fire(o: &Options, background: u64) {
    println!(
        "\n### {}: SystemClock, the node's `timers` job (every 5 ms); {} queues, SYNC, {} B bodies; steady {}/s for {} s, burst {} in one ms; {background} other timers pending (due in [1 h, {} d], spilled) in the steady topic\n",
        if background > 0 {
            "fire-loaded"
        } else {
            "fire"
        },
        o.queues,
        o.body,
        o.steady_rate,
        o.steady_seconds,
        o.burst,
        o.horizon_days
    );
    println!(
        "| run | load 1/5/15 min before → after | baseline: NORMAL SYNC call of {} msgs p50 / p99 ms | steady lateness, visible: p50 / p99 / max ms | steady, by store_ms: p50 / p99 / max ms | burst lateness, visible: p50 / p99 / max ms | burst, by store_ms: p50 / p99 / max ms | burst drain ms (last visible − due) | steady p99 / baseline p99 | object-store requests, steady + burst (scheduling included) |",
        o.batch
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let q3 = |v: [f64; 3]| format!("{:.0} / {:.0} / {:.0}", v[0], v[1], v[2]);
    let mut runs = Vec::new();
    for run in 0..o.runs {
        let r = Box::pin(fire_once(o, run, background)).await;
        println!(
            "| {run} | {} → {} | {:.2} / {:.2} | {} | {} | {} | {} | {:.0} | {:.1} | {} in {:.0} s{} |",
            r.load.0,
            r.load.1,
            r.base_p50,
            r.base_p99,
            q3(r.steady),
            q3(r.steady_stored),
            q3(r.burst),
            q3(r.burst_stored),
            r.burst_drain,
            r.steady[1] / r.base_p99,
            r.requests.kinds(1.0),
            r.requests_seconds,
            if r.notes.is_empty() {
                String::new()
            } else {
                format!(" — {}", r.notes.join("; "))
            }
        );
        runs.push(r);
    }
    let m3 = |f: fn(&FireRun) -> [f64; 3]| {
        q3([
            med(&runs, |r| f(r)[0]),
            med(&runs, |r| f(r)[1]),
            med(&runs, |r| f(r)[2]),
        ])
    };
    println!(
        "| **median** | | {:.2} / {:.2} | {} | {} | {} | {} | {:.0} | {:.1} | |",
        med(&runs, |r| r.base_p50),
        med(&runs, |r| r.base_p99),
        m3(|r| r.steady),
        m3(|r| r.steady_stored),
        m3(|r| r.burst),
        m3(|r| r.burst_stored),
        med(&runs, |r| r.burst_drain),
        med(&runs, |r| r.steady[1] / r.base_p99),
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
            "restart" => serde_json::to_string(&rt.block_on(Box::pin(child_restart(
                &o,
                &dir,
                Arc::new(SystemClock),
                true,
            )))),
            "due" => serde_json::to_string(&rt.block_on(Box::pin(child_restart(
                &o,
                &dir,
                Arc::new(AheadClock(o.due_offset_hours * HOUR_MS)),
                false,
            )))),
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
