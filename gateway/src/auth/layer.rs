//! The auth middleware: authenticate, limit, authorize — from [`rules::ROUTES`].
//!
//! It runs after routing (a `Router::layer`), so it sees the matched path
//! template, and before the forwarding layer, so a request is checked on
//! the node it reaches first *and* again on the node it is forwarded to
//! (which sees the caller's own `Authorization`). Order for a `/v1` route:
//! 1. the token (401 before anything else, the body unread);
//! 2. the principal's rate (429);
//! 3. the names the route's rule reads: path parameters as the handlers
//!    decode them, a query parameter, a top-level field of the JSON body
//!    (read here, bounded by the body limit, and handed on unchanged); a
//!    body that is not a JSON object naming it is 400, never let through
//!    unchecked; a query naming it twice is 400;
//! 4. the rule (403), then the route with [`Caller`] as an extension.
//!
//! Unknown `/v1` paths need a valid token before they are told 404; a known
//! path with another method is 405 after the token. Tokens and the
//! `Authorization` header are never logged.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::policy::{Action, Caller, Policy};
use super::rules::{self, Access, Lookup, Name, Need};
use crate::error::{ApiError, Code, ErrorCode};
use crate::state::AppState;

/// The middleware (see the module docs).
pub async fn layer(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let Some(auth) = state.auth.clone() else {
        req.extensions_mut().insert(Caller::Open);
        return next.run(req).await;
    };
    let policy = auth.policy();
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = match req.method() {
        &Method::HEAD => Method::GET,
        other => other.clone(),
    };
    let lookup = match &matched {
        Some(path) => rules::lookup(&method, path),
        // The fallback (404): only /v1 paths need a token first.
        None if is_api(req.uri().path()) => Lookup::OtherMethod,
        None => Lookup::Found(Access::Open),
    };
    let need = match lookup {
        Lookup::Found(Access::Open) => return next.run(req).await,
        Lookup::Found(Access::Metrics) if !policy.metrics_require_auth => {
            return next.run(req).await;
        }
        Lookup::Found(Access::Metrics) => Need {
            actions: &[Action::Admin],
            topic: Name::None,
            group: Name::None,
        },
        Lookup::Found(Access::Need(need)) => need,
        Lookup::OtherMethod => {
            // A wrong method, or no route at all: the same answer as
            // without auth, once the caller is known.
            if let Err(refused) = authenticate(&policy, req.headers()) {
                return refused.response();
            }
            return next.run(req).await;
        }
        Lookup::Missing => {
            tracing::error!(route = matched.as_deref().unwrap_or(""), %method, "a route has no access rule in auth::rules::ROUTES; refused");
            return ApiError::new(ErrorCode::Internal, "this route has no access rule")
                .into_response();
        }
    };
    let caller = match authenticate(&policy, req.headers()) {
        Ok(caller) => caller,
        Err(refused) => return refused.response(),
    };
    if let Caller::Client(grant) = &caller
        && let Err(wait) = auth.limits.check(&grant.principal)
    {
        return throttled(&grant.principal, wait);
    }
    let (mut parts, body) = req.into_parts();
    let (topic, group, body) = match names(&need, &mut parts, body).await {
        Ok(named) => named,
        Err(error) => return error.into_response(),
    };
    if !caller.may(need.actions, topic.as_deref(), group.as_deref()) {
        tracing::debug!(principal = caller.principal(), %method, route = matched.as_deref().unwrap_or(""), "permission denied");
        return denied(&caller, &need, topic.as_deref(), group.as_deref());
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

fn is_api(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No `Authorization` header (or several).
    Missing,
    /// Not `Bearer <token>`.
    NotBearer,
    /// A token no entry has.
    Unknown,
}

impl Unauthenticated {
    /// 401 with `WWW-Authenticate: Bearer` (and `error="invalid_token"`
    /// when a token was presented, as RFC 6750 asks).
    pub fn response(self) -> Response {
        let (message, challenge) = match self {
            Unauthenticated::Missing => (
                "this node requires `Authorization: Bearer <token>` (exactly one)",
                "Bearer realm=\"shale\"",
            ),
            Unauthenticated::NotBearer => (
                "the Authorization header must be `Bearer <token>`",
                "Bearer realm=\"shale\", error=\"invalid_token\"",
            ),
            Unauthenticated::Unknown => (
                "the token is not valid on this node",
                "Bearer realm=\"shale\", error=\"invalid_token\"",
            ),
        };
        let mut response = ApiError::new(Code::Unauthenticated, message).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        response
    }
}

/// The caller of a request with a valid `Authorization: Bearer <token>`.
pub fn authenticate(policy: &Policy, headers: &HeaderMap) -> Result<Caller, Unauthenticated> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Unauthenticated::Missing);
    };
    let token = bearer_token(value).ok_or(Unauthenticated::NotBearer)?;
    policy.authenticate(token).ok_or(Unauthenticated::Unknown)
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750).
fn bearer_token(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 429 with the limiter's own `Retry-After`.
fn throttled(principal: &str, wait: std::time::Duration) -> Response {
    let seconds = super::limit::retry_after_seconds(wait);
    metrics::counter!("shale_auth_throttled_total").increment(1);
    let mut response = ApiError::new(
        ErrorCode::Throttled,
        format!("principal `{principal}` is over its request rate; retry after {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn denied(caller: &Caller, need: &Need, topic: Option<&str>, group: Option<&str>) -> Response {
    let actions: Vec<&str> = need.actions.iter().map(|a| a.as_str()).collect();
    let mut on = Vec::new();
    if let Some(t) = topic {
        on.push(format!("topic `{t}`"));
    }
    if let Some(g) = group {
        on.push(format!("group `{g}`"));
    }
    let target = if on.is_empty() {
        String::new()
    } else {
        format!(" on {}", on.join(" and "))
    };
    ApiError::new(
        Code::PermissionDenied,
        format!(
            "principal `{}` may not do this: it needs {}{target}",
            caller.principal(),
            actions.join(" or ")
        ),
    )
    .into_response()
}

/// The topic and group the request names, where the rule says, and the body
/// to hand on.
async fn names(
    need: &Need,
    parts: &mut Parts,
    body: Body,
) -> Result<(Option<String>, Option<String>, Body), ApiError> {
    let uses_path = [need.topic, need.group]
        .iter()
        .any(|n| matches!(n, Name::Path(_) | Name::TxnPath(_)));
    let params: HashMap<String, String> = if uses_path {
        Path::<HashMap<String, String>>::from_request_parts(parts, &())
            .await
            .map_err(ApiError::from)?
            .0
    } else {
        HashMap::new()
    };
    let body_field = [need.topic, need.group].into_iter().find_map(|n| match n {
        Name::Body(field) => Some(field),
        _ => None,
    });
    let (json, body) = match body_field {
        Some(_) => {
            let bytes = axum::body::to_bytes(body, crate::app::MAX_HTTP_BODY_BYTES)
                .await
                .map_err(crate::cluster::forward::body_error)?;
            let json: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))?;
            (Some(json), Body::from(bytes))
        }
        None => (None, body),
    };
    let resolve = |name: Name| -> Result<Option<String>, ApiError> {
        match name {
            Name::None => Ok(None),
            Name::Path(param) => params.get(param).cloned().map(Some).ok_or_else(|| {
                ApiError::new(ErrorCode::Internal, format!("no path parameter `{param}`"))
            }),
            Name::TxnPath(param) => {
                let id = params.get(param).ok_or_else(|| {
                    ApiError::new(ErrorCode::Internal, format!("no path parameter `{param}`"))
                })?;
                shale_broker::txn::records::TxnId::parse(id)
                    .map(|t| Some(t.topic))
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::TransactionNotFound,
                            format!("transaction {id} not found"),
                        )
                    })
            }
            Name::Query(param) => query_param(parts, param),
            Name::Body(field) => match json.as_ref().and_then(|j| j.get(field)) {
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                _ => Err(ApiError::invalid(format!(
                    "the JSON body needs a string field `{field}`"
                ))),
            },
        }
    };
    Ok((resolve(need.topic)?, resolve(need.group)?, body))
}

/// A query parameter given at most once (the handlers refuse it twice too).
fn query_param(parts: &Parts, param: &str) -> Result<Option<String>, ApiError> {
    let Query(pairs) =
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(ApiError::from)?;
    let mut values: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == param)
        .map(|(_, v)| v)
        .collect();
    if values.len() > 1 {
        return Err(ApiError::invalid(format!(
            "query parameter `{param}` given more than once"
        )));
    }
    Ok(values.pop())
}
