//! The AWS JSON 1.0 protocol as SQS speaks it: requests are `POST /` with
//! `X-Amz-Target: AmazonSQS.<Operation>` and a JSON body; answers are JSON
//! (`application/x-amz-json-1.0`); errors are
//! `{"__type": "com.amazonaws.sqs#<Shape>", "message": ...}` with the
//! `x-amzn-query-error: <query code>;Sender|Receiver` header, from which the
//! SDKs (SQS is "awsQueryCompatible") take the error code they raise.
//!
//! Every error the endpoint answers is an [`SqsError`] built here, so the
//! shape, the code and the status stay consistent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The content type of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// The prefix of `X-Amz-Target` values.
pub const TARGET_PREFIX: &str = "AmazonSQS.";

/// An error in SQS's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsError {
    /// The `__type` shape name (`QueueDoesNotExist`).
    pub shape: &'static str,
    /// The code of the query protocol, which the SDKs report
    /// (`AWS.SimpleQueueService.NonExistentQueue`).
    pub code: &'static str,
    /// The client's fault (`Sender`) or the service's (`Receiver`).
    pub sender: bool,
    pub status: StatusCode,
    pub message: String,
}

impl SqsError {
    pub fn new(
        shape: &'static str,
        code: &'static str,
        status: StatusCode,
        message: impl Into<String>,
    ) -> SqsError {
        SqsError {
            shape,
            code,
            sender: status.is_client_error(),
            status,
            message: message.into(),
        }
    }

