//! Authentication and authorization of the HTTP API (API.md "Authentication").
//!
//! Off unless `--auth-file` is set. Then every `/v1` request needs
//! `Authorization: Bearer <token>`: 401 `UNAUTHENTICATED` (with
//! `WWW-Authenticate: Bearer`) without a valid token, 403
//! `PERMISSION_DENIED` without the action on the topic and group the request
//! names, 429 `THROTTLED` (with `Retry-After`) over the principal's rate.
//! `/healthz`, `/readyz` and `/openapi.json` stay open; `/metrics` too unless
//! the file sets `metrics_require_auth = true`.
//!
//! - [`file`]: the auth file and the cluster secret file, validated whole.
//! - [`policy`]: tokens (as SHA-256 only), rules, patterns, the constant-time lookup.
//! - [`rules`]: the one table of what each route needs.
//! - [`layer`]: the middleware that applies it.
//! - [`limit`]: per-principal rate limits (governor).
//! - [`token`]: `shale token`.
//!
//! The files are re-read when they change ([`Auth::reload_if_changed`], every
//! second, by content) and on SIGHUP ([`Auth::reload`]); a bad new file is
//! logged as an error and the rules in force stay. Reloads are counted in
//! `shale_auth_reloads_total{result="ok"|"error"}`.
//!
//! Cluster: a forwarded request carries the caller's `Authorization` and is
//! checked again where it lands (the `shale-forwarded` header grants
//! nothing); gathers fan out with the caller's header as well. The only
//! calls a node makes on its own — dead-letter copies to a `%DLQ%` queue
//! another node serves — present the cluster secret (`--cluster-secret-file`),
//! whose SHA-256 the auth file lists in `cluster_secret_sha256`; that caller
//! ([`Caller::Node`]) may only publish (dead-letter copies).

pub mod file;
pub mod layer;
pub mod limit;
pub mod policy;
pub mod rules;
pub mod token;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::HeaderValue;
use parking_lot::{Mutex, RwLock};

pub use policy::{Action, Caller, Policy};

/// How often the files are checked for a change.
pub const RELOAD_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// The principal of node-to-node calls in logs.
pub const NODE_PRINCIPAL: &str = "%node";

/// The live auth state of a node: the policy in force and how to reload it.
#[derive(Debug)]
pub struct Auth {
    auth_file: PathBuf,
    secret_file: Option<PathBuf>,
    current: RwLock<Current>,
    /// Digest of the last content that failed, so a bad file is logged once, not every second.
    failed: Mutex<Option<policy::Digest32>>,
    pub(crate) limits: limit::Limits,
}

#[derive(Debug)]
struct Current {
    policy: Arc<Policy>,
    node_authorization: Option<HeaderValue>,
    digest: policy::Digest32,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// New rules are in force.
    Changed,
    /// The files did not change.
    Unchanged,
}

impl Auth {
    /// Reads and validates the files; the error is one line.
    pub fn load(auth_file: &Path, secret_file: Option<&Path>) -> Result<Auth, String> {
        let loaded = file::load(auth_file, secret_file)?;
        let auth = Auth {
            auth_file: auth_file.to_path_buf(),
            secret_file: secret_file.map(Path::to_path_buf),
            current: RwLock::new(Current::from(&loaded)?),
            failed: Mutex::new(None),
            limits: limit::Limits::default(),
        };
        auth.limits.update(&loaded.policy);
        Ok(auth)
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.current.read().policy.clone()
    }

    /// `Bearer <cluster secret>` for this node's own calls to other nodes.
    pub fn node_authorization(&self) -> Option<HeaderValue> {
        self.current.read().node_authorization.clone()
    }

    /// Re-reads the files if their content changed (the periodic check).
    pub fn reload_if_changed(&self) -> Result<Reloaded, String> {
        self.reload_inner(false)
    }

    /// Re-reads the files (SIGHUP), even if they look unchanged.
    pub fn reload(&self) -> Result<Reloaded, String> {
        self.reload_inner(true)
    }

