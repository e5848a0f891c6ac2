//! Verifying AWS Signature Version 4, header form, as SDKs sign SQS calls:
//! `Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<yyyymmdd>/<region>/sqs/aws4_request,
//! SignedHeaders=<a;b;c>, Signature=<64 hex>` with `X-Amz-Date: <yyyymmddThhmmssZ>`.
//!
//! [`parse`] reads the `Authorization` header into a [`Credential`] (the
//! access key id says whose secret to check it with); [`verify`] rebuilds the
//! canonical request from what arrived and checks the signature with that
//! secret. Invariants:
//!
//! - The canonical request is the one the SDKs build for a non-S3 service:
//!   the path as it came on the wire, dot and empty segments removed, each
//!   segment percent-encoded once more (so twice, counting the client's own
//!   encoding); the query decoded, re-encoded per RFC 3986 and sorted by key
//!   then value; the signed headers in the order listed, each
//!   `name:value` with the values trimmed, inner runs of spaces collapsed,
//!   several values joined by `,`; then the hex SHA-256 of the body (or
//!   `UNSIGNED-PAYLOAD` when `x-amz-content-sha256` says so; any other value
//!   of that header must be the body's own hash).
//! - `host` is always signed. Over HTTP/2 the host is the URI's authority
//!   (hyper keeps no `Host` header there).
//! - Only the `sqs` service is accepted, from any region; `X-Amz-Date` must
//!   be within [`MAX_SKEW_MS`] of the node's clock and on the credential's date.
//! - Signatures are compared in constant time ([`subtle`]). Nothing here logs,
//!   and no error carries the secret.

use std::time::UNIX_EPOCH;

use axum::http::{HeaderMap, Method, Uri, header};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only signing algorithm SigV4 has.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The service name in an SQS credential scope.
pub const SERVICE: &str = "sqs";

/// How far `X-Amz-Date` may be from the node's clock, either way (AWS's 15 minutes).
pub const MAX_SKEW_MS: u64 = 15 * 60 * 1000;

/// `x-amz-content-sha256` of a client that did not hash the body.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The last part of every credential scope.
const TERMINATOR: &str = "aws4_request";

/// What the `Authorization` header states. The access key id is a principal
/// of the auth file; nothing here is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    /// `yyyymmdd`, the date of the signing key.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercase header names, in the order the client listed them.
    pub signed_headers: Vec<String>,
    /// 64 lowercase hex digits.
    pub signature: String,
}

/// Why a request's signature is refused; the messages are for SQS users.
#[derive(Debug, thiserror::Error)]
pub enum SigError {
    /// No `Authorization` header.
    #[error(
        "The request has no Authorization header: sign it with AWS Signature Version 4 (an AWS SDK does so, given an access key id and a secret access key)."
    )]
    Missing,
    /// The header (or `X-Amz-Date`, or the credential scope) is not what SigV4 defines.
    #[error("{0}")]
    Malformed(String),
    /// `X-Amz-Date` is too far from the node's clock, or not on the credential's date.
    #[error("{0}")]
    Skewed(String),
    /// Well-formed, but not signed with this secret over this request.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
}

fn malformed(message: impl Into<String>) -> SigError {
    SigError::Malformed(message.into())
}

/// The value of Authorization parameter `key`, which must be given.
fn required<'a>(value: Option<&'a str>, key: &str) -> Result<&'a str, SigError> {
    value.ok_or_else(|| malformed(format!("Authorization header requires '{key}' parameter.")))
}

