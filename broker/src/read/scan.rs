//! The bounded scan behind reads by offset: reads a queue in chunks, applies
//! the tag filter and the caller's limits.
//!
//! Invariants:
//! - `next_offset` is the first offset not yet examined: messages skipped by
//!   the filter advance it, a message left out by `max_bytes` does not;
//! - at least one matching message is returned when one exists within the
//!   scan, even if it alone exceeds `max_bytes`;
//! - one call examines at most [`SCAN_MAX_RECORDS`] records and
//!   [`SCAN_MAX_BYTES`] bytes, so a selective filter over a long queue cannot
//!   pin a blocking thread; the caller continues from `next_offset`;
//! - an error after progress (a lost message, the object store failing)
//!   ends the scan before it, so the error comes with the read that starts
//!   at the failing offset.
//!
//! Blocking: call inside `spawn_blocking`.

use shale_hot::Record;

use crate::error::BrokerResult;
use crate::queue_view::TieredQueue;

use super::tag_filter::TagFilter;

/// Records read from the hot tier per step.
const CHUNK_MESSAGES: usize = 256;
/// Bytes read per step when filtering.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Most records one scan examines.
pub const SCAN_MAX_RECORDS: usize = 65_536;
/// Most encoded bytes one scan examines.
pub const SCAN_MAX_BYTES: usize = 64 * 1024 * 1024;

/// What a scan may return.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
    /// Offsets at or past this are not examined.
    pub end_offset: u64,
}

/// Messages found and where to continue.
#[derive(Debug, Default)]
pub struct Scanned {
    pub records: Vec<Record>,
    pub next_offset: u64,
}

/// Scans the queue (both tiers) from `from` under `limits`.
pub fn scan(
    log: &TieredQueue,
    from: u64,
    filter: &TagFilter,
    limits: ScanLimits,
) -> BrokerResult<Scanned> {
    let mut out = Scanned {
        records: Vec::new(),
        next_offset: from,
    };
    let (mut bytes, mut examined, mut examined_bytes) = (0usize, 0usize, 0usize);
    while out.next_offset < limits.end_offset
        && out.records.len() < limits.max_messages
        && examined < SCAN_MAX_RECORDS
        && examined_bytes < SCAN_MAX_BYTES
    {
        let (want, budget) = if filter.is_all() {
            let left = limits.max_messages - out.records.len();
            (
                left.min(CHUNK_MESSAGES),
                limits.max_bytes.saturating_sub(bytes).max(1),
            )
        } else {
            (CHUNK_MESSAGES, CHUNK_BYTES)
        };
        let chunk = match log.read_blocking(out.next_offset, want, budget) {
            Ok(chunk) => chunk,
            // A read fails on its first record (a lost message, an object
            // store down): answer what came before; the caller's next read
            // starts at the failing offset and gets the error.
            Err(_) if out.next_offset > from => return Ok(out),
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        for record in chunk {
            if record.offset >= limits.end_offset {
                return Ok(out);
            }
            let len = record.encoded_len();
            examined += 1;
            examined_bytes += len;
            if filter.matches(&record) {
                if !out.records.is_empty() && bytes + len > limits.max_bytes {
                    return Ok(out);
                }
                bytes += len;
                out.next_offset = record.offset + 1;
                out.records.push(record);
                if out.records.len() >= limits.max_messages {
                    return Ok(out);
                }
            } else {
                out.next_offset = record.offset + 1;
            }
        }
    }
    Ok(out)
}
