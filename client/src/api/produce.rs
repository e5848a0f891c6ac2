//! Produce: a JSON batch, or one raw message with `Shale-*` headers (API.md "Produce").
//!
//! A produce is retried after a 503 only when every message carries a
//! `dedup_id` (see [`crate::retry`]); after a 429 or a failed connection always.

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::request::{Request, segment};
use crate::retry::RetryClass;
use crate::types::messages::{ProduceRequest, ProduceResponse, ProduceResult, RawMessage};

const DURABILITY: &str = "shale-durability";

impl Client {
    /// `POST /v1/topics/{topic}/messages` with a JSON batch (1–1024 messages,
    /// 32 MiB): the results in request order. Validated as a whole: one bad
    /// message and nothing is stored.
    pub async fn produce(
        &self,
        topic: &str,
        request: &ProduceRequest,
    ) -> Result<Vec<ProduceResult>> {
        let path = format!("/v1/topics/{}/messages", segment(topic));
        let deduplicated =
            !request.messages.is_empty() && request.messages.iter().all(|m| m.dedup_id.is_some());
        let class = if deduplicated {
            RetryClass::Idempotent
        } else {
            RetryClass::Once
        };
        let mut http = Request::new(Method::POST, path, class).json(request)?;
        if let Some(durability) = request.durability {
            http = http.header(HeaderName::from_static(DURABILITY), durability.as_str())?;
        }
        let response: ProduceResponse = self.call(http).await?;
        if response.results.len() != request.messages.len() {
            return Err(Error::Decode {
                context: format!("POST /v1/topics/{topic}/messages"),
                reason: format!(
                    "{} results for {} messages",
                    response.results.len(),
                    request.messages.len()
                ),
            });
        }
        Ok(response.results)
    }

    /// One raw message: the request body is the message body.
    pub async fn produce_raw(&self, topic: &str, message: &RawMessage) -> Result<ProduceResult> {
        let path = format!("/v1/topics/{}/messages", segment(topic));
        let class = if message.dedup_id.is_some() {
            RetryClass::Idempotent
        } else {
            RetryClass::Once
        };
        let content_type = message
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        if content_type
            .trim()
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return Err(Error::Config(
                "a raw message cannot be application/json (that is the batch form)".into(),
            ));
        }
        let content_type = HeaderValue::try_from(content_type)
            .map_err(|_| Error::Config(format!("bad content type {content_type:?}")))?;
        let mut http = Request::new(Method::POST, path, class);
        http.body = Some((message.body.clone(), content_type));
        let optional = [
            ("shale-tag", message.tag.clone()),
            ("shale-message-group", message.message_group.clone()),
            ("shale-delay-ms", message.delay_ms.map(|v| v.to_string())),
            (
                "shale-deliver-at-ms",
                message.deliver_at_ms.map(|v| v.to_string()),
            ),
            ("shale-dedup-id", message.dedup_id.clone()),
            (
                DURABILITY,
                message.durability.map(|d| d.as_str().to_string()),
            ),
            (
                "shale-keys",
                (!message.keys.is_empty()).then(|| message.keys.join(",")),
            ),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                http = http.header(HeaderName::from_static(name), &value)?;
            }
        }
        for (name, value) in &message.properties {
            let header = HeaderName::try_from(format!("shale-property-{name}"))
                .map_err(|_| Error::Config(format!("bad property name {name:?}")))?;
            http = http.header(header, value)?;
        }
        let response: ProduceResponse = self.call(http).await?;
        response
            .results
            .into_iter()
            .next()
            .ok_or_else(|| Error::Decode {
                context: format!("POST /v1/topics/{topic}/messages"),
                reason: "no result for the raw message".into(),
            })
    }
}
