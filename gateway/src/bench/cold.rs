//! Cold replay over HTTP (`--cold`, instead of the produce throughput): how
//! fast a node with an empty disk streams a queue out of the object store,
//! against plain GETs of the same objects.
//!
//! Once: an in-process node (`--cold-segment-bytes` segments, 16 MiB by
//! default, so there are several) on the bench's object store fills a 1-queue
//! ASYNC topic with `--cold-messages` JSON order messages (~260 B bodies, one
//! key and a tag each) over HTTP; its hot NDJSON replay is measured `--runs`
//! times as a reference; then it hands over as on SIGTERM
//! ([`AppState::hand_over`]: seal every active segment, upload everything)
//! and is dropped. Per run, interleaved:
//! 1. **baseline**: sequential GETs of every segment object the queue's
//!    manifest lists, bytes counted and dropped;
//! 2. **cold replay**: a fresh in-process node with an empty data dir on the
//!    same object store (so no cache is warm) streams the queue as NDJSON
//!    (`Accept: application/x-ndjson`, offset 0 to the end) to one client.
//!
//! Both are reported in MB/s of the same segment object bytes, the replay
//! also in msgs/s, and their ratio per run. Invariants, checked every run or
//! the bench fails: the replay returns exactly the messages produced, with
//! offsets 0, 1, 2, … in order; every baseline reads the same object bytes.
//!
//! The store is `--cold-object-store` (any URL the node accepts; `memory://`
//! is refused since each node would get its own) or a `file://` directory
//! in the bench's work directory, always under a fresh random prefix so runs
//! never see each other's objects; that prefix is deleted at the end. Every
//! wait is bounded: HTTP calls and object reads time out when no byte comes
//! for [`IDLE`].
//!
//! [`AppState::hand_over`]: crate::state::AppState::hand_over

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::StreamExt as _;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use serde::Deserialize;
use serde_json::json;
use shale_tiering::ObjectStoreUrl;
use shale_tiering::paths::Layout;

use super::BenchArgs;
use super::report::{ColdResult, ColdRun, Replay};
use super::throughput::{Target, create_topic, http_client, serve_in_process, success_body};
use crate::config::{MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, NodeConfig};

/// The benchmark topic (1 queue).
const TOPIC: &str = "bench-cold";
/// Messages per produce request while filling.
const FILL_BATCH: usize = 1000;
/// Longest wait for any single step to make progress (a response, a chunk).
const IDLE: Duration = Duration::from_secs(60);
/// Budget of the hand-over upload.
const HAND_OVER: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
struct Produced {
    results: Vec<serde::de::IgnoredAny>,
}

/// Runs the cold replay benchmark under `work`.
pub(super) async fn cold(args: &BenchArgs, work: &Path) -> anyhow::Result<ColdResult> {
    ensure!(args.cold_messages > 0, "--cold-messages must be positive");
    ensure!(
        (MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&args.cold_segment_bytes),
        "--cold-segment-bytes must be {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}"
    );
    ensure!(
        args.url.is_none(),
        "--cold builds its own nodes; it cannot run against --url"
    );
    let url = bench_store(args.cold_object_store.as_deref(), work)?;
    let result = Box::pin(measure(args, work, &url)).await;
    if let Err(e) = remove_store(&url).await {
        eprintln!("bench: could not remove the objects under {url}: {e:#}");
    }
    result
}

