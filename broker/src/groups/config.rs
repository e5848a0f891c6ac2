//! Consumer group settings (`PUT /v1/groups/{group}`), their defaults and checks.
//!
//! Defaults as RocketMQ 5: CLUSTERING, 16 delivery attempts, the retry
//! backoff table 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h (the
//! last value repeats), consume from LATEST.

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

/// RocketMQ's retry delays, in ms.
pub const DEFAULT_BACKOFF_MS: [u64; 16] = [
    10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000, 480_000, 540_000,
    600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];
/// Most delivery attempts a group may ask for.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 1000;

/// How a group shares messages among its consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConsumeMode {
    /// Each message goes to one consumer of the group.
    #[default]
    Clustering,
    /// Every `consumer_id` gets every message (its own offsets).
    Broadcasting,
}

/// Where a group starts on a queue it has never consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum ConsumeFrom {
    /// `"LATEST"` or `"EARLIEST"`.
    Position(Position),
    /// `{"timestamp_ms": T}`.
    Timestamp { timestamp_ms: i64 },
    #[serde(skip)]
    #[default]
    Latest,
}

/// `LATEST` | `EARLIEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Position {
    Latest,
    Earliest,
}

/// A group's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub consume_mode: ConsumeMode,
    #[serde(default = "default_attempts")]
    pub max_delivery_attempts: u32,
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: Vec<u64>,
    #[serde(default = "default_from")]
    pub consume_from: ConsumeFrom,
    /// Where dead letters go: a user topic (NORMAL, DELAY or FIFO), instead
    /// of `%DLQ%{group}` (an SQS queue's redrive target is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
}

fn default_attempts() -> u32 {
    16
}
fn default_backoff() -> Vec<u64> {
    DEFAULT_BACKOFF_MS.to_vec()
}
fn default_from() -> ConsumeFrom {
    ConsumeFrom::Position(Position::Latest)
}

impl GroupConfig {
    /// The defaults of a group created on first use.
    pub fn defaults(name: &str) -> Self {
        GroupConfig {
            name: name.to_string(),
            consume_mode: ConsumeMode::Clustering,
            max_delivery_attempts: default_attempts(),
            retry_backoff_ms: default_backoff(),
            consume_from: default_from(),
            dead_letter_topic: None,
        }
    }

    pub fn validate(&self) -> Result<(), BrokerError> {
        crate::validate::group_name(&self.name)?;
        if self.max_delivery_attempts == 0 || self.max_delivery_attempts > MAX_DELIVERY_ATTEMPTS {
            return Err(BrokerError::invalid(format!(
                "max_delivery_attempts must be 1-{MAX_DELIVERY_ATTEMPTS}, got {}",
                self.max_delivery_attempts
            )));
        }
        if self.retry_backoff_ms.is_empty() || self.retry_backoff_ms.len() > 64 {
            return Err(BrokerError::invalid("retry_backoff_ms needs 1-64 delays"));
        }
        if self.retry_backoff_ms.iter().any(|d| *d > 86_400_000) {
            return Err(BrokerError::invalid(
                "a retry delay may be at most one day (86400000 ms)",
            ));
        }
        if let Some(t) = &self.dead_letter_topic {
            crate::validate::user_topic_name(t)
                .map_err(|e| BrokerError::invalid(format!("dead_letter_topic: {}", e.message())))?;
        }
        if matches!(self.consume_from, ConsumeFrom::Latest) {
            return Err(BrokerError::invalid(
                "consume_from is LATEST, EARLIEST or {\"timestamp_ms\": T}",
            ));
        }
        Ok(())
    }

    pub fn redelivery_policy(&self) -> super::cursor::RedeliveryPolicy {
        super::cursor::RedeliveryPolicy {
            max_attempts: self.max_delivery_attempts,
            backoff_ms: self.retry_backoff_ms.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_of_consume_from() {
        let g: GroupConfig = serde_json::from_str(r#"{"consume_from": "EARLIEST"}"#).unwrap();
        assert_eq!(g.consume_from, ConsumeFrom::Position(Position::Earliest));
        let g: GroupConfig =
            serde_json::from_str(r#"{"consume_from": {"timestamp_ms": 5}}"#).unwrap();
        assert_eq!(g.consume_from, ConsumeFrom::Timestamp { timestamp_ms: 5 });
        let g: GroupConfig = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(
            (g.max_delivery_attempts, g.retry_backoff_ms.len()),
            (16, 16)
        );
        assert!(serde_json::from_str::<GroupConfig>(r#"{"consume_from": "SOMETIME"}"#).is_err());
        assert!(serde_json::from_str::<GroupConfig>(r#"{"nope": 1}"#).is_err());
    }
}
