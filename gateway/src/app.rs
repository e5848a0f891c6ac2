//! The HTTP API router. (Being written.)
use std::sync::Arc;

use axum::Router;

use crate::state::AppState;

/// The whole HTTP API of a node.
pub fn app(state: Arc<AppState>) -> Router {
    let _ = state;
    todo!()
}