    fn reload_inner(&self, forced: bool) -> Result<Reloaded, String> {
        let outcome = file::load(&self.auth_file, self.secret_file.as_deref())
            .and_then(|loaded| Current::from(&loaded).map(|c| (loaded, c)));
        match outcome {
            Ok((loaded, next)) => {
                self.failed.lock().take();
                let mut current = self.current.write();
                if !forced && current.digest == next.digest {
                    return Ok(Reloaded::Unchanged);
                }
                *current = next;
                drop(current);
                self.limits.update(&loaded.policy);
                metrics::counter!("shale_auth_reloads_total", "result" => "ok").increment(1);
                tracing::info!(
                    file = %self.auth_file.display(),
                    tokens = loaded.policy.token_count(),
                    "auth rules reloaded"
                );
                Ok(Reloaded::Changed)
            }
            Err(error) => {
                // Log a bad file once per content (it is polled every second).
                let digest = file_digest(&self.auth_file, self.secret_file.as_deref());
                let mut failed = self.failed.lock();
                if forced || *failed != Some(digest) {
                    *failed = Some(digest);
                    metrics::counter!("shale_auth_reloads_total", "result" => "error").increment(1);
                    tracing::error!(%error, "auth file not reloaded; the rules in force stay");
                }
                Err(error)
            }
        }
    }

    /// The periodic check, on a blocking thread (it reads files).
    pub async fn poll(self: &Arc<Self>) {
        let auth = self.clone();
        // Errors are logged by the reload itself.
        let _ = tokio::task::spawn_blocking(move || auth.reload_if_changed()).await;
    }
}

impl Current {
    fn from(loaded: &file::Loaded) -> Result<Current, String> {
        let node_authorization = loaded
            .node_secret
            .as_deref()
            .map(|secret| {
                let mut value = HeaderValue::from_str(&format!("Bearer {secret}"))
                    .map_err(|e| format!("the cluster secret is not a header value: {e}"))?;
                value.set_sensitive(true);
                Ok::<_, String>(value)
            })
            .transpose()?;
        Ok(Current {
            policy: Arc::new(loaded.policy.clone()),
            node_authorization,
            digest: loaded.digest,
        })
    }
}

/// A digest of whatever the files hold now (unreadable counts as its error text).
fn file_digest(auth_file: &Path, secret_file: Option<&Path>) -> policy::Digest32 {
    let mut bytes = Vec::new();
    for path in std::iter::once(auth_file).chain(secret_file) {
        match std::fs::read(path) {
            Ok(content) => bytes.extend_from_slice(&policy::sha256(&content)),
            Err(e) => bytes.extend_from_slice(e.to_string().as_bytes()),
        }
    }
    policy::sha256(&bytes)
}

/// Installs the SIGHUP handler (from then on SIGHUP no longer ends the process).
pub fn sighup() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// Reloads `auth` on every SIGHUP `hangups` receives, until the process ends.
pub fn reload_on_sighup(auth: Arc<Auth>, mut hangups: tokio::signal::unix::Signal) {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the auth file");
            let auth = auth.clone();
            let _ = tokio::task::spawn_blocking(move || auth.reload()).await;
        }
    });
}

/// The caller's `Authorization` header, passed on with the node-to-node
/// calls made for its request (gathers), so each node checks it again.
#[derive(Debug, Clone, Default)]
pub struct Credentials(Option<HeaderValue>);

impl Credentials {
    /// The `Authorization` header of `headers`, if any.
    pub fn of(headers: &axum::http::HeaderMap) -> Credentials {
        Credentials(headers.get(axum::http::header::AUTHORIZATION).cloned())
    }

    /// `call` with the caller's `Authorization`.
    pub fn apply(&self, call: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.0 {
            Some(value) => call.header(axum::http::header::AUTHORIZATION, value.clone()),
            None => call,
        }
    }
}
