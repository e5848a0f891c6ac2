//! Salvage: reading a damaged sealed segment for what can still be trusted.
//!
//! A normal read stops at the first record that fails its CRC: nothing
//! unchecked is ever handed out. Before a segment leaves the node (upload to
//! the object store, after which the local copy is evicted), salvage keeps
//! every record that still checks out and names the offsets that cannot be
//! recovered, instead of blocking the queue behind one flipped bit forever.
//!
//! After a bad record the scan looks for the next position where a whole
//! record with a valid CRC, a higher offset and a place inside the segment
//! starts (a false match needs the magic, the version and a CRC32C over the
//! claimed length to agree by chance). Offsets in between are reported lost.
//!
//! Invariants: every record returned passed its CRC check and carries the
//! offset it is returned for; `records` and `lost` together cover
//! `[base, end)` exactly once, in order.

use std::ops::Range;

use crate::record::{self, RECORD_MAGIC, Record};
use crate::segment_view::SegmentView;

/// What a salvage read of one sealed segment found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvagedSegment {
    /// Every record that passed its checks, by ascending offset.
    pub records: Vec<Record>,
    /// Offsets that could not be read back, with the reason.
    pub lost: Vec<LostRange>,
}

/// Offsets of a segment lost to damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    pub offsets: Range<u64>,
    /// Why the first of them could not be read.
    pub reason: String,
}

/// Reads every record of `view` that can still be trusted.
pub(crate) fn salvage(view: &SegmentView<'_>) -> SalvagedSegment {
    let mut out = SalvagedSegment::default();
    let (mut pos, mut at) = (0usize, view.base);
    while at < view.end {
        match record::decode(&view.bytes[pos..]) {
            Ok(r) if r.offset == at => {
                pos += r.encoded_len();
                out.records.push(r);
                at += 1;
            }
            found => {
                let reason = match found {
                    Ok(r) => format!("expected offset {at}, found {}", r.offset),
                    Err(e) => e.to_string(),
                };
                let reason = format!("{} at byte {pos}: {reason}", view.path.display());
                match next_record_after(view, pos + 1, at) {
                    Some((p, offset)) => {
                        out.lost.push(LostRange {
                            offsets: at..offset,
                            reason,
                        });
                        (pos, at) = (p, offset);
                    }
                    None => {
                        out.lost.push(LostRange {
                            offsets: at..view.end,
                            reason,
                        });
                        break;
                    }
                }
            }
        }
    }
    out
}

/// The first position at or after `from` where a valid record with an
/// offset in `(after, end)` starts.
fn next_record_after(view: &SegmentView<'_>, from: usize, after: u64) -> Option<(usize, u64)> {
    let bytes = view.bytes;
    let mut p = from;
    while p + 1 < bytes.len() {
        let hit = bytes[p..]
            .windows(2)
            .position(|w| w == RECORD_MAGIC)
            .map(|i| p + i)?;
        if let Ok(h) = record::verify(&bytes[hit..])
            && h.offset > after
            && h.offset < view.end
        {
            return Some((hit, h.offset));
        }
        p = hit + 1;
    }
    None
}
