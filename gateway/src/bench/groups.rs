//! Consumer groups (`--groups`): receive + ack throughput against
//! read-by-offset of the same messages in the same run, and the end-to-end
//! latency of a message to a waiting (long-polling) receiver.
//!
//! Per run:
//! 1. A fresh NORMAL topic (`--queues`, ASYNC) is filled with
//!    `--group-messages` messages of `--message-bytes`, split evenly over the
//!    queues (not measured). Then, in an order that alternates from run to
//!    run, **read by offset**: one reader per queue pages through its queue
//!    with `GET .../messages?offset=..&max_messages=B` until `max_offset`;
//!    and **receive + ack**: `--group-consumers` consumers of a fresh group
//!    (`consume_from: EARLIEST`) loop `receive` (`max_messages` B,
//!    `invisible_ms` 60000) + `ack` of the handles until every message was
//!    delivered. Both: messages / wall time; the ratio is per run.
//! 2. For each count in `--e2e-consumers`: a fresh topic (`--e2e-durability`)
//!    and group; the consumers long-poll `receive` (`wait_ms` 20000) and ack;
//!    one producer sends `--e2e-messages` single messages, one every
//!    `--e2e-interval-ms` (never in bursts: a late tick is not made up).
//!    Latency = the `Instant` the receive call returned a message minus the
//!    `Instant` its produce call returned, matched by `message_id`
//!    ([`match_latencies`]); a message received before its produce call
//!    returned counts as 0 and is reported. Since that happens (a message is
//!    visible to receivers once durable at its topic's level — ASYNC: once
//!    appended; SYNC: once fsynced, just before the produce answers), the
//!    latency from the produce call's *start* to the receive returning is
//!    reported too.
//!
//! Both halves check that every message was delivered exactly once and every
//! ack succeeded, and fail the benchmark otherwise.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::BenchArgs;
use super::report::{E2eRun, E2eScenario, GroupsResult, GroupsRun, Half};
use super::throughput::{Target, create_topic, produce_body, success_body, target};

/// Receive `invisible_ms`: long enough that nothing is redelivered mid-run.
const INVISIBLE_MS: u64 = 60_000;
/// Long-poll `wait_ms` of the end-to-end consumers.
const E2E_WAIT_MS: u64 = 20_000;
/// Messages per produce request while filling.
const FILL_BATCH: usize = 100;
/// A half that makes no progress for this long fails the benchmark.
const STALL: Duration = Duration::from_secs(60);
/// Time the end-to-end consumers get to enter their long poll.
const SETTLE: Duration = Duration::from_millis(300);

#[derive(Deserialize)]
struct ReadPage {
    messages: Vec<IgnoredAny>,
    next_offset: u64,
}

#[derive(Deserialize)]
struct Received {
    messages: Vec<ReceivedMessage>,
}

#[derive(Deserialize)]
struct ReceivedMessage {
    message_id: String,
    receipt_handle: String,
    delivery_attempt: u32,
}

#[derive(Deserialize)]
struct AckAnswer {
    results: Vec<AckResult>,
}

#[derive(Deserialize)]
struct AckResult {
    #[serde(default)]
    ok: bool,
}

#[derive(Deserialize)]
struct Produced {
    results: Vec<ProducedResult>,
}

#[derive(Deserialize)]
struct ProducedResult {
    message_id: String,
}

#[derive(Deserialize)]
struct TopicInfo {
    queues: Vec<QueueInfo>,
}

#[derive(Deserialize)]
struct QueueInfo {
    queue: u32,
    min_offset: u64,
    max_offset: u64,
}

