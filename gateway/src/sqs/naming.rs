//! How SQS names map to Shale's: queue names, queue URLs, ARNs, and the
//! topic and group behind a queue.
//!
//! A queue `Q` is the topic `sqs.Q` consumed by the CLUSTERING group
//! `sqs.Q` (the prefix keeps SQS's names, which may start with `_` or `-`,
//! valid Shale names, and apart from topics made through `/v1`). Queue URLs
//! are `{advertise_url}/{ACCOUNT}/{Q}`; any node accepts any queue URL, and
//! only its last path segment counts (so a URL of another node, or of AWS
//! itself, names the same queue here).

use super::protocol::SqsError;
use crate::config::NodeConfig;

/// The account id in queue URLs and ARNs (Shale has no accounts).
pub const ACCOUNT: &str = "000000000000";
/// Prefix of the topic and the group behind a queue.
pub const TOPIC_PREFIX: &str = "sqs.";
/// Longest queue name (AWS's limit, `.fifo` included).
pub const MAX_NAME: usize = 80;

/// What the node puts in queue URLs and ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// The node's advertise URL, without a trailing `/`.
    pub base_url: String,
    pub region: String,
}

impl Naming {
    pub fn of(config: &NodeConfig) -> Naming {
        let base = config
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        Naming {
            base_url: base.trim_end_matches('/').to_string(),
            region: config.sqs_region.clone(),
        }
    }

    pub fn url(&self, queue: &str) -> String {
        format!("{}/{ACCOUNT}/{queue}", self.base_url)
    }

    pub fn arn(&self, queue: &str) -> String {
        format!("arn:aws:sqs:{}:{ACCOUNT}:{queue}", self.region)
    }
}

/// Whether `name` is a FIFO queue's name.
pub fn is_fifo(name: &str) -> bool {
    name.ends_with(".fifo")
}

/// Checks a queue name as AWS does: 1-80 characters of `[A-Za-z0-9_-]`,
/// plus the `.fifo` suffix of FIFO queues.
pub fn check_queue_name(name: &str) -> Result<(), SqsError> {
    let stem = name.strip_suffix(".fifo").unwrap_or(name);
    let ok = !stem.is_empty()
        && name.len() <= MAX_NAME
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SqsError::invalid_parameter(format!(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to {MAX_NAME} in length (a FIFO queue's name ends with .fifo): {name:?}"
        )))
    }
}

/// The topic (and group) behind queue `name`.
pub fn topic_of(name: &str) -> String {
    format!("{TOPIC_PREFIX}{name}")
}

/// The queue behind topic `topic`, if it is one.
pub fn queue_of_topic(topic: &str) -> Option<&str> {
    topic
        .strip_prefix(TOPIC_PREFIX)
        .filter(|q| check_queue_name(q).is_ok())
}

/// The queue a queue URL names (its last path segment).
pub fn queue_from_url(url: &str) -> Result<String, SqsError> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if url.is_empty() {
        return Err(SqsError::missing("QueueUrl"));
    }
    if check_queue_name(name).is_err() {
        return Err(SqsError::queue_does_not_exist(url));
    }
    Ok(name.to_string())
}

/// The queue an SQS ARN names (`arn:aws:sqs:REGION:ACCOUNT:NAME`).
pub fn queue_from_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "sqs", _, _, name] if check_queue_name(name).is_ok() => Some(name.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_aws_rules() {
        for ok in [
            "a",
            "_x-1",
            "orders.fifo",
            &"q".repeat(80),
            &format!("{}.fifo", "q".repeat(75)),
        ] {
            assert!(check_queue_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".fifo",
            "a.b",
            "a b",
            "é",
            &"q".repeat(81),
            "x.fifo.fifo",
        ] {
            assert!(check_queue_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_and_arns_name_queues() {
        let n = Naming {
            base_url: "http://10.0.0.5:8080".into(),
            region: "eu-west-1".into(),
        };
        assert_eq!(n.url("q"), "http://10.0.0.5:8080/000000000000/q");
        assert_eq!(n.arn("q"), "arn:aws:sqs:eu-west-1:000000000000:q");
        assert_eq!(queue_from_url(&n.url("q")).unwrap(), "q");
        assert_eq!(
            queue_from_url("https://sqs.us-east-1.amazonaws.com/123456789012/jobs.fifo").unwrap(),
            "jobs.fifo"
        );
        assert!(queue_from_url("http://x/1/a.b").is_err());
        assert_eq!(queue_from_arn(&n.arn("dlq")).as_deref(), Some("dlq"));
        assert_eq!(queue_from_arn("arn:aws:sns:r:a:x"), None);
        assert_eq!(queue_of_topic("sqs.q"), Some("q"));
        assert_eq!(queue_of_topic("orders"), None);
    }
}
