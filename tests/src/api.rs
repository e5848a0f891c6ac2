//! HTTP helpers over the API.md contract.
//!
//! Helpers return a [`Resp`] (status, headers, raw body) rather than failing
//! on non-2xx, so tests can assert on errors; [`expect_error`] checks the
//! contract's error shape `{"error": {"code", "message"}}`.

use anyhow::{Context, ensure};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::node::Node;

/// An HTTP answer, fully read.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub async fn read(r: reqwest::Response) -> anyhow::Result<Resp> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.context("read response body")?.to_vec();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body text otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// Requires `status` and returns the JSON body.
    pub fn ok_json(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self.json()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Asserts an error answer: `status`, the JSON error shape, and `code`.
pub fn expect_error(resp: &Resp, status: u16, code: &str) {
    assert_eq!(
        resp.status,
        status,
        "expected {status} {code}; body: {}",
        resp.text()
    );
    let v: Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("error body for {code} is not JSON ({e}): {}", resp.text()));
    let err = v
        .get("error")
        .unwrap_or_else(|| panic!("no `error` object in {v}"));
    assert_eq!(
        err.get("code").and_then(Value::as_str),
        Some(code),
        "wrong error code in {v}"
    );
    let msg = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no `error.message` in {v}"));
    assert!(!msg.is_empty(), "empty error message in {v}");
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "error content-type {ct:?} for {code}"
    );
}

/// Base64 (standard alphabet, padded) as API.md's `body_base64`.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes `body_base64`.
pub fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("bad base64 {s:?}: {e}"))
}

/// The body bytes of a returned message object (`body` or `body_base64`).
pub fn body_bytes(msg: &Value) -> Vec<u8> {
    if let Some(s) = msg.get("body_base64").and_then(Value::as_str) {
        assert!(
            msg.get("body").is_none(),
            "both body and body_base64 in {msg}"
        );
        return unb64(s);
    }
    msg.get("body")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("message without body: {msg}"))
        .as_bytes()
        .to_vec()
}

/// One produce result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    pub message_id: String,
    pub queue: u32,
    pub offset: u64,
}

impl Produced {
    pub fn from_json(v: &Value) -> Produced {
        Produced {
            message_id: v["message_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no message_id in {v}"))
                .to_string(),
            queue: v["queue"]
                .as_u64()
                .unwrap_or_else(|| panic!("no queue in {v}")) as u32,
            offset: v["offset"]
                .as_u64()
                .unwrap_or_else(|| panic!("no offset in {v}")),
        }
    }
}

