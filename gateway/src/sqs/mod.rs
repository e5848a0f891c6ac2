//! The SQS-compatible endpoint: existing SQS code (boto3, the AWS CLI, the
//! AWS SDKs) works against a node unchanged (docs/SQS.md).
//!
//! Protocol: AWS JSON 1.0 ([`protocol`]) — `POST /` with
//! `X-Amz-Target: AmazonSQS.<Operation>` — on the node's listener (and on
//! `sqs_listen` when set). A request to `/` without that header goes to the
//! rest of the API unchanged (the console, `/v1` 405s), so the endpoint is
//! told apart by method, path and header. The older query (form/XML)
//! protocol is not served.
//!
//! The endpoint is a front-end over the `/v1` contract ([`inner`]): a queue
//! `Q` is the topic `sqs.Q` with the CLUSTERING group `sqs.Q`
//! ([`naming`]); attributes without a Shale counterpart live in a topic
//! document ([`queue_attrs`], [`front`]); operations are in [`queues`],
//! [`send`], [`receive`] and [`settle`]. Requests are authenticated with
//! SigV4 when auth is on ([`auth`]); the caller's token then rides along
//! on every `/v1` call, so the auth file's rules apply exactly as to `/v1`.

pub mod auth;
pub mod batch;
pub mod front;
pub mod inner;
pub mod md5;
pub mod message_attrs;
pub mod naming;
pub mod protocol;
pub mod queue_attrs;
pub mod queues;
pub mod receive;
pub mod send;
pub mod settle;
pub mod sigv4;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

pub use front::Front;
pub use naming::Naming;
use protocol::SqsError;

use crate::auth::Caller;
use crate::state::AppState;

/// Largest SQS request body read (10 entries of 4 MiB would not fit: the
/// batch limit is [`send::MAX_BATCH_BYTES`] anyway; binary attributes grow
/// by a third in base64).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// One SQS request's context: who calls, and the `/v1` API on their behalf.
#[derive(Debug)]
pub struct Ctx {
    pub state: Arc<AppState>,
    pub v1: inner::V1,
    pub caller: Caller,
    /// `SenderId` of what this caller sends (its access key).
    pub sender_id: String,
}

impl Ctx {
    pub fn front(&self) -> &Front {
        &self.state.sqs
    }

    /// Whether the caller may do one of `actions` on queue `queue`'s topic
    /// (checks made here for what no `/v1` call covers: the queue document).
    pub fn require(&self, actions: &[crate::auth::Action], queue: &str) -> Result<(), SqsError> {
        let topic = naming::topic_of(queue);
        if self.caller.may(actions, Some(&topic), None) {
            Ok(())
        } else {
            Err(SqsError::access_denied(format!(
                "{} may not do this on queue {queue}",
                self.caller.principal()
            )))
        }
    }
}

#[derive(Clone)]
struct Endpoint {
    state: Arc<AppState>,
    v1: Router,
}

/// `v1` (the rest of the API) with the SQS endpoint in front of it.
pub fn wrap(v1: Router, state: Arc<AppState>) -> Router {
    let endpoint = Endpoint {
        state,
        v1: v1.clone(),
    };
    Router::new()
        .route("/", axum::routing::any(entry))
        .with_state(endpoint)
        .fallback_service(v1)
}

async fn entry(State(endpoint): State<Endpoint>, mut req: Request) -> Response {
    if req.method() != Method::POST || !req.headers().contains_key("x-amz-target") {
        // The rest of the API matches the path itself: this router's match
        // ("/") would otherwise be taken for its (auth rules, metrics).
        req.extensions_mut().remove::<axum::extract::MatchedPath>();
        return match endpoint.v1.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
    }
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let started = std::time::Instant::now();
    let resp = match serve(&endpoint, &operation, req).await {
        Ok(resp) => resp,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(%operation, code = e.code, message = %e.message, "SQS request failed");
            }
            e.into_response()
        }
    };
    let op: &'static str = operation
        .strip_prefix(protocol::TARGET_PREFIX)
        .and_then(|op| OPERATIONS.iter().find(|known| **known == op).copied())
        .unwrap_or("unknown");
    metrics::histogram!("shale_sqs_request_seconds", "operation" => op, "status" => resp.status().as_u16().to_string())
        .record(started.elapsed().as_secs_f64());
    resp
}

