//! The broker's one error type, and the contract codes as data.
//!
//! Every variant is one [`ErrorCode`] of the API contract (`../shared/API.md`,
//! the table under "Conventions"), so a front-end maps an error by its code and
//! never by its text. Nothing here knows a protocol: the HTTP front-end is the
//! only place that turns a code into a status and a `Retry-After`.
//!
//! Errors caused by something else keep that cause as their `source`, so a log
//! line shows the whole chain ([`error_chain`]); only [`BrokerError::message`]
//! is meant for clients.
//!
//! Retry: [`BrokerError::is_retryable`] says whether the same call may succeed
//! later (the object store is down, the node is draining, the queue's owner is
//! moving). [`BrokerError::NotOwner`] is its own kind: this node was fenced by
//! a newer owner of the queue, which is not an object-store failure.

use std::fmt;

use shale_hot::HotError;
use shale_tiering::TieringError;

/// A boxed cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias of the broker.
pub type BrokerResult<T> = Result<T, BrokerError>;

/// The `code` of an error (the table of the API contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    MessageTypeMismatch,
    InvalidReceiptHandle,
    ReceiptHandleExpired,
    MessageAlreadyDelivered,
    TransactionAlreadyResolved,
    TopicNotFound,
    GroupNotFound,
    MessageNotFound,
    TransactionNotFound,
    NotFound,
    MethodNotAllowed,
    AlreadyExists,
    OffsetOutOfRange,
    PayloadTooLarge,
    UnsupportedMediaType,
    Throttled,
    Internal,
    Unavailable,
    InsufficientStorage,
}

impl ErrorCode {
    /// Every code, in the contract's order.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::InvalidArgument,
        ErrorCode::MessageTypeMismatch,
        ErrorCode::InvalidReceiptHandle,
        ErrorCode::ReceiptHandleExpired,
        ErrorCode::MessageAlreadyDelivered,
        ErrorCode::TransactionAlreadyResolved,
        ErrorCode::TopicNotFound,
        ErrorCode::GroupNotFound,
        ErrorCode::MessageNotFound,
        ErrorCode::TransactionNotFound,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AlreadyExists,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Throttled,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::InsufficientStorage,
    ];

    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::MessageTypeMismatch => "MESSAGE_TYPE_MISMATCH",
            ErrorCode::InvalidReceiptHandle => "INVALID_RECEIPT_HANDLE",
            ErrorCode::ReceiptHandleExpired => "RECEIPT_HANDLE_EXPIRED",
            ErrorCode::MessageAlreadyDelivered => "MESSAGE_ALREADY_DELIVERED",
            ErrorCode::TopicNotFound => "TOPIC_NOT_FOUND",
            ErrorCode::GroupNotFound => "GROUP_NOT_FOUND",
            ErrorCode::MessageNotFound => "MESSAGE_NOT_FOUND",
            ErrorCode::TransactionNotFound => "TRANSACTION_NOT_FOUND",
            ErrorCode::TransactionAlreadyResolved => "TRANSACTION_ALREADY_RESOLVED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::Throttled => "THROTTLED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::InsufficientStorage => "INSUFFICIENT_STORAGE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong in the broker. Each variant is one contract code; the