async fn measure(
    args: &BenchArgs,
    work: &Path,
    url: &ObjectStoreUrl,
) -> anyhow::Result<ColdResult> {
    let config = |dir: &Path| NodeConfig {
        data_dir: dir.to_path_buf(),
        object_store: url.to_string(),
        segment_bytes: args.cold_segment_bytes,
        listen: "127.0.0.1:0".into(),
        ..NodeConfig::default()
    };

    // Fill, hot reference, hand-over.
    let fill_dir = work.join("cold-fill");
    std::fs::create_dir_all(&fill_dir)?;
    let (base, server, state) = serve_in_process(config(&fill_dir), false).await?;
    let node = Target {
        base,
        client: http_client(1)?,
        server: Some(server),
    };
    create_topic(&node, TOPIC, 1, "ASYNC").await?;
    let started = Instant::now();
    let body_bytes = fill(&node.client, &node.base, args.cold_messages).await?;
    let fill_secs = started.elapsed().as_secs_f64();
    let hot_client = replay_client()?;
    let mut hot = Vec::new();
    for run in 0..args.runs {
        let r = replay(&hot_client, &node.base, TOPIC, args.cold_messages).await?;
        eprintln!(
            "bench cold {}/{}: hot NDJSON replay {:>9.0} msgs/s",
            run + 1,
            args.runs,
            r.msgs_per_s()
        );
        hot.push(r);
    }
    // As on SIGTERM: stop serving (closing the clients ends their
    // connections), stop the ticks, hand over, flush.
    state.set_draining();
    drop((node, hot_client));
    let started = Instant::now();
    state.leave_cluster(HAND_OVER).await.context("hand-over")?;
    state.shutdown_flush().await?;
    let hand_over_secs = started.elapsed().as_secs_f64();
    drop(state);
    std::fs::remove_dir_all(&fill_dir)
        .with_context(|| format!("removing {}", fill_dir.display()))?;

    let (store, prefix) = shale_tiering::open_object_store(url)
        .with_context(|| format!("opening the object store {url}"))?;
    let segments = segment_paths(&*store, &Layout::new(prefix), args.cold_messages).await?;

    let mut runs: Vec<ColdRun> = Vec::new();
    for run in 0..args.runs {
        let (object_bytes, baseline) = get_all(&*store, &segments).await?;
        if let Some(first) = runs.first() {
            ensure!(
                first.object_bytes == object_bytes,
                "the segment objects changed size between runs ({} then {object_bytes} bytes)",
                first.object_bytes
            );
        }
        let dir = work.join(format!("cold-run{run}"));
        std::fs::create_dir_all(&dir)?;
        let (base, server, state) = serve_in_process(config(&dir), true).await?;
        drop(state);
        let node = Target {
            base,
            client: replay_client()?,
            server: Some(server),
        };
        let replayed = replay(&node.client, &node.base, TOPIC, args.cold_messages).await;
        drop(node);
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        let r = ColdRun {
            object_bytes,
            baseline,
            replay: replayed?,
        };
        eprintln!(
            "bench cold {}/{}: GET objects {:>7.1} MB/s, cold NDJSON replay {:>7.1} MB/s {:>9.0} msgs/s ({:.0}%)",
            run + 1,
            args.runs,
            r.baseline_mb_per_s(),
            r.replay_mb_per_s(),
            r.replay.msgs_per_s(),
            r.ratio() * 100.0
        );
        runs.push(r);
    }
    Ok(ColdResult {
        messages: args.cold_messages,
        body_bytes,
        segment_bytes: args.cold_segment_bytes,
        segments: segments.len(),
        store: url.to_string(),
        fill_secs,
        hand_over_secs,
        hot,
        runs,
    })
}

/// The store of this invocation: `given` (or a `file://` directory in
/// `work`) under a fresh random prefix.
fn bench_store(given: Option<&str>, work: &Path) -> anyhow::Result<ObjectStoreUrl> {
    let leaf = format!("shale-bench-cold-{:016x}", rand::random::<u64>());
    Ok(match given {
        None => ObjectStoreUrl::File(work.join(leaf)),
        Some(text) => match ObjectStoreUrl::parse(text)
            .map_err(|why| anyhow::anyhow!("--cold-object-store: {why}"))?
        {
            ObjectStoreUrl::File(dir) => ObjectStoreUrl::File(dir.join(leaf)),
            ObjectStoreUrl::S3 { bucket, prefix } if prefix.is_empty() => ObjectStoreUrl::S3 {
                bucket,
                prefix: leaf,
            },
            ObjectStoreUrl::S3 { bucket, prefix } => ObjectStoreUrl::S3 {
                bucket,
                prefix: format!("{prefix}/{leaf}"),
            },
            ObjectStoreUrl::Memory => bail!(
                "--cold-object-store memory:// cannot work: every node gets its own empty memory store"
            ),
        },
    })
}

