//! Operational endpoints: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`,
//! and the answers for unknown routes (404 NOT_FOUND) and wrong methods
//! (405 METHOD_NOT_ALLOWED), both in the contract's error shape.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

/// Answer of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok`
    pub status: &'static str,
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    description = "200 while the process serves HTTP.",
    responses((status = 200, body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    description = "200 once storage is open (the node only serves after it is) and until it starts \
        draining; then 503 UNAVAILABLE with Retry-After.",
    responses((status = 200, body = Status), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Status>, ApiError> {
    if state.is_draining() {
        return Err(ApiError::unavailable("the node is draining"));
    }
    Ok(Json(Status { status: "ok" }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    description = "Prometheus text format: shale_produce_messages_total{topic}, \
        shale_produce_bytes_total{topic}, shale_read_messages_total{topic}, \
        shale_read_bytes_total{topic}, shale_dedup_evictions_total, histograms (buckets) \
        shale_http_request_duration_seconds{method,route,status} (route is the matched template; \
        for NDJSON streams the time to the first byte) and shale_produce_duration_seconds{durability}.",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let text = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}

/// Any unknown route.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// A known route with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}
