//! Queue attributes: which ones exist, their ranges and defaults, how they
//! are validated, and the document that keeps the settable ones.
//!
//! The document ([`QueueDoc`], topic document `sqs`) holds the attributes
//! Shale has nowhere else (visibility timeout, delay, wait time, size
//! limit, redrive, FIFO options) and the tags. `MessageRetentionPeriod` is
//! the topic's `retention_ms`, and `FifoQueue` its message type, so those
//! are never in the document. A document is valid only for the topic it
//! was written for (`topic_created_ms`): a queue deleted and created again
//! starts from the defaults.
//!
//! Decided where Shale differs from AWS (docs/SQS.md says the same):
//! `MaximumMessageSize` goes up to 4 MiB (Shale's body limit; AWS: 1 MiB);
//! `Policy`, `KmsMasterKeyId` and `KmsDataKeyReusePeriodSeconds` are
//! refused (Shale's auth file and the bucket's encryption do those jobs);
//! `SqsManagedSseEnabled` is always `false`; FIFO queues refuse a
//! `DelaySeconds` above 0 (Shale's FIFO topics have no timers yet);
//! `FifoThroughputLimit` is kept but changes nothing (Shale has no
//! per-queue throughput cap).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::naming;
use super::protocol::SqsError;

/// Largest `MaximumMessageSize` (Shale's body limit).
pub const MAX_MESSAGE_SIZE: u64 = 4 * 1024 * 1024;
/// Default `MaximumMessageSize` (AWS's default and limit).
pub const DEFAULT_MESSAGE_SIZE: u64 = 1024 * 1024;
/// Default `MessageRetentionPeriod` in seconds (4 days, AWS's).
pub const DEFAULT_RETENTION_S: u64 = 345_600;

/// The attributes `GetQueueAttributes` knows, in AWS's order.
pub const ALL_NAMES: &[&str] = &[
    "Policy",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

/// Attributes computed by the service, never set.
const READ_ONLY: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
];

/// A queue's redrive policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redrive {
    /// The dead-letter queue's name.
    pub target: String,
    pub max_receive_count: u32,
}

/// The document of a queue's settable attributes and tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDoc {
    /// The `created_ms` of the topic this document belongs to.
    pub topic_created_ms: i64,
    pub last_modified_s: i64,
    pub visibility_timeout_s: u32,
    pub delay_s: u32,
    pub receive_wait_s: u32,
    pub maximum_message_size: u64,
    pub redrive: Option<Redrive>,
    /// `RedriveAllowPolicy` as given (JSON text), checked when a queue names
    /// this one as its dead-letter queue.
    pub redrive_allow: Option<String>,
    pub content_based_dedup: bool,
    /// `messageGroup` dedups within a message group; else the whole queue.
    pub dedup_per_group: bool,
    pub throughput_per_group: bool,
    pub tags: BTreeMap<String, String>,
    /// Read from the object store (`false`: the defaults of a queue whose
    /// document was never written).
    #[serde(skip)]
    pub stored: bool,
}

impl QueueDoc {
    /// The defaults of a queue whose topic was created at `topic_created_ms`.
    pub fn defaults(topic_created_ms: i64) -> QueueDoc {
        QueueDoc {
            topic_created_ms,
            last_modified_s: topic_created_ms / 1000,
            visibility_timeout_s: 30,
            delay_s: 0,
            receive_wait_s: 0,
            maximum_message_size: DEFAULT_MESSAGE_SIZE,
            redrive: None,
            redrive_allow: None,
            content_based_dedup: false,
            dedup_per_group: false,
            throughput_per_group: false,
            tags: BTreeMap::new(),
            stored: false,
        }
    }
}

/// What a set of attributes changes besides the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicChanges {
    /// `MessageRetentionPeriod`, in seconds.
    pub retention_s: Option<u64>,
    /// Whether `RedrivePolicy` was given (the group's settings follow it).
    pub redrive_given: bool,
}

fn int(name: &str, value: &str, min: u64, max: u64) -> Result<u64, SqsError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            SqsError::invalid_attribute_value(format!(
                "Invalid value for the parameter {name}: {value:?} (an integer {min}-{max})"
            ))
        })
}

fn boolean(name: &str, value: &str) -> Result<bool, SqsError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SqsError::invalid_attribute_value(format!(
            "Invalid value for the parameter {name}: {value:?} (true or false)"
        ))),
    }
}

fn fifo_only(name: &str, fifo: bool) -> Result<(), SqsError> {
    if fifo {
        Ok(())
    } else {
        Err(SqsError::invalid_attribute_name(format!(
            "Unknown Attribute {name}: only FIFO queues have it."
        )))
    }
}