/// `message` is a sentence for the client, the `source` (if any) the cause.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A bad name, field, limit (not size) or request shape.
    #[error("{message}")]
    InvalidArgument {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A field the topic's message type does not take, or one it needs missing.
    #[error("{message}")]
    MessageTypeMismatch {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A receipt handle that is forged, malformed, or for another group or topic.
    #[error("{message}")]
    InvalidReceiptHandle {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// An ack after the message became visible again or was redelivered.
    #[error("{message}")]
    ReceiptHandleExpired {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A recall of a delay message that is already due and in its queue.
    #[error("{message}")]
    MessageAlreadyDelivered {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A decision on a transaction already decided the other way.
    #[error("{message}")]
    TransactionAlreadyResolved {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// An unknown (or long forgotten) transaction id.
    #[error("{message}")]
    TransactionNotFound {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("{message}")]
    TopicNotFound {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("{message}")]
    GroupNotFound {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("{message}")]
    MessageNotFound {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Something else that does not exist (a queue beyond the topic's).
    #[error("{message}")]
    NotFound {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A front-end's own refusal of an operation it does not offer.
    #[error("{message}")]
    MethodNotAllowed {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A create that names something existing with other settings.
    #[error("{message}")]
    AlreadyExists {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// An offset below `min_offset` or above `max_offset`.
    #[error("{message}")]
    OffsetOutOfRange {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A body or request over its size limit.
    #[error("{message}")]
    PayloadTooLarge {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("{message}")]
    UnsupportedMediaType {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("{message}")]
    Throttled {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The object store is down, the node drains, the hot tier is over budget:
    /// the same call may succeed later.
    #[error("{message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// This node is not (or no longer) the owner of the queue: a newer owner
    /// fenced it. Contract code UNAVAILABLE (the owner is moving); retrying
    /// later, or at the owner, may succeed.
    #[error("{message}")]
    NotOwner {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The local disk is full; the failed write stored nothing.
    #[error("{message}")]
    InsufficientStorage {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A server-side failure.
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl BrokerError {
    /// An error of `code` with a message (the variant follows from the code).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let (message, source) = (message.into(), None);
        match code {
            ErrorCode::InvalidArgument => BrokerError::InvalidArgument { message, source },
            ErrorCode::MessageTypeMismatch => BrokerError::MessageTypeMismatch { message, source },
            ErrorCode::InvalidReceiptHandle => {
                BrokerError::InvalidReceiptHandle { message, source }
            }
            ErrorCode::MessageAlreadyDelivered => {
                BrokerError::MessageAlreadyDelivered { message, source }
            }
            ErrorCode::ReceiptHandleExpired => {
                BrokerError::ReceiptHandleExpired { message, source }
            }
            ErrorCode::TopicNotFound => BrokerError::TopicNotFound { message, source },
            ErrorCode::GroupNotFound => BrokerError::GroupNotFound { message, source },
            ErrorCode::MessageNotFound => BrokerError::MessageNotFound { message, source },
            ErrorCode::TransactionNotFound => BrokerError::TransactionNotFound { message, source },
            ErrorCode::TransactionAlreadyResolved => {
                BrokerError::TransactionAlreadyResolved { message, source }
            }
            ErrorCode::NotFound => BrokerError::NotFound { message, source },
            ErrorCode::MethodNotAllowed => BrokerError::MethodNotAllowed { message, source },
            ErrorCode::AlreadyExists => BrokerError::AlreadyExists { message, source },
            ErrorCode::OffsetOutOfRange => BrokerError::OffsetOutOfRange { message, source },
            ErrorCode::PayloadTooLarge => BrokerError::PayloadTooLarge { message, source },
            ErrorCode::UnsupportedMediaType => {
                BrokerError::UnsupportedMediaType { message, source }
            }
            ErrorCode::Throttled => BrokerError::Throttled { message, source },
            ErrorCode::Internal => BrokerError::Internal { message, source },
            ErrorCode::Unavailable => BrokerError::Unavailable { message, source },
            ErrorCode::InsufficientStorage => BrokerError::InsufficientStorage { message, source },
        }
    }

    fn parts_mut(&mut self) -> (&mut String, &mut Option<BoxError>) {
        match self {
            BrokerError::InvalidArgument { message, source }
            | BrokerError::MessageTypeMismatch { message, source }
            | BrokerError::InvalidReceiptHandle { message, source }
            | BrokerError::ReceiptHandleExpired { message, source }
            | BrokerError::MessageAlreadyDelivered { message, source }
            | BrokerError::TopicNotFound { message, source }
            | BrokerError::GroupNotFound { message, source }
            | BrokerError::MessageNotFound { message, source }
            | BrokerError::TransactionNotFound { message, source }
            | BrokerError::TransactionAlreadyResolved { message, source }
            | BrokerError::NotFound { message, source }
            | BrokerError::MethodNotAllowed { message, source }
            | BrokerError::AlreadyExists { message, source }
            | BrokerError::OffsetOutOfRange { message, source }
            | BrokerError::PayloadTooLarge { message, source }
            | BrokerError::UnsupportedMediaType { message, source }
            | BrokerError::Throttled { message, source }
            | BrokerError::Unavailable { message, source }
            | BrokerError::NotOwner { message, source }
            | BrokerError::InsufficientStorage { message, source }
            | BrokerError::Internal { message, source } => (message, source),
        }
    }

    /// The contract code of the error.
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            BrokerError::MessageTypeMismatch { .. } => ErrorCode::MessageTypeMismatch,
            BrokerError::InvalidReceiptHandle { .. } => ErrorCode::InvalidReceiptHandle,
            BrokerError::ReceiptHandleExpired { .. } => ErrorCode::ReceiptHandleExpired,
            BrokerError::MessageAlreadyDelivered { .. } => ErrorCode::MessageAlreadyDelivered,
            BrokerError::TopicNotFound { .. } => ErrorCode::TopicNotFound,
            BrokerError::GroupNotFound { .. } => ErrorCode::GroupNotFound,
            BrokerError::MessageNotFound { .. } => ErrorCode::MessageNotFound,
            BrokerError::TransactionNotFound { .. } => ErrorCode::TransactionNotFound,
            BrokerError::TransactionAlreadyResolved { .. } => ErrorCode::TransactionAlreadyResolved,
            BrokerError::NotFound { .. } => ErrorCode::NotFound,
            BrokerError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            BrokerError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            BrokerError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            BrokerError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            BrokerError::UnsupportedMediaType { .. } => ErrorCode::UnsupportedMediaType,
            BrokerError::Throttled { .. } => ErrorCode::Throttled,
            BrokerError::Unavailable { .. } | BrokerError::NotOwner { .. } => {
                ErrorCode::Unavailable
            }
            BrokerError::InsufficientStorage { .. } => ErrorCode::InsufficientStorage,
            BrokerError::Internal { .. } => ErrorCode::Internal,
        }
    }

    /// The sentence for the client.
    pub fn message(&self) -> &str {
        match self {
            BrokerError::InvalidArgument { message, .. }
            | BrokerError::MessageTypeMismatch { message, .. }
            | BrokerError::InvalidReceiptHandle { message, .. }
            | BrokerError::ReceiptHandleExpired { message, .. }
            | BrokerError::MessageAlreadyDelivered { message, .. }
            | BrokerError::TopicNotFound { message, .. }
            | BrokerError::GroupNotFound { message, .. }
            | BrokerError::MessageNotFound { message, .. }
            | BrokerError::TransactionNotFound { message, .. }
            | BrokerError::TransactionAlreadyResolved { message, .. }
            | BrokerError::NotFound { message, .. }
            | BrokerError::MethodNotAllowed { message, .. }
            | BrokerError::AlreadyExists { message, .. }
            | BrokerError::OffsetOutOfRange { message, .. }
            | BrokerError::PayloadTooLarge { message, .. }
            | BrokerError::UnsupportedMediaType { message, .. }
            | BrokerError::Throttled { message, .. }
            | BrokerError::Unavailable { message, .. }
            | BrokerError::NotOwner { message, .. }
            | BrokerError::InsufficientStorage { message, .. }
            | BrokerError::Internal { message, .. } => message,
        }
    }

    /// Splits the error into its code, message and cause (for a front-end
    /// that builds its own error answer and logs the cause).
    pub fn into_parts(mut self) -> (ErrorCode, String, Option<BoxError>) {
        let code = self.code();
        let (message, source) = self.parts_mut();
        (code, std::mem::take(message), source.take())
    }

    /// Where the queue this error is about is served, when it is served by
    /// another node (the front-end may forward the request there).
    pub fn elsewhere(&self) -> Option<&crate::cluster::Elsewhere> {
        match self {
            BrokerError::NotOwner {
                source: Some(s), ..
            } => s.downcast_ref(),
            _ => None,
        }
    }

    /// A copy of a [`BrokerError::NotOwner`] naming where the queue is served
    /// (for answering several items with one routing error); other errors
    /// become a plain `Unavailable` with the same message.
    pub fn clone_elsewhere(&self) -> BrokerError {
        match self.elsewhere() {
            Some(e) => BrokerError::NotOwner {
                message: self.message().to_string(),
                source: Some(Box::new(e.clone())),
            },
            None => BrokerError::unavailable(self.message().to_string()),
        }
    }

    /// True when the same call may succeed later (503 in HTTP).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BrokerError::Unavailable { .. }
                | BrokerError::NotOwner { .. }
                | BrokerError::Throttled { .. }
        )
    }

    /// Keeps `source` as the cause.
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        *self.parts_mut().1 = Some(cause.into());
        self
    }

    /// Prefixes the message, e.g. with the field or message index it is about.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        let message = self.parts_mut().0;
        *message = format!("{prefix}{message}");
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn mismatch(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MessageTypeMismatch, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, message)
    }

    pub fn topic_not_found(topic: &str) -> Self {
        Self::new(
            ErrorCode::TopicNotFound,
            format!("topic {topic:?} does not exist"),
        )
    }

    pub fn group_not_found(group: &str) -> Self {
        Self::new(
            ErrorCode::GroupNotFound,
            format!("group {group:?} does not exist"),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// A server-side failure; `context` says what was being done.
    pub fn internal(context: &str, source: impl Into<BoxError>) -> Self {
        Self::new(
            ErrorCode::Internal,
            format!("internal error while {context}"),
        )
        .with_source(source)
    }
}

/// True when `r` failed with INVALID_ARGUMENT (tests assert the kind, not just failure).
#[cfg(test)]
pub(crate) fn is_invalid<T>(r: &Result<T, BrokerError>) -> bool {
    matches!(r, Err(BrokerError::InvalidArgument { .. }))
}

/// The whole cause chain of an error, for logs.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl From<HotError> for BrokerError {
    fn from(e: HotError) -> Self {
        let (code, message) = match &e {
            HotError::InsufficientStorage { .. } => (
                ErrorCode::InsufficientStorage,
                "the node's local disk is full; the failed write stored nothing".to_string(),
            ),
            HotError::OffsetOutOfRange { offset, min, max } => (
                ErrorCode::OffsetOutOfRange,
                format!("offset {offset} is outside the queue's range [{min}, {max}]"),
            ),
            HotError::RecordTooLarge { size, limit } => (
                ErrorCode::PayloadTooLarge,
                format!("a message of {size} bytes exceeds the limit of {limit} bytes"),
            ),
            HotError::InvalidRecord(why) => (ErrorCode::InvalidArgument, why.clone()),
            HotError::Removed(_) => (
                ErrorCode::TopicNotFound,
                "the topic was deleted during the request".into(),
            ),
            HotError::Corrupt { .. } => (
                ErrorCode::Internal,
                "stored data failed its checksum; nothing is returned".into(),
            ),
            HotError::Io { .. } => (ErrorCode::Internal, "local storage I/O error".into()),
        };
        BrokerError::new(code, message).with_source(e)
    }
}

impl From<TieringError> for BrokerError {
    fn from(e: TieringError) -> Self {
        if e.is_fenced() {
            return BrokerError::NotOwner {
                message:
                    "this node no longer owns the queue (a newer owner fenced it); retry later"
                        .into(),
                source: Some(Box::new(e)),
            };
        }
        if e.is_store_failure() {
            // The object store is down or slow: a retry later may succeed.
            return BrokerError::unavailable("the object store is unavailable; retry later")
                .with_source(e);
        }
        BrokerError::internal("reading cold data", e)
    }
}

impl From<tokio::task::JoinError> for BrokerError {
    fn from(e: tokio::task::JoinError) -> Self {
        BrokerError::internal("running a storage task", e)
    }
}

impl From<object_store::Error> for BrokerError {
    fn from(e: object_store::Error) -> Self {
        BrokerError::unavailable("the object store is unavailable; retry later").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_variant() {
        for code in ErrorCode::ALL {
            let e = BrokerError::new(code, "x");
            assert_eq!(e.code(), code);
            assert_eq!(e.message(), "x");
        }
    }

    #[test]
    fn hot_errors_map_to_contract_codes() {
        let e: BrokerError = HotError::OffsetOutOfRange {
            offset: 9,
            min: 0,
            max: 3,
        }
        .into();
        assert_eq!(e.code(), ErrorCode::OffsetOutOfRange);
        assert!(e.message().contains("[0, 3]"));
        let e: BrokerError = HotError::Corrupt {
            path: "x".into(),
            position: 1,
            reason: "crc".into(),
        }
        .into();
        assert_eq!(e.code(), ErrorCode::Internal);
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn fenced_is_not_owner_not_a_store_outage() {
        let e: BrokerError = TieringError::Fenced {
            queue: "t/0".into(),
            ours: 1,
            current: 2,
        }
        .into();
        assert!(matches!(e, BrokerError::NotOwner { .. }), "{e:?}");
        assert_eq!(e.code(), ErrorCode::Unavailable);
        assert!(e.is_retryable());
        assert!(!e.message().contains("object store"));
    }

    #[test]
    fn prefix_and_parts_keep_the_cause() {
        let e = BrokerError::invalid("bad tag")
            .with_source(std::io::Error::other("inner"))
            .prefixed("messages[3]: ");
        let (code, message, source) = e.into_parts();
        assert_eq!(code, ErrorCode::InvalidArgument);
        assert_eq!(message, "messages[3]: bad tag");
        assert_eq!(source.map(|s| s.to_string()).as_deref(), Some("inner"));
    }
}
