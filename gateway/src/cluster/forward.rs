//! Forwarding a request to the node that serves its queue.
//!
//! [`layer`] buffers the request body (bounded by the body limit the routes
//! enforce anyway), runs the route, and when its answer is a 503 carrying
//! [`ForwardTo`] (a [`shale_broker::cluster::Elsewhere`] error) sends the same
//! request to that node and returns its answer, streamed. Requests that are
//! themselves forwarded ([`super::FORWARDED`]) are never sent on.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Where a response asks to be forwarded to: the serving node's base URL.
#[derive(Debug, Clone)]
pub struct ForwardTo(pub String);

/// Longest a forwarded call may take beyond its own `wait_ms` (a paused or
/// dead owner must not hold the caller for long: its queues move within the
/// lease, and the caller's retry then reaches the new owner).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The client of node-to-node calls (connection pool shared by all requests).
pub fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .expect("a reqwest client with rustls builds")
    })
}

/// Headers not passed on (per hop, or recomputed by the client).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
            | "content-length"
    )
}

/// The middleware: run the route, forward if it says the queue is elsewhere.
pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if super::is_forwarded(req.headers()) {
        let mut resp = forwarded_here(&state, req, next).await;
        resp.extensions_mut().remove::<ForwardTo>();
        return resp;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::app::MAX_HTTP_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return unreadable_body(e),
    };
    let (method, uri, headers) = (
        parts.method.clone(),
        parts.uri.clone(),
        parts.headers.clone(),
    );
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    let Some(ForwardTo(base)) = resp.extensions_mut().remove::<ForwardTo>() else {
        return resp;
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let timeout = CALL_TIMEOUT + Duration::from_millis(wait_ms(uri.query(), &bytes));
    let mut call = client().request(method, &url).timeout(timeout).body(bytes);
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            call = call.header(name, value);
        }
    }
    call = call.header(super::FORWARDED, state.broker.node_id.as_str());
    crate::metrics::forwarded();
    match call.send().await {
        Ok(answer) => relay(answer),
        Err(e) => {
            tracing::warn!(%url, error = %e, "forwarding to the queue's node failed");
            ApiError::unavailable(format!(
                "the node serving this queue ({base}) did not answer; retry shortly"
            ))
            .with_source(e)
            .into_response()
        }
    }
}

/// Runs a request another node sent here. A topic created on another node
/// a moment ago may not be known here yet (nodes learn topics at their next
/// heartbeat); a forwarded request is sent here because this node serves one
/// of its queues, so on TOPIC_NOT_FOUND the node re-reads the topics (one
/// HEAD of the topics stamp when nothing changed) and runs the request again.
async fn forwarded_here(state: &Arc<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::app::MAX_HTTP_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return unreadable_body(e),
    };
    let first = next
        .clone()
        .run(Request::from_parts(
            parts.clone(),
            Body::from(bytes.clone()),
        ))
        .await;
    if first.status() != axum::http::StatusCode::NOT_FOUND {
        return first;
    }
    let (head, answer) = first.into_parts();
    let answer = axum::body::to_bytes(answer, 64 * 1024)
        .await
        .unwrap_or_default();
    let unknown_topic = serde_json::from_slice::<serde_json::Value>(&answer)
        .is_ok_and(|v| v["error"]["code"] == "TOPIC_NOT_FOUND");
    // Run again even when this refresh changed nothing: a heartbeat's may
    // have learned the topic meanwhile. An unknown topic is just 404 twice.
    if unknown_topic && state.broker.refresh_topics_from_store().await.is_ok() {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    Response::from_parts(head, Body::from(answer))
}

/// The `wait_ms` a request asks for (query parameter or top-level JSON field), 0 if none.
fn wait_ms(query: Option<&str>, body: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct Wait {
        wait_ms: Option<u64>,
    }
    let in_query = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("wait_ms="))
            .and_then(|v| v.parse().ok())
    });
    in_query
        .or_else(|| {
            serde_json::from_slice::<Wait>(body)
                .ok()
                .and_then(|w| w.wait_ms)
        })
        .unwrap_or(0)
        .min(60_000)
}

/// The answer for a body that could not be read: 413 over the limit (as the
/// routes' own extractors answer), else 400.
fn unreadable_body(e: axum::Error) -> Response {
    body_error(e).into_response()
}

/// The error for a body that could not be read (413 over the limit, else 400).
pub fn body_error(e: axum::Error) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return ApiError::body_too_large();
        }
        cause = c.source();
    }
    ApiError::invalid("the request body could not be read").with_source(e)
}

/// The other node's answer, as this node's (status, headers, streamed body).
fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in answer.headers() {
        if !hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let mut resp = Response::new(Body::from_stream(answer.bytes_stream()));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    if !resp.headers().contains_key(header::CONTENT_TYPE) {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

/// The broker's node-to-node writes over this API: a produce of one message
/// to an explicit queue at the serving node, marked as forwarded (so Shale's
/// own `shale.*` properties are accepted there, on system topics only) and
/// SYNC. With auth on it presents the cluster secret: these calls are the
/// node's own, not a client's.
#[derive(Debug, Default)]
pub struct HttpPeer {
    /// This node's id, sent in [`super::FORWARDED`].
    pub node_id: String,
    /// The auth state, whose cluster secret authenticates the call.
    pub auth: Option<Arc<crate::auth::Auth>>,
}

impl shale_broker::cluster::peer::Peer for HttpPeer {
    fn append<'a>(
        &'a self,
        address: &'a str,
        topic: &'a str,
        queue: u32,
        message: &'a shale_hot::AppendRequest,
    ) -> futures::future::BoxFuture<'a, shale_broker::BrokerResult<()>> {
        Box::pin(async move {
            use base64::Engine as _;
            let unavailable = |what: String| shale_broker::BrokerError::unavailable(what);
            let mut url = reqwest::Url::parse(address)
                .map_err(|e| unavailable(format!("node address {address}: {e}")))?;
            url.path_segments_mut()
                .map_err(|()| unavailable(format!("node address {address} cannot take a path")))?
                .pop_if_empty()
                .extend(["v1", "topics", topic, "messages"]);
            let properties: serde_json::Map<String, serde_json::Value> = message
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            let mut copy = serde_json::json!({
                "body_base64": base64::engine::general_purpose::STANDARD.encode(&message.body),
                "tag": message.tag,
                "keys": message.keys,
                "properties": properties,
                "queue": queue,
            });
            if let Some(group) = &message.message_group {
                copy["message_group"] = serde_json::Value::String(group.clone());
            }
            let body = serde_json::json!({ "messages": [copy] });
            crate::metrics::forwarded();
            let mut call = client()
                .post(url)
                .timeout(CALL_TIMEOUT)
                .header(super::FORWARDED, self.node_id.as_str())
                .header("shale-durability", "SYNC");
            if let Some(secret) = self.auth.as_ref().and_then(|a| a.node_authorization()) {
                call = call.header(header::AUTHORIZATION, secret);
            }
            let answer = call
                .json(&body)
                .send()
                .await
                .map_err(|e| unavailable(format!("node {address} did not answer: {e}")))?;
            if !answer.status().is_success() {
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                return Err(unavailable(format!(
                    "node {address} refused a dead-letter copy: {status} {text}"
                )));
            }
            Ok(())
        })
    }
}
