//! [`Client`], its [`ClientBuilder`], and the one place requests are sent.
//!
//! One `reqwest::Client` per [`Client`] (clones share it), so connections are
//! kept alive and reused. Every request goes through [`Client::execute`]:
//! bearer token, per-request timeout, retries by the request's retry class within the
//! [`RetryPolicy`], and the decoding of the contract's error body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::de::DeserializeOwned;

use crate::error::api_error;
use crate::error::{Error, Result};
use crate::request::Request;
use crate::retry::RetryPolicy;

/// Default time a request may take (a long poll's `wait_ms` comes on top).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    token: Option<String>,
    root_certificates: Vec<Vec<u8>>,
    retry: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// A client of the node at `base_url` (`http://127.0.0.1:8080`, with or
    /// without a trailing `/`, possibly with a path prefix behind a proxy).
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientBuilder {
            base_url: base_url.into(),
            token: None,
            root_certificates: Vec::new(),
            retry: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Also trusts the CA certificate(s) of this PEM (a private CA), besides
    /// the usual web roots.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// How calls are retried (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Time one request may take, a long poll's wait excluded; streamed
    /// reads are bounded per read of the body instead.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time to establish a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Builds the client; fails on a base URL that is not `http(s)://…`, a
    /// token that cannot be a header, or a PEM without a certificate.
    pub fn build(self) -> Result<Client> {
        let base = self.base_url.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| Error::Config(format!("invalid base URL {base:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(Error::Config(format!(
                "invalid base URL {base:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"
            )));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::Config(format!(
                "invalid base URL {base:?}: no query or fragment allowed"
            )));
        }
        let token = match self.token {
            Some(token) => {
                let mut value = HeaderValue::try_from(format!("Bearer {}", token.trim()))
                    .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.timeout)
            .user_agent(concat!("shale-client/", env!("CARGO_PKG_VERSION")));
        for pem in &self.root_certificates {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("invalid CA certificate PEM: {e}")))?;
            if certificates.is_empty() {
                return Err(Error::Config("no certificate in the CA PEM".into()));
            }
            for certificate in certificates {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                token,
                retry: self.retry,
                timeout: self.timeout,
            }),
        })
    }
}

/// A client of one Shale node (or a load balancer in front of a cluster:
/// any node serves any request). Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    token: Option<HeaderValue>,
    retry: RetryPolicy,
    timeout: Duration,
}

impl Client {
    /// A client of `base_url` with default settings; see [`ClientBuilder`].
    pub fn new(base_url: impl Into<String>) -> Result<Client> {
        ClientBuilder::new(base_url).build()
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Sends `request`, retrying as its class and the policy allow; returns
    /// the 2xx answer, or the error of the last attempt.
    pub(crate) async fn execute(&self, request: Request) -> Result<reqwest::Response> {
        let policy = &self.inner.retry;
        let started = Instant::now();
        let mut attempt = 1u32;
        loop {
            let (error, retry_after) = match self.send_once(&request).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let error = api_error(&request.context(), response).await;
                    if !request.class.retries_status(status.as_u16()) {
                        return Err(error);
                    }
                    let retry_after = match &error {
                        Error::Api { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    (error, retry_after)
                }
                Err(source) => {
                    let retryable = request.class.retries_transport(&source);
                    let error = Error::Transport {
                        context: request.context(),
                        source,
                    };
                    if !retryable {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            if attempt >= policy.max_attempts {
                return Err(error);
            }
            let wait = policy.backoff(attempt, retry_after);
            if started.elapsed() + wait > policy.max_elapsed {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, request: &Request) -> reqwest::Result<reqwest::Response> {
        let url = format!("{}{}", self.inner.base, request.path);
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .headers(request.headers.clone());
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(token) = &self.inner.token {
            builder = builder.header(AUTHORIZATION, token.clone());
        }
        if let Some((body, content_type)) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, content_type.clone())
                .body(body.clone());
        }
        if !request.streamed {
            builder = builder.timeout(self.inner.timeout + request.wait);
        }
        if !request.headers.contains_key(ACCEPT) {
            builder = builder.header(ACCEPT, "application/json");
        }
        builder.send().await
    }

    /// Sends and decodes a JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T> {
        let context = request.context();
        let response = self.execute(request).await?;
        let bytes = response.bytes().await.map_err(|source| Error::Transport {
            context: context.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            context,
            reason: e.to_string(),
        })
    }

    /// Sends a request whose answer has no body worth reading (204, or an
    /// answer the caller does not need).
    pub(crate) async fn call_empty(&self, request: Request) -> Result<()> {
        let context = request.context();
        let response = self.execute(request).await?;
        response
            .bytes()
            .await
            .map_err(|source| Error::Transport { context, source })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_with_or_without_slash() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            " https://shale.example.com/ ",
        ] {
            let client = Client::new(url).expect(url);
            assert!(!client.base_url().ends_with('/'), "{url}");
        }
        let prefixed = Client::new("http://proxy/shale/").expect("prefix");
        assert_eq!(prefixed.base_url(), "http://proxy/shale");
    }

    #[test]
    fn bad_settings_are_config_errors() {
        for url in ["localhost:8080", "ftp://x", "http://", "http://h/?q=1", ""] {
            assert!(
                matches!(Client::new(url), Err(Error::Config(_))),
                "{url:?} accepted"
            );
        }
        let bad_token = ClientBuilder::new("http://h").token("a\nb").build();
        assert!(matches!(bad_token, Err(Error::Config(_))));
        let bad_pem = ClientBuilder::new("http://h")
            .add_root_certificate_pem(b"not a pem".to_vec())
            .build();
        assert!(matches!(bad_pem, Err(Error::Config(_))));
    }
}
