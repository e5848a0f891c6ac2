//! Message query by id and key, pending timers, recall (API.md "Message
//! query" and the delay-message part of "Produce").

use reqwest::Method;

use crate::client::Client;
use crate::error::Result;
use crate::request::{Request, segment};
use crate::retry::RetryClass;
use crate::types::messages::{Message, MessageList};
use crate::types::ops::{SentBack, TimerPage};

/// Bounds of a query by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyQuery {
    /// Only messages stored at or after this time (ms).
    pub begin_ms: Option<i64>,
    /// Only messages stored before this time (ms).
    pub end_ms: Option<i64>,
    /// At most this many (server default 32).
    pub max_messages: Option<u32>,
}

/// A page of pending delay messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerQuery {
    /// Only the ones with this key.
    pub key: Option<String>,
    /// Page size (server default 100).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

impl Client {
    /// `GET /v1/topics/{topic}/messages/{id}`, hot or cold, or a pending delay
    /// message (`state: SCHEDULED`).
    pub async fn get_message(&self, topic: &str, message_id: &str) -> Result<Message> {
        let path = format!(
            "/v1/topics/{}/messages/{}",
            segment(topic),
            segment(message_id)
        );
        self.call(Request::new(Method::GET, path, RetryClass::Safe))
            .await
    }

    /// `GET /v1/topics/{topic}/messages?key=`: the messages with `key`, over all queues.
    pub async fn find_by_key(
        &self,
        topic: &str,
        key: &str,
        query: &KeyQuery,
    ) -> Result<Vec<Message>> {
        let path = format!("/v1/topics/{}/messages", segment(topic));
        let request = Request::new(Method::GET, path, RetryClass::Safe)
            .query("key", key)
            .query_opt("begin_ms", query.begin_ms)
            .query_opt("end_ms", query.end_ms)
            .query_opt("max_messages", query.max_messages);
        Ok(self.call::<MessageList>(request).await?.messages)
    }

    /// `GET /v1/topics/{topic}/timers`: pending delay messages by due time.
    pub async fn list_timers(&self, topic: &str, query: &TimerQuery) -> Result<TimerPage> {
        let path = format!("/v1/topics/{}/timers", segment(topic));
        let request = Request::new(Method::GET, path, RetryClass::Safe)
            .query_opt("key", query.key.as_ref())
            .query_opt("limit", query.limit)
            .query_opt("after", query.after.as_ref());
        self.call(request).await
    }

    /// `DELETE /v1/topics/{topic}/messages/{id}`: recalls a pending delay
    /// message (`MESSAGE_ALREADY_DELIVERED` once it is due).
    pub async fn recall(&self, topic: &str, message_id: &str) -> Result<()> {
        let path = format!(
            "/v1/topics/{}/messages/{}",
            segment(topic),
            segment(message_id)
        );
        self.call_empty(Request::new(Method::DELETE, path, RetryClass::Idempotent))
            .await
    }

    /// `POST /v1/topics/%DLQ%{group}/messages/{id}/send-back`: produces a
    /// dead-letter message again to its origin topic. Sending back one
    /// already sent back stores nothing and answers the first record, so it
    /// is retried like any idempotent call.
    pub async fn send_back(&self, dlq_topic: &str, message_id: &str) -> Result<SentBack> {
        let path = format!(
            "/v1/topics/{}/messages/{}/send-back",
            segment(dlq_topic),
            segment(message_id)
        );
        self.call(Request::new(Method::POST, path, RetryClass::Idempotent))
            .await
    }

    /// `GET …/send-back`: the record of a send-back (`MESSAGE_NOT_FOUND` if none).
    pub async fn get_send_back(&self, dlq_topic: &str, message_id: &str) -> Result<SentBack> {
        let path = format!(
            "/v1/topics/{}/messages/{}/send-back",
            segment(dlq_topic),
            segment(message_id)
        );
        self.call(Request::new(Method::GET, path, RetryClass::Safe))
            .await
    }
}
