//! One request of the contract, re-sendable for retries: method, path
//! (segments percent-encoded with [`segment`]), query, headers, body, and
//! what may be retried ([`RetryClass`]).

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::retry::RetryClass;

/// One request, re-sendable (its body is shared bytes).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: Method,
    /// Starts with `/`, segments already percent-encoded.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub headers: HeaderMap,
    pub body: Option<(Bytes, HeaderValue)>,
    pub class: RetryClass,
    /// Time the node may hold the request before answering (long polls).
    pub wait: Duration,
    /// No total timeout: a streamed body (bounded per read instead).
    pub streamed: bool,
}

impl Request {
    pub fn new(method: Method, path: String, class: RetryClass) -> Self {
        Request {
            method,
            path,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            class,
            wait: Duration::ZERO,
            streamed: false,
        }
    }

    pub fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub fn query_opt(self, name: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(value) => self.query(name, value),
            None => self,
        }
    }

    pub fn json(mut self, body: &impl Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        self.body = Some((
            Bytes::from(bytes),
            HeaderValue::from_static("application/json"),
        ));
        Ok(self)
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Result<Self> {
        let value = HeaderValue::try_from(value)
            .map_err(|_| Error::Config(format!("{name}: {value:?} is not a valid header value")))?;
        self.headers.append(name, value);
        Ok(self)
    }

    pub fn context(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Percent-encodes one path segment (names may start with `%`, e.g. `%DLQ%g`).
pub(crate) fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("orders.v1_a-b"), "orders.v1_a-b");
        assert_eq!(segment("%DLQ%billing"), "%25DLQ%25billing");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
