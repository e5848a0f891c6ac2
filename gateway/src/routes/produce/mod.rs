//! `POST /v1/topics/{topic}/messages`: produce, JSON or raw.
//!
//! The handler decodes the wire form ([`input`]: JSON, or a raw body with
//! `Shale-*` headers) into the broker's message inputs and hands them to a
//! broker `Producer`, which applies the topic's type rules, chooses queues and
//! stores with dedup and durability (`shale_broker::produce`). Nothing is
//! stored unless the whole request passed validation.

pub mod input;

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde::Serialize;
use shale_broker::Durability;
use shale_broker::produce::{ProduceBatch, Produced};

use super::extract::ApiPath;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Header asking for a stronger durability than the topic's.
pub const DURABILITY_HEADER: &str = "shale-durability";

/// Produce answer: one result per message, in request order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProduceResponse {
    pub results: Vec<ProduceResult>,
}

/// Where one message of the request was stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProduceResult {
    pub message_id: String,
    pub queue: u32,
    /// Absent for a delay message not yet due: it gets its offset when it
    /// enters its queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Delay messages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<i64>,
    /// Half messages only: the transaction to commit or roll back (the same
    /// for every message of the request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
}

impl From<Produced> for ProduceResult {
    fn from(p: Produced) -> Self {
        ProduceResult {
            message_id: p.message_id.to_string(),
            queue: p.queue,
            offset: (!p.scheduled).then_some(p.offset),
            deliver_at_ms: p.deliver_at_ms,
            transaction_id: None,
        }
    }
}

/// Produce messages.
#[utoipa::path(post, path = "/v1/topics/{topic}/messages", tag = "messages",
    params(
        ("topic" = String, Path, description = "Topic name"),
        ("Shale-Durability" = Option<String>, Header, description = "ASYNC | SYNC | OBJECT: a stronger \
            durability than the topic's (a weaker one is ignored). OBJECT answers once the messages are \
            in the object store; they are visible to readers at the topic's own level. Another value is 400."),
        ("Shale-Tag" = Option<String>, Header, description = "Raw produce: the tag"),
        ("Shale-Keys" = Option<String>, Header, description = "Raw produce: comma-separated keys (trimmed)"),
        ("Shale-Message-Group" = Option<String>, Header, description = "Raw produce: FIFO message group"),
        ("Shale-Delay-Ms" = Option<i64>, Header, description = "Raw produce: delay"),
        ("Shale-Deliver-At-Ms" = Option<i64>, Header, description = "Raw produce: delivery time"),
        ("Shale-Dedup-Id" = Option<String>, Header, description = "Raw produce: dedup id"),
    ),
    request_body(content(
        (input::ProduceRequest = "application/json"),
        (Vec<u8> = "application/octet-stream"),
    ), description = "JSON (`application/json`): `{\"messages\": [...]}`. Any other content type (or \
        none) is a raw produce: the request body is the single message's body and its metadata comes \
        from the `Shale-*` headers above, plus one `Shale-Property-<name>: <value>` header per property \
        (HTTP header names are case-insensitive and arrive lowercased, so property names given this \
        way are lowercase); an unknown `Shale-*` header is 400. A JSON produce refuses the raw \
        produce's message headers (400: in a JSON batch each message carries its own fields); \
        `Shale-Durability` applies to both."),
    description = "Validates the whole request before storing anything: one invalid message is a 400 \
        and nothing is stored. Limits: 1-1024 messages; bodies 0-4 MiB (413); 32 MiB of messages per \
        request and an HTTP body of at most 48 MiB (413, to leave room for JSON and base64); unknown \
        fields 400. Type rules (400 MESSAGE_TYPE_MISMATCH): FIFO topics require `message_group` and \
        only they accept it; only DELAY topics accept one of `delay_ms`, \
        `deliver_at_ms`, `delay_level` (1-18, RocketMQ 4 table), at most 40 days ahead of the \
        request's arrival (a DELAY message without one, or due already, is delivered at once, as API.md says); TRANSACTION topics require, and only they accept, `transaction` \
        ({producer_group, check_after_ms}): the messages are then one transaction's half messages, \
        all on one queue (pinned `queue`s must agree, else 400), answered with `transaction_id` and \
        no `offset`, and `dedup_id` is refused (400); a raw (non-JSON) produce cannot carry one. Queue: explicit `queue` (must be below the topic's queues, else 400), else FNV-1a hash \
        of `message_group`, else one round-robin queue per request shared by all its un-pinned \
        messages. Each queue's messages are appended atomically; a request spanning queues is atomic \
        per queue. `born_ms` is the request's arrival time. `dedup_id`: a repeat on the same topic \
        within 5 minutes of the first one's store time (also within one request, also across \
        restarts) is not stored again and gets the first one's result; the id is kept in the \
        message as the reserved property `shale.dedup_id`. SYNC answers after the group-commit fsync. \
        While the node drains, while its hot tier is over `--hot-bytes` with nothing it may \
        evict, or (DELAY and TRANSACTION topics) while the target queue holds 262,144 timers or \
        half messages not yet spilled to the object store (it is down or behind): 503 UNAVAILABLE \
        with Retry-After, and nothing of the request is stored.",
    responses(
        (status = 200, body = ProduceResponse),
        (status = 400, body = ErrorBody, description = "INVALID_ARGUMENT or MESSAGE_TYPE_MISMATCH"),
        (status = 404, body = ErrorBody, description = "TOPIC_NOT_FOUND"),
        (status = 413, body = ErrorBody, description = "PAYLOAD_TOO_LARGE"),
        (status = 503, body = ErrorBody, description = "UNAVAILABLE (draining, or the hot tier or a queue's unspilled timers over budget while the object store catches up), with Retry-After"),
        (status = 507, body = ErrorBody, description = "INSUFFICIENT_STORAGE: local disk full"),
    ))]
