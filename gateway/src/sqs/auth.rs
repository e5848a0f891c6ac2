//! Who sends an SQS request: its SigV4 signature checked against the auth
//! file when auth is on (the access key id is the principal, the secret
//! access key its token, kept as `sigv4_secret`), anyone otherwise.
//!
//! Auth off: every request is served, signed or not, with any credentials
//! (as local SQS emulators do); the access key, when the request names one,
//! is still its `SenderId`. Auth on: no or a malformed signature is
//! MissingAuthenticationToken / IncompleteSignature, an unknown access key
//! (or one without `sigv4_secret`) InvalidClientTokenId, a wrong signature
//! SignatureDoesNotMatch, a clock more than 15 minutes off
//! RequestExpired — all 403/400 before anything is read. The principal's
//! token then authorizes every `/v1` call the request makes. Credentials
//! are never logged.

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};

use super::naming::ACCOUNT;
use super::protocol::SqsError;
use super::sigv4::{self, SigError};
use crate::auth::Caller;
use crate::state::AppState;

/// The authenticated caller of one SQS request.
#[derive(Debug)]
pub struct Identity {
    pub caller: Caller,
    /// `Bearer <token>` for the `/v1` calls (auth on).
    pub bearer: Option<HeaderValue>,
    pub sender_id: String,
}

fn refused(e: SigError) -> SqsError {
    let message = e.to_string();
    match e {
        SigError::Missing => SqsError::new(
            "MissingAuthenticationToken",
            "MissingAuthenticationToken",
            StatusCode::FORBIDDEN,
            message,
        ),
        SigError::Malformed(_) => SqsError::new(
            "IncompleteSignature",
            "IncompleteSignature",
            StatusCode::BAD_REQUEST,
            message,
        ),
        SigError::Skewed(_) => SqsError::new(
            "RequestExpired",
            "RequestExpired",
            StatusCode::BAD_REQUEST,
            message,
        ),
        SigError::Mismatch => SqsError::signature_mismatch(message),
    }
}

/// The caller of a request (see the module docs).
pub fn authenticate(state: &AppState, parts: &Parts, body: &[u8]) -> Result<Identity, SqsError> {
    let Some(auth) = &state.auth else {
        let sender_id = sigv4::parse(&parts.headers)
            .map(|c| c.access_key)
            .unwrap_or_else(|_| ACCOUNT.to_string());
        return Ok(Identity {
            caller: Caller::Open,
            bearer: None,
            sender_id,
        });
    };
    let credential = sigv4::parse(&parts.headers).map_err(refused)?;
    let policy = auth.policy();
    let unknown = || {
        SqsError::invalid_client_token(
            "The security token included in the request is invalid: no principal of the auth file has this access key id with a sigv4_secret.",
        )
    };
    let secret = policy
        .sigv4_secret(&credential.access_key)
        .ok_or_else(unknown)?;
    sigv4::verify(
        &parts.method,
        &parts.uri,
        &parts.headers,
        body,
        &credential,
        secret,
        state.broker.clock.now_ms(),
    )
    .map_err(refused)?;
    let caller = policy.authenticate(secret).ok_or_else(unknown)?;
    let mut bearer = HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| unknown())?;
    bearer.set_sensitive(true);
    Ok(Identity {
        caller,
        bearer: Some(bearer),
        sender_id: credential.access_key,
    })
}