/// Whether `id` is 32 lowercase-or-uppercase hex digits.
pub fn is_message_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Percent-encodes a query value (unreserved characters kept).
pub fn qs(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Node {
    pub async fn get(&self, path: &str) -> anyhow::Result<Resp> {
        Resp::read(
            self.client
                .get(self.url(path))
                .send()
                .await
                .with_context(|| format!("GET {path}"))?,
        )
        .await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Resp> {
        let mut req = self.client.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::read(req.send().await.with_context(|| format!("GET {path}"))?).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Resp> {
        Resp::read(
            self.client
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .with_context(|| format!("POST {path}"))?,
        )
        .await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> anyhow::Result<Resp> {
        Resp::read(
            self.client
                .patch(self.url(path))
                .json(body)
                .send()
                .await
                .with_context(|| format!("PATCH {path}"))?,
        )
        .await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<Resp> {
        Resp::read(
            self.client
                .put(self.url(path))
                .json(body)
                .send()
                .await
                .with_context(|| format!("PUT {path}"))?,
        )
        .await
    }

    /// POST raw bytes with a content type and extra headers.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> anyhow::Result<Resp> {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::read(req.send().await.with_context(|| format!("POST {path}"))?).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Resp> {
        Resp::read(
            self.client
                .delete(self.url(path))
                .send()
                .await
                .with_context(|| format!("DELETE {path}"))?,
        )
        .await
    }

    /// `POST /v1/topics` with `{"name", "queues", "message_type", "durability"}`; requires 201.
    pub async fn create_topic(
        &self,
        name: &str,
        queues: u32,
        message_type: &str,
        durability: &str,
    ) -> anyhow::Result<Value> {
        let r = self
            .post_json(
                "/v1/topics",
                &json!({"name": name, "queues": queues, "message_type": message_type, "durability": durability}),
            )
            .await?;
        ensure!(
            r.status == 201,
            "create topic {name}: {} {}",
            r.status,
            r.text()
        );
        Ok(r.json())
    }

    /// `POST /v1/topics/{topic}/messages` with `{"messages": messages}`.
    pub async fn produce(&self, topic: &str, messages: Value) -> anyhow::Result<Resp> {
        self.post_json(
            &format!("/v1/topics/{topic}/messages"),
            &json!({ "messages": messages }),
        )
        .await
    }

    /// Produces and requires 200; returns the results in request order.
    pub async fn produce_ok(&self, topic: &str, messages: Value) -> anyhow::Result<Vec<Produced>> {
        let n = messages.as_array().map_or(0, Vec::len);
        let r = self.produce(topic, messages).await?;
        ensure!(
            r.status == 200,
            "produce to {topic}: {} {}",
            r.status,
            r.text()
        );
        let v = r.json();
        let results = v["results"]
            .as_array()
            .with_context(|| format!("no results in {v}"))?;
        ensure!(
            results.len() == n,
            "{} results for {n} messages: {v}",
            results.len()
        );
        Ok(results.iter().map(Produced::from_json).collect())
    }

    /// `GET /v1/topics/{topic}/queues/{queue}/messages?offset=&max_messages=`.
    pub async fn read(
        &self,
        topic: &str,
        queue: u32,
        offset: u64,
        max_messages: usize,
    ) -> anyhow::Result<Resp> {
        self.get(&format!(
            "/v1/topics/{topic}/queues/{queue}/messages?offset={offset}&max_messages={max_messages}"
        ))
        .await
    }

    /// Reads a whole queue from offset 0 to `max_offset` (page by page) and
    /// returns every message object.
    pub async fn read_all(&self, topic: &str, queue: u32) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let r = self.read(topic, queue, offset, 1000).await?;
            ensure!(
                r.status == 200,
                "read {topic}/{queue}@{offset}: {} {}",
                r.status,
                r.text()
            );
            let v = r.json();
            let msgs = v["messages"]
                .as_array()
                .with_context(|| format!("no messages in {v}"))?
                .clone();
            let max = v["max_offset"]
                .as_u64()
                .with_context(|| format!("no max_offset in {v}"))?;
            let next = v["next_offset"]
                .as_u64()
                .with_context(|| format!("no next_offset in {v}"))?;
            out.extend(msgs.iter().cloned());
            if next >= max {
                return Ok(out);
            }
            ensure!(
                !msgs.is_empty() && next > offset,
                "read made no progress at {offset}: {v}"
            );
            offset = next;
        }
    }

    /// `GET /v1/topics/{topic}` → the `queues` array.
    pub async fn queues(&self, topic: &str) -> anyhow::Result<Vec<Value>> {
        let r = self.get(&format!("/v1/topics/{topic}")).await?;
        ensure!(
            r.status == 200,
            "get topic {topic}: {} {}",
            r.status,
            r.text()
        );
        let v = r.json();
        Ok(v["queues"]
            .as_array()
            .with_context(|| format!("no queues array in {v}"))?
            .clone())
    }

    /// `max_offset` of one queue, from `GET /v1/topics/{topic}`.
    pub async fn max_offset(&self, topic: &str, queue: u32) -> anyhow::Result<u64> {
        let qs = self.queues(topic).await?;
        let q = qs
            .iter()
            .find(|q| q["queue"].as_u64() == Some(queue as u64))
            .with_context(|| format!("queue {queue} missing in {qs:?}"))?;
        q["max_offset"]
            .as_u64()
            .with_context(|| format!("no max_offset in {q}"))
    }

    /// Sum of `max_offset` over every queue of a topic (messages stored).
    pub async fn total_messages(&self, topic: &str) -> anyhow::Result<u64> {
        let qs = self.queues(topic).await?;
        Ok(qs
            .iter()
            .map(|q| q["max_offset"].as_u64().unwrap_or(0))
            .sum())
    }

    /// Names from `GET /v1/topics`.
    pub async fn topic_names(&self) -> anyhow::Result<Vec<String>> {
        let r = self.get("/v1/topics").await?;
        ensure!(r.status == 200, "list topics: {} {}", r.status, r.text());
        let v = r.json();
        Ok(v["topics"]
            .as_array()
            .with_context(|| format!("no topics array in {v}"))?
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect())
    }
}
