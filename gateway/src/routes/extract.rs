//! Extractors whose rejections are [`ApiError`]s, so malformed JSON, a bad
//! query string or a bad path parameter get the contract's error body
//! (400 INVALID_ARGUMENT, 413 PAYLOAD_TOO_LARGE, 415 UNSUPPORTED_MEDIA_TYPE)
//! instead of axum's plain-text answers.
//!
//! JSON bodies go through [`integral_numbers`] first: JSON has one number
//! type, and `16.0` is the integer 16 (JSON Schema's `integer` accepts it,
//! so the OpenAPI document does too), while serde refuses a float where an
//! integer is expected. Anything else (duplicate keys, unknown fields,
//! fractions) is still refused by the typed parse.

use std::borrow::Cow;

use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// `axum::Json` with contract errors, taking integral numbers written
/// with a fraction or exponent (`16.0`, `1e3`) as integers.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !super::produce::input::is_json(request.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state).await?;
        require_object(&bytes)?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&integral_numbers(&bytes))?;
        Ok(ApiJson(value))
    }
}

/// `axum::extract::Query` with contract errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` (percent-decoded) with contract errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Every JSON body of the API is an object; serde would also take an array
/// for a struct (`[null, null]` as the fields in order), which no client
/// means.
pub fn require_object(json: &[u8]) -> Result<(), ApiError> {
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ApiError::invalid("the request body must be a JSON object")),
    }
}

/// Rewrites the numbers of a JSON text whose value is an integer but which
/// are written with a fraction or an exponent (`16.0`, `1.6e1`) as plain
/// integers (`16`); leaves everything else, strings included, untouched.
/// Only values below 2^53 are rewritten (beyond, a float is not exact). Not
/// a validator: the typed parse that follows refuses what is not JSON.
pub fn integral_numbers(json: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => i = skip_string(json, i),
            b'-' | b'0'..=b'9' => {
                let end = number_end(json, i);
                let token = &json[i..end];
                if let Some(integer) = as_integer(token) {
                    let out = out.get_or_insert_with(|| Vec::with_capacity(json.len()));
                    out.extend_from_slice(&json[copied..i]);
                    out.extend_from_slice(integer.as_bytes());
                    copied = end;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    match out {
        Some(mut out) => {
            out.extend_from_slice(&json[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(json),
    }
}

/// The index after the string starting at `start` (a `"`).
fn skip_string(json: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    json.len()
}

fn number_end(json: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < json.len() && matches!(json[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
        i += 1;
    }
    i
}

/// The integer a number token with a fraction or exponent stands for.
fn as_integer(token: &[u8]) -> Option<String> {
    if !token.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return None;
    }
    let value: f64 = std::str::from_utf8(token).ok()?.parse().ok()?;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() != 0.0 || value.abs() >= EXACT {
        return None;
    }
    Some(format!("{}", value as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(json: &str) -> String {
        String::from_utf8(integral_numbers(json.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn integral_numbers_become_integers() {
        assert_eq!(
            rewritten(r#"{"a": 16.0, "b": [1e3, -2.50, 7], "c": 1.5, "d": -0.0}"#),
            r#"{"a": 16, "b": [1000, -2.50, 7], "c": 1.5, "d": 0}"#
        );
        assert_eq!(rewritten(r#"{"x": 1e300}"#), r#"{"x": 1e300}"#);
    }

    #[test]
    fn strings_and_plain_json_are_left_alone() {
        let json = r#"{"s": "1.0 \" 2.0", "n": 3}"#;
        assert!(matches!(
            integral_numbers(json.as_bytes()),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            rewritten(r#"{"s": "a\\", "n": 4.0}"#),
            r#"{"s": "a\\", "n": 4}"#
        );
    }

    #[test]
    fn duplicate_keys_are_still_refused() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only parsed")]
        struct One {
            n: u32,
        }
        let json = integral_numbers(br#"{"n": 1.0, "n": 2}"#).into_owned();
        assert!(serde_json::from_slice::<One>(&json).is_err());
        let json = integral_numbers(br#"{"n": 1.0}"#).into_owned();
        assert_eq!(serde_json::from_slice::<One>(&json).unwrap().n, 1);
    }
}
