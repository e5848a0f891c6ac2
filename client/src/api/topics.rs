//! Topics: create, list, describe, patch, delete (API.md "Topics").

use reqwest::Method;

use crate::client::Client;
use crate::error::Result;
use crate::request::{Request, segment};
use crate::retry::RetryClass;
use crate::types::topics::{CreateTopic, PatchTopic, Topic, TopicDetail, TopicList};

impl Client {
    /// `POST /v1/topics`: creates a topic, or answers the existing one when
    /// its settings are the same (`ALREADY_EXISTS` when they differ).
    pub async fn create_topic(&self, topic: &CreateTopic) -> Result<Topic> {
        let request =
            Request::new(Method::POST, "/v1/topics".into(), RetryClass::Idempotent).json(topic)?;
        self.call(request).await
    }

    /// `GET /v1/topics`.
    pub async fn list_topics(&self) -> Result<Vec<Topic>> {
        let request = Request::new(Method::GET, "/v1/topics".into(), RetryClass::Safe);
        Ok(self.call::<TopicList>(request).await?.topics)
    }

    /// `GET /v1/topics/{topic}`: settings and per-queue offsets, sizes, owners.
    pub async fn get_topic(&self, name: &str) -> Result<TopicDetail> {
        let path = format!("/v1/topics/{}", segment(name));
        self.call(Request::new(Method::GET, path, RetryClass::Safe))
            .await
    }

    /// `PATCH /v1/topics/{topic}`: more queues (never fewer), another retention.
    pub async fn patch_topic(&self, name: &str, patch: &PatchTopic) -> Result<Topic> {
        let path = format!("/v1/topics/{}", segment(name));
        self.call(Request::new(Method::PATCH, path, RetryClass::Idempotent).json(patch)?)
            .await
    }

    /// `DELETE /v1/topics/{topic}`: the topic and its hot and cold data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let path = format!("/v1/topics/{}", segment(name));
        self.call_empty(Request::new(Method::DELETE, path, RetryClass::Idempotent))
            .await
    }
}
