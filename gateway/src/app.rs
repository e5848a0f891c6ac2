//! The HTTP API router: routes, fallbacks and middleware.
//!
//! Layers, outermost first: panic → 500 `INTERNAL` in the contract's shape
//! (the panic message is logged, not sent); request latency metric (labelled
//! by the matched route template); body limit of
//! [`MAX_HTTP_BODY_BYTES`](crate::validate::MAX_HTTP_BODY_BYTES), whose
//! rejection extractors turn into 413 PAYLOAD_TOO_LARGE.

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::validate::MAX_HTTP_BODY_BYTES;

/// The whole HTTP API of a node.
pub fn app(state: Arc<AppState>) -> Router {
    crate::routes::router()
        .fallback(crate::routes::ops::not_found)
        .method_not_allowed_fallback(crate::routes::ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_HTTP_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = %what, "request handler panicked");
    ApiError::new(ErrorCode::Internal, "internal error").into_response()
}