/// Reads the `Authorization` header: [`SigError::Missing`] without one,
/// [`SigError::Malformed`] unless it is a complete SigV4 header form.
pub fn parse(headers: &HeaderMap) -> Result<Credential, SigError> {
    let text = single(headers, header::AUTHORIZATION.as_str())?.ok_or(SigError::Missing)?;
    let params = text
        .strip_prefix(ALGORITHM)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(|| {
            malformed(format!(
                "The Authorization header must start with `{ALGORITHM} ` (AWS Signature Version 4)."
            ))
        })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for param in params.split(',').map(str::trim) {
        // The messages never repeat the header's own text: it may hold a secret.
        let (key, value) = param.split_once('=').ok_or_else(|| {
            malformed(
                "The Authorization header's parameters must be key=value, separated by commas: Credential, SignedHeaders, Signature.",
            )
        })?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => {
                return Err(malformed(
                    "The Authorization header has a parameter other than Credential, SignedHeaders and Signature.",
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(malformed(format!("Authorization gives `{key}` twice.")));
        }
    }
    let (credential, signed, signature) = (
        required(credential, "Credential")?,
        required(signed, "SignedHeaders")?,
        required(signature, "Signature")?,
    );
    let (access_key, date, region, service) = parse_scope(credential)?;
    let signed_headers = parse_signed_headers(signed)?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("Signature must be 64 hex digits."));
    }
    Ok(Credential {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// `<access key>/<yyyymmdd>/<region>/<service>/aws4_request`, split from the
/// right: an access key (a principal) may itself hold `/`.
fn parse_scope(credential: &str) -> Result<(&str, &str, &str, &str), SigError> {
    let mut parts = credential.rsplitn(5, '/');
    let mut next = || parts.next().filter(|part| !part.is_empty());
    let (terminator, service, region, date, access_key) = (next(), next(), next(), next(), next());
    match (access_key, date, region, service, terminator) {
        (Some(access_key), Some(date), Some(region), Some(service), Some(TERMINATOR))
            if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok((access_key, date, region, service))
        }
        _ => Err(malformed(format!(
            "Credential must be <access key id>/<yyyymmdd>/<region>/{SERVICE}/{TERMINATOR}."
        ))),
    }
}

/// `a;b;c`: lowercase header names, `host` among them.
fn parse_signed_headers(text: &str) -> Result<Vec<String>, SigError> {
    let names: Vec<String> = text.split(';').map(str::to_string).collect();
    let is_name = |name: &String| {
        !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
            })
    };
    if let Some(bad) = names.iter().find(|name| !is_name(name)) {
        return Err(malformed(format!(
            "SignedHeaders must be lowercase header names separated by `;`, not `{bad}`."
        )));
    }
    require_host(&names)?;
    Ok(names)
}

fn require_host(signed_headers: &[String]) -> Result<(), SigError> {
    if signed_headers.iter().any(|name| name == "host") {
        Ok(())
    } else {
        Err(malformed("SignedHeaders must include `host`."))
    }
}

/// Checks `credential` (from [`parse`]) against the request as received,
/// with `secret`, the secret access key of `credential.access_key`, at
/// `now_ms` (Unix milliseconds, the node's clock).
pub fn verify(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    credential: &Credential,
    secret: &str,
    now_ms: i64,
) -> Result<(), SigError> {
    let request = Request {
        method,
        uri,
        headers,
        body,
    };
    verify_for(SERVICE, &request, credential, secret, now_ms)
}

/// The request as it arrived.
struct Request<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// [`verify`] for any `service` (the AWS documentation's vectors are IAM's).
fn verify_for(
    service: &str,
    request: &Request<'_>,
    credential: &Credential,
    secret: &str,
    now_ms: i64,
) -> Result<(), SigError> {
    if credential.service != service {
        return Err(malformed(format!(
            "Credential should be scoped to the service '{service}', not '{}'.",
            credential.service
        )));
    }
    require_host(&credential.signed_headers)?;
    let amz_date = single(request.headers, "x-amz-date")?.ok_or_else(|| {
        malformed("The request must carry an X-Amz-Date header (yyyymmddThhmmssZ, UTC).")
    })?;
    let signed_at_ms = parse_amz_date(amz_date)?;
    if amz_date[..8] != credential.date {
        return Err(SigError::Skewed(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'.",
            credential.date,
            &amz_date[..8]
        )));
    }
    if now_ms.abs_diff(signed_at_ms) > MAX_SKEW_MS {
        return Err(SigError::Skewed(format!(
            "Signature expired or not yet valid: X-Amz-Date {amz_date} is more than 15 minutes from the server's time {}; check the client's clock.",
            amz_format(now_ms)
        )));
    }
    let payload = payload_hash(request.headers, request.body)?;
    let canonical = canonical_request(request, &credential.signed_headers, &payload)?;
    let scope = format!(
        "{}/{}/{}/{TERMINATOR}",
        credential.date, credential.region, credential.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(
        secret,
        &credential.date,
        &credential.region,
        &credential.service,
    );
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if bool::from(expected.as_bytes().ct_eq(credential.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

/// The one value of header `name`, if any (UTF-8); two are malformed.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, SigError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(malformed(format!(
            "The request has more than one {name} header."
        )));
    }
    std::str::from_utf8(value.as_bytes())
        .map(Some)
        .map_err(|_| malformed(format!("The {name} header is not UTF-8.")))
}

