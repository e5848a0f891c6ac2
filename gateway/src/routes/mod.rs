//! The route table of the HTTP API (one module per group of endpoints).
//!
//! - [`topics`] — `/v1/topics[/{topic}]`
//! - [`produce`] — `POST /v1/topics/{topic}/messages`
//! - [`read`] — `/v1/topics/{topic}/queues/{queue}/{messages,offset}`
//! - [`query`] — `/v1/topics/{topic}/messages[/{message_id}]`
//! - [`send_back`] — `/v1/topics/{topic}/messages/{message_id}/send-back` (dead letters)
//! - [`ops`] — `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, fallbacks
//! - [`console`] — the web console: `/` and its assets `/console/{file}`
//! - [`extract`] — extractors whose rejections are contract errors

pub mod cluster;
pub mod console;
pub mod extract;
pub mod groups;
pub mod ops;
pub mod produce;
pub mod query;
pub mod read;
pub mod send_back;
pub mod timers;
pub mod topics;
pub mod transactions;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// Every route, without middleware or fallbacks (see `app`).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/v1/topics",
            get(topics::list_topics).post(topics::create_topic),
        )
        .route(
            "/v1/topics/{topic}",
            get(topics::get_topic)
                .patch(topics::patch_topic)
                .delete(topics::delete_topic),
        )
        .route(
            "/v1/topics/{topic}/messages",
            get(query::find_by_key).post(produce::produce),
        )
        .route(
            "/v1/topics/{topic}/messages/{message_id}",
            get(query::get_message).delete(query::recall_message),
        )
        .route(
            "/v1/topics/{topic}/messages/{message_id}/send-back",
            get(send_back::get_send_back).post(send_back::send_back),
        )
        .route("/v1/topics/{topic}/timers", get(timers::list_timers))
        .route(
            "/v1/topics/{topic}/queues/{queue}/messages",
            get(read::read_queue),
        )
        .route(
            "/v1/topics/{topic}/queues/{queue}/offset",
            get(read::offset_for_timestamp),
        )
        .route(
            "/v1/transactions/{transaction_id}/commit",
            post(transactions::commit),
        )
        .route(
            "/v1/transactions/{transaction_id}/rollback",
            post(transactions::rollback),
        )
        .route(
            "/v1/producer-groups/{producer_group}",
            get(transactions::get_producer_group),
        )
        .route(
            "/v1/producer-groups/{producer_group}/transaction-checks",
            get(transactions::checks),
        )
        .route("/v1/groups", get(groups::list_groups))
        .route(
            "/v1/groups/{group}",
            get(groups::get_group).put(groups::put_group),
        )
        .route("/v1/groups/{group}/receive", post(groups::receive))
        .route("/v1/groups/{group}/ack", post(groups::ack))
        .route(
            "/v1/groups/{group}/change-invisibility",
            post(groups::change_invisibility),
        )
        .route("/v1/groups/{group}/offsets", get(groups::get_offsets))
        .route(
            "/v1/groups/{group}/offsets/reset",
            post(groups::reset_offsets),
        )
        .route("/v1/cluster", get(cluster::get_cluster))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/", get(console::index))
        .route("/console/{file}", get(console::asset))
}
