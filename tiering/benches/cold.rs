//! Cold-tier benchmark (`cargo bench -p shale-tiering --bench cold`).
//!
//! In one run, against a local-filesystem object store in a temp dir:
//! 1. cold replay of every message through [`ColdReader`] vs the baseline: a
//!    raw GET of the same objects (bytes only, no decoding) — MB/s of stored
//!    object bytes, median of `COLD_RUNS` runs (default 5), and their ratio;
//! 2. stored bytes per message, Parquet vs the hot tier's segment files, for a
//!    realistic JSON payload;
//! 3. object reads needed to seek by timestamp across 1,000 segments once the
//!    manifest is cached (counted by the fault-injecting wrapper).
//!
//! Prints a Markdown table; no assertion (the numbers go to docs/BENCHMARKS.md).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use shale_hot::{AppendRequest, HotConfig, HotStore, ManualClock, QueueLog};
use shale_tiering::cold_reader::ColdReader;
use shale_tiering::paths::Layout;
use shale_tiering::uploader::QueueUploader;
use shale_tiering::{FaultStore, Faults, ObjectStoreUrl, objects, open_object_store};

fn runs() -> usize {
    std::env::var("COLD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}
const MESSAGES: usize = 200_000;

fn order(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"order_id":"ord-{i:08}","customer":"cust-{}","status":"{}","items":[{{"sku":"sku-{}","qty":{},"price_cents":{}}}],"currency":"EUR","region":"eu-west-{}","created_at":"2026-11-20T10:{:02}:{:02}Z"}}"#,
        i % 5000,
        ["created", "paid", "shipped"][i % 3],
        i % 977,
        1 + i % 4,
        199 + (i * 31) % 10_000,
        1 + i % 3,
        (i / 60) % 60,
        i % 60
    ))
}

/// Replay and baseline medians against one object store.
struct Replay {
    raw_mb_s: f64,
    replay_mb_s: f64,
    /// Median of the per-run ratios replay / raw GET.
    ratio: f64,
    object_bytes: u64,
}