/// Parses `RedrivePolicy` (`{"deadLetterTargetArn": ARN, "maxReceiveCount": N}`,
/// N given as a number or a string); `""` or `{}` removes the policy.
pub fn parse_redrive(value: &str) -> Result<Option<Redrive>, SqsError> {
    let bad = |why: &str| {
        SqsError::invalid_attribute_value(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: {why}"
        ))
    };
    if value.trim().is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value =
        serde_json::from_str(value).map_err(|_| bad("Redrive policy is not a valid JSON map."))?;
    let map = v
        .as_object()
        .ok_or_else(|| bad("Redrive policy is not a JSON map."))?;
    if map.is_empty() {
        return Ok(None);
    }
    for key in map.keys() {
        if key != "deadLetterTargetArn" && key != "maxReceiveCount" {
            return Err(bad(&format!(
                "Only deadLetterTargetArn and maxReceiveCount are allowed, not {key}."
            )));
        }
    }
    let arn = map
        .get("deadLetterTargetArn")
        .and_then(|a| a.as_str())
        .ok_or_else(|| {
            bad("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
        })?;
    let target = naming::queue_from_arn(arn).ok_or_else(|| bad("Invalid deadLetterTargetArn."))?;
    let count = match map.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| bad("Redrive policy does not contain mandatory attribute: maxReceiveCount."))?;
    if !(1..=1000).contains(&count) {
        return Err(bad("Invalid value for maxReceiveCount: 1-1000."));
    }
    Ok(Some(Redrive {
        target,
        max_receive_count: count as u32,
    }))
}

/// Checks `RedriveAllowPolicy` JSON.
fn check_redrive_allow(value: &str) -> Result<(), SqsError> {
    let bad = |why: &str| {
        SqsError::invalid_attribute_value(format!(
            "Value {value} for parameter RedriveAllowPolicy is invalid. Reason: {why}"
        ))
    };
    let v: serde_json::Value =
        serde_json::from_str(value).map_err(|_| bad("not a valid JSON map"))?;
    let permission = v["redrivePermission"]
        .as_str()
        .ok_or_else(|| bad("redrivePermission is required"))?;
    let sources = v.get("sourceQueueArns");
    match permission {
        "allowAll" | "denyAll" if sources.is_none() => Ok(()),
        "byQueue" => {
            let list = sources
                .and_then(|s| s.as_array())
                .ok_or_else(|| bad("byQueue needs sourceQueueArns"))?;
            if list.is_empty()
                || list.len() > 10
                || list
                    .iter()
                    .any(|a| a.as_str().and_then(naming::queue_from_arn).is_none())
            {
                return Err(bad("sourceQueueArns holds 1-10 SQS queue ARNs"));
            }
            Ok(())
        }
        "allowAll" | "denyAll" => Err(bad("sourceQueueArns is only for byQueue")),
        _ => Err(bad("redrivePermission is allowAll, denyAll or byQueue")),
    }
}

/// Whether `target`'s `RedriveAllowPolicy` lets queue `source` redrive to it.
pub fn redrive_allowed(target: &QueueDoc, source_arn: &str) -> bool {
    let Some(policy) = &target.redrive_allow else {
        return true;
    };
    let v: serde_json::Value = serde_json::from_str(policy).unwrap_or_default();
    match v["redrivePermission"].as_str() {
        Some("denyAll") => false,
        Some("byQueue") => v["sourceQueueArns"]
            .as_array()
            .is_some_and(|l| l.iter().any(|a| a.as_str() == Some(source_arn))),
        _ => true,
    }
}

