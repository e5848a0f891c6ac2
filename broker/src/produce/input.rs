//! One message of a produce request as every front-end hands it to the broker
//! ([`MessageInput`]), and the contract's limits on its fields.
//!
//! A front-end turns its wire form (JSON, raw body + headers, another
//! protocol) into these and calls [`MessageInput::validate`]; nothing here
//! knows the topic: type rules and queue choice are in `plan`.

use bytes::Bytes;

use crate::error::BrokerError;
use crate::validate;

/// When a delay message should be delivered, as the client asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelayInput {
    pub delay_ms: Option<i64>,
    pub deliver_at_ms: Option<i64>,
    pub delay_level: Option<u32>,
}

impl DelayInput {
    pub fn is_empty(&self) -> bool {
        *self == DelayInput::default()
    }
}

/// One message, in either wire form, with every field within the limits.
#[derive(Debug, Clone, Default)]
pub struct MessageInput {
    pub body: Bytes,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: Vec<(String, String)>,
    pub message_group: Option<String>,
    pub delay: DelayInput,
    pub queue: Option<u32>,
    pub dedup_id: Option<String>,
}

impl MessageInput {
    /// Checks every field against the contract's limits.
    pub fn validate(&self) -> Result<(), BrokerError> {
        self.validate_as(false)
    }

    /// [`Self::validate`]; `system` also lets through the properties Shale
    /// itself sets (`shale.*`: a dead-letter copy sent on by another node).
    pub fn validate_as(&self, system: bool) -> Result<(), BrokerError> {
        validate::body_len(self.body.len())?;
        if let Some(tag) = &self.tag {
            validate::tag(tag)?;
        }
        validate::keys(&self.keys)?;
        validate::properties_as(&self.properties, system)?;
        if let Some(group) = &self.message_group {
            validate::message_group(group)?;
        }
        if let Some(id) = &self.dedup_id {
            validate::dedup_id(id)?;
        }
        if self.delay.delay_ms.is_some_and(|d| d < 0) {
            return Err(BrokerError::invalid("delay_ms must not be negative"));
        }
        if self.delay.deliver_at_ms.is_some_and(|d| d < 0) {
            return Err(BrokerError::invalid("deliver_at_ms must not be negative"));
        }
        Ok(())
    }

    /// Bytes the message counts for in the 32 MiB request limit.
    pub fn size(&self) -> usize {
        self.body.len()
            + self.tag.as_ref().map_or(0, String::len)
            + self.keys.iter().map(String::len).sum::<usize>()
            + self
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self.message_group.as_ref().map_or(0, String::len)
            + self.dedup_id.as_ref().map_or(0, String::len)
    }
}

/// Prefixes an error with the index of the message it is about.
pub fn at(index: usize, e: BrokerError) -> BrokerError {
    e.prefixed(&format!("messages[{index}]: "))
}
