//! The Prometheus exporter of the node (`GET /metrics`) and the HTTP metric.
//!
//! The recorder is process-global: it is installed once ([`install`], behind a
//! `OnceLock`) however many `AppState`s a process opens (tests open many).
//! Histograms use real buckets (not summaries) so they aggregate across nodes.
//!
//! The broker records its own metrics (`shale_broker::metrics`: produce, read,
//! dedup, group gauges and counters); tiering counts
//! `shale_lost_messages_total{topic}`. This module adds
//! `shale_http_request_duration_seconds{method,route,status}` (route = matched template)
//! and `shale_cluster_forwards_total` (calls sent on to another node).

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
                    tracing::error!(error = %shale_broker::error_chain(&e), "invalid metric buckets; metrics disabled");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::error!(error = %shale_broker::error_chain(&e), "a metrics recorder is already installed; /metrics will be empty");
                return None;
            }
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    shale_broker::metrics::describe();
    metrics::describe_histogram!(
        "shale_http_request_duration_seconds",
        "HTTP request latency by method, route template and status."
    );
}

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

/// Counts one call sent on to another node of the cluster.
pub fn forwarded() {
    metrics::counter!("shale_cluster_forwards_total").increment(1);
}
