//! Calls of the `/v1` API made for an SQS request, in process.
//!
//! The SQS endpoint is a front-end over the contract: each operation becomes
//! one or more `/v1` requests sent through the node's own router, with its
//! whole middleware (auth with the caller's token, rate limits, forwarding to
//! the node serving a queue, gathers over the cluster). So an SQS request
//! has exactly the rights, limits and cluster behaviour of the `/v1`
//! requests it stands for, and nothing is implemented twice.
//!
//! Answers come back as JSON values; a `/v1` error becomes the SQS error a
//! user of SQS expects ([`V1Error::to_sqs`]), with operation-specific
//! mappings done by the callers first.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use super::protocol::SqsError;

/// Largest `/v1` answer read back (a receive of 10 messages of 4 MiB, base64).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The `/v1` API as seen by one SQS caller.
#[derive(Clone, Debug)]
pub struct V1 {
    router: Router,
    /// `Bearer <token>` of the caller (auth on), passed to every call.
    authorization: Option<HeaderValue>,
}

/// A `/v1` error answer.
#[derive(Debug, Clone)]
pub struct V1Error {
    pub status: StatusCode,
    /// The contract's code (`TOPIC_NOT_FOUND`).
    pub code: String,
    pub message: String,
}

impl V1Error {
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }

    /// The SQS error for a `/v1` error no caller mapped more precisely.
    pub fn to_sqs(&self, queue: &str) -> SqsError {
        let m = self.message.clone();
        match self.code.as_str() {
            "TOPIC_NOT_FOUND" => SqsError::queue_does_not_exist(queue),
            "UNAUTHENTICATED" => SqsError::invalid_client_token(m),
            "PERMISSION_DENIED" => SqsError::access_denied(m),
            "THROTTLED" => SqsError::throttled(m),
            "INVALID_RECEIPT_HANDLE" => SqsError::receipt_handle_invalid(m),
            "RECEIPT_HANDLE_EXPIRED" => SqsError::message_not_inflight(),
            "INVALID_ARGUMENT" | "MESSAGE_TYPE_MISMATCH" | "PAYLOAD_TOO_LARGE" => {
                SqsError::invalid_parameter(m)
            }
            "UNAVAILABLE" | "INSUFFICIENT_STORAGE" => SqsError::unavailable(m),
            _ if self.status.is_client_error() => SqsError::invalid_parameter(m),
            _ => SqsError::internal(m),
        }
    }
}

impl V1 {
    pub fn new(router: Router, authorization: Option<HeaderValue>) -> V1 {
        V1 {
            router,
            authorization,
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, V1Error> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, V1Error> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Value, V1Error> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Result<Value, V1Error> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, V1Error> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, V1Error> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(auth) = &self.authorization {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(&v).unwrap_or_default())
            }
            None => Body::empty(),
        };
        let req = req.body(body).map_err(|e| V1Error {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL".into(),
            message: format!("building a /v1 call: {e}"),
        })?;
        let resp = match self.router.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| V1Error {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "UNAVAILABLE".into(),
                message: format!("reading a /v1 answer: {e}"),
            })?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| V1Error {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "INTERNAL".into(),
                message: format!("a /v1 answer is not JSON: {e}"),
            });
        }
        let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = parsed["error"]["code"].as_str().unwrap_or("INTERNAL");
        let message = parsed["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{status}"));
        Err(V1Error {
            status,
            code: code.to_string(),
            message,
        })
    }
}

/// A path segment percent-encoded for a `/v1` URI.
pub fn seg(s: &str) -> String {
    super::sigv4::encode(s.as_bytes())
}
