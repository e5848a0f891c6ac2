//! The broker's metrics, recorded through the `metrics` facade (the exporter
//! is the front-end's business: the HTTP node serves them at `/metrics`).
//!
//! - `shale_produce_messages_total{topic}`, `shale_produce_bytes_total{topic}` (body bytes stored)
//! - `shale_read_messages_total{topic}`, `shale_read_bytes_total{topic}` (body bytes returned)
//! - `shale_produce_duration_seconds{durability}` (validation to durable)
//! - `shale_dedup_evictions_total` (ids forgotten before their window ended)
//! - `shale_group_{ready,inflight,lag,oldest_unacked_age_seconds}{group,topic}` gauges,
//!   `shale_group_dead_lettered_total{group,topic}`,
//!   `shale_group_lost_skipped_total{group,topic}` (lost messages a group stepped over)
//!
//! - `shale_cluster_lease_renewals_total{result}` (`ok`/`failed`), `shale_cluster_queues_owned`,
//!   `shale_cluster_takeovers_total{kind}` (`new`: a released or new queue, `takeover`: from
//!   another owner), `shale_cluster_handovers_total`, `shale_quarantined_messages_total{topic}`
//!
//! - `shale_object_commit_puts_total{result}`, `shale_object_commit_duration_seconds` (one OBJECT
//!   group commit: read back, PUT), `shale_object_commit_messages`, `shale_object_commit_bytes`
//!   (per PUT), `shale_object_recovered_messages_total{topic}` (replayed by a takeover),
//!   `shale_object_chunks_deleted_total`
//!
//! - `shale_timers_pending{topic}`, `shale_timers_due_next_minute{topic}` gauges,
//!   `shale_timer_fire_lateness_seconds{topic}` (visible in its queue minus `deliver_at_ms`),
//!   `shale_timers_fired_total{topic}`, `shale_timer_index_objects_total{op}` (timer runs
//!   `read` — blocks — and `written` in the object store)
//!
//! [`describe`] registers their help texts; call it once after installing a recorder.

use std::time::Instant;

/// Registers the help text of every broker metric with the installed recorder.
pub fn describe() {
    metrics::describe_gauge!(
        "shale_timers_pending",
        "Delay messages not yet due, per topic."
    );
    metrics::describe_gauge!(
        "shale_timers_due_next_minute",
        "Delay messages due within the next minute, per topic."
    );
    metrics::describe_histogram!(
        "shale_timer_fire_lateness_seconds",
        "How late a delay message entered its queue (store time minus deliver_at_ms)."
    );
    metrics::describe_counter!(
        "shale_timers_fired_total",
        "Delay messages appended to their queue when due."
    );
    metrics::describe_counter!(
        "shale_timer_index_objects_total",
        "Timer index objects in the object store: run blocks read (op=read), runs written (op=written)."
    );
    metrics::describe_counter!(
        "shale_produce_messages_total",
        "Messages stored by produce calls."
    );
    metrics::describe_counter!(
        "shale_produce_bytes_total",
        "Body bytes stored by produce calls."
    );
    metrics::describe_counter!("shale_read_messages_total", "Messages returned by reads.");
    metrics::describe_counter!("shale_read_bytes_total", "Body bytes returned by reads.");
    metrics::describe_counter!(
        "shale_group_lost_skipped_total",
        "Lost messages (damaged on a node's disk before upload) a group stepped over."
    );
    metrics::describe_counter!(
        "shale_lost_messages_total",
        "Messages found damaged on local disk at upload; their segment went up with a shale.lost marker in their place."
    );
    metrics::describe_counter!(
        "shale_cluster_lease_renewals_total",
        "Renewals of this node's cluster lease, by result."
    );
    metrics::describe_gauge!(
        "shale_cluster_queues_owned",
        "Queues this node holds and serves."
    );
    metrics::describe_counter!(
        "shale_cluster_takeovers_total",
        "Queues this node took: `new` (released or never owned) or `takeover` (from another owner)."
    );
    metrics::describe_counter!(
        "shale_cluster_handovers_total",
        "Queues this node handed over to another."
    );
    metrics::describe_counter!(
        "shale_quarantined_messages_total",
        "Local messages never uploaded whose queue another owner took meanwhile: kept aside, not served."
    );
    metrics::describe_histogram!(
        "shale_produce_duration_seconds",
        "Produce latency (validation to durable) by durability level."
    );
}

pub fn produced(topic: &str, messages: u64, bytes: u64) {
    let topic = topic.to_string();
    metrics::counter!("shale_produce_messages_total", "topic" => topic.clone()).increment(messages);
    metrics::counter!("shale_produce_bytes_total", "topic" => topic).increment(bytes);
}

pub fn group_gauges(
    group: &str,
    topic: &str,
    ready: u64,
    inflight: u64,
    lag: u64,
    oldest_unacked_age_s: f64,
) {
    let labels = [("group", group.to_string()), ("topic", topic.to_string())];
    metrics::gauge!("shale_group_ready", &labels).set(ready as f64);
    metrics::gauge!("shale_group_inflight", &labels).set(inflight as f64);
    metrics::gauge!("shale_group_lag", &labels).set(lag as f64);
    metrics::gauge!("shale_group_oldest_unacked_age_seconds", &labels).set(oldest_unacked_age_s);
}