/// Applies `attributes` (as `CreateQueue` or `SetQueueAttributes` give them)
/// to `doc`; returns what changes outside the document. Everything is checked
/// before anything changes: an error leaves `doc` as it was.
pub fn apply(
    doc: &mut QueueDoc,
    attributes: &BTreeMap<String, String>,
    fifo: bool,
    creating: bool,
) -> Result<TopicChanges, SqsError> {
    let mut next = doc.clone();
    let mut changes = TopicChanges::default();
    for (name, value) in attributes {
        match name.as_str() {
            "VisibilityTimeout" => next.visibility_timeout_s = int(name, value, 0, 43_200)? as u32,
            "DelaySeconds" => {
                let d = int(name, value, 0, 900)? as u32;
                if fifo && d > 0 {
                    return Err(SqsError::invalid_attribute_value(
                        "Shale's FIFO queues have no DelaySeconds yet (its FIFO topics take no timers): use 0, or a standard queue",
                    ));
                }
                next.delay_s = d;
            }
            "ReceiveMessageWaitTimeSeconds" => {
                next.receive_wait_s = int(name, value, 0, 20)? as u32
            }
            "MaximumMessageSize" => {
                next.maximum_message_size = int(name, value, 1024, MAX_MESSAGE_SIZE)?
            }
            "MessageRetentionPeriod" => {
                changes.retention_s = Some(int(name, value, 60, 1_209_600)?)
            }
            "RedrivePolicy" => {
                next.redrive = parse_redrive(value)?;
                changes.redrive_given = true;
            }
            "RedriveAllowPolicy" => {
                if value.trim().is_empty() {
                    next.redrive_allow = None;
                } else {
                    check_redrive_allow(value)?;
                    next.redrive_allow = Some(value.clone());
                }
            }
            "FifoQueue" => {
                let want = boolean(name, value)?;
                if !creating && want != fifo {
                    return Err(SqsError::invalid_attribute_name(
                        "FifoQueue cannot be changed.",
                    ));
                }
                if want != fifo {
                    return Err(SqsError::invalid_parameter(
                        "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length; a standard queue's name cannot end with .fifo",
                    ));
                }
            }
            "ContentBasedDeduplication" => {
                fifo_only(name, fifo)?;
                next.content_based_dedup = boolean(name, value)?;
            }
            "DeduplicationScope" => {
                fifo_only(name, fifo)?;
                next.dedup_per_group = match value.as_str() {
                    "messageGroup" => true,
                    "queue" => false,
                    _ => {
                        return Err(SqsError::invalid_attribute_value(
                            "DeduplicationScope is messageGroup or queue",
                        ));
                    }
                };
            }
            "FifoThroughputLimit" => {
                fifo_only(name, fifo)?;
                next.throughput_per_group = match value.as_str() {
                    "perMessageGroupId" => true,
                    "perQueue" => false,
                    _ => {
                        return Err(SqsError::invalid_attribute_value(
                            "FifoThroughputLimit is perMessageGroupId or perQueue",
                        ));
                    }
                };
            }
            "SqsManagedSseEnabled" => {
                if boolean(name, value)? {
                    return Err(SqsError::invalid_attribute_value(
                        "Shale does not encrypt messages itself: encrypt the bucket (docs/DEPLOY.md); SqsManagedSseEnabled is false",
                    ));
                }
            }
            "Policy" | "KmsMasterKeyId" | "KmsDataKeyReusePeriodSeconds" => {
                if !value.trim().is_empty() {
                    return Err(SqsError::invalid_attribute_value(format!(
                        "Shale does not apply {name}: access is the auth file's (docs/SECURITY.md), encryption the bucket's"
                    )));
                }
            }
            n if READ_ONLY.contains(&n) => {
                return Err(SqsError::invalid_attribute_name(format!(
                    "Unknown Attribute {n}: it is read-only."
                )));
            }
            n => {
                return Err(SqsError::invalid_attribute_name(format!(
                    "Unknown Attribute {n}."
                )));
            }
        }
    }
    *doc = next;
    Ok(changes)
}

/// The names `GetQueueAttributes` asked for (`All` = every one); unknown
/// names are InvalidAttributeName.
pub fn requested(names: &[String]) -> Result<Vec<&'static str>, SqsError> {
    if names.iter().any(|n| n == "All") {
        return Ok(ALL_NAMES.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ALL_NAMES
                .iter()
                .find(|k| **k == n.as_str())
                .copied()
                .ok_or_else(|| SqsError::invalid_attribute_name(format!("Unknown Attribute {n}.")))
        })
        .collect()
}