pub async fn produce(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ProduceResponse>> {
    // The broker refuses a draining node, a hot tier over budget or an
    // unknown topic before the body is decoded.
    let mut producer = state.broker.producer(&name)?;
    if let Some(requested) = requested_durability(&headers)? {
        producer = producer.at_least(requested)?;
    }
    let body = body?;
    // Only another node writes Shale's own properties (dead-letter copies,
    // to a `%DLQ%` topic or a group's dead_letter_topic); with auth on, the
    // forwarded header alone is not enough: the call must carry the cluster
    // secret.
    let from_node = caller.is_some_and(|Extension(c)| c.is_node_or_open());
    let system = crate::cluster::is_forwarded(&headers) && from_node;
    let (messages, transaction) = if input::is_json(&headers) {
        input::refuse_message_headers(&headers)?;
        input::from_json(&body, system)?
    } else {
        (vec![input::from_raw(&headers, body)?], None)
    };
    let transactional = transaction.is_some();
    let batch = ProduceBatch {
        messages,
        transaction,
    };
    let results = producer.produce(batch).await?;
    let mut results: Vec<ProduceResult> = results.into_iter().map(ProduceResult::from).collect();
    if transactional {
        // One request, one transaction: named by its first half message.
        let first = results.first().and_then(|r| r.message_id.parse().ok());
        if let Some(first) = first {
            let id = shale_broker::txn::records::TxnId { first, topic: name }.to_string();
            for r in &mut results {
                r.transaction_id = Some(id.clone());
            }
        }
    }
    Ok(Json(ProduceResponse { results }))
}

/// The `Shale-Durability` header, if given.
fn requested_durability(headers: &HeaderMap) -> Result<Option<Durability>, ApiError> {
    let Some(value) = headers.get(DURABILITY_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(Durability::parse)
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Shale-Durability must be ASYNC, SYNC or OBJECT, got {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })
}
