//! Prometheus metrics of the node (`GET /metrics`).
//!
//! The recorder is process-global: it is installed once ([`install`], behind a
//! `OnceLock`) however many `AppState`s a process opens (tests open many).
//! Histograms use real buckets (not summaries) so they aggregate across nodes.
//!
//! Metrics:
//! - `shale_produce_messages_total{topic}`, `shale_produce_bytes_total{topic}` (body bytes stored)
//! - `shale_read_messages_total{topic}`, `shale_read_bytes_total{topic}` (body bytes returned)
//! - `shale_http_request_duration_seconds{method,route,status}` (route = matched template)
//! - `shale_produce_duration_seconds{durability}`
//! - `shale_dedup_evictions_total` (ids forgotten before their window ended)
//! - `shale_lost_messages_total{topic}` (damaged before upload, counted by the uploader)
//! - `shale_group_lost_skipped_total{group,topic}` (lost messages a group stepped over)

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request latency buckets, seconds: 0.5 ms to 30 s (long polls).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle
/// (`None` if another recorder was installed first: `/metrics` is then empty).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS);
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "invalid metric buckets; metrics disabled");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::error!(error = %e, "a metrics recorder is already installed; /metrics will be empty");
                return None;
            }
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
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
    metrics::describe_histogram!(
        "shale_http_request_duration_seconds",
        "HTTP request latency by method, route template and status."
    );
    metrics::describe_histogram!(
        "shale_produce_duration_seconds",
        "Produce latency (validation to durable) by durability level."
    );
}

/// Counts stored messages.
pub fn produced(topic: &str, messages: u64, bytes: u64) {
    let topic = topic.to_string();
    metrics::counter!("shale_produce_messages_total", "topic" => topic.clone()).increment(messages);
    metrics::counter!("shale_produce_bytes_total", "topic" => topic).increment(bytes);
}

/// The state of a group on a topic (see `groups::report`).
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

/// A message moved to a group's dead-letter topic.
pub fn dead_lettered(group: &str, topic: &str) {
    metrics::counter!("shale_group_dead_lettered_total", "group" => group.to_string(), "topic" => topic.to_string()).increment(1);
}

/// A group stepped over a lost message (damaged on disk before upload).
pub fn lost_skipped(group: &str, topic: &str) {
    metrics::counter!("shale_group_lost_skipped_total", "group" => group.to_string(), "topic" => topic.to_string()).increment(1);
}

/// Counts returned messages.
pub fn read(topic: &str, messages: u64, bytes: u64) {
    if messages == 0 {
        return;
    }
    let topic = topic.to_string();
    metrics::counter!("shale_read_messages_total", "topic" => topic.clone()).increment(messages);
    metrics::counter!("shale_read_bytes_total", "topic" => topic).increment(bytes);
}

/// Records a produce call's latency.
pub fn produce_duration(durability: &'static str, started: Instant) {
    metrics::histogram!("shale_produce_duration_seconds", "durability" => durability)
        .record(started.elapsed().as_secs_f64());
}

/// Middleware: records `shale_http_request_duration_seconds` labelled with
/// the matched route template (`/v1/topics/{topic}`), never the raw path, so
/// the number of series stays bounded. Unmatched requests are `route="unmatched"`.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "shale_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status
    )
    .record(started.elapsed().as_secs_f64());
    response
}