/// Uploads the sealed segments of `q` to `url`, then alternates, run by run,
/// a raw GET of every segment object and a full replay through a fresh
/// `ColdReader` (so no row group is cached between runs).
async fn replay_vs_raw(url: &ObjectStoreUrl, q: &Arc<QueueLog>) -> anyhow::Result<Replay> {
    let (store, prefix) = open_object_store(url)?;
    let layout = Layout::new(prefix);
    let mut up = QueueUploader::open(store.clone(), layout.clone(), "orders", 0, 1 << 20).await?;
    up.upload_sealed(q).await?;
    let manifest = up.manifest().manifest().clone();
    let object_bytes: u64 = manifest.segments.iter().map(|s| s.bytes).sum();
    let (mut raw, mut replay, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs() {
        let started = Instant::now();
        let mut got = 0u64;
        for s in &manifest.segments {
            let object = store
                .get(&layout.segment("orders", 0, s.base_offset))
                .await?;
            got += object.bytes().await?.len() as u64;
        }
        let raw_run = got as f64 / 1e6 / started.elapsed().as_secs_f64();

        let reader = ColdReader::new(store.clone(), layout.clone(), 64 << 20);
        let started = Instant::now();
        let mut at = 0u64;
        while at < manifest.end_offset() {
            let part = reader.read("orders", 0, at, 1024).await?;
            anyhow::ensure!(!part.is_empty(), "no data at {at}");
            at += part.len() as u64;
        }
        let replay_run = object_bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
        raw.push(raw_run);
        replay.push(replay_run);
        ratio.push(replay_run / raw_run);
    }
    objects::delete_prefix(store.as_ref(), layout.prefix()).await?;
    Ok(Replay {
        raw_mb_s: median(raw),
        replay_mb_s: median(replay),
        ratio: median(ratio),
        object_bytes,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let hot_dir = tempfile::tempdir()?;
    let obj_dir = tempfile::tempdir()?;
    let t0 = 1_700_000_000_000;
    let clock = ManualClock::new(t0);
    let hot_config = HotConfig {
        segment_bytes: 16 << 20,
        ..HotConfig::default()
    };
    let hot = HotStore::open(hot_dir.path(), hot_config, Arc::new(clock.clone()))?;
    let q = hot.queue("orders", 0)?;
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(1000) {
        clock.advance(1000);
        let batch: Vec<AppendRequest> = chunk
            .iter()
            .map(|&i| AppendRequest {
                born_ms: t0,
                tag: Some("created".into()),
                keys: vec![format!("ord-{i:08}")],
                body: order(i),
                ..Default::default()
            })
            .collect();
        q.append(&batch)?;
    }
    hot.seal_all_active()?;
    let hot_bytes: u64 = q.sealed_segments().iter().map(|s| s.bytes).sum();

    let mut backends = vec![(
        "local filesystem",
        ObjectStoreUrl::File(obj_dir.path().to_path_buf()),
    )];
    if let Ok(bucket) = std::env::var("SHALE_TEST_S3_BUCKET") {
        let prefix = format!("bench-cold-{}-{}", std::process::id(), t0);
        backends.push((
            "S3 (AWS_ENDPOINT_URL)",
            ObjectStoreUrl::S3 { bucket, prefix },
        ));
    }
    let mut replays = Vec::new();
    let mut cold_bytes = 0;
    for (label, url) in backends {
        let replay = replay_vs_raw(&url, &q).await?;
        cold_bytes = replay.object_bytes;
        replays.push((label, replay));
    }

    // Seek by timestamp over 1,000 segments of 20 messages each.
    let layout = Layout::new(Path::default());
    let faults = Faults::default();
    let seek_store: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(
        open_object_store(&ObjectStoreUrl::Memory)?.0,
        faults.clone(),
    ));
    let many_dir = tempfile::tempdir()?;
    let hot2 = HotStore::open(
        many_dir.path(),
        HotConfig::default(),
        Arc::new(clock.clone()),
    )?;
    let q2 = hot2.queue("many", 0)?;
    for i in 0..1000 {
        clock.advance(1000);
        let batch: Vec<AppendRequest> = (0..20)
            .map(|j| AppendRequest {
                body: order(i * 20 + j),
                ..Default::default()
            })
            .collect();
        q2.append(&batch)?;
        q2.seal_active()?;
    }
    let mut up2 =
        QueueUploader::open(seek_store.clone(), layout.clone(), "many", 0, 1 << 20).await?;
    up2.upload_sealed(&q2).await?;
    let segments = up2.manifest().manifest().segments.len();
    let all = q2.read(0, 20_000, usize::MAX)?;
    let mut reads = Vec::new();
    for probe in [7usize, 5_003, 10_011, 15_000, 19_999] {
        let reader = ColdReader::new(seek_store.clone(), layout.clone(), 64 << 20);
        reader.manifest("many", 0).await?;
        faults.reset_counts();
        let got = reader
            .offset_for_timestamp("many", 0, all[probe].store_ms)
            .await?;
        // Every message of a batch shares its store_ms: the first of the batch is the answer.
        anyhow::ensure!(
            got == Some(all[probe].offset - all[probe].offset % 20),
            "seek found {got:?}"
        );
        let c = faults.counts();
        reads.push((c.gets + c.heads + c.lists) as f64);
    }

    println!("| measurement | value |");
    println!("| --- | ---: |");
    for (label, r) in &replays {
        println!(
            "| {label}: raw GET of the segment objects (baseline), MB/s, median of {} | {:.0} |",
            runs(),
            r.raw_mb_s
        );
        println!(
            "| {label}: cold replay via ColdReader, MB/s of the same objects (M msgs/s), median of {} | {:.0} ({:.2}) |",
            runs(),
            r.replay_mb_s,
            r.replay_mb_s * 1e6 / (r.object_bytes as f64 / MESSAGES as f64) / 1e6
        );
        println!(
            "| {label}: cold replay / raw GET, median of per-run ratios | {:.0}% |",
            100.0 * r.ratio
        );
    }
    println!("| messages | {MESSAGES} |");
    println!(
        "| bytes per message, hot tier segment files | {:.1} |",
        hot_bytes as f64 / MESSAGES as f64
    );
    println!(
        "| bytes per message, Parquet (zstd) | {:.1} |",
        cold_bytes as f64 / MESSAGES as f64
    );
    println!(
        "| object reads to seek by timestamp over {segments} segments (manifest cached), median of 5 probes | {:.0} |",
        median(reads)
    );
    Ok(())
}
