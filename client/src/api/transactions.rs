//! Transactions (API.md "Transactions"): commit, rollback, check-back.

use std::time::Duration;

use reqwest::Method;

use crate::client::Client;
use crate::error::Result;
use crate::request::{Request, segment};
use crate::retry::RetryClass;
use crate::types::ops::{CheckList, Decision, ProducerGroup, TransactionCheck};

impl Client {
    /// Makes a transaction's half messages visible. Repeating it is 200, so it is retried.
    pub async fn commit(&self, transaction_id: &str) -> Result<Decision> {
        let path = format!("/v1/transactions/{}/commit", segment(transaction_id));
        self.call(Request::new(Method::POST, path, RetryClass::Idempotent))
            .await
    }

    /// Discards a transaction's half messages.
    pub async fn rollback(&self, transaction_id: &str) -> Result<Decision> {
        let path = format!("/v1/transactions/{}/rollback", segment(transaction_id));
        self.call(Request::new(Method::POST, path, RetryClass::Idempotent))
            .await
    }

    /// Long-polls (`wait_ms` ≤ 30000) the undecided half messages of a
    /// producer group that are due for a check.
    pub async fn transaction_checks(
        &self,
        producer_group: &str,
        wait_ms: Option<u64>,
        max: Option<u32>,
    ) -> Result<Vec<TransactionCheck>> {
        let path = format!(
            "/v1/producer-groups/{}/transaction-checks",
            segment(producer_group)
        );
        let mut request = Request::new(Method::GET, path, RetryClass::Idempotent)
            .query_opt("wait_ms", wait_ms)
            .query_opt("max", max);
        request.wait = Duration::from_millis(wait_ms.unwrap_or(0));
        Ok(self.call::<CheckList>(request).await?.checks)
    }

    /// `GET /v1/producer-groups/{pg}`: its pending transactions.
    pub async fn producer_group(&self, producer_group: &str) -> Result<ProducerGroup> {
        let path = format!("/v1/producer-groups/{}", segment(producer_group));
        self.call(Request::new(Method::GET, path, RetryClass::Safe))
            .await
    }
}