/// Runs the consumer-group benchmark on its own node.
pub(super) async fn groups(
    args: &BenchArgs,
    work: &std::path::Path,
) -> anyhow::Result<GroupsResult> {
    ensure!(
        args.group_messages > 0 && args.group_consumers > 0 && args.e2e_messages > 0,
        "--group-messages, --group-consumers and --e2e-messages must be positive"
    );
    ensure!(
        (1..=64).contains(&args.group_batch),
        "--group-batch must be 1-64 (the receive limit)"
    );
    ensure!(
        args.e2e_interval_ms > 0.0,
        "--e2e-interval-ms must be positive"
    );
    let durability = args.e2e_durability.trim().to_ascii_uppercase();
    let target = target(args, &work.join("groups-node"), true).await?;
    let tag = std::process::id();
    let mut result = GroupsResult {
        messages: args.group_messages,
        consumers: args.group_consumers,
        queues: args.queues,
        batch: args.group_batch,
        message_bytes: args.message_bytes,
        runs: Vec::new(),
        e2e: args
            .e2e_consumers
            .iter()
            .map(|&consumers| E2eScenario {
                consumers,
                durability: durability.clone(),
                messages: args.e2e_messages,
                interval_ms: args.e2e_interval_ms,
                runs: Vec::new(),
            })
            .collect(),
    };
    for run in 0..args.runs {
        let topic = format!("bench-groups-{tag}-r{run}");
        create_topic(&target, &topic, args.queues, "ASYNC").await?;
        fill(
            &target,
            &topic,
            args.queues,
            args.group_messages,
            args.message_bytes,
        )
        .await?;
        let group = format!("bench-group-{tag}-r{run}");
        put_group(&target, &group).await?;
        // Alternate which half reads the freshly written data first.
        let (read, recv) = if run % 2 == 0 {
            let read = read_by_offset(&target, &topic, args.group_batch).await?;
            let recv = receive_ack(&target, args, &topic, &group).await?;
            (read, recv)
        } else {
            let recv = receive_ack(&target, args, &topic, &group).await?;
            let read = read_by_offset(&target, &topic, args.group_batch).await?;
            (read, recv)
        };
        ensure!(
            read.messages == args.group_messages,
            "read by offset returned {} messages, {} were produced",
            read.messages,
            args.group_messages
        );
        let r = GroupsRun { read, recv };
        eprintln!(
            "bench run {}/{}: groups: read by offset {:>8.0} msgs/s, receive+ack {:>8.0} msgs/s ({:.0}%)",
            run + 1,
            args.runs,
            r.read.msgs_per_s(),
            r.recv.msgs_per_s(),
            r.ratio() * 100.0
        );
        result.runs.push(r);
        delete_topic(&target, &topic).await;

        for sc in &mut result.e2e {
            let topic = format!("bench-e2e-{tag}-c{}-r{run}", sc.consumers);
            let group = format!("bench-e2e-{tag}-c{}-r{run}", sc.consumers);
            create_topic(&target, &topic, args.queues, &durability).await?;
            put_group(&target, &group).await?;
            let e = end_to_end(&target, args, &topic, &group, sc.consumers).await?;
            eprintln!(
                "bench run {}/{}: e2e {} consumer(s), {durability}: p50 {:.2} ms p99 {:.2} ms max {:.2} ms, \
                 {} received before produce returned",
                run + 1,
                args.runs,
                sc.consumers,
                e.p_ms(0.5),
                e.p_ms(0.99),
                e.max_ms(),
                e.early
            );
            sc.runs.push(e);
            delete_topic(&target, &topic).await;
        }
    }
    Ok(result)
}

async fn post_json<T: serde::de::DeserializeOwned>(
    target: &Target,
    url: &str,
    body: &Value,
) -> anyhow::Result<(T, Instant)> {
    let r = target.client.post(url).json(body).send().await?;
    let bytes = success_body(r, &format!("POST {url}")).await?;
    let returned = Instant::now();
    Ok((serde_json::from_slice(&bytes)?, returned))
}

async fn get_json<T: serde::de::DeserializeOwned>(target: &Target, url: &str) -> anyhow::Result<T> {
    let r = target.client.get(url).send().await?;
    let bytes = success_body(r, &format!("GET {url}")).await?;
    Ok(serde_json::from_slice(&bytes)?)
}

async fn put_group(target: &Target, group: &str) -> anyhow::Result<()> {
    let r = target
        .client
        .put(format!("{}/v1/groups/{group}", target.base))
        .json(&json!({"consume_mode": "CLUSTERING", "consume_from": "EARLIEST"}))
        .send()
        .await?;
    success_body(r, &format!("creating group {group}")).await?;
    Ok(())
}

async fn delete_topic(target: &Target, topic: &str) {
    // Keeps the disk from filling up over many runs.
    let _ = target
        .client
        .delete(format!("{}/v1/topics/{topic}", target.base))
        .send()
        .await;
}

