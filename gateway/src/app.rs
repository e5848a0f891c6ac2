//! The HTTP API router: routes, fallbacks and middleware.
//!
//! Layers, outermost first: panic → 500 `INTERNAL` in the contract's shape
//! (the panic message is logged, not sent); request latency metric (labelled
//! by the matched route template); auth (`crate::auth::layer`: token, rate,
//! rule; before any body is buffered for forwarding); forwarding to the node
//! that serves the queue (`crate::cluster::forward`); body limit of
//! [`MAX_HTTP_BODY_BYTES`], whose
//! rejection extractors turn into 413 PAYLOAD_TOO_LARGE.

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
pub use shale_broker::validate::MAX_HTTP_BODY_BYTES;

/// The whole HTTP API of a node: the SQS-compatible endpoint (`POST /`
/// with `X-Amz-Target`, see `crate::sqs`) in front of the `/v1` API, the
/// console and the operations endpoints.
pub fn app(state: Arc<AppState>) -> Router {
    let v1 = v1_app(state.clone());
    crate::sqs::wrap(v1, state).layer(CatchPanicLayer::custom(panic_response))
}

/// Everything but the SQS endpoint.
fn v1_app(state: Arc<AppState>) -> Router {
    crate::routes::router()
        .fallback(crate::routes::ops::not_found)
        .method_not_allowed_fallback(crate::routes::ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_HTTP_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cluster::forward::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::layer::layer,
        ))
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn panics_become_internal_errors() {
        let app: Router = Router::new()
            .route("/p", get(boom))
            .layer(CatchPanicLayer::custom(panic_response));
        let resp = app
            .oneshot(Request::get("/p").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "INTERNAL");
    }
}
