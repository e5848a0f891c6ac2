//! shale-hot: the local hot tier of a Shale node.
//!
//! Every queue of every topic is an append-only log of CRC-protected records
//! split into segments under `{root}/{topic}/{queue}/`:
//!
//! ```text
//! 00000000000000000000.log          sealed segment (read-only mmap)
//! 00000000000000000000.index        sparse offset + time index of that segment
//! 00000000000000000000.keys         (key hash, offset) entries of that segment
//! 00000000000000001234.log.partial  the active segment (read-write mmap)
//! 00000000000000001234.index        its index, appended as records are written
//! 00000000000000001234.keys         its key entries
//! ```
//!
//! Invariants every module keeps:
//! - offsets in a queue are contiguous; `store_ms` never decreases;
//! - a record is visible to readers only once it is wholly written;
//! - an append either stores the whole batch or nothing (then the queue is
//!   unchanged and still writable);
//! - anything an index says is checked against the log before it is trusted:
//!   indexes are caches that recovery rebuilds.
//!
//! The crate knows nothing of object stores or HTTP.

mod active_segment;
mod clock;
pub mod durable_file;
mod error;
mod fnv;
mod fs_util;
mod group_commit;
mod index;
mod key_index;
mod message_id;
mod queue;
mod record;
mod recovery;
mod salvage;
mod sealed_segment;
mod segment_view;
mod sidecar;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{HotError, Result};
pub use fnv::fnv1a;
pub use message_id::{HexId, MessageId};
pub use queue::{Appended, QueueLog, QueueStats, SegmentInfo};
pub use record::{
    AppendRequest, DecodeError, MAX_RECORD_BYTES, RECORD_HEADER_BYTES, Record, decode, encode,
    encoded_len,
};
pub use salvage::{LostRange, SalvagedSegment};
pub use store::{HotConfig, HotStore, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES};
