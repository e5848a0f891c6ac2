//! The one error type of the HTTP API and its mapping to the contract.
//!
//! Every non-2xx answer of the node is built here:
//! `{"error": {"code": "UPPER_SNAKE", "message": "human sentence"}}` with the
//! status of [`Code::status`]; 503 and 429 also carry `Retry-After`.
//!
//! Errors come in two layers (as in the rest of Shale): the broker returns its
//! own [`BrokerError`], whose variant names the contract code; this module is
//! the single place that turns codes into HTTP statuses, and every axum
//! extractor rejection into an [`ApiError`]. The source is kept and logged with its whole chain for server
//! errors; it is never sent to the client beyond the top-level message.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shale_broker::BrokerError;
use shale_hot::HotError;

/// Seconds a client is asked to wait before retrying a 503 or 429.
pub const RETRY_AFTER_SECONDS: u32 = 1;

pub use shale_broker::ErrorCode;
pub use shale_broker::error_chain;

/// The HTTP status that goes with a contract code: the one place codes
/// become statuses.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument
        | ErrorCode::MessageTypeMismatch
        | ErrorCode::InvalidReceiptHandle => StatusCode::BAD_REQUEST,
        ErrorCode::ReceiptHandleExpired
        | ErrorCode::MessageAlreadyDelivered
        | ErrorCode::TransactionAlreadyResolved => StatusCode::CONFLICT,
        ErrorCode::TopicNotFound
        | ErrorCode::GroupNotFound
        | ErrorCode::MessageNotFound
        | ErrorCode::TransactionNotFound
        | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::AlreadyExists => StatusCode::CONFLICT,
        ErrorCode::OffsetOutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
    }
}

/// A code of the contract's error table: the broker's [`ErrorCode`]s plus
/// the ones only this HTTP front-end answers. Authentication and
/// authorization are the gateway's business (see [`crate::auth`]), so
/// `UNAUTHENTICATED` and `PERMISSION_DENIED` live here, not in the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A code the broker also knows.
    Broker(ErrorCode),
    /// 401: auth is on and the request has no valid token.
    Unauthenticated,
    /// 403: the token lacks the action on that topic or group.
    PermissionDenied,
    /// 408: the client did not send the request body within the node's
    /// `request_body_timeout_ms` (see `crate::server::slow_clients`).
    RequestTimeout,
}

impl Code {
    /// Every code, in the contract's order (the broker's with the two auth
    /// codes after `MESSAGE_TYPE_MISMATCH`, as in API.md's table; the
    /// transport's `REQUEST_TIMEOUT` last).
    pub fn all() -> Vec<Code> {
        let mut all = Vec::with_capacity(ErrorCode::ALL.len() + 3);
        for code in ErrorCode::ALL {
            all.push(Code::Broker(code));
            if code == ErrorCode::MessageTypeMismatch {
                all.extend([Code::Unauthenticated, Code::PermissionDenied]);
            }
        }
        all.push(Code::RequestTimeout);
        all
    }

    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Broker(code) => code.as_str(),
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::RequestTimeout => "REQUEST_TIMEOUT",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::Broker(code) => status_of(code),
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Self {
        Code::Broker(code)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OpenAPI schema of the `code` field: a string, one of [`Code::all`]
/// (built from that list, so the document cannot drift from the codes).
#[derive(Debug)]
pub struct ErrorCodeSchema;

impl utoipa::PartialSchema for ErrorCodeSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Code::all().into_iter().map(Code::as_str)))
            .description(Some("A code of the contract's error table."))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCodeSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error answer: a contract code, a human message and, for errors caused
/// by something else, that cause (logged, not sent).
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    #[source]
    pub source: Option<BoxError>,
}

/// Result alias of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `source` as the cause (logged with the answer).
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// A server-side failure; `context` says what was being done.
    pub fn internal(context: &str, source: impl Into<BoxError>) -> Self {
        BrokerError::internal(context, source).into()
    }

    /// The status of the answer.
    /// 413: the HTTP body is over the node's limit.
    pub fn body_too_large() -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "request body exceeds the limit of {} bytes",
                crate::app::MAX_HTTP_BODY_BYTES
            ),
        )
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// Builds an error from an axum rejection's status and text: 413 and 415
    /// keep their meaning, other client errors are `INVALID_ARGUMENT`, server
    /// errors `INTERNAL`.
    fn from_rejection(status: StatusCode, text: String, source: BoxError) -> Self {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            s if s.is_server_error() => ErrorCode::Internal,
            _ => ErrorCode::InvalidArgument,
        };
        let message = match code {
            ErrorCode::PayloadTooLarge => Self::body_too_large().message,
            _ => text,
        };
        ApiError {
            code: code.into(),
            message,
            source: Some(source),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
/// The body of every non-2xx answer.
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
/// What went wrong.
pub struct ErrorDetail {
    /// One of the codes of the contract (`INVALID_ARGUMENT`, `TOPIC_NOT_FOUND`, ...).
    #[schema(value_type = ErrorCodeSchema)]
    pub code: &'static str,
    /// A human sentence.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = %self.code, error = %error_chain(&self), "request failed");
        } else {
            tracing::debug!(code = %self.code, error = %error_chain(&self), "request rejected");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: self.message,
            },
        };
        let forward = self
            .source
            .as_deref()
            .and_then(|s| s.downcast_ref::<shale_broker::cluster::Elsewhere>())
            .map(|e| crate::cluster::forward::ForwardTo(e.address.clone()));
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(to) = forward {
            response.extensions_mut().insert(to);
        }
        if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        let (code, message, source) = e.into_parts();
        ApiError {
            code: code.into(),
            message,
            source,
        }
    }
}

impl From<HotError> for ApiError {
    fn from(e: HotError) -> Self {
        BrokerError::from(e).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::from_rejection(r.status(), r.body_text(), Box::new(r))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::from_rejection(r.status(), r.body_text(), Box::new(r))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::from_rejection(r.status(), r.body_text(), Box::new(r))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        ApiError::from_rejection(r.status(), r.body_text(), Box::new(r))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal("running a task", e)
    }
}

impl ApiError {
    /// Prefixes the message, e.g. with the index of the message it is about.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_only_on_503_and_429() {
        let r = ApiError::unavailable("draining").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().contains_key(header::RETRY_AFTER));
        let r = ApiError::invalid("x").into_response();
        assert!(!r.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn broker_errors_keep_code_message_and_cause() {
        let e: ApiError = HotError::OffsetOutOfRange {
            offset: 9,
            min: 0,
            max: 3,
        }
        .into();
        assert_eq!(e.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert!(e.message.contains("[0, 3]"));
        let e: ApiError = HotError::Corrupt {
            path: "x".into(),
            position: 1,
            reason: "crc".into(),
        }
        .into();
        assert_eq!(e.code.as_str(), "INTERNAL");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn the_schema_lists_every_code() {
        let schema =
            serde_json::to_value(<ErrorCodeSchema as utoipa::PartialSchema>::schema()).unwrap();
        let names: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let codes: Vec<&str> = Code::all().into_iter().map(Code::as_str).collect();
        assert_eq!(names, codes);
        assert!(names.contains(&"UNAUTHENTICATED") && names.contains(&"PERMISSION_DENIED"));
    }
}