/// The operations served.
pub const OPERATIONS: &[&str] = &[
    "CreateQueue",
    "GetQueueUrl",
    "ListQueues",
    "DeleteQueue",
    "GetQueueAttributes",
    "SetQueueAttributes",
    "PurgeQueue",
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
    "ListQueueTags",
    "TagQueue",
    "UntagQueue",
];

async fn serve(endpoint: &Endpoint, target: &str, req: Request) -> Result<Response, SqsError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| {
            SqsError::invalid_parameter(format!(
                "The request is larger than {MAX_REQUEST_BYTES} bytes."
            ))
        })?;
    let Some(op) = target.strip_prefix(protocol::TARGET_PREFIX) else {
        return Err(SqsError::unknown_operation(target));
    };
    if !OPERATIONS.contains(&op) {
        return Err(match op {
            "AddPermission" | "RemovePermission" => SqsError::unsupported(format!(
                "{op}: Shale's permissions are its auth file's rules (docs/SECURITY.md)"
            )),
            "ListDeadLetterSourceQueues"
            | "StartMessageMoveTask"
            | "CancelMessageMoveTask"
            | "ListMessageMoveTasks" => SqsError::unsupported(format!(
                "{op} is not supported by Shale yet (docs/SQS.md); a dead letter goes back with POST /v1/topics/{{dlq}}/messages/{{id}}/send-back"
            )),
            _ => SqsError::unknown_operation(target),
        });
    }
    let identity = auth::authenticate(&endpoint.state, &parts, &body)?;
    let ctx = Ctx {
        state: endpoint.state.clone(),
        v1: inner::V1::new(endpoint.v1.clone(), identity.bearer),
        caller: identity.caller,
        sender_id: identity.sender_id,
    };
    let answer = match op {
        "CreateQueue" => queues::create(&ctx, protocol::parse(&body)?).await,
        "GetQueueUrl" => queues::get_url(&ctx, protocol::parse(&body)?).await,
        "ListQueues" => queues::list(&ctx, protocol::parse(&body)?).await,
        "DeleteQueue" => queues::delete(&ctx, protocol::parse(&body)?).await,
        "GetQueueAttributes" => queues::get_attributes(&ctx, protocol::parse(&body)?).await,
        "SetQueueAttributes" => queues::set_attributes(&ctx, protocol::parse(&body)?).await,
        "PurgeQueue" => queues::purge(&ctx, protocol::parse(&body)?).await,
        "ListQueueTags" => queues::list_tags(&ctx, protocol::parse(&body)?).await,
        "TagQueue" => queues::tag(&ctx, protocol::parse(&body)?).await,
        "UntagQueue" => queues::untag(&ctx, protocol::parse(&body)?).await,
        "SendMessage" => send::send(&ctx, protocol::parse(&body)?).await,
        "SendMessageBatch" => send::send_batch(&ctx, protocol::parse(&body)?).await,
        "ReceiveMessage" => receive::receive(&ctx, protocol::parse(&body)?).await,
        "DeleteMessage" => settle::delete(&ctx, protocol::parse(&body)?).await,
        "DeleteMessageBatch" => settle::delete_batch(&ctx, protocol::parse(&body)?).await,
        "ChangeMessageVisibility" => settle::change_visibility(&ctx, protocol::parse(&body)?).await,
        "ChangeMessageVisibilityBatch" => {
            settle::change_visibility_batch(&ctx, protocol::parse(&body)?).await
        }
        _ => Err(SqsError::unknown_operation(target)),
    }?;
    Ok(protocol::ok(answer))
}
