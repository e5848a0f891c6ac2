//! In-process harness for the API tests: a node on a temp data dir, called
//! through `tower::ServiceExt::oneshot` (no socket), re-openable to test restarts.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use shale_gateway::config::NodeConfig;
use shale_gateway::state::AppState;
use shale_hot::{Clock, SystemClock};
use tower::ServiceExt;

/// Bound of every wait in the tests.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Node {
    pub dir: tempfile::TempDir,
    pub state: Arc<AppState>,
    pub app: Router,
    clock: Arc<dyn Clock>,
}

/// An answer: status, headers, body parsed as JSON (or `Value::String` when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub bytes: bytes::Bytes,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert!(
            self.status.is_success(),
            "status {} body {}",
            self.status,
            self.body
        );
        &self.body
    }
}

fn config(dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        object_store: shale_gateway::config::default_object_store(dir),
        node_id: Some("node-test".into()),
        ..Default::default()
    }
}

impl Node {
    pub fn new() -> Node {
        Self::with_clock(Arc::new(SystemClock))
    }

    pub fn with_clock(clock: Arc<dyn Clock>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        Self::open(dir, &cfg, clock)
    }

    /// A node on `dir` with this configuration (its `data_dir` should be in `dir`).
    pub fn with_config(dir: tempfile::TempDir, config: &NodeConfig) -> Node {
        Self::open(dir, config, Arc::new(SystemClock))
    }

    fn open(dir: tempfile::TempDir, config: &NodeConfig, clock: Arc<dyn Clock>) -> Node {
        let state = AppState::open_with_clock(config, clock.clone()).unwrap();
        let app = shale_gateway::app::app(state.clone());
        Node {
            dir,
            state,
            app,
            clock,
        }
    }

    /// Drops the state and opens the same data dir again (a restart).
    pub fn reopen(self) -> Node {
        let Node {
            dir,
            state,
            app,
            clock,
        } = self;
        drop(app);
        drop(state);
        let cfg = config(dir.path());
        Self::open(dir, &cfg, clock)
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let resp = tokio::time::timeout(TIMEOUT, self.app.clone().oneshot(req))
            .await
            .unwrap()
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes =
            tokio::time::timeout(TIMEOUT, axum::body::to_bytes(resp.into_body(), usize::MAX))
                .await
                .unwrap()
                .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
            bytes,
        }
    }

    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&v).unwrap())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, None).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> Answer {
        self.call(Method::POST, uri, Some(body)).await
    }

    /// Creates a topic; `extra` adds fields (`{"queues": 2}`).
    pub async fn topic(&self, name: &str, extra: Value) -> Value {
        let mut body = json!({"name": name});
        if let Value::Object(m) = extra {
            body.as_object_mut().unwrap().extend(m);
        }
        let a = self.post("/v1/topics", body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        a.body
    }

    /// Produces JSON messages and returns the results.
    pub async fn produce(&self, topic: &str, messages: Value) -> Vec<Value> {
        let a = self
            .post(
                &format!("/v1/topics/{topic}/messages"),
                json!({"messages": messages}),
            )
            .await;
        a.assert_ok()["results"].as_array().unwrap().clone()
    }

    /// Sum of `max_offset` over the topic's queues (messages stored).
    pub async fn stored(&self, topic: &str) -> u64 {
        let a = self.get(&format!("/v1/topics/{topic}")).await;
        a.assert_ok()["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["max_offset"].as_u64().unwrap())
            .sum()
    }

    /// Reads a queue from offset 0.
    pub async fn read_all(&self, topic: &str, queue: u32) -> Vec<Value> {
        let a = self
            .get(&format!(
                "/v1/topics/{topic}/queues/{queue}/messages?offset=0&max_messages=1024"
            ))
            .await;
        a.assert_ok()["messages"].as_array().unwrap().clone()
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
