//! Consumer groups (API.md "Consumer groups"): settings, receive, ack,
//! change of invisibility, offsets, reset.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;

use crate::client::Client;
use crate::error::Result;
use crate::request::{Request, segment};
use crate::retry::RetryClass;
use crate::types::groups::{
    AckResponse, AckResult, Group, GroupList, GroupOffsets, GroupSettings, GroupSummary,
    Invisibility, ReceiveRequest, ReceiveResponse, ReceivedMessage, ResetBody, ResetTo,
};

#[derive(Serialize)]
struct AckBody<'a> {
    topic: &'a str,
    receipt_handles: &'a [String],
}

#[derive(Serialize)]
struct ChangeBody<'a> {
    topic: &'a str,
    receipt_handle: &'a str,
    invisible_ms: u64,
}

fn group_path(group: &str, rest: &str) -> String {
    format!("/v1/groups/{}{rest}", segment(group))
}

impl Client {
    /// `PUT /v1/groups/{group}`: creates or updates a group.
    pub async fn put_group(&self, group: &str, settings: &GroupSettings) -> Result<Group> {
        let request = Request::new(Method::PUT, group_path(group, ""), RetryClass::Idempotent)
            .json(settings)?;
        self.call(request).await
    }

    /// `GET /v1/groups/{group}`.
    pub async fn get_group(&self, group: &str) -> Result<Group> {
        self.call(Request::new(
            Method::GET,
            group_path(group, ""),
            RetryClass::Safe,
        ))
        .await
    }

    /// `GET /v1/groups`: every group with its total lag.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        let request = Request::new(Method::GET, "/v1/groups".into(), RetryClass::Safe);
        Ok(self.call::<GroupList>(request).await?.groups)
    }

    /// `POST /v1/groups/{group}/receive`: long-polls up to `wait_ms`; the
    /// messages stay invisible to the group for `invisible_ms` unless acked.
    pub async fn receive(
        &self,
        group: &str,
        request: &ReceiveRequest,
    ) -> Result<Vec<ReceivedMessage>> {
        // Retried on 503: at worst a delivery the node made and could not
        // answer stays invisible until `invisible_ms`, then comes again.
        let mut http = Request::new(
            Method::POST,
            group_path(group, "/receive"),
            RetryClass::Idempotent,
        )
        .json(request)?;
        http.wait = Duration::from_millis(request.wait_ms.unwrap_or(0));
        Ok(self.call::<ReceiveResponse>(http).await?.messages)
    }

    /// `POST /v1/groups/{group}/ack`: one result per handle, in order.
    pub async fn ack(
        &self,
        group: &str,
        topic: &str,
        receipt_handles: &[String],
    ) -> Result<Vec<AckResult>> {
        let body = AckBody {
            topic,
            receipt_handles,
        };
        let request = Request::new(
            Method::POST,
            group_path(group, "/ack"),
            RetryClass::Idempotent,
        )
        .json(&body)?;
        Ok(self.call::<AckResponse>(request).await?.results)
    }

    /// `POST /v1/groups/{group}/change-invisibility`; 0 hands the message back now.
    /// Not retried after a 503: a change that was applied invalidates the old handle.
    pub async fn change_invisibility(
        &self,
        group: &str,
        topic: &str,
        receipt_handle: &str,
        invisible_ms: u64,
    ) -> Result<Invisibility> {
        let body = ChangeBody {
            topic,
            receipt_handle,
            invisible_ms,
        };
        let request = Request::new(
            Method::POST,
            group_path(group, "/change-invisibility"),
            RetryClass::Once,
        )
        .json(&body)?;
        self.call(request).await
    }

    /// `GET /v1/groups/{group}/offsets?topic=`: per queue committed offset, end, lag, in flight.
    pub async fn group_offsets(
        &self,
        group: &str,
        topic: &str,
        consumer_id: Option<&str>,
    ) -> Result<GroupOffsets> {
        let request = Request::new(Method::GET, group_path(group, "/offsets"), RetryClass::Safe)
            .query("topic", topic)
            .query_opt("consumer_id", consumer_id);
        self.call(request).await
    }

    /// `POST /v1/groups/{group}/offsets/reset`: moves the group; the new offsets.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: &ResetTo,
        consumer_id: Option<&str>,
    ) -> Result<GroupOffsets> {
        let request = Request::new(
            Method::POST,
            group_path(group, "/offsets/reset"),
            RetryClass::Idempotent,
        )
        .json(&ResetBody::new(topic, to, consumer_id))?;
        self.call(request).await
    }
}
