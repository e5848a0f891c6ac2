//! The consumer-group operations over both tiers, gathered under their old
//! paths: each lives in a module of its own concern —
//! [`super::receive`] (receive and long polls), [`super::dead_letter`],
//! [`super::ack`] (ack and change-invisibility), [`super::offsets`]
//! (offsets and reset), [`super::settings`] (storing group settings),
//! [`super::secret`] (the receipt-handle key) — and this module keeps the
//! consumer-id rule of the two consume modes.

use super::config::{ConsumeMode, GroupConfig};
use crate::error::{BrokerError, BrokerResult};

pub use super::ack::{AckOutcome, ack, change_invisibility, give_back};
pub use super::offsets::{QueueOffsets, ResetTo, offsets, reset};
pub use super::receive::{Delivered, ReceiveRequest, receive};
pub use super::secret::secret;
pub use super::settings::{ensure_group, put_group};

/// Longest `consumer_id`, in bytes.
pub const MAX_CONSUMER_ID_BYTES: usize = 128;

/// The consumer id a request must carry in its group's mode.
pub fn consumer_for(group: &GroupConfig, consumer_id: Option<&str>) -> BrokerResult<String> {
    match group.consume_mode {
        ConsumeMode::Clustering => Ok(String::new()),
        ConsumeMode::Broadcasting => {
            let id = consumer_id.ok_or_else(|| {
                BrokerError::invalid("consumer_id is required in BROADCASTING mode")
            })?;
            if id.is_empty() || id.len() > MAX_CONSUMER_ID_BYTES || id.contains('\n') {
                return Err(BrokerError::invalid(format!(
                    "consumer_id must be 1-{MAX_CONSUMER_ID_BYTES} bytes without newlines"
                )));
            }
            Ok(id.to_string())
        }
    }
}