pub fn dead_lettered(group: &str, topic: &str) {
    metrics::counter!("shale_group_dead_lettered_total", "group" => group.to_string(), "topic" => topic.to_string()).increment(1);
}

pub fn lost_skipped(group: &str, topic: &str) {
    metrics::counter!("shale_group_lost_skipped_total", "group" => group.to_string(), "topic" => topic.to_string()).increment(1);
}

/// Messages (and their body bytes) returned to a reader.
pub fn read(topic: &str, messages: u64, bytes: u64) {
    if messages == 0 {
        return;
    }
    let topic = topic.to_string();
    metrics::counter!("shale_read_messages_total", "topic" => topic.clone()).increment(messages);
    metrics::counter!("shale_read_bytes_total", "topic" => topic).increment(bytes);
}

pub fn produce_duration(durability: &'static str, started: Instant) {
    metrics::histogram!("shale_produce_duration_seconds", "durability" => durability)
        .record(started.elapsed().as_secs_f64());
}

pub(crate) fn lease_renewed(ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    metrics::counter!("shale_cluster_lease_renewals_total", "result" => result).increment(1);
}

pub(crate) fn queues_owned(n: usize) {
    metrics::gauge!("shale_cluster_queues_owned").set(n as f64);
}

pub(crate) fn queue_taken(from_another: bool) {
    let kind = if from_another { "takeover" } else { "new" };
    metrics::counter!("shale_cluster_takeovers_total", "kind" => kind).increment(1);
}

pub(crate) fn queue_handed_over() {
    metrics::counter!("shale_cluster_handovers_total").increment(1);
}

pub(crate) fn object_commit(started: Instant, messages: usize, bytes: usize, ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    metrics::counter!("shale_object_commit_puts_total", "result" => result).increment(1);
    metrics::histogram!("shale_object_commit_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    metrics::histogram!("shale_object_commit_messages").record(messages as f64);
    metrics::histogram!("shale_object_commit_bytes").record(bytes as f64);
}

pub(crate) fn wal_recovered(topic: &str, messages: u64) {
    metrics::counter!("shale_object_recovered_messages_total", "topic" => topic.to_string())
        .increment(messages);
}

pub(crate) fn wal_chunk_deleted() {
    metrics::counter!("shale_object_chunks_deleted_total").increment(1);
}

pub(crate) fn quarantined(topic: &str, messages: u64) {
    metrics::counter!("shale_quarantined_messages_total", "topic" => topic.to_string())
        .increment(messages);
}

/// One delay message fired `lateness_ms` after its time.
pub fn timer_fired(topic: &str, lateness_ms: i64) {
    let topic = topic.to_string();
    metrics::counter!("shale_timers_fired_total", "topic" => topic.clone()).increment(1);
    metrics::histogram!("shale_timer_fire_lateness_seconds", "topic" => topic)
        .record(lateness_ms.max(0) as f64 / 1000.0);
}

/// Timer index objects read (run blocks) or written (runs).
pub fn timer_index_objects(op: &'static str, n: u64) {
    metrics::counter!("shale_timer_index_objects_total", "op" => op).increment(n);
}

/// A transaction decided: `commit`, `rollback` (by its producer) or
/// `rollback_check_limit` (nobody answered the checks).
pub fn txn_decided(topic: &str, decision: &'static str) {
    metrics::counter!("shale_transactions_decided_total", "topic" => topic.to_string(), "decision" => decision)
        .increment(1);
}

/// A transaction check offered to its producer group.
pub fn txn_check_offered(topic: &str) {
    metrics::counter!("shale_transaction_checks_total", "topic" => topic.to_string()).increment(1);
}

/// Refreshes the timer gauges of every topic with timers on this node (and
/// the pending transactions of TRANSACTION topics, whose half messages are
/// not counted as timers).
pub fn timers(broker: &crate::broker::Broker, now_ms: i64) {
    let mut by_topic: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut txns: std::collections::BTreeMap<String, u64> = Default::default();
    for q in broker.timers.all() {
        let pending_txns = q.txns.lock().pending() as u64;
        if pending_txns > 0 || !q.txns.lock().is_empty() {
            *txns.entry(q.topic.clone()).or_default() += pending_txns;
            continue;
        }
        let index = q.index.lock();
        let e = by_topic.entry(q.topic.clone()).or_default();
        e.0 += index.pending_count() as u64;
        e.1 += index.due_before(now_ms.saturating_add(60_000)) as u64;
    }
    for (topic, (pending, soon)) in by_topic {
        metrics::gauge!("shale_timers_pending", "topic" => topic.clone()).set(pending as f64);
        metrics::gauge!("shale_timers_due_next_minute", "topic" => topic).set(soon as f64);
    }
    for (topic, pending) in txns {
        metrics::gauge!("shale_transactions_pending", "topic" => topic).set(pending as f64);
    }
}
