//! Message ids: 128 bits, shown as 32 lowercase hex digits, time-ordered and
//! self-locating.
//!
//! ```text
//! bits 127..80  store time, Unix ms (48 bits)     -> ids sort by time
//! bits  79..70  queue number (10 bits, queues < 1024)
//! bits  69..24  offset in the queue (46 bits)
//! bit   23      scheduled: the id of a delay message (see below)
//! bits  22..0   random (23 bits)
//! ```
//!
//! A delay message's id is minted when it is scheduled, with
//! [`MessageId::scheduled`]: its time field is the delivery time, its queue
//! and offset name the message in its queue's timer journal, and bit 23 is
//! set. The message keeps that id when it fires into its queue, so the id a
//! producer got back finds it before and after (ids written before bit 23
//! had a meaning may have it set at random: lookups fall back to the
//! ordinary path when the timer path does not know the id).
//!
//! Because an id names its queue and offset, a lookup by id is one read of
//! that offset followed by a comparison of the whole id (the random bits make
//! a guessed or cross-topic id miss instead of returning another message).

use std::fmt;
use std::str::FromStr;

/// The random bits of an ordinary id (bit 23 marks scheduled ids).
const RANDOM_MASK: u32 = 0x007f_ffff;
/// Largest queue number an id can carry.
pub const MAX_QUEUE: u32 = (1 << 10) - 1;
/// Largest offset an id can carry.
pub const MAX_ID_OFFSET: u64 = (1 << 46) - 1;

/// A 128-bit message id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// Builds the id of the message stored at `queue`/`offset` at `store_ms`.
    pub fn new(store_ms: i64, queue: u32, offset: u64, random: u32) -> Self {
        let ms = (store_ms.max(0) as u128) & ((1 << 48) - 1);
        let q = (queue & MAX_QUEUE) as u128;
        let off = (offset & MAX_ID_OFFSET) as u128;
        let r = (random & RANDOM_MASK) as u128;
        let v = (ms << 80) | (q << 70) | (off << 24) | r;
        MessageId(v.to_be_bytes())
    }

    /// The id of a delay message due at `deliver_at_ms`, stored at `offset`
    /// of the timer journal of queue `queue`.
    pub fn scheduled(deliver_at_ms: i64, queue: u32, offset: u64, random: u32) -> Self {
        let mut id = Self::new(deliver_at_ms, queue, offset, random);
        id.0[13] |= 0x80;
        id
    }

    /// Whether the id was minted by [`Self::scheduled`] (or is an old id
    /// whose random bit 23 happened to be set).
    pub fn is_scheduled(&self) -> bool {
        self.0[13] & 0x80 != 0
    }

    fn value(&self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The store time the id carries.
    pub fn store_ms(&self) -> i64 {
        (self.value() >> 80) as i64
    }

    /// The queue the id names.
    pub fn queue(&self) -> u32 {
        ((self.value() >> 70) as u32) & MAX_QUEUE
    }

    /// The offset the id names.
    pub fn offset(&self) -> u64 {
        ((self.value() >> 24) as u64) & MAX_ID_OFFSET
    }

    /// The random bits (scheduled ids: without the scheduled bit).
    pub fn random(&self) -> u32 {
        (self.value() as u32) & RANDOM_MASK
    }

    /// The 32 lowercase hex digits, without allocating (reads format one id
    /// per message).
    pub fn to_hex(&self) -> HexId {
        let mut digits = [0u8; 32];
        // Cannot fail: the buffer is exactly twice the 16 bytes.
        let _ = hex::encode_to_slice(self.0, &mut digits);
        HexId(digits)
    }
}

/// A message id as 32 hex digits on the stack ([`MessageId::to_hex`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexId([u8; 32]);

impl HexId {
    /// The digits.
    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for HexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// A string that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a message id is 32 hex digits")]
pub struct InvalidMessageId;

impl FromStr for MessageId {
    type Err = InvalidMessageId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(InvalidMessageId);
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).map_err(|_| InvalidMessageId)?;
        Ok(MessageId(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fields_round_trip(ms in 0i64..(1 << 48), q in 0u32..1024, off in 0u64..=MAX_ID_OFFSET, r: u32) {
            let id = MessageId::new(ms, q, off, r);
            prop_assert_eq!(id.store_ms(), ms);
            prop_assert_eq!(id.queue(), q);
            prop_assert_eq!(id.offset(), off);
            let parsed: MessageId = id.to_string().parse().unwrap();
            prop_assert_eq!(parsed, id);
            prop_assert!(!id.is_scheduled());
            let sched = MessageId::scheduled(ms, q, off, r);
            prop_assert!(sched.is_scheduled());
            prop_assert_eq!((sched.store_ms(), sched.queue(), sched.offset()), (ms, q, off));
        }

        #[test]
        fn ids_sort_by_time(a in 0i64..(1 << 47), d in 1i64..1000, q1 in 0u32..1024, q2 in 0u32..1024, o1: u32, o2: u32) {
            prop_assert!(MessageId::new(a, q1, o1 as u64, 7) < MessageId::new(a + d, q2, o2 as u64, 0));
        }
    }

    #[test]
    fn rejects_bad_strings() {
        assert!("xyz".parse::<MessageId>().is_err());
        assert!(
            "0123456789abcdef0123456789abcdeg"
                .parse::<MessageId>()
                .is_err()
        );
        assert!(
            "0123456789abcdef0123456789abcdef"
                .parse::<MessageId>()
                .is_ok()
        );
    }
}
