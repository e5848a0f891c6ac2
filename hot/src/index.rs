//! The sparse offset + time index of one segment (`{base:020}.index`).
//!
//! ```text
//! header (16 bytes): magic "SHIX", u32 version (1), u64 base offset
//! entry  (24 bytes): u32 offset - base, u32 byte position in the log,
//!                    i64 store_ms, u32 CRC32C of the previous 16 bytes, u32 zero
//! ```
//!
//! One entry is written for the first record of a segment and then for the
//! first record after every `index_interval_bytes` of log. Because `store_ms`
//! never decreases within a queue, the same entries serve offset lookups and
//! time lookups (binary search on either column).
//!
//! The index is a cache: it is appended without fsync and recovery checks the
//! entries it keeps against the log. Loading stops at the first entry that
//! fails its checksum or its ordering, so a torn index is a shorter index.

use std::path::Path;

use crate::sidecar::SidecarFile;

pub(crate) const INDEX_MAGIC: [u8; 4] = *b"SHIX";
pub(crate) const INDEX_VERSION: u32 = 1;
pub(crate) const INDEX_HEADER_BYTES: usize = 16;
pub(crate) const INDEX_ENTRY_BYTES: usize = 24;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub offset: u64,
    pub position: u64,
    pub store_ms: i64,
}

pub(crate) fn encode_header(base: u64) -> [u8; INDEX_HEADER_BYTES] {
    let mut h = [0u8; INDEX_HEADER_BYTES];
    h[0..4].copy_from_slice(&INDEX_MAGIC);
    h[4..8].copy_from_slice(&INDEX_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&base.to_le_bytes());
    h
}

pub(crate) fn encode_entry(base: u64, e: &IndexEntry) -> [u8; INDEX_ENTRY_BYTES] {
    let mut b = [0u8; INDEX_ENTRY_BYTES];
    b[0..4].copy_from_slice(&((e.offset - base) as u32).to_le_bytes());
    b[4..8].copy_from_slice(&(e.position as u32).to_le_bytes());
    b[8..16].copy_from_slice(&e.store_ms.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Parses an index file image. Returns `None` when the header is not ours
/// (missing, foreign or for another base offset): the caller rebuilds.
pub(crate) fn parse(bytes: &[u8], base: u64) -> Option<Vec<IndexEntry>> {
    if bytes.len() < INDEX_HEADER_BYTES || bytes[..INDEX_HEADER_BYTES] != encode_header(base) {
        return None;
    }
    let mut out: Vec<IndexEntry> =
        Vec::with_capacity((bytes.len() - INDEX_HEADER_BYTES) / INDEX_ENTRY_BYTES);
    for chunk in bytes[INDEX_HEADER_BYTES..].chunks_exact(INDEX_ENTRY_BYTES) {
        let crc = u32::from_le_bytes([chunk[16], chunk[17], chunk[18], chunk[19]]);
        if crc != crc32c::crc32c(&chunk[0..16]) {
            break;
        }
        let rel = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as u64;
        let position = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]) as u64;
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&chunk[8..16]);
        let e = IndexEntry {
            offset: base + rel,
            position,
            store_ms: i64::from_le_bytes(ms),
        };
        let ordered = out.last().is_none_or(|p| {
            e.offset > p.offset && e.position > p.position && e.store_ms >= p.store_ms
        });
        if !ordered {
            break;
        }
        out.push(e);
    }
    Some(out)
}

/// Reads and parses the index file at `path` (`None`: missing or not ours).
pub(crate) fn load(path: &Path, base: u64) -> Option<Vec<IndexEntry>> {
    let bytes = std::fs::read(path).ok()?;
    parse(&bytes, base)
}

/// The last entry at or before `offset`.
pub(crate) fn floor_by_offset(entries: &[IndexEntry], offset: u64) -> Option<&IndexEntry> {
    let i = entries.partition_point(|e| e.offset <= offset);
    i.checked_sub(1).map(|i| &entries[i])
}

/// The last entry whose `store_ms` is strictly before `ts`.
pub(crate) fn floor_before_time(entries: &[IndexEntry], ts: i64) -> Option<&IndexEntry> {
    let i = entries.partition_point(|e| e.store_ms < ts);
    i.checked_sub(1).map(|i| &entries[i])
}