/// A produce request of `n` messages pinned to `queue`.
fn pinned_batch(n: usize, message_bytes: usize, queue: u32, seed: u64) -> anyhow::Result<Bytes> {
    let mut v: Value = serde_json::from_slice(&produce_body(n, message_bytes, seed)?)?;
    if let Some(msgs) = v["messages"].as_array_mut() {
        for m in msgs {
            m["queue"] = json!(queue);
        }
    }
    Ok(Bytes::from(serde_json::to_vec(&v)?))
}

/// Writes `total` messages, split evenly over the queues (one writer each).
async fn fill(
    target: &Target,
    topic: &str,
    queues: u32,
    total: u64,
    message_bytes: usize,
) -> anyhow::Result<()> {
    let url = format!("{}/v1/topics/{topic}/messages", target.base);
    let mut tasks = Vec::new();
    for q in 0..queues {
        let share = total / u64::from(queues) + u64::from(u64::from(q) < total % u64::from(queues));
        let full = pinned_batch(FILL_BATCH, message_bytes, q, u64::from(q) + 1)?;
        let (client, url) = (target.client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut left = share;
            while left > 0 {
                let n = left.min(FILL_BATCH as u64);
                let body = if n == FILL_BATCH as u64 {
                    full.clone()
                } else {
                    pinned_batch(n as usize, message_bytes, q, u64::from(q) + 1)?
                };
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                success_body(r, "fill").await?;
                left -= n;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// One reader per queue pages from `min_offset` to `max_offset`.
async fn read_by_offset(target: &Target, topic: &str, batch: usize) -> anyhow::Result<Half> {
    let info: TopicInfo = get_json(target, &format!("{}/v1/topics/{topic}", target.base)).await?;
    let (start, cpu) = (Instant::now(), cpu_secs());
    let mut tasks = Vec::new();
    for q in info.queues {
        let target = target.handle();
        let url = format!(
            "{}/v1/topics/{topic}/queues/{}/messages",
            target.base, q.queue
        );
        tasks.push(tokio::spawn(async move {
            let (mut offset, mut read) = (q.min_offset, 0u64);
            let mut calls = new_hist()?;
            while offset < q.max_offset {
                let t0 = Instant::now();
                let page: ReadPage = get_json(
                    &target,
                    &format!("{url}?offset={offset}&max_messages={batch}"),
                )
                .await?;
                calls.record(micros(t0.elapsed()))?;
                ensure!(
                    page.next_offset > offset,
                    "read made no progress at {offset}"
                );
                read += page.messages.len() as u64;
                offset = page.next_offset;
            }
            anyhow::Ok((read, calls))
        }));
    }
    let mut half = Half {
        calls: new_hist()?,
        ..Half::default()
    };
    for t in tasks {
        let (n, h) = t.await??;
        half.messages += n;
        half.calls.add(h)?;
    }
    half.elapsed = start.elapsed();
    half.cpu_secs = cpu_secs() - cpu;
    Ok(half)
}

fn new_hist() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?)
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// CPU time of this process (node and load generator alike), user + system.
fn cpu_secs() -> f64 {
    // SAFETY: `getrusage` only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// What one consumer saw.
#[derive(Default)]
struct Consumed {
    ids: Vec<String>,
    redelivered: u64,
    ack_failures: u64,
    last_ack: Option<Instant>,
    receives: Option<Histogram<u64>>,
    acks: Option<Histogram<u64>>,
}

/// Acks `handles`; returns how many were refused.
async fn ack(target: &Target, url: &str, topic: &str, handles: Vec<String>) -> anyhow::Result<u64> {
    let n = handles.len();
    let (a, _): (AckAnswer, _) = post_json(
        target,
        url,
        &json!({"topic": topic, "receipt_handles": handles}),
    )
    .await?;
    ensure!(
        a.results.len() == n,
        "ack answered {} of {n} handles",
        a.results.len()
    );
    Ok(a.results.iter().filter(|r| !r.ok).count() as u64)
}

/// `--group-consumers` consumers receive and ack until every message was
/// delivered, which is checked to have happened exactly once.
async fn receive_ack(
    target: &Target,
    args: &BenchArgs,
    topic: &str,
    group: &str,
) -> anyhow::Result<Half> {
    let total = args.group_messages;
    let delivered = Arc::new(AtomicU64::new(0));
    let (start, cpu) = (Instant::now(), cpu_secs());
    let mut tasks = Vec::new();
    for _ in 0..args.group_consumers {
        let target = target.handle();
        let receive_url = format!("{}/v1/groups/{group}/receive", target.base);
        let ack_url = format!("{}/v1/groups/{group}/ack", target.base);
        let (topic, batch, delivered) = (topic.to_string(), args.group_batch, delivered.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Consumed::default();
            let (mut receives, mut acks) = (new_hist()?, new_hist()?);
            let mut idle_since: Option<Instant> = None;
            let body = json!({"topic": topic, "max_messages": batch,
                              "invisible_ms": INVISIBLE_MS, "wait_ms": 0});
            loop {
                let t0 = Instant::now();
                let (got, _): (Received, _) = post_json(&target, &receive_url, &body).await?;
                if got.messages.is_empty() {
                    if delivered.load(Ordering::Relaxed) >= total {
                        break;
                    }
                    // Another consumer has just taken the last ones and not
                    // counted them yet; anything longer is a bug.
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    ensure!(
                        since.elapsed() < STALL,
                        "receive stalled: {} of {total} delivered",
                        delivered.load(Ordering::Relaxed)
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                receives.record(micros(t0.elapsed()))?;
                idle_since = None;
                delivered.fetch_add(got.messages.len() as u64, Ordering::Relaxed);
                let mut handles = Vec::with_capacity(got.messages.len());
                for m in got.messages {
                    seen.redelivered += u64::from(m.delivery_attempt > 1);
                    seen.ids.push(m.message_id);
                    handles.push(m.receipt_handle);
                }
                let t1 = Instant::now();
                seen.ack_failures += ack(&target, &ack_url, &topic, handles).await?;
                let done = Instant::now();
                acks.record(micros(done - t1))?;
                seen.last_ack = Some(done);
            }
            seen.receives = Some(receives);
            seen.acks = Some(acks);
            anyhow::Ok(seen)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await??);
    }
    let cpu = cpu_secs() - cpu;
    // Until the last ack returned (not the consumers' final empty receives).
    let elapsed = all
        .iter()
        .filter_map(|c| c.last_ack)
        .max()
        .map_or_else(|| start.elapsed(), |t| t - start);
    let ids: Vec<&String> = all.iter().flat_map(|c| &c.ids).collect();
    let distinct: HashSet<&String> = ids.iter().copied().collect();
    let redelivered: u64 = all.iter().map(|c| c.redelivered).sum();
    let ack_failures: u64 = all.iter().map(|c| c.ack_failures).sum();
    ensure!(
        ids.len() as u64 == total && distinct.len() as u64 == total && redelivered == 0,
        "receive+ack: {} deliveries of {} distinct messages ({redelivered} redelivered), {total} produced",
        ids.len(),
        distinct.len()
    );
    ensure!(ack_failures == 0, "{ack_failures} acks failed");
    let mut half = Half {
        messages: total,
        elapsed,
        cpu_secs: cpu,
        calls: new_hist()?,
        acks: Some(new_hist()?),
    };
    for c in &mut all {
        if let Some(h) = c.receives.take() {
            half.calls.add(h)?;
        }
        if let (Some(h), Some(into)) = (c.acks.take(), half.acks.as_mut()) {
            into.add(h)?;
        }
    }
    Ok(half)
}

/// The outcome of matching produce and receive times by message id.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Matched {
    /// Produce returned → receive returned, in µs, one per message received
    /// for the first time (0 when it arrived before its produce call returned).
    pub(super) latencies_us: Vec<u64>,
    /// Messages received before their produce call returned.
    pub(super) early: u64,
    /// Received ids that were never produced.
    pub(super) unknown: u64,
    /// Receptions of an id already received.
    pub(super) duplicates: u64,
    /// Produced ids never received.
    pub(super) missing: u64,
}

/// Matches each received message to its produce call by id.
pub(super) fn match_latencies(
    produced: &[(String, Instant)],
    received: &[(String, Instant)],
) -> Matched {
    let sent: HashMap<&str, Instant> = produced.iter().map(|(id, t)| (id.as_str(), *t)).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut m = Matched::default();
    for (id, at) in received {
        let Some(&sent_at) = sent.get(id.as_str()) else {
            m.unknown += 1;
            continue;
        };
        if !seen.insert(id.as_str()) {
            m.duplicates += 1;
            continue;
        }
        if *at < sent_at {
            m.early += 1;
        }
        m.latencies_us
            .push(at.saturating_duration_since(sent_at).as_micros() as u64);
    }
    m.missing = (sent.len() - seen.len()) as u64;
    m
}

/// One end-to-end run with `consumers` long-polling consumers.
async fn end_to_end(
    target: &Target,
    args: &BenchArgs,
    topic: &str,
    group: &str,
    consumers: usize,
) -> anyhow::Result<E2eRun> {
    let total = args.e2e_messages;
    let received = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let target = target.handle();
        let receive_url = format!("{}/v1/groups/{group}/receive", target.base);
        let ack_url = format!("{}/v1/groups/{group}/ack", target.base);
        let topic = topic.to_string();
        let (received, done_tx, mut done_rx) = (received.clone(), done_tx.clone(), done_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut got_at: Vec<(String, Instant)> = Vec::new();
            let mut ack_failures = 0u64;
            let body = json!({"topic": topic, "max_messages": 32,
                              "invisible_ms": INVISIBLE_MS, "wait_ms": E2E_WAIT_MS});
            loop {
                let answer = tokio::select! {
                    r = post_json::<Received>(&target, &receive_url, &body) => r?,
                    _ = done_rx.wait_for(|d| *d) => break,
                };
                let (got, at) = answer;
                if got.messages.is_empty() {
                    continue;
                }
                let n = got.messages.len() as u64;
                let mut handles = Vec::with_capacity(got.messages.len());
                for m in got.messages {
                    got_at.push((m.message_id, at));
                    handles.push(m.receipt_handle);
                }
                ack_failures += ack(&target, &ack_url, &topic, handles).await?;
                if received.fetch_add(n, Ordering::Relaxed) + n >= total {
                    let _ = done_tx.send(true);
                }
            }
            anyhow::Ok((got_at, ack_failures))
        }));
    }
    tokio::time::sleep(SETTLE).await;

    let url = format!("{}/v1/topics/{topic}/messages", target.base);
    let body = produce_body(1, args.message_bytes, 7)?;
    let mut produce_hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    // By message id: when its produce call returned, and when it was sent.
    let mut produced: Vec<(String, Instant)> = Vec::with_capacity(total as usize);
    let mut sent: Vec<(String, Instant)> = Vec::with_capacity(total as usize);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.e2e_interval_ms / 1000.0));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        let t0 = Instant::now();
        let r = target
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let bytes = success_body(r, "produce").await?;
        let returned = Instant::now();
        produce_hist.record((returned - t0).as_micros().max(1) as u64)?;
        let p: Produced = serde_json::from_slice(&bytes)?;
        let id = p
            .results
            .into_iter()
            .next()
            .context("empty produce answer")?;
        sent.push((id.message_id.clone(), t0));
        produced.push((id.message_id, returned));
    }
    let produce_secs = started.elapsed().as_secs_f64();

    // Every message should arrive promptly; don't wait forever for one that doesn't.
    let mut done = done_rx.clone();
    let _ = tokio::time::timeout(STALL, done.wait_for(|d| *d)).await;
    let _ = done_tx.send(true);
    let mut got_at = Vec::new();
    let mut ack_failures = 0;
    for t in tasks {
        let (g, f) = t.await??;
        got_at.extend(g);
        ack_failures += f;
    }
    let m = match_latencies(&produced, &got_at);
    ensure!(
        m.missing == 0 && m.duplicates == 0 && m.unknown == 0 && ack_failures == 0,
        "end to end: {} missing, {} duplicates, {} unknown, {ack_failures} failed acks",
        m.missing,
        m.duplicates,
        m.unknown
    );
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for l in &m.latencies_us {
        hist.record((*l).max(1))?;
    }
    let mut from_send = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for l in match_latencies(&sent, &got_at).latencies_us {
        from_send.record(l.max(1))?;
    }
    Ok(E2eRun {
        hist,
        from_send,
        produce_hist,
        early: m.early,
        produce_rate: total as f64 / produce_secs,
    })
}
