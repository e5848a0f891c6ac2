//! Documents a front-end keeps about a topic (e.g. the SQS endpoint's queue
//! attributes and tags), stored beside the topic in the object store
//! (`topics/{topic}/docs/{name}.json`) so every node reads the same ones.
//!
//! Invariants: a document exists only while its topic does — writing one
//! for an unknown topic is TOPIC_NOT_FOUND, and deleting the topic removes
//! its documents with its other objects. A write racing a delete can leave
//! a document behind under a deleted name; readers therefore stamp their
//! documents with the topic's `created_ms` and ignore one that does not
//! match the topic they see (a topic created again starts with none).
//! Writes replace the whole document (last writer wins).

use bytes::Bytes;

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult};

/// Longest document accepted (they are small settings, read on hot paths).
pub const MAX_DOC_BYTES: usize = 256 * 1024;

fn check_name(name: &str) -> BrokerResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BrokerError::invalid(format!(
            "document name {name:?}: 1-32 of [a-z0-9-]"
        )))
    }
}

impl Broker {
    /// The document `name` about `topic`, `None` if none was written.
    pub async fn topic_doc(&self, topic: &str, name: &str) -> BrokerResult<Option<Bytes>> {
        check_name(name)?;
        self.topics.require(topic)?;
        Ok(self.tier.topic_doc(topic, name).await?)
    }

    /// Stores (replaces) the document `name` about `topic`.
    pub async fn put_topic_doc(&self, topic: &str, name: &str, json: Bytes) -> BrokerResult<()> {
        check_name(name)?;
        if json.len() > MAX_DOC_BYTES {
            return Err(BrokerError::invalid(format!(
                "a topic document holds at most {MAX_DOC_BYTES} bytes"
            )));
        }
        self.topics.require(topic)?;
        Ok(self.tier.put_topic_doc(topic, name, json).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_short_and_plain() {
        assert!(check_name("sqs").is_ok());
        assert!(check_name("a-1").is_ok());
        for bad in ["", "SQS", "a/b", "../x", &"x".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
