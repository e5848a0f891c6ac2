//! Transactions (API.md "Transactions"): commit, rollback, check-back and
//! the producer group view.
//!
//! A transaction id names its topic and queue, so a decision on a node that
//! does not own the queue is forwarded to the owner like any queue request.
//! Checks and producer groups span every node: this node asks the others
//! (see [`crate::cluster::gather`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shale_broker::txn::checks::CheckOffer;
use shale_broker::txn::table::TxnDecision;

use super::extract::{ApiPath, ApiQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::message::{BodyEncoding, MessageObject};
use crate::state::AppState;

/// Longest `wait_ms` of a check poll.
pub const MAX_CHECK_WAIT_MS: u64 = 30_000;
/// Most checks per poll.
pub const MAX_CHECKS: usize = 64;

/// A decision's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecisionResponse {
    pub transaction_id: String,
    pub topic: String,
    pub queue: u32,
    /// `COMMITTED` or `ROLLED_BACK`.
    pub state: String,
}

/// Commit a transaction.
#[utoipa::path(post, path = "/v1/transactions/{transaction_id}/commit", tag = "transactions",
    params(("transaction_id" = String, Path, description = "As the produce answered it")),
    description = "Appends the transaction's half messages to their queue, once (they get their \
        offsets then, in commit order, and are delivered like any message). Repeating the commit is \
        200 and appends nothing; a transaction rolled back is 409 TRANSACTION_ALREADY_RESOLVED; an \
        unknown id, or one decided more than 15 minutes ago, is 404 TRANSACTION_NOT_FOUND.",
    responses((status = 200, body = DecisionResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn commit(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DecisionResponse>> {
    decide(&state, id, TxnDecision::Committed).await
}

/// Roll back a transaction.
#[utoipa::path(post, path = "/v1/transactions/{transaction_id}/rollback", tag = "transactions",
    params(("transaction_id" = String, Path, description = "As the produce answered it")),
    description = "Discards the transaction's half messages: they never enter their queue. \
        Repeating the rollback is 200; a committed transaction is 409 TRANSACTION_ALREADY_RESOLVED; \
        an unknown id, or one decided more than 15 minutes ago, is 404 TRANSACTION_NOT_FOUND.",
    responses((status = 200, body = DecisionResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DecisionResponse>> {
    decide(&state, id, TxnDecision::RolledBack).await
}

async fn decide(
    state: &AppState,
    id: String,
    decision: TxnDecision,
) -> ApiResult<Json<DecisionResponse>> {
    let d = state.broker.decide_transaction(&id, decision).await?;
    Ok(Json(DecisionResponse {
        transaction_id: id,
        topic: d.topic,
        queue: d.queue,
        state: match d.decision {
            TxnDecision::Committed => "COMMITTED",
            _ => "ROLLED_BACK",
        }
        .to_string(),
    }))
}

/// Query of a check poll.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckParams {
    /// 0-30000 (default 0): how long to wait for a check.
    #[param(minimum = 0, maximum = 30_000)]
    pub wait_ms: Option<u64>,
    /// 1-64 (default 16).
    #[param(minimum = 1, maximum = 64)]
    pub max: Option<usize>,
}

/// One check: decide this transaction (commit or rollback).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckObject {
    pub transaction_id: String,
    pub topic: String,
    /// The transaction's first half message (`state: HALF`, no `offset`,
    /// `store_ms` or `deliver_at_ms`: it has none until committed).
    #[schema(value_type = Object)]
    pub message: Value,
    /// 1 for the first check, then one more each `check_after_ms`.
    pub check_count: u32,
}

/// A poll's checks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckList {
    pub checks: Vec<CheckObject>,
}

/// Poll the checks of a producer group.
#[utoipa::path(get, path = "/v1/producer-groups/{producer_group}/transaction-checks", tag = "transactions",
    params(("producer_group" = String, Path), CheckParams),
    description = "Transactions of the group still undecided `check_after_ms` after they were \
        stored, and again every `check_after_ms` after that, at most `max`, waiting up to `wait_ms` \
        for one. Each check is given to one poller. After the node's check limit (15 by default) an \
        undecided transaction is rolled back. Answer them with commit or rollback.",
    responses((status = 200, body = CheckList), (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn checks(
    State(state): State<Arc<AppState>>,
    ApiPath(group): ApiPath<String>,
    ApiQuery(params): ApiQuery<CheckParams>,
    request: axum::http::request::Parts,
) -> ApiResult<Json<CheckList>> {
    shale_broker::validate::group_name(&group)
        .map_err(|e| ApiError::invalid(format!("producer group: {}", e.message())))?;
    let wait = params.wait_ms.unwrap_or(0);
    if wait > MAX_CHECK_WAIT_MS {
        return Err(ApiError::invalid(format!(
            "wait_ms must be 0-{MAX_CHECK_WAIT_MS}, got {wait}"
        )));
    }
    let max = params.max.unwrap_or(16);
    if !(1..=MAX_CHECKS).contains(&max) {
        return Err(ApiError::invalid(format!(
            "max must be 1-{MAX_CHECKS}, got {max}"
        )));
    }
    if crate::cluster::is_forwarded(&request.headers) {
        let got = state
            .broker
            .transaction_checks(&group, max, Duration::from_millis(wait))
            .await;
        return Ok(Json(CheckList {
            checks: got.into_iter().map(check_object).collect(),
        }));
    }
    let checks = crate::cluster::gather::transaction_checks(
        &state,
        &group,
        &request,
        max,
        Duration::from_millis(wait),
    )
    .await?;
    Ok(Json(CheckList { checks }))
}

/// The wire form of a check.
pub fn check_object(o: CheckOffer) -> CheckObject {
    let mut record = o.message;
    record.deliver_at_ms = None;
    record
        .properties
        .retain(|(k, _)| k != shale_broker::txn::records::HALF_PROPERTY);
    let mut message = MessageObject::from_record(&o.topic, o.queue, record, BodyEncoding::Auto);
    message.state = Some("HALF".to_string());
    let mut value = serde_json::to_value(message).unwrap_or(Value::Null);
    if let Some(fields) = value.as_object_mut() {
        fields.remove("offset");
        fields.remove("store_ms");
    }
    CheckObject {
        transaction_id: o.transaction_id,
        topic: o.topic,
        message: value,
        check_count: o.check_count,
    }
}

/// A producer group over the cluster.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProducerGroupObject {
    pub name: String,
    /// Transactions stored and not decided yet.
    pub pending_transactions: u64,
    /// Age of the oldest pending transaction (ms), absent without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age_ms: Option<i64>,
    /// Checks offered and not taken by a poller yet.
    pub checks_waiting: u64,
}

/// A producer group's pending transactions.
#[utoipa::path(get, path = "/v1/producer-groups/{producer_group}", tag = "transactions",
    params(("producer_group" = String, Path)),
    description = "Producer groups exist as soon as a producer names one (as in RocketMQ): any \
        valid name answers, with zeros when it has nothing pending.",
    responses((status = 200, body = ProducerGroupObject), (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn get_producer_group(
    State(state): State<Arc<AppState>>,
    ApiPath(group): ApiPath<String>,
    request: axum::http::request::Parts,
) -> ApiResult<Json<ProducerGroupObject>> {
    shale_broker::validate::group_name(&group)
        .map_err(|e| ApiError::invalid(format!("producer group: {}", e.message())))?;
    let mine = state.broker.producer_group(&group);
    let mut view = (
        mine.pending.pending,
        mine.pending.oldest_born_ms,
        mine.checks_waiting,
    );
    if !crate::cluster::is_forwarded(&request.headers) {
        for remote in crate::cluster::gather::from_every_node(&state, &request).await? {
            view.0 += remote["pending_transactions"].as_u64().unwrap_or(0);
            view.2 += remote["checks_waiting"].as_u64().unwrap_or(0);
            if let Some(age) = remote["oldest_pending_age_ms"].as_i64() {
                let born = state.broker.clock.now_ms() - age;
                view.1 = Some(view.1.map_or(born, |b| b.min(born)));
            }
        }
    }
    let now = state.broker.clock.now_ms();
    Ok(Json(ProducerGroupObject {
        name: group,
        pending_transactions: view.0,
        oldest_pending_age_ms: view.1.map(|b| (now - b).max(0)),
        checks_waiting: view.2,
    }))
}
