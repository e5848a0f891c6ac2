//! Throughput: the node under test (in-process or `--url`), concurrent HTTP
//! producers per scenario, and the raw `fsync` writers of the baseline.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::BenchArgs;
use super::report::{Sample, Scenario};
use crate::app::app;
use crate::config::NodeConfig;
use crate::state::AppState;

pub(super) const BASELINE: &str = "raw fsync";
const WARMUP: Duration = Duration::from_millis(500);

/// A node to benchmark: in-process, or a running one.
pub(super) struct Target {
    pub(super) base: String,
    pub(super) client: reqwest::Client,
    pub(super) server: Option<tokio::task::JoinHandle<()>>,
}

impl Target {
    /// Another handle on the same node for a client task; dropping it leaves
    /// the node running.
    pub(super) fn handle(&self) -> Target {
        Target {
            base: self.base.clone(),
            client: self.client.clone(),
            server: None,
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// Builds a node in `data_dir` and serves it on `127.0.0.1:0`; returns its
/// base URL and the serving task (see [`serve_in_process`] for `like_serve`).
async fn in_process_node(
    data_dir: &Path,
    like_serve: bool,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    std::fs::create_dir_all(data_dir)?;
    let config = NodeConfig {
        data_dir: data_dir.to_path_buf(),
        object_store: crate::config::default_object_store(data_dir),
        listen: "127.0.0.1:0".into(),
        ..NodeConfig::default()
    };
    let (base, handle, _) = serve_in_process(config, like_serve).await?;
    Ok((base, handle))
}

/// Opens a node with `config`, adopts the topics its object store knows (as
/// `shale serve` does), and serves it on `127.0.0.1:0`; returns its base URL,
/// the serving task and the state. The ASYNC flush runs every
/// `flush_interval_ms`, as in `shale serve`. With `like_serve`, accepted
/// connections also get `TCP_NODELAY` and the tiering tick (group cursor
/// checkpoints, group gauges, uploads) runs at the same period, as
/// `shale serve` does; the produce scenarios keep the plain setup their
/// recorded numbers were measured with. Aborting the serving task stops the
/// background ticks too.
pub(super) async fn serve_in_process(
    config: NodeConfig,
    like_serve: bool,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>, Arc<AppState>)> {
    use axum::serve::ListenerExt as _;

    let open_config = config.clone();
    let state = tokio::task::spawn_blocking(move || AppState::open(&open_config)).await??;
    state
        .load_topics_from_store()
        .await
        .context("reading topic metadata from the object store")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(move |tcp| {
        if like_serve {
            let _ = tcp.set_nodelay(true);
        }
    });
    let router = app(state.clone());
    let flush_every = Duration::from_millis(config.flush_interval_ms.max(1));
    let ticked = state.clone();
    let handle = tokio::spawn(async move {
        // ASYNC data is fsynced in the background, as in `shale serve`.
        let ticker = ticked.clone();
        let maintenance = AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(flush_every);
            loop {
                tick.tick().await;
                ticker.maintenance_tick().await;
            }
        }));
        let tiering = like_serve.then(|| {
            let ticker = ticked.clone();
            AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(flush_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    ticker.tiering_tick().await;
                }
            }))
        });
        drop(ticked);
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("bench: in-process server failed: {e}");
        }
        drop((maintenance, tiering));
    });
    Ok((format!("http://{addr}"), handle, state))
}

/// Aborts its task when dropped: the background ticks of an in-process node
/// end with its serving task, even when that task is aborted.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The node under test: `--url`, or an in-process node in `data_dir`
/// (see [`in_process_node`] for `like_serve`).
pub(super) async fn target(
    args: &BenchArgs,
    data_dir: &Path,
    like_serve: bool,
) -> anyhow::Result<Target> {
    let client = http_client(args.clients)?;
    Ok(match &args.url {
        Some(url) => Target {
            base: url.trim_end_matches('/').to_string(),
            client,
            server: None,
        },
        None => {
            let (base, server) = in_process_node(data_dir, like_serve).await?;
            Target {
                base,
                client,
                server: Some(server),
            }
        }
    })
}

pub(super) fn http_client(clients: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()?)
}

pub(super) async fn throughput(args: &BenchArgs, work: &Path) -> anyhow::Result<Vec<Scenario>> {
    let target = target(args, &work.join("node"), false).await?;
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
pub(super) fn produce_body(batch: usize, message_bytes: usize, seed: u64) -> anyhow::Result<Bytes> {
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

pub(super) async fn create_topic(
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
    success_body(r, &format!("creating topic {topic}")).await?;
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
    let bases: Vec<String> = std::iter::once(target.base.clone())
        .chain(
            args.also_url
                .iter()
                .map(|u| u.trim_end_matches('/').to_string()),
        )
        .collect();
    known_everywhere(&target.client, &bases, topic).await?;
    let urls: Vec<String> = bases
        .iter()
        .map(|b| format!("{b}/v1/topics/{topic}/messages"))
        .collect();
    let load = Load {
        clients: args.clients,
        batch,
        message_bytes: args.message_bytes,
        pin_queues: args.pin_queues.then_some(args.queues),
    };
    let sample = drive_http(&target.client, &urls, &load, WARMUP, duration).await;
    // Keep the disk from filling up over many runs.
    let _ = target
        .client
        .delete(format!("{}/v1/topics/{topic}", target.base))
        .send()
        .await;
    sample
}

/// Waits (at most 30 s) until every node in `bases` knows `topic`: the
/// others learn of a new topic at their next heartbeat.
async fn known_everywhere(
    client: &reqwest::Client,
    bases: &[String],
    topic: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for b in bases {
        loop {
            let r = client.get(format!("{b}/v1/topics/{topic}")).send().await?;
            if r.status().is_success() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{b} did not learn of topic {topic} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// What the throughput clients send.
struct Load {
    clients: usize,
    batch: usize,
    message_bytes: usize,
    /// `Some(queues)`: client `c` names queue `c mod queues`.
    pin_queues: Option<u32>,
}

/// [`produce_body`], every message naming `queue`.
fn pinned_body(batch: usize, message_bytes: usize, seed: u64, queue: u32) -> anyhow::Result<Bytes> {
    let mut v: Value = serde_json::from_slice(&produce_body(batch, message_bytes, seed)?)?;
    for m in v["messages"].as_array_mut().into_iter().flatten() {
        m["queue"] = json!(queue);
    }
    Ok(Bytes::from(serde_json::to_vec(&v)?))
}

/// `clients` keep-alive clients (client `c` on `urls[c mod n]`) post the
/// same pre-serialized batch in a loop for `warmup + duration`; only
/// requests started after the warm-up count. A 503 (a queue moving in a
/// cluster) is retried after 20 ms and not counted.
async fn drive_http(
    client: &reqwest::Client,
    urls: &[String],
    load: &Load,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let (clients, batch, message_bytes) = (load.clients, load.batch, load.message_bytes);
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let seed = c as u64 + 1;
        let body = match load.pin_queues {
            Some(queues) => pinned_body(batch, message_bytes, seed, c as u32 % queues.max(1))?,
            None => produce_body(batch, message_bytes, seed)?,
        };
        let (client, url) = (client.clone(), urls[c % urls.len()].clone());
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
                if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                success_body(r, "produce").await?;
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

/// The body of a successful answer; any other status is an error naming
/// `what` with the answer's text.
pub(super) async fn success_body(r: reqwest::Response, what: &str) -> anyhow::Result<Bytes> {
    let status = r.status();
    let body = r.bytes().await?;
    ensure!(
        status.is_success(),
        "{what}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(body)
}
