//! The client's error type.
//!
//! An answer that is not 2xx becomes [`Error::Api`] with the contract's
//! `code`, `message` and the HTTP status (API.md: every error body is
//! `{"error": {"code", "message"}}`); a body that is not that shape (a proxy
//! in between, say) still yields `Api`, with code `HTTP_<status>` and the
//! body text as the message. Transport failures keep their `reqwest` source.

use std::time::Duration;

/// What a call of [`crate::Client`] can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node answered with an error of the contract.
    #[error("{code}: {message}")]
    Api {
        /// The contract's code, e.g. `TOPIC_NOT_FOUND`.
        code: String,
        /// The human sentence of the answer.
        message: String,
        /// The HTTP status, e.g. 404.
        status: u16,
        /// `Retry-After` of a 503 or 429, when the node sent one.
        retry_after: Option<Duration>,
    },
    /// The request could not be sent, or its answer not received.
    #[error("{context}: {source}")]
    Transport {
        /// What was being done (`POST /v1/topics`).
        context: String,
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx answer whose body does not match the contract.
    #[error("{context}: unexpected answer: {reason}")]
    Decode {
        /// What was being done.
        context: String,
        /// What did not match.
        reason: String,
    },
    /// Bad client settings or arguments (base URL, CA certificate, header values).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The contract's code of an [`Error::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of an [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is an API error with `code`.
    pub fn is_code(&self, code: &str) -> bool {
        self.code() == Some(code)
    }
}

/// The result type of the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;