    fn bad(shape: &'static str, code: &'static str, message: impl Into<String>) -> SqsError {
        SqsError::new(shape, code, StatusCode::BAD_REQUEST, message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> SqsError {
        SqsError::bad("InvalidParameterValue", "InvalidParameterValue", message)
    }

    pub fn missing(parameter: &str) -> SqsError {
        SqsError::bad(
            "MissingParameter",
            "MissingParameter",
            format!("The request must contain the parameter {parameter}."),
        )
    }

    pub fn queue_does_not_exist(what: &str) -> SqsError {
        SqsError::bad(
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            format!("The specified queue does not exist: {what}"),
        )
    }

    pub fn queue_name_exists(name: &str) -> SqsError {
        SqsError::bad(
            "QueueNameExists",
            "QueueAlreadyExists",
            format!(
                "A queue already exists with the same name and a different value for attribute(s): {name}"
            ),
        )
    }

    pub fn invalid_attribute_name(message: impl Into<String>) -> SqsError {
        SqsError::bad("InvalidAttributeName", "InvalidAttributeName", message)
    }

    pub fn invalid_attribute_value(message: impl Into<String>) -> SqsError {
        SqsError::bad("InvalidAttributeValue", "InvalidAttributeValue", message)
    }

    pub fn invalid_contents(message: impl Into<String>) -> SqsError {
        SqsError::bad("InvalidMessageContents", "InvalidMessageContents", message)
    }

    pub fn receipt_handle_invalid(message: impl Into<String>) -> SqsError {
        SqsError::bad("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", message)
    }

    pub fn message_not_inflight() -> SqsError {
        SqsError::bad(
            "MessageNotInflight",
            "AWS.SimpleQueueService.MessageNotInflight",
            "The message referred to isn't in flight.",
        )
    }

    pub fn empty_batch() -> SqsError {
        SqsError::bad(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "The batch request doesn't contain any entries.",
        )
    }

    pub fn too_many_entries(max: usize) -> SqsError {
        SqsError::bad(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            format!("Maximum number of entries per request are {max}."),
        )
    }

    pub fn ids_not_distinct(id: &str) -> SqsError {
        SqsError::bad(
            "BatchEntryIdsNotDistinct",
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            format!("Id {id} repeated."),
        )
    }

    pub fn invalid_batch_id(id: &str) -> SqsError {
        SqsError::bad(
            "InvalidBatchEntryId",
            "AWS.SimpleQueueService.InvalidBatchEntryId",
            format!(
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long: {id:?}"
            ),
        )
    }

    pub fn batch_too_long(max: usize) -> SqsError {
        SqsError::bad(
            "BatchRequestTooLong",
            "AWS.SimpleQueueService.BatchRequestTooLong",
            format!("Batch requests cannot be longer than {max} bytes."),
        )
    }

    pub fn unsupported(message: impl Into<String>) -> SqsError {
        SqsError::bad(
            "UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            message,
        )
    }

    pub fn unknown_operation(target: &str) -> SqsError {
        SqsError::bad(
            "UnknownOperationException",
            "InvalidAction",
            format!("The action {target} is not valid for this endpoint."),
        )
    }

    pub fn access_denied(message: impl Into<String>) -> SqsError {
        SqsError::new(
            "AccessDenied",
            "AccessDenied",
            StatusCode::FORBIDDEN,
            message,
        )
    }

    pub fn invalid_client_token(message: impl Into<String>) -> SqsError {
        SqsError::new(
            "InvalidClientTokenId",
            "InvalidClientTokenId",
            StatusCode::FORBIDDEN,
            message,
        )
    }

    pub fn signature_mismatch(message: impl Into<String>) -> SqsError {
        SqsError::new(
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            StatusCode::FORBIDDEN,
            message,
        )
    }

    pub fn throttled(message: impl Into<String>) -> SqsError {
        SqsError::bad("RequestThrottled", "RequestThrottled", message)
    }

    pub fn unavailable(message: impl Into<String>) -> SqsError {
        SqsError::new(
            "ServiceUnavailable",
            "ServiceUnavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            message,
        )
    }

    pub fn internal(message: impl Into<String>) -> SqsError {
        SqsError::new(
            "InternalFailure",
            "InternalFailure",
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
        )
    }

    pub fn too_large(message: impl Into<String>) -> SqsError {
        SqsError::invalid_parameter(message)
    }

    /// The batch-entry form of this error (`Failed` of a batch answer).
    pub fn entry(&self, id: &str) -> serde_json::Value {
        json!({"Id": id, "SenderFault": self.sender, "Code": self.code, "Message": self.message})
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let fault = if self.sender { "Sender" } else { "Receiver" };
        let body = json!({
            "__type": format!("com.amazonaws.sqs#{}", self.shape),
            "message": self.message,
        });
        let mut resp = (self.status, json_body(&body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", self.code)) {
            resp.headers_mut().insert("x-amzn-query-error", v);
        }
        if matches!(self.status, StatusCode::SERVICE_UNAVAILABLE) || self.code == "RequestThrottled"
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

fn json_body(value: &impl Serialize) -> ([(header::HeaderName, HeaderValue); 1], Vec<u8>) {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        bytes,
    )
}

/// A successful answer.
pub fn ok(value: serde_json::Value) -> Response {
    (StatusCode::OK, json_body(&value)).into_response()
}

/// Decodes a request body; an empty body is `{}` (operations without input).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SqsError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        SqsError::new(
            "SerializationException",
            "SerializationException",
            StatusCode::BAD_REQUEST,
            format!("The request body is not valid for this operation: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_carry_the_shape_and_the_query_code() {
        let resp = SqsError::queue_does_not_exist("q").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers()["x-amzn-query-error"],
            "AWS.SimpleQueueService.NonExistentQueue;Sender"
        );
        assert_eq!(resp.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
        let resp = SqsError::unavailable("later").into_response();
        assert_eq!(
            resp.headers()["x-amzn-query-error"],
            "ServiceUnavailable;Receiver"
        );
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn bodies_parse_strictly_but_empty_is_no_input() {
        #[derive(serde::Deserialize)]
        struct In {
            #[serde(rename = "QueueUrl")]
            _url: Option<String>,
        }
        assert!(parse::<In>(b"").is_ok());
        assert!(parse::<In>(b"{\"QueueUrl\": 3}").is_err());
    }
}
