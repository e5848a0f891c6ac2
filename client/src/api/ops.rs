//! Cluster view and health (API.md "Cluster and operations").

use reqwest::Method;

use crate::client::Client;
use crate::error::Result;
use crate::request::Request;
use crate::retry::RetryClass;
use crate::types::ops::{ClusterView, Status};

impl Client {
    /// `GET /v1/cluster`: the answering node and every node it knows.
    pub async fn cluster(&self) -> Result<ClusterView> {
        self.call(Request::new(
            Method::GET,
            "/v1/cluster".into(),
            RetryClass::Safe,
        ))
        .await
    }

    /// `GET /healthz`: the process serves HTTP (a 503 is returned, not retried).
    pub async fn healthz(&self) -> Result<Status> {
        self.call(Request::new(
            Method::GET,
            "/healthz".into(),
            RetryClass::Once,
        ))
        .await
    }

    /// `GET /readyz`: storage open and not draining (`UNAVAILABLE` otherwise, returned, not retried).
    pub async fn readyz(&self) -> Result<Status> {
        self.call(Request::new(
            Method::GET,
            "/readyz".into(),
            RetryClass::Once,
        ))
        .await
    }
}
