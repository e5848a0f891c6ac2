//! The client's error type.
//!
//! An answer that is not 2xx becomes [`Error::Api`] with the contract's
//! `code`, `message` and the HTTP status (API.md: every error body is
//! `{"error": {"code", "message"}}`); a body that is not that shape (a proxy
//! in between, say) still yields `Api`, with code `HTTP_<status>` and the
//! body text as the message. Transport failures keep their `reqwest` source.

use std::time::Duration;

use reqwest::StatusCode;

use crate::retry::parse_retry_after;

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

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// The [`Error::Api`] of a non-2xx answer.
pub(crate) async fn api_error(context: &str, response: reqwest::Response) -> Error {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(source) => {
            return Error::Transport {
                context: format!("{context} (reading a {status} answer)"),
                source,
            };
        }
    };
    decode_error(status, &body, retry_after)
}

fn decode_error(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => Error::Api {
            code: error.code,
            message: error.message,
            status: status.as_u16(),
            retry_after,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            Error::Api {
                code: format!("HTTP_{}", status.as_u16()),
                message: if text.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("no message")
                        .to_string()
                } else {
                    text.chars().take(512).collect()
                },
                status: status.as_u16(),
                retry_after,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_decode_to_code_message_and_status() {
        let body = br#"{"error": {"code": "TOPIC_NOT_FOUND", "message": "no topic orders"}}"#;
        let error = decode_error(StatusCode::NOT_FOUND, body, None);
        assert_eq!(error.to_string(), "TOPIC_NOT_FOUND: no topic orders");
        assert_eq!(error.status(), Some(404));
        assert!(error.is_code("TOPIC_NOT_FOUND"));
        let error = decode_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>", None);
        assert_eq!(error.code(), Some("HTTP_502"));
        assert!(error.to_string().contains("bad gateway"));
        let error = decode_error(
            StatusCode::SERVICE_UNAVAILABLE,
            b"",
            Some(Duration::from_secs(1)),
        );
        assert_eq!(error.to_string(), "HTTP_503: Service Unavailable");
    }
}
