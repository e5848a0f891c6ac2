//! Tests of SigV4 verification: the AWS documentation's example, requests
//! signed by botocore itself, and every way a request can be refused.

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
