//! Reading a segment's bytes: the one place that walks records.
//!
//! A [`SegmentView`] is the readable prefix of a segment (all of a sealed
//! one, the written part of the active one) plus its sparse index. Lookups
//! start at the nearest index entry and step over record headers; every
//! record handed out has passed its CRC check — a mismatch is an error, never data.

use std::path::Path;

use crate::error::{HotError, Result};
use crate::index::{self, IndexEntry};
use crate::record::{self, DecodeError, Record};

/// The readable part of one segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentView<'a> {
    pub base: u64,
    /// Offset after the last record in `bytes`.
    pub end: u64,
    pub bytes: &'a [u8],
    pub index: &'a [IndexEntry],
    pub path: &'a Path,
}

impl SegmentView<'_> {
    fn corrupt(&self, position: u64, e: DecodeError) -> HotError {
        HotError::Corrupt {
            path: self.path.to_path_buf(),
            position,
            reason: e.to_string(),
        }
    }

    /// Byte position of the record with `offset` (which must be in `[base, end)`).
    pub(crate) fn position_of(&self, offset: u64) -> Result<u64> {
        debug_assert!(offset >= self.base && offset < self.end);
        let (mut pos, mut at) = match index::floor_by_offset(self.index, offset) {
            Some(e) => (e.position, e.offset),
            None => (0, self.base),
        };
        while at < offset {
            let h = record::peek_header(&self.bytes[pos as usize..])
                .map_err(|e| self.corrupt(pos, e))?;
            if h.offset != at {
                let why =
                    DecodeError::Malformed(format!("expected offset {at}, found {}", h.offset));
                return Err(self.corrupt(pos, why));
            }
            pos += h.len as u64;
            at += 1;
        }
        Ok(pos)
    }

    /// Decodes and checks the record at `pos`, which must carry `offset`.
    pub(crate) fn record_at(&self, pos: u64, offset: u64) -> Result<Record> {
        let rec = record::decode(&self.bytes[pos as usize..]).map_err(|e| self.corrupt(pos, e))?;
        if rec.offset != offset {
            let why =
                DecodeError::Malformed(format!("expected offset {offset}, found {}", rec.offset));
            return Err(self.corrupt(pos, why));
        }
        Ok(rec)
    }

    /// Reads records from `offset` into `out` until `max_messages`, the byte budget
    /// (`budget` is decremented by each record's encoded size; the first record is
    /// always taken) or the end of the segment. Returns the next offset to read.
    pub(crate) fn read_into(
        &self,
        offset: u64,
        max_messages: usize,
        budget: &mut usize,
        out: &mut Vec<Record>,
    ) -> Result<u64> {
        let mut pos = self.position_of(offset)?;
        let mut at = offset;
        while at < self.end && out.len() < max_messages {
            let h = record::peek_header(&self.bytes[pos as usize..])
                .map_err(|e| self.corrupt(pos, e))?;
            if !out.is_empty() && h.len > *budget {
                break;
            }
            out.push(self.record_at(pos, at)?);
            *budget = budget.saturating_sub(h.len);
            pos += h.len as u64;
            at += 1;
        }
        Ok(at)
    }

    /// The first offset in this segment with `store_ms >= ts`, or `end` when none.
    pub(crate) fn offset_for_timestamp(&self, ts: i64) -> Result<u64> {
        let (mut pos, mut at) = match index::floor_before_time(self.index, ts) {
            Some(e) => (e.position, e.offset),
            None => (0, self.base),
        };
        while at < self.end {
            let h = record::peek_header(&self.bytes[pos as usize..])
                .map_err(|e| self.corrupt(pos, e))?;
            if h.store_ms >= ts {
                return Ok(at);
            }
            pos += h.len as u64;
            at += 1;
        }
        Ok(self.end)
    }
}

/// What a forward scan over raw segment bytes found (recovery, index rebuilds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanOutcome {
    /// Byte position after the last valid record.
    pub end_position: u64,
    /// Offset after the last valid record.
    pub end_offset: u64,
    /// `store_ms` of the last valid record, if any was scanned.
    pub last_store_ms: Option<i64>,
    /// Why the scan stopped before the end of the bytes (None: clean end).
    pub stopped_by: Option<DecodeError>,
}

/// Walks records from `(pos, offset)`, checking CRCs, until the data ends or
/// stops making sense. `on_record(position, &bytes)` sees each valid record.
pub(crate) fn scan(
    bytes: &[u8],
    mut pos: u64,
    mut offset: u64,
    mut on_record: impl FnMut(u64, &[u8]),
) -> ScanOutcome {
    let mut last_store_ms = None;
    loop {
        if pos as usize >= bytes.len() {
            return ScanOutcome {
                end_position: pos,
                end_offset: offset,
                last_store_ms,
                stopped_by: None,
            };
        }
        let rest = &bytes[pos as usize..];
        match record::verify(rest) {
            Ok(h) if h.offset == offset => {
                on_record(pos, &rest[..h.len]);
                last_store_ms = Some(h.store_ms);
                pos += h.len as u64;
                offset += 1;
            }
            Ok(h) => {
                let why =
                    DecodeError::Malformed(format!("expected offset {offset}, found {}", h.offset));
                return ScanOutcome {
                    end_position: pos,
                    end_offset: offset,
                    last_store_ms,
                    stopped_by: Some(why),
                };
            }
            Err(DecodeError::End) => {
                return ScanOutcome {
                    end_position: pos,
                    end_offset: offset,
                    last_store_ms,
                    stopped_by: None,
                };
            }
            Err(e) => {
                return ScanOutcome {
                    end_position: pos,
                    end_offset: offset,
                    last_store_ms,
                    stopped_by: Some(e),
                };
            }
        }
    }
}