/// Deletes everything the bench wrote under its prefix.
async fn remove_store(url: &ObjectStoreUrl) -> anyhow::Result<()> {
    match url {
        ObjectStoreUrl::File(dir) if !dir.exists() => Ok(()),
        ObjectStoreUrl::File(dir) => {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
        }
        _ => {
            let (store, prefix) = shale_tiering::open_object_store(url)?;
            tokio::time::timeout(
                HAND_OVER,
                shale_tiering::objects::delete_prefix(&*store, &prefix),
            )
            .await
            .context("timed out")??;
            Ok(())
        }
    }
}

/// The client of a replay: one connection, no total timeout (a long stream
/// is bounded by [`IDLE`] between chunks instead). Dropping it closes the
/// connection, so a stopped node's state is not kept alive by it.
fn replay_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

/// Produces `messages` order messages in batches; returns their body bytes.
async fn fill(client: &reqwest::Client, base: &str, messages: u64) -> anyhow::Result<u64> {
    let url = format!("{base}/v1/topics/{TOPIC}/messages");
    let mut body_bytes = 0;
    let mut next = 0u64;
    while next < messages {
        let n = (messages - next).min(FILL_BATCH as u64);
        let batch: Vec<_> = (next..next + n).map(order_message).collect();
        body_bytes += batch.iter().map(|m| m.body.len() as u64).sum::<u64>();
        let request = json!({"messages": batch.iter().map(|m| json!({
            "body": m.body, "keys": [m.key], "tag": m.tag,
        })).collect::<Vec<_>>()});
        let r = client.post(&url).json(&request).send().await?;
        let answer: Produced = serde_json::from_slice(&success_body(r, "produce").await?)?;
        ensure!(
            answer.results.len() as u64 == n,
            "produce stored {} of {n} messages",
            answer.results.len()
        );
        next += n;
    }
    Ok(body_bytes)
}

/// One generated order.
pub(super) struct Order {
    pub(super) body: String,
    pub(super) key: String,
    pub(super) tag: &'static str,
}

/// The `i`-th order: a realistic JSON document of about 260 bytes, keyed by
/// its order id and tagged with its status.
pub(super) fn order_message(i: u64) -> Order {
    const STATUS: [&str; 4] = ["created", "paid", "shipped", "delivered"];
    const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-south-1"];
    const CURRENCY: [&str; 3] = ["EUR", "USD", "INR"];
    let status = STATUS[(i % 4) as usize];
    let region = (i % 3) as usize;
    let mut items = Vec::new();
    for k in 0..1 + i % 3 {
        let x = i.wrapping_mul(2_654_435_761).wrapping_add(k * 7919);
        items.push(format!(
            r#"{{"sku":"sku-{}","qty":{},"price_cents":{}}}"#,
            x % 500,
            1 + x % 4,
            100 + x % 9900
        ));
    }
    let key = format!("ord-{i:08}");
    let body = format!(
        r#"{{"order_id":"{key}","customer":"cust-{}","email":"cust-{}@example.com","status":"{status}","items":[{}],"currency":"{}","region":"{}","created_at":"2026-11-20T{:02}:{:02}:{:02}Z"}}"#,
        i % 9973,
        i % 9973,
        items.join(","),
        CURRENCY[region],
        REGIONS[region],
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60
    );
    Order {
        body,
        key,
        tag: status,
    }
}

/// The segment objects of queue 0 of [`TOPIC`] as its manifest lists them,
/// after checking the manifest covers exactly `[0, messages)`.
async fn segment_paths(
    store: &dyn ObjectStore,
    layout: &Layout,
    messages: u64,
) -> anyhow::Result<Vec<ObjectPath>> {
    let dir = layout.manifest_dir(TOPIC, 0);
    let (manifest, _) =
        tokio::time::timeout(IDLE, shale_tiering::manifest::read_manifest(store, &dir))
            .await
            .context("reading the manifest timed out")??
            .with_context(|| format!("no manifest under {dir} after the hand-over"))?;
    ensure!(
        manifest.min_offset == 0 && manifest.end_offset() == messages,
        "the manifest covers [{}, {}), not the {messages} messages produced",
        manifest.min_offset,
        manifest.end_offset()
    );
    Ok(manifest
        .segments
        .iter()
        .map(|s| layout.segment(TOPIC, 0, s.base_offset))
        .collect())
}

