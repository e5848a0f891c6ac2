//! Pending delay messages: `GET /v1/topics/{topic}/timers` (API.md "Produce").

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::extract::{ApiPath, ApiQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Query of the timer list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimerParams {
    /// Only pending messages carrying this key (1-128 bytes).
    #[param(min_length = 1, max_length = 128)]
    pub key: Option<String>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next` cursor of the previous page.
    #[param(pattern = "^-?[0-9]{1,18}\\.[0-9]{1,9}\\.[0-9]{1,19}$")]
    pub after: Option<String>,
}

/// One pending delay message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimerObject {
    pub message_id: String,
    pub queue: u32,
    pub deliver_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub keys: Vec<String>,
}

/// A page of pending delay messages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimerList {
    pub timers: Vec<TimerObject>,
    /// Cursor of the next page (`after=`), `null` on the last page.
    pub next: Option<String>,
}

/// List pending delay messages.
#[utoipa::path(get, path = "/v1/topics/{topic}/timers", tag = "messages",
    params(("topic" = String, Path), TimerParams),
    description = "Delay messages not yet due, in `deliver_at_ms` order (ties: queue, then the \
        order they were produced in), `limit` per page (1-1000, default 100); with `key`, only those \
        carrying it. A topic of another type has none (an empty list). A bad `after` or `limit` is \
        400 INVALID_ARGUMENT.",
    responses((status = 200, body = TimerList), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list_timers(
    State(state): State<Arc<AppState>>,
    ApiPath(topic): ApiPath<String>,
    ApiQuery(params): ApiQuery<TimerParams>,
    request: axum::http::request::Parts,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = params
        .limit
        .unwrap_or(shale_broker::timers::lookup::DEFAULT_TIMER_PAGE);
    let (name, timers, next) = state
        .broker
        .list_timers(&topic, params.key, params.limit, params.after)
        .await?;
    let timers = timers
        .into_iter()
        .map(|t| TimerObject {
            message_id: t.message_id.to_string(),
            queue: t.queue,
            deliver_at_ms: t.deliver_at_ms,
            tag: t.tag,
            keys: t.keys,
        })
        .collect();
    let local = serde_json::to_value(TimerList { timers, next })
        .map_err(|e| ApiError::internal("encoding timers", e))?;
    if crate::cluster::is_forwarded(&request.headers) {
        return Ok(Json(local));
    }
    // Each node lists the queues it serves.
    Ok(Json(
        crate::cluster::gather::timers(&state, &name, &request, limit, local).await?,
    ))
}