/// Append-only writer of an index file.
#[derive(Debug)]
pub(crate) struct IndexWriter {
    file: SidecarFile,
    base: u64,
}

impl IndexWriter {
    /// Writes a fresh index file holding `entries` (crash-safe replace) and opens it for appending.
    pub(crate) fn rewrite(path: &Path, base: u64, entries: &[IndexEntry]) -> std::io::Result<Self> {
        let mut image = encode_header(base).to_vec();
        image.extend(encode_entries(base, entries));
        Ok(Self {
            file: SidecarFile::rewrite(path, &image)?,
            base,
        })
    }

    /// Appends entries; all or nothing.
    pub(crate) fn append(&mut self, entries: &[IndexEntry]) -> std::io::Result<()> {
        self.file.append(&encode_entries(self.base, entries))
    }

    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.file.sync()
    }

    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}

fn encode_entries(base: u64, entries: &[IndexEntry]) -> Vec<u8> {
    entries.iter().flat_map(|e| encode_entry(base, e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entries_strategy() -> impl Strategy<Value = Vec<IndexEntry>> {
        proptest::collection::vec((1u64..1000, 1u64..100_000, 0i64..1000), 0..200).prop_map(
            |steps| {
                let (mut off, mut pos, mut ms) = (100u64, 0u64, 1_700_000_000_000i64);
                let mut out = Vec::new();
                for (i, (d_off, d_pos, d_ms)) in steps.into_iter().enumerate() {
                    if i > 0 {
                        off += d_off;
                        pos += d_pos;
                        ms += d_ms;
                    }
                    out.push(IndexEntry {
                        offset: off,
                        position: pos,
                        store_ms: ms,
                    });
                }
                out
            },
        )
    }

    fn image(base: u64, entries: &[IndexEntry]) -> Vec<u8> {
        let mut b = encode_header(base).to_vec();
        for e in entries {
            b.extend_from_slice(&encode_entry(base, e));
        }
        b
    }

    proptest! {
        #[test]
        fn round_trips(entries in entries_strategy()) {
            prop_assert_eq!(parse(&image(100, &entries), 100), Some(entries));
        }

        #[test]
        fn a_torn_or_flipped_index_is_a_prefix(entries in entries_strategy(), cut in 0usize..5000, flip in 0usize..5000) {
            let mut img = image(100, &entries);
            let body = img.len() - INDEX_HEADER_BYTES;
            if body > 0 {
                let bit = INDEX_HEADER_BYTES + flip % body;
                img[bit] ^= 0x10;
            }
            img.truncate(INDEX_HEADER_BYTES + cut.min(body));
            let parsed = parse(&img, 100).unwrap();
            prop_assert!(parsed.len() <= entries.len());
            prop_assert_eq!(&parsed[..], &entries[..parsed.len()]);
        }

        #[test]
        fn floor_lookups_agree_with_a_linear_search(entries in entries_strategy(), probe in 0u64..300_000, ts in 1_699_999_999_000i64..1_700_000_300_000) {
            let lin = entries.iter().rev().find(|e| e.offset <= probe);
            prop_assert_eq!(floor_by_offset(&entries, probe), lin);
            let lin_t = entries.iter().rev().find(|e| e.store_ms < ts);
            prop_assert_eq!(floor_before_time(&entries, ts).map(|e| e.store_ms), lin_t.map(|e| e.store_ms));
        }
    }

    #[test]
    fn header_for_another_base_is_rejected() {
        assert_eq!(parse(&image(5, &[]), 6), None);
        assert_eq!(parse(b"nonsense", 0), None);
    }

    #[test]
    fn header_bytes_snapshot() {
        let e = IndexEntry {
            offset: 7,
            position: 4096,
            store_ms: 1_700_000_000_000,
        };
        let img = image(5, &[e]);
        assert_eq!(
            hex::encode(&img),
            "5348495801000000050000000000000002000000001000000068e5cf8b0100007d9e8d6a00000000"
        );
    }
}