/// `yyyymmddThhmmssZ` to Unix milliseconds.
fn parse_amz_date(text: &str) -> Result<i64, SigError> {
    let bad = || {
        malformed(format!(
            "X-Amz-Date must be yyyymmddThhmmssZ (UTC), not `{text}`."
        ))
    };
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !digits(0..8) || !digits(9..15) {
        return Err(bad());
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    let at = humantime::parse_rfc3339(&rfc3339).map_err(|_| bad())?;
    let since_epoch = at.duration_since(UNIX_EPOCH).map_err(|_| bad())?;
    i64::try_from(since_epoch.as_millis()).map_err(|_| bad())
}

/// Unix milliseconds as `yyyymmddThhmmssZ` (for messages).
fn amz_format(ms: i64) -> String {
    let at = UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace(['-', ':'], "")
}

/// The payload line of the canonical request.
fn payload_hash(headers: &HeaderMap, body: &[u8]) -> Result<String, SigError> {
    let actual = hex::encode(Sha256::digest(body));
    match single(headers, "x-amz-content-sha256")? {
        None => Ok(actual),
        Some(UNSIGNED_PAYLOAD) => Ok(UNSIGNED_PAYLOAD.to_string()),
        Some(claimed) if claimed.len() == 64 && claimed.bytes().all(|b| b.is_ascii_hexdigit()) => {
            if claimed.eq_ignore_ascii_case(&actual) {
                Ok(claimed.to_string())
            } else {
                Err(SigError::Mismatch)
            }
        }
        Some(_) => Err(malformed(format!(
            "x-amz-content-sha256 must be the hex SHA-256 of the body or {UNSIGNED_PAYLOAD}."
        ))),
    }
}

/// The canonical request (see the module doc).
fn canonical_request(
    request: &Request<'_>,
    signed_headers: &[String],
    payload: &str,
) -> Result<String, SigError> {
    let mut out = String::new();
    out.push_str(request.method.as_str());
    out.push('\n');
    out.push_str(&canonical_uri(request.uri.path()));
    out.push('\n');
    out.push_str(&canonical_query(request.uri.query().unwrap_or("")));
    out.push('\n');
    for name in signed_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(&header_value(request, name)?);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload);
    Ok(out)
}

/// A signed header's canonical value: each value trimmed, runs of spaces
/// collapsed, several values joined by `,`.
fn header_value(request: &Request<'_>, name: &str) -> Result<String, SigError> {
    let mut values = Vec::new();
    for value in request.headers.get_all(name) {
        let text = std::str::from_utf8(value.as_bytes())
            .map_err(|_| malformed(format!("The signed header {name} is not UTF-8.")))?;
        values.push(text.split_ascii_whitespace().collect::<Vec<_>>().join(" "));
    }
    if values.is_empty() {
        // HTTP/2 carries the host as the URI's authority, not as a header.
        match (name, request.uri.authority()) {
            ("host", Some(authority)) => values.push(authority.as_str().to_string()),
            _ => {
                return Err(malformed(format!(
                    "SignedHeaders names `{name}`, which the request does not carry."
                )));
            }
        }
    }
    Ok(values.join(","))
}

/// The wire path without dot or empty segments, each segment encoded again.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::from("/");
    let encoded: Vec<String> = segments.iter().map(|s| encode(s.as_bytes())).collect();
    out.push_str(&encoded.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The query's pairs, decoded, re-encoded per RFC 3986, sorted by key then
/// value; a key without `=` has an empty value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(key)), encode(&decode(value)))
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

/// RFC 3986 percent-encoding: everything but `A-Za-z0-9-_.~`, hex in uppercase.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding (`+` stays `+`); a `%` not followed by two hex digits stays itself.
fn decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// HMAC-SHA256 of `data` with `key`.
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `HMAC("AWS4" + secret, date)`, then region, service and `aws4_request`.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, TERMINATOR.as_bytes())
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
