//! The web console: `GET /` (its page) and `GET /console/{file}` (its
//! scripts and style sheet), embedded in the binary from `gateway/console/`
//! so every node serves it offline, with no build step.
//!
//! The page and the assets hold no data and need no token; the console's
//! data calls go to `/v1` with the token it asks for on a 401 (see
//! `console/api.js`). Every answer carries an ETag (a SHA-256 prefix of the
//! content) with `Cache-Control: no-cache`, so browsers revalidate and get
//! a 304 until the binary changes, plus a Content-Security-Policy that
//! allows only the console's own scripts and calls (no inline script: data
//! rendered by the console cannot run as code).

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::extract::ApiPath;
use crate::error::{ApiError, ErrorBody};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

/// Every file of the console (`index.html` is served at `/`).
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("topics.js", JS),
    asset!("groups.js", JS),
    asset!("messages.js", JS),
    asset!("timers.js", JS),
    asset!("dlq.js", JS),
    asset!("cluster.js", JS),
    asset!("rates.js", JS),
    asset!("chart.js", JS),
];

/// What the console may load and call: its own origin only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = crate::auth::policy::sha256(a.bytes);
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

fn serve(index: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, v);
    }
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    (out, asset.bytes).into_response()
}

/// The web console.
#[utoipa::path(get, path = "/", tag = "operations",
    description = "The web console (HTML; its scripts and style sheet are under /console/). Open: \
        it holds no data; its calls to /v1 carry the bearer token it asks for when auth is on. \
        ETag with Cache-Control no-cache (If-None-Match answers 304).",
    responses((status = 200, content_type = "text/html", body = String),
        (status = 304, description = "Not modified")))]
pub async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// A script or the style sheet of the web console.
#[utoipa::path(get, path = "/console/{file}", tag = "operations",
    params(("file" = String, Path, description = "e.g. `app.js`, `style.css`")),
    description = "A file of the web console: JavaScript modules (text/javascript) and the style \
        sheet (text/css). 404 NOT_FOUND for any other name.",
    responses((status = 200, content((String = "text/javascript"), (String = "text/css"))),
        (status = 304, description = "Not modified"),
        (status = 404, body = ErrorBody)))]
pub async fn asset(ApiPath(file): ApiPath<String>, headers: HeaderMap) -> Response {
    match ASSETS
        .iter()
        .position(|a| a.name == file && a.content_type != HTML)
    {
        Some(i) => serve(i, &headers),
        None => ApiError::not_found(format!("no console file {file:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_content_and_a_distinct_name() {
        let mut names = std::collections::BTreeSet::new();
        for a in ASSETS {
            assert!(!a.bytes.is_empty(), "{}", a.name);
            assert!(names.insert(a.name), "{} twice", a.name);
        }
        assert_eq!(ASSETS[0].name, "index.html");
    }

    #[test]
    fn the_scripts_write_no_html_from_data() {
        // Data is rendered with textContent / createTextNode (dom.js), never
        // parsed as HTML.
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(sink), "{} uses {sink}", a.name);
            }
        }
    }

    #[test]
    fn every_script_the_page_or_a_module_imports_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for a in ASSETS {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for part in text
                .split("\"./")
                .skip(1)
                .chain(text.split("/console/").skip(1))
            {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                    .collect();
                if name.ends_with(".js") || name.ends_with(".css") {
                    assert!(served.contains(&name.as_str()), "{} loads {name}", a.name);
                }
            }
        }
    }
}