/// Whether a stored queue has the attributes a `CreateQueue` of the same
/// name gives (only the given ones are compared, as AWS does).
pub fn same_as_given(
    stored: &QueueDoc,
    retention_s: u64,
    attributes: &BTreeMap<String, String>,
    fifo: bool,
) -> Result<bool, SqsError> {
    let mut wanted = stored.clone();
    let changes = apply(&mut wanted, attributes, fifo, true)?;
    let same_retention = changes.retention_s.is_none_or(|r| r == retention_s);
    Ok(same_retention && wanted == *stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_checked_before_anything_changes() {
        let mut doc = QueueDoc::defaults(1);
        let err = apply(
            &mut doc,
            &attrs(&[("VisibilityTimeout", "60"), ("DelaySeconds", "901")]),
            false,
            true,
        )
        .unwrap_err();
        assert_eq!(err.code, "InvalidAttributeValue");
        assert_eq!(doc, QueueDoc::defaults(1));
        apply(
            &mut doc,
            &attrs(&[
                ("VisibilityTimeout", "60"),
                ("MaximumMessageSize", "4194304"),
            ]),
            false,
            true,
        )
        .unwrap();
        assert_eq!(
            (doc.visibility_timeout_s, doc.maximum_message_size),
            (60, 4 << 20)
        );
        let err = apply(&mut doc, &attrs(&[("QueueArn", "x")]), false, false).unwrap_err();
        assert_eq!(err.code, "InvalidAttributeName");
        let err = apply(
            &mut doc,
            &attrs(&[("ContentBasedDeduplication", "true")]),
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(err.code, "InvalidAttributeName");
        assert!(apply(&mut doc, &attrs(&[("Policy", "{}")]), false, false).is_err());
    }

    #[test]
    fn fifo_queues_refuse_a_delay_and_keep_their_type() {
        let mut doc = QueueDoc::defaults(1);
        assert!(apply(&mut doc, &attrs(&[("DelaySeconds", "5")]), true, true).is_err());
        assert!(apply(&mut doc, &attrs(&[("FifoQueue", "false")]), true, false).is_err());
        apply(
            &mut doc,
            &attrs(&[
                ("FifoQueue", "true"),
                ("ContentBasedDeduplication", "true"),
                ("DeduplicationScope", "messageGroup"),
            ]),
            true,
            true,
        )
        .unwrap();
        assert!(doc.content_based_dedup && doc.dedup_per_group);
    }

    #[test]
    fn redrive_policies_parse_as_aws_writes_them() {
        let r = parse_redrive(r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"5"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((r.target.as_str(), r.max_receive_count), ("dlq", 5));
        assert!(parse_redrive("").unwrap().is_none());
        assert!(parse_redrive("{}").unwrap().is_none());
        for bad in [
            r#"{"deadLetterTargetArn":"arn:aws:sqs:r:a:dlq","maxReceiveCount":0}"#,
            r#"{"deadLetterTargetArn":"arn:aws:sqs:r:a:dlq","maxReceiveCount":1001}"#,
            r#"{"deadLetterTargetArn":"nope","maxReceiveCount":3}"#,
            r#"{"maxReceiveCount":3}"#,
            "[1]",
        ] {
            assert!(parse_redrive(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redrive_allow_policies_decide_who_may_redrive() {
        let mut dlq = QueueDoc::defaults(1);
        assert!(redrive_allowed(&dlq, "arn:aws:sqs:r:a:src"));
        apply(
            &mut dlq,
            &attrs(&[(
                "RedriveAllowPolicy",
                r#"{"redrivePermission":"byQueue","sourceQueueArns":["arn:aws:sqs:r:a:src"]}"#,
            )]),
            false,
            false,
        )
        .unwrap();
        assert!(redrive_allowed(&dlq, "arn:aws:sqs:r:a:src"));
        assert!(!redrive_allowed(&dlq, "arn:aws:sqs:r:a:other"));
        apply(
            &mut dlq,
            &attrs(&[("RedriveAllowPolicy", r#"{"redrivePermission":"denyAll"}"#)]),
            false,
            false,
        )
        .unwrap();
        assert!(!redrive_allowed(&dlq, "arn:aws:sqs:r:a:src"));
        assert!(
            apply(
                &mut dlq,
                &attrs(&[("RedriveAllowPolicy", r#"{"redrivePermission":"some"}"#)]),
                false,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn create_compares_only_the_given_attributes() {
        let mut stored = QueueDoc::defaults(1);
        apply(
            &mut stored,
            &attrs(&[("VisibilityTimeout", "60")]),
            false,
            true,
        )
        .unwrap();
        assert!(same_as_given(&stored, 345_600, &attrs(&[]), false).unwrap());
        assert!(
            same_as_given(
                &stored,
                345_600,
                &attrs(&[("VisibilityTimeout", "60")]),
                false
            )
            .unwrap()
        );
        assert!(
            !same_as_given(
                &stored,
                345_600,
                &attrs(&[("VisibilityTimeout", "30")]),
                false
            )
            .unwrap()
        );
        assert!(
            !same_as_given(
                &stored,
                345_600,
                &attrs(&[("MessageRetentionPeriod", "60")]),
                false
            )
            .unwrap()
        );
    }

    #[test]
    fn requested_names_are_known_ones() {
        assert_eq!(requested(&["All".into()]).unwrap().len(), ALL_NAMES.len());
        assert_eq!(requested(&["QueueArn".into()]).unwrap(), vec!["QueueArn"]);
        assert!(requested(&["Nope".into()]).is_err());
    }
}
