//! The key index of one segment (`{base:020}.keys`): one entry per
//! (message key, offset), for query by key — and one per record carrying an
//! *indexed property* (`HotConfig::indexed_properties`), so that the few
//! records with, say, a dedup id are found without reading the others.
//!
//! ```text
//! header (16 bytes): magic "SHKY", u32 version (1), u64 base offset
//! entry  (24 bytes): u64 FNV-1a hash of the key, u64 offset,
//!                    u32 CRC32C of the previous 16 bytes, u32 zero
//! ```
//!
//! Entries are appended *before* the records they describe, so a record never
//! exists without its key entries; an entry may exist without its record
//! (a failed append, a lost tail), and hashes collide — so every hit is checked
//! against the record itself. The file is fsynced together with the log on
//! SYNC commits and at seal.

use std::path::Path;

use crate::error::{HotError, Result};
use crate::sidecar::SidecarFile;

pub(crate) const KEYS_MAGIC: [u8; 4] = *b"SHKY";
pub(crate) const KEYS_VERSION: u32 = 1;
const HEADER_BYTES: usize = 16;
const ENTRY_BYTES: usize = 24;

/// The hash a key is indexed under: [`crate::fnv1a`] of its bytes (stored
/// on disk, so it must never change).
pub(crate) fn key_hash(key: &str) -> u64 {
    crate::fnv::fnv1a(&[key.as_bytes()])
}

/// The index term of "this record has property `name`" (cannot clash with a
/// real key's entries in a way that matters: every hit is checked against the record).
pub(crate) fn property_term(name: &str) -> String {
    format!("\0property:{name}")
}

/// The hashes a record is indexed under: its keys, then its indexed properties.
pub(crate) fn terms_of(
    keys: &[String],
    properties: &[(String, String)],
    indexed: &[String],
) -> Vec<u64> {
    let mut out: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
    for name in indexed {
        if properties.iter().any(|(k, _)| k == name) {
            out.push(key_hash(&property_term(name)));
        }
    }
    out
}

fn header(base: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[0..4].copy_from_slice(&KEYS_MAGIC);
    h[4..8].copy_from_slice(&KEYS_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&base.to_le_bytes());
    h
}

fn entry(hash: u64, offset: u64) -> [u8; ENTRY_BYTES] {
    let mut b = [0u8; ENTRY_BYTES];
    b[0..8].copy_from_slice(&hash.to_le_bytes());
    b[8..16].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Parses a keys file image into (hash, offset) pairs; `None` if the header is not ours.
/// Stops at the first entry failing its checksum.
pub(crate) fn parse(bytes: &[u8], base: u64) -> Option<Vec<(u64, u64)>> {
    if bytes.len() < HEADER_BYTES || bytes[..HEADER_BYTES] != header(base) {
        return None;
    }
    let mut out = Vec::new();
    for c in bytes[HEADER_BYTES..].chunks_exact(ENTRY_BYTES) {
        let crc = u32::from_le_bytes([c[16], c[17], c[18], c[19]]);
        if crc != crc32c::crc32c(&c[0..16]) {
            break;
        }
        let mut h = [0u8; 8];
        h.copy_from_slice(&c[0..8]);
        let mut o = [0u8; 8];
        o.copy_from_slice(&c[8..16]);
        out.push((u64::from_le_bytes(h), u64::from_le_bytes(o)));
    }
    Some(out)
}

/// Offsets whose entries match `key`'s hash (candidates, to be checked against the records).
///
/// Strict, unlike [`parse`] (which recovery uses on files a crash may have
/// torn): at run time every segment has a whole keys file, written by a
/// crash-safe replace when the segment is created or recovered and appended
/// only in whole entries, so a file that cannot be read, carries a foreign
/// header, ends mid-entry or holds an entry failing its checksum is an error.
/// Treating it as "no match" would make a key query (or the dedup rebuild)
/// silently miss records.
pub(crate) fn candidates(path: &Path, base: u64, key: &str) -> Result<Vec<u64>> {
    let bytes = std::fs::read(path).map_err(|e| HotError::io("reading a key index", path, e))?;
    let corrupt = |position: usize, reason: String| HotError::Corrupt {
        path: path.to_path_buf(),
        position: position as u64,
        reason,
    };
    if bytes.len() < HEADER_BYTES || bytes[..HEADER_BYTES] != header(base) {
        return Err(corrupt(0, format!("not a key index of segment {base}")));
    }
    let body = &bytes[HEADER_BYTES..];
    if body.len() % ENTRY_BYTES != 0 {
        let at = HEADER_BYTES + body.len() / ENTRY_BYTES * ENTRY_BYTES;
        return Err(corrupt(at, "key index ends inside an entry".into()));
    }
    let want = key_hash(key);
    let mut out = Vec::new();
    for (i, c) in body.chunks_exact(ENTRY_BYTES).enumerate() {
        let crc = u32::from_le_bytes([c[16], c[17], c[18], c[19]]);
        if crc != crc32c::crc32c(&c[0..16]) {
            let at = HEADER_BYTES + i * ENTRY_BYTES;
            return Err(corrupt(at, "key index entry fails its checksum".into()));
        }
        let mut h = [0u8; 8];
        h.copy_from_slice(&c[0..8]);
        if u64::from_le_bytes(h) == want {
            let mut o = [0u8; 8];
            o.copy_from_slice(&c[8..16]);
            out.push(u64::from_le_bytes(o));
        }
    }
    Ok(out)
}

/// Append-only writer of a keys file.
#[derive(Debug)]
pub(crate) struct KeysWriter {
    file: SidecarFile,
}

impl KeysWriter {
    /// Writes a fresh keys file with `entries` (crash-safe replace) and opens it for appending.
    pub(crate) fn rewrite(path: &Path, base: u64, entries: &[(u64, u64)]) -> std::io::Result<Self> {
        let mut image = header(base).to_vec();
        image.extend(entries.iter().flat_map(|(h, o)| entry(*h, *o)));
        Ok(Self {
            file: SidecarFile::rewrite(path, &image)?,
        })
    }

    /// Appends one entry per (hash, offset); all or nothing.
    pub(crate) fn append(&mut self, entries: &[(u64, u64)]) -> std::io::Result<()> {
        let bytes: Vec<u8> = entries.iter().flat_map(|(h, o)| entry(*h, *o)).collect();
        self.file.append(&bytes)
    }

    /// A handle to fsync if entries were added since the last call (for group commit).
    pub(crate) fn take_unsynced(&mut self) -> Option<std::fs::File> {
        self.file.take_unsynced()
    }

    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.file.sync()
    }

    /// Another handle to the file (to fsync it without `&mut`).
    pub(crate) fn handle(&self) -> std::io::Result<std::fs::File> {
        self.file.handle()
    }

    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(entries in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..100)) {
            let mut img = header(9).to_vec();
            for (h, o) in &entries {
                img.extend_from_slice(&entry(*h, *o));
            }
            prop_assert_eq!(parse(&img, 9), Some(entries));
        }
    }

    #[test]
    fn hash_is_stable() {
        // FNV-1a test vectors.
        assert_eq!(key_hash(""), 0xcbf29ce484222325);
        assert_eq!(key_hash("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(key_hash("key-3"), 0x7113_58f2_95f2_7b40);
    }
}
