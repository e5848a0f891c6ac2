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
fn encode(bytes: &[u8]) -> String {
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
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ms(rfc3339: &str) -> i64 {
        let at = humantime::parse_rfc3339(rfc3339).unwrap();
        i64::try_from(at.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
    }

    fn check(
        method: &str,
        uri: &str,
        headers: &HeaderMap,
        body: &[u8],
        secret: &str,
        now_ms: i64,
    ) -> Result<(), SigError> {
        let credential = parse(headers)?;
        verify(
            &method.parse().unwrap(),
            &uri.parse().unwrap(),
            headers,
            body,
            &credential,
            secret,
            now_ms,
        )
    }

    /// The AWS documentation's worked example ("GET
    /// https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
    /// signed 2015-08-30T12:36:00Z): its canonical request hash, signing key
    /// and signature, which a one-off Python (hashlib/hmac) recomputation
    /// reproduced. The service is IAM's, so through `verify_for`.
    #[test]
    fn the_aws_documentation_example() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let headers = headers(&[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("host", "iam.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
            ),
        ]);
        let (method, uri) = (
            Method::GET,
            "/?Action=ListUsers&Version=2010-05-08"
                .parse::<Uri>()
                .unwrap(),
        );
        let request = Request {
            method: &method,
            uri: &uri,
            headers: &headers,
            body: b"",
        };
        let credential = parse(&headers).unwrap();
        assert_eq!(credential.access_key, "AKIDEXAMPLE");
        let canonical = canonical_request(
            &request,
            &credential.signed_headers,
            &payload_hash(&headers, b"").unwrap(),
        )
        .unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            hex::encode(signing_key(secret, "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let now = ms("2015-08-30T12:40:00Z");
        assert!(verify_for("iam", &request, &credential, secret, now).is_ok());
        let error = verify(&method, &uri, &headers, b"", &credential, secret, now).unwrap_err();
        assert!(
            matches!(&error, SigError::Malformed(m) if m.contains("'sqs', not 'iam'")),
            "{error}"
        );
    }

    const SECRET: &str = "shale_sqs-vector-secret-not-a-real-token";

    /// Captured from botocore 1.44.18's own SQS client (`client.send_message`
    /// to endpoint http://127.0.0.1:8080, region eu-west-3, access key
    /// `billing`, secret [`SECRET`]) in a `before-send` hook, with
    /// `botocore.auth.get_current_datetime` patched to 2026-12-08T00:42:00Z.
    /// The User-Agent header (not signed) is left out; `Host` is what the HTTP
    /// client adds for that endpoint.
    const SDK_BODY: &str = r#"{"QueueUrl": "http://127.0.0.1:8080/000000000000/orders", "MessageBody": "h\u00e9llo", "MessageAttributes": {"City": {"DataType": "String", "StringValue": "Any City"}}}"#;

    fn sdk_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("X-Amz-Target", "AmazonSQS.SendMessage"),
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-query-mode", "true"),
            ("X-Amz-Date", "20261208T004200Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=billing/20261208/eu-west-3/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-amzn-query-mode, Signature=20345ea40c4d972b48ef647554afd7ed089183aeadb2cda8b67ba58a8e6ce90d",
            ),
            (
                "amz-sdk-invocation-id",
                "47d27565-f30a-48ec-a47d-df17ef60ab59",
            ),
            ("amz-sdk-request", "attempt=1; max=3"),
            ("Content-Length", "168"),
            ("Host", "127.0.0.1:8080"),
        ]
    }

    /// `pairs` without header `name`, plus `name: value` if given.
    fn with(
        pairs: Vec<(&'static str, &'static str)>,
        name: &'static str,
        value: Option<&'static str>,
    ) -> HeaderMap {
        let mut kept: Vec<_> = pairs
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .collect();
        kept.extend(value.map(|value| (name, value)));
        headers(&kept)
    }

    fn signed_at() -> i64 {
        ms("2026-12-08T00:42:00Z")
    }

    #[test]
    fn a_request_signed_by_botocore_verifies() {
        let headers = headers(&sdk_headers());
        assert_eq!(SDK_BODY.len(), 168);
        let credential = parse(&headers).unwrap();
        assert_eq!(
            (
                credential.access_key.as_str(),
                credential.date.as_str(),
                credential.region.as_str(),
                credential.service.as_str()
            ),
            ("billing", "20261208", "eu-west-3", "sqs")
        );
        check(
            "POST",
            "/",
            &headers,
            SDK_BODY.as_bytes(),
            SECRET,
            signed_at(),
        )
        .unwrap();
        // Headers that are not signed may change on the way.
        let relaxed = with(sdk_headers(), "amz-sdk-request", Some("attempt=2; max=3"));
        check(
            "POST",
            "/",
            &relaxed,
            SDK_BODY.as_bytes(),
            SECRET,
            signed_at(),
        )
        .unwrap();
        // HTTP/2: no Host header, the authority is in the URI.
        let h2 = with(sdk_headers(), "host", None);
        check(
            "POST",
            "http://127.0.0.1:8080/",
            &h2,
            SDK_BODY.as_bytes(),
            SECRET,
            signed_at(),
        )
        .unwrap();
        let error = check("POST", "/", &h2, SDK_BODY.as_bytes(), SECRET, signed_at()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("names `host`, which the request does not carry"),
            "{error}"
        );
    }

    #[test]
    fn tampering_or_a_wrong_secret_is_a_mismatch() {
        let good = headers(&sdk_headers());
        let now = signed_at();
        let tampered_body = SDK_BODY.replace("h\\u00e9llo", "hallo");
        let cases: Vec<(&str, HeaderMap, &[u8], &str)> = vec![
            ("body", good.clone(), tampered_body.as_bytes(), SECRET),
            (
                "signed header",
                with(sdk_headers(), "x-amz-target", Some("AmazonSQS.DeleteQueue")),
                SDK_BODY.as_bytes(),
                SECRET,
            ),
            (
                "host",
                with(sdk_headers(), "host", Some("127.0.0.1:8081")),
                SDK_BODY.as_bytes(),
                SECRET,
            ),
            (
                "secret",
                good.clone(),
                SDK_BODY.as_bytes(),
                "shale_another-secret",
            ),
            (
                "content hash",
                with(
                    sdk_headers(),
                    "x-amz-content-sha256",
                    Some("0000000000000000000000000000000000000000000000000000000000000000"),
                ),
                SDK_BODY.as_bytes(),
                SECRET,
            ),
        ];
        for (what, headers, body, secret) in cases {
            let error = check("POST", "/", &headers, body, secret, now).unwrap_err();
            assert!(matches!(error, SigError::Mismatch), "{what}: {error}");
        }
        assert!(matches!(
            check("PUT", "/", &good, SDK_BODY.as_bytes(), SECRET, now),
            Err(SigError::Mismatch)
        ));
        assert!(matches!(
            check("POST", "/x", &good, SDK_BODY.as_bytes(), SECRET, now),
            Err(SigError::Mismatch)
        ));
        assert!(matches!(
            check("POST", "/?a=1", &good, SDK_BODY.as_bytes(), SECRET, now),
            Err(SigError::Mismatch)
        ));
        assert_eq!(
            SigError::Mismatch.to_string(),
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
        );
    }

    #[test]
    fn x_amz_date_must_be_within_15_minutes_and_on_the_credential_date() {
        let headers = headers(&sdk_headers());
        let body = SDK_BODY.as_bytes();
        let quarter = i64::try_from(MAX_SKEW_MS).unwrap();
        for now in [signed_at() - quarter, signed_at() + quarter] {
            check("POST", "/", &headers, body, SECRET, now).unwrap();
        }
        for now in [signed_at() - quarter - 1, signed_at() + quarter + 1, 0] {
            let error = check("POST", "/", &headers, body, SECRET, now).unwrap_err();
            assert!(
                matches!(&error, SigError::Skewed(m) if m.contains("more than 15 minutes")),
                "{error}"
            );
        }
        let error = check(
            "POST",
            "/",
            &headers,
            body,
            SECRET,
            signed_at() + 16 * 60 * 1000,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("20261208T005800Z"),
            "the server's time, in the same form: {error}"
        );
        let mut other_day = parse(&headers).unwrap();
        other_day.date = "20261207".into();
        let error = verify(
            &Method::POST,
            &Uri::from_static("/"),
            &headers,
            body,
            &other_day,
            SECRET,
            signed_at(),
        )
        .unwrap_err();
        assert!(
            matches!(&error, SigError::Skewed(m) if m.contains("'20261207' != '20261208'")),
            "{error}"
        );
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let scope = "Credential=billing/20261208/eu-west-3/sqs/aws4_request";
        let sig = format!("Signature={}", "a".repeat(64));
        let authorization = |params: &str| format!("AWS4-HMAC-SHA256 {params}");
        let cases: Vec<(String, &str)> = vec![
            (
                "Bearer shale_token".into(),
                "must start with `AWS4-HMAC-SHA256 `",
            ),
            (
                authorization(&format!("{scope}, SignedHeaders=host")),
                "requires 'Signature' parameter",
            ),
            (
                authorization(&format!("SignedHeaders=host, {sig}")),
                "requires 'Credential' parameter",
            ),
            (
                authorization(&format!("{scope}, {sig}")),
                "requires 'SignedHeaders' parameter",
            ),
            (
                authorization(&format!(
                    "{scope}, SignedHeaders=content-type;x-amz-date, {sig}"
                )),
                "must include `host`",
            ),
            (
                authorization(&format!("{scope}, SignedHeaders=Host;x-amz-date, {sig}")),
                "lowercase header names",
            ),
            (
                authorization(&format!("{scope}, SignedHeaders=host;;x-amz-date, {sig}")),
                "lowercase header names",
            ),
            (
                authorization(&format!("{scope}, SignedHeaders=host, Signature=abc")),
                "64 hex digits",
            ),
            (
                authorization(&format!(
                    "{scope}, SignedHeaders=host, Signature={}",
                    "g".repeat(64)
                )),
                "64 hex digits",
            ),
            (
                authorization(&format!("{scope}, SignedHeaders=host, {sig}, Region=x")),
                "a parameter other than Credential",
            ),
            (
                authorization(&format!("{scope}, SignedHeaders=host, {sig}, {sig}")),
                "`Signature` twice",
            ),
            (
                authorization(&format!("{scope} SignedHeaders=host, {sig}")),
                "requires 'SignedHeaders' parameter",
            ),
            (
                authorization(&format!("{scope}, SignedHeaders host, {sig}")),
                "must be key=value",
            ),
            (
                authorization(&format!(
                    "Credential=billing/2026-12-08/eu-west-3/sqs/aws4_request, SignedHeaders=host, {sig}"
                )),
                "Credential must be",
            ),
            (
                authorization(&format!(
                    "Credential=billing/20261208/eu-west-3/sqs/aws5_request, SignedHeaders=host, {sig}"
                )),
                "Credential must be",
            ),
            (
                authorization(&format!(
                    "Credential=20261208/eu-west-3/sqs/aws4_request, SignedHeaders=host, {sig}"
                )),
                "Credential must be",
            ),
            (
                authorization(&format!(
                    "Credential=billing//eu-west-3/sqs/aws4_request, SignedHeaders=host, {sig}"
                )),
                "Credential must be",
            ),
        ];
        for (value, expected) in cases {
            let error = parse(&headers(&[("authorization", &value)])).unwrap_err();
            assert!(
                matches!(&error, SigError::Malformed(m) if m.contains(expected)),
                "{value}\n→ {error}\n(expected {expected:?})"
            );
        }
        assert!(matches!(parse(&HeaderMap::new()), Err(SigError::Missing)));
        // A token where a signature belongs is not repeated in the message.
        for value in ["AWS4-HMAC-SHA256 shale_tok", "AWS4-HMAC-SHA256 shale_tok=x"] {
            let error = parse(&headers(&[("authorization", value)])).unwrap_err();
            assert!(!error.to_string().contains("shale_tok"), "{error}");
        }
        let value = authorization(&format!("{scope}, SignedHeaders=host, {sig}"));
        let twice = headers(&[("authorization", &value), ("authorization", &value)]);
        assert!(
            parse(&twice)
                .unwrap_err()
                .to_string()
                .contains("more than one authorization header")
        );
        // Upper-case hex is taken as the same signature.
        let upper = authorization(&format!(
            "{scope}, SignedHeaders=host, Signature={}",
            "A".repeat(64)
        ));
        assert_eq!(
            parse(&headers(&[("authorization", &upper)]))
                .unwrap()
                .signature,
            "a".repeat(64)
        );
    }

    #[test]
    fn a_bad_x_amz_date_or_content_hash_is_malformed() {
        let body = SDK_BODY.as_bytes();
        let cases = [
            (
                with(sdk_headers(), "x-amz-date", None),
                "must carry an X-Amz-Date",
            ),
            (
                with(sdk_headers(), "x-amz-date", Some("2026-12-08T00:42:00Z")),
                "yyyymmddThhmmssZ",
            ),
            (
                with(sdk_headers(), "x-amz-date", Some("20261340T004200Z")),
                "yyyymmddThhmmssZ",
            ),
            (
                with(sdk_headers(), "x-amz-date", Some("20261208T004200")),
                "yyyymmddThhmmssZ",
            ),
            (
                with(
                    sdk_headers(),
                    "x-amz-content-sha256",
                    Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                ),
                "UNSIGNED-PAYLOAD",
            ),
        ];
        for (headers, expected) in cases {
            let error = check("POST", "/", &headers, body, SECRET, signed_at()).unwrap_err();
            assert!(
                matches!(&error, SigError::Malformed(m) if m.contains(expected)),
                "{error} (expected {expected:?})"
            );
        }
        let mut no_host = parse(&headers(&sdk_headers())).unwrap();
        no_host.signed_headers.retain(|name| name != "host");
        let error = verify(
            &Method::POST,
            &Uri::from_static("/"),
            &headers(&sdk_headers()),
            body,
            &no_host,
            SECRET,
            signed_at(),
        )
        .unwrap_err();
        assert!(
            matches!(&error, SigError::Malformed(m) if m.contains("must include `host`")),
            "{error}"
        );
    }

    /// botocore.auth.SigV4Auth over a hand-made botocore AWSRequest
    /// (`POST https://sqs.local:8443/queue/a%20b/./c/~x?b=%2F&a=1&a=0&empty`,
    /// access key `team/billing`, secret `shale_second-vector-secret`, session
    /// token, `X-Amz-Content-SHA256` set, a header with runs of spaces), clock
    /// patched as above. Its canonical request began
    /// `POST\n/queue/a%2520b/c/~x\na=0&a=1&b=%2F&empty=\n`.
    #[test]
    fn botocore_paths_queries_and_header_values() {
        let headers = headers(&[
            ("Content-Type", "application/x-amz-json-1.0"),
            ("X-Amz-Target", "AmazonSQS.CreateQueue"),
            (
                "X-Amz-Content-SHA256",
                "e98ab4c3af7fcc35b0e38f262ec815bde664ed005fd4e14ad7b597abef6cf739",
            ),
            ("X-Custom", "  two   spaces  "),
            ("X-Amz-Date", "20261208T004200Z"),
            ("X-Amz-Security-Token", "session-token-xyz"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=team/billing/20261208/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-amz-target;x-custom, Signature=25651eef073ee6749694bbccaef5aa1db0ac4afb972dbf5bcd554a392f187b41",
            ),
            ("Host", "sqs.local:8443"),
        ]);
        assert_eq!(canonical_uri("/queue/a%20b/./c/~x"), "/queue/a%2520b/c/~x");
        assert_eq!(
            canonical_query("b=%2F&a=1&a=0&empty"),
            "a=0&a=1&b=%2F&empty="
        );
        assert_eq!(parse(&headers).unwrap().access_key, "team/billing");
        let uri = "/queue/a%20b/./c/~x?b=%2F&a=1&a=0&empty";
        let body = br#"{"QueueName":"orders"}"#;
        check(
            "POST",
            uri,
            &headers,
            body,
            "shale_second-vector-secret",
            signed_at(),
        )
        .unwrap();
    }

    /// botocore.auth.SigV4Auth with `X-Amz-Content-SHA256: UNSIGNED-PAYLOAD`
    /// (`POST https://sqs.local/`, access key `billing`, [`SECRET`], clock as
    /// above): the body is then not part of the signature.
    #[test]
    fn an_unsigned_payload_is_accepted_as_the_client_declared_it() {
        let headers = headers(&[
            ("Content-Type", "application/x-amz-json-1.0"),
            ("X-Amz-Target", "AmazonSQS.PurgeQueue"),
            ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"),
            ("X-Amz-Date", "20261208T004200Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=billing/20261208/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target, Signature=23ed0002a4a1c0cd4a3135a5787bdb9f364133dceb1ea098239ac6ea89cfb615",
            ),
            ("Host", "sqs.local"),
        ]);
        check(
            "POST",
            "/",
            &headers,
            br#"{"QueueUrl":"q"}"#,
            SECRET,
            signed_at(),
        )
        .unwrap();
    }

    #[test]
    fn canonical_pieces() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("//a//b/"), "/a/b/");
        assert_eq!(canonical_uri("/a/../../b/%2F/ü"), "/b/%252F/%C3%BC");
        assert_eq!(canonical_query(""), "");
        assert_eq!(
            canonical_query("b=2&&a=x%20y+z&a=%zz&c=%e2%82%ac"),
            "a=%25zz&a=x%20y%2Bz&b=2&c=%E2%82%AC"
        );
        assert_eq!(decode("%2"), b"%2");
        assert_eq!(decode("%+1"), b"%+1");
        assert_eq!(encode(b"AZaz09-_.~ /+=%"), "AZaz09-_.~%20%2F%2B%3D%25");
    }
}
