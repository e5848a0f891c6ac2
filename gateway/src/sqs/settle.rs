//! DeleteMessage(Batch) and ChangeMessageVisibility(Batch): `/v1` acks and
//! invisibility changes of the queue's group.
//!
//! SQS's handle rules are kept: a visibility change keeps the handle
//! (`keep_receipt_handle`), so a consumer that extends its lease deletes
//! with the handle it received; a visibility of 0 makes the message
//! visible at once (`retry_backoff: false`). A delete with a handle whose
//! delivery is over (the message became visible again or was received
//! again) succeeds on a standard queue without deleting, as AWS's does; on
//! a FIFO queue it is InvalidParameterValue ("The receipt handle has
//! expired"). A visibility change of such a handle is MessageNotInflight.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Ctx;
use super::batch;
use super::inner::{V1Error, seg};
use super::naming::{self, is_fifo, topic_of};
use super::protocol::SqsError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteIn {
    #[serde(default)]
    queue_url: String,
    receipt_handle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteEntry {
    #[serde(default)]
    id: String,
    receipt_handle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteBatchIn {
    #[serde(default)]
    queue_url: String,
    #[serde(default)]
    entries: Vec<DeleteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VisibilityIn {
    #[serde(default)]
    queue_url: String,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VisibilityEntry {
    #[serde(default)]
    id: String,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VisibilityBatchIn {
    #[serde(default)]
    queue_url: String,
    #[serde(default)]
    entries: Vec<VisibilityEntry>,
}

fn handle(h: Option<String>) -> Result<String, SqsError> {
    h.filter(|h| !h.is_empty())
        .ok_or_else(|| SqsError::missing("ReceiptHandle"))
}

/// The outcome of acking one handle, as SQS answers it.
fn delete_outcome(queue: &str, code: Option<(&str, &str)>) -> Result<(), SqsError> {
    match code {
        None => Ok(()),
        Some(("RECEIPT_HANDLE_EXPIRED", _)) if !is_fifo(queue) => Ok(()),
        Some(("RECEIPT_HANDLE_EXPIRED", _)) => Err(SqsError::invalid_parameter(
            "Value for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired.",
        )),
        Some(("INVALID_RECEIPT_HANDLE", m)) => Err(SqsError::receipt_handle_invalid(format!(
            "The input receipt handle is invalid: {m}"
        ))),
        Some((code, m)) => Err(V1Error {
            status: axum::http::StatusCode::BAD_REQUEST,
            code: code.to_string(),
            message: m.to_string(),
        }
        .to_sqs(queue)),
    }
}

/// Acks `handles`; one outcome per handle, in order.
async fn ack(
    ctx: &Ctx,
    queue: &str,
    handles: Vec<String>,
) -> Result<Vec<Result<(), SqsError>>, SqsError> {
    let topic = topic_of(queue);
    let got = ctx
        .v1
        .post(
            &format!("/v1/groups/{}/ack", seg(&topic)),
            json!({ "topic": topic, "receipt_handles": handles }),
        )
        .await
        .map_err(|e| match e.code.as_str() {
            "INVALID_RECEIPT_HANDLE" => SqsError::receipt_handle_invalid(e.message.clone()),
            _ => e.to_sqs(queue),
        })?;
    let results = got["results"].as_array().cloned().unwrap_or_default();
    if results.len() != handles.len() {
        return Err(SqsError::internal(
            "the ack answered another number of results",
        ));
    }
    Ok(results
        .iter()
        .map(|r| {
            let code = r["error"]["code"].as_str();
            let message = r["error"]["message"].as_str().unwrap_or("");
            delete_outcome(queue, code.map(|c| (c, message)))
        })
        .collect())
}

pub async fn delete(ctx: &Ctx, input: DeleteIn) -> Result<Value, SqsError> {
    let queue = naming::queue_from_url(&input.queue_url)?;
    let h = handle(input.receipt_handle)?;
    ctx.front().topic(&ctx.state.broker, &queue).await?;
    let mut outcomes = ack(ctx, &queue, vec![h]).await?;
    outcomes.remove(0)?;
    Ok(json!({}))
}

pub async fn delete_batch(ctx: &Ctx, input: DeleteBatchIn) -> Result<Value, SqsError> {
    let queue = naming::queue_from_url(&input.queue_url)?;
    batch::check_ids(input.entries.iter().map(|e| e.id.as_str()))?;
    ctx.front().topic(&ctx.state.broker, &queue).await?;
    let checked: Vec<(String, Result<String, SqsError>)> = input
        .entries
        .into_iter()
        .map(|e| (e.id, handle(e.receipt_handle)))
        .collect();
    let handles: Vec<String> = checked
        .iter()
        .filter_map(|(_, h)| h.as_ref().ok().cloned())
        .collect();
    let mut acked = if handles.is_empty() {
        Vec::new()
    } else {
        ack(ctx, &queue, handles).await?
    }
    .into_iter();
    let outcomes = checked
        .into_iter()
        .map(|(id, h)| {
            let outcome = h.and_then(|_| {
                acked
                    .next()
                    .unwrap_or_else(|| Err(SqsError::internal("missing ack result")))
            });
            (id, outcome.map(|()| json!({})))
        })
        .collect();
    Ok(batch::answer(outcomes))
}

/// Sets one delivery's visibility timeout.
async fn change(
    ctx: &Ctx,
    queue: &str,
    handle: String,
    seconds: Option<i64>,
) -> Result<(), SqsError> {
    let seconds = seconds.ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
    if !(0..=43_200).contains(&seconds) {
        return Err(SqsError::invalid_parameter(format!(
            "Value {seconds} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided."
        )));
    }
    let topic = topic_of(queue);
    let mut body = json!({
        "topic": topic,
        "receipt_handle": handle,
        "invisible_ms": seconds * 1000,
        "keep_receipt_handle": true,
    });
    if seconds == 0 {
        body["retry_backoff"] = false.into();
    }
    ctx.v1
        .post(
            &format!("/v1/groups/{}/change-invisibility", seg(&topic)),
            body,
        )
        .await
        .map_err(|e| match e.code.as_str() {
            "INVALID_RECEIPT_HANDLE" => SqsError::receipt_handle_invalid(format!(
                "The input receipt handle is invalid: {}",
                e.message
            )),
            _ => e.to_sqs(queue),
        })?;
    Ok(())
}

pub async fn change_visibility(ctx: &Ctx, input: VisibilityIn) -> Result<Value, SqsError> {
    let queue = naming::queue_from_url(&input.queue_url)?;
    let h = handle(input.receipt_handle)?;
    ctx.front().topic(&ctx.state.broker, &queue).await?;
    change(ctx, &queue, h, input.visibility_timeout).await?;
    Ok(json!({}))
}

pub async fn change_visibility_batch(
    ctx: &Ctx,
    input: VisibilityBatchIn,
) -> Result<Value, SqsError> {
    let queue = naming::queue_from_url(&input.queue_url)?;
    batch::check_ids(input.entries.iter().map(|e| e.id.as_str()))?;
    ctx.front().topic(&ctx.state.broker, &queue).await?;
    let changes = input.entries.into_iter().map(|e| {
        let queue = queue.clone();
        async move {
            let outcome = match handle(e.receipt_handle) {
                Ok(h) => change(ctx, &queue, h, e.visibility_timeout).await,
                Err(err) => Err(err),
            };
            (e.id, outcome.map(|()| json!({})))
        }
    });
    Ok(batch::answer(futures::future::join_all(changes).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_deletes_succeed_on_standard_queues_only() {
        assert!(delete_outcome("q", None).is_ok());
        assert!(delete_outcome("q", Some(("RECEIPT_HANDLE_EXPIRED", "x"))).is_ok());
        let e = delete_outcome("q.fifo", Some(("RECEIPT_HANDLE_EXPIRED", "x"))).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        let e = delete_outcome("q", Some(("INVALID_RECEIPT_HANDLE", "x"))).unwrap_err();
        assert_eq!(e.code, "ReceiptHandleIsInvalid");
        let e = delete_outcome("q", Some(("UNAVAILABLE", "x"))).unwrap_err();
        assert_eq!(e.code, "ServiceUnavailable");
    }
}
