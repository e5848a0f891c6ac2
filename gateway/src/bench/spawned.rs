//! Measurements on spawned `shale serve` processes: restart time with hot
//! data (after SIGTERM and after kill -9) and anonymous memory (RssAnon).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::BenchArgs;
use super::report::{MemoryResult, RestartResult};
use super::throughput::{Target, create_topic, http_client, produce_body, success_body};

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
                success_body(r, "fill").await?;
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

pub(super) async fn restart(args: &BenchArgs, work: &Path) -> anyhow::Result<RestartResult> {
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

pub(super) async fn memory(args: &BenchArgs, work: &Path) -> anyhow::Result<MemoryResult> {
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