/// The baseline: GETs `paths` one after the other, counting the bytes.
async fn get_all(store: &dyn ObjectStore, paths: &[ObjectPath]) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let mut bytes = 0u64;
    for path in paths {
        let got = tokio::time::timeout(IDLE, store.get(path))
            .await
            .with_context(|| format!("GET {path} timed out"))?
            .with_context(|| format!("GET {path}"))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = tokio::time::timeout(IDLE, stream.next())
            .await
            .with_context(|| format!("reading {path} timed out"))?
        {
            bytes += chunk.with_context(|| format!("reading {path}"))?.len() as u64;
        }
    }
    Ok((bytes, started.elapsed()))
}

/// Streams queue 0 of `topic` as NDJSON from offset 0 to its end, checking
/// there are `expected` lines with offsets 0, 1, 2, …
async fn replay(
    client: &reqwest::Client,
    base: &str,
    topic: &str,
    expected: u64,
) -> anyhow::Result<Replay> {
    let what = "NDJSON replay";
    let url = format!("{base}/v1/topics/{topic}/queues/0/messages?offset=0");
    let started = Instant::now();
    let mut r = tokio::time::timeout(
        IDLE,
        client
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/x-ndjson")
            .send(),
    )
    .await
    .context("the NDJSON replay did not answer in time")??;
    if !r.status().is_success() {
        success_body(r, what).await?;
        bail!("{what}: unexpected status");
    }
    let mut lines = LineCheck::default();
    let mut bytes = 0u64;
    while let Some(chunk) = tokio::time::timeout(IDLE, r.chunk())
        .await
        .context("the NDJSON stream stalled")?
        .context("reading the NDJSON stream")?
    {
        bytes += chunk.len() as u64;
        lines.feed(&chunk)?;
    }
    let elapsed = started.elapsed();
    let lines = lines.finish()?;
    ensure!(
        lines == expected,
        "the NDJSON replay returned {lines} messages, {expected} were produced"
    );
    Ok(Replay {
        lines,
        ndjson_bytes: bytes,
        elapsed,
    })
}

/// Splits an NDJSON byte stream into lines and checks their offsets are 0, 1, 2, …
#[derive(Debug, Default)]
pub(super) struct LineCheck {
    partial: Vec<u8>,
    next: u64,
}

impl LineCheck {
    pub(super) fn feed(&mut self, mut chunk: &[u8]) -> anyhow::Result<()> {
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            let line = if self.partial.is_empty() {
                &chunk[..end]
            } else {
                self.partial.extend_from_slice(&chunk[..end]);
                &self.partial[..]
            };
            let offset = line_offset(line).with_context(|| {
                format!(
                    "NDJSON line {} has no offset: {}",
                    self.next,
                    String::from_utf8_lossy(&line[..line.len().min(200)])
                )
            })?;
            ensure!(
                offset == self.next,
                "NDJSON line {} has offset {offset}",
                self.next
            );
            self.next += 1;
            self.partial.clear();
            chunk = &chunk[end + 1..];
        }
        self.partial.extend_from_slice(chunk);
        Ok(())
    }

    /// The number of lines, once the stream ended on a line end.
    pub(super) fn finish(self) -> anyhow::Result<u64> {
        ensure!(
            self.partial.is_empty(),
            "the NDJSON stream ended inside a line"
        );
        Ok(self.next)
    }
}

/// The top-level `offset` of one message object line. Cheap (no full JSON
/// parse, so the client costs little next to the node): in a message object
/// `offset` comes before the only member a user names (`properties`), and a
/// `"offset":` inside a string value would have its quotes escaped.
pub(super) fn line_offset(line: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"offset\":";
    let at = memchr::memmem::find(line, KEY)? + KEY.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}
