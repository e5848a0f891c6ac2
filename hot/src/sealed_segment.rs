//! Sealed segments: immutable `{base:020}.log` files, mapped read-only.
//!
//! Opening one (at start) trusts nothing blindly: the index must start at the
//! segment's first record and its last entry must point at a record that
//! passes its CRC, otherwise the index is rebuilt from the log. The end offset
//! comes from a scan of the bytes after the last index entry (at most one
//! index interval when the index is whole). A missing or foreign key index is
//! rebuilt as well.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::active_segment::{SealedParts, index_path, keys_path, log_path};
use crate::error::{HotError, Result};
use crate::index::{self, IndexEntry, IndexWriter};
use crate::key_index::{self, KeysWriter};
use crate::record;
use crate::segment_view::{self, SegmentView};
use crate::store::HotConfig;

/// An immutable segment.
#[derive(Debug)]
pub(crate) struct SealedSegment {
    pub base: u64,
    /// Offset after the last record.
    pub end: u64,
    pub first_store_ms: i64,
    pub last_store_ms: i64,
    path: PathBuf,
    keys_path: PathBuf,
    mmap: Option<Mmap>,
    index: Vec<IndexEntry>,
    bytes: u64,
}

fn map(path: &Path) -> Result<(Option<Mmap>, u64)> {
    let file = File::open(path).map_err(|e| HotError::io("opening a segment", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| HotError::io("reading a segment's size", path, e))?
        .len();
    if len == 0 {
        return Ok((None, 0));
    }
    // SAFETY: sealed segments are never written or truncated while mapped.
    let mmap =
        unsafe { Mmap::map(&file) }.map_err(|e| HotError::io("mapping a segment", path, e))?;
    Ok((Some(mmap), len))
}

impl SealedSegment {
    /// Opens a segment that was just sealed by this process (its index is known good).
    pub(crate) fn from_parts(parts: SealedParts) -> Result<Self> {
        let path = log_path(&parts.dir, parts.base);
        let (mmap, bytes) = map(&path)?;
        Ok(Self {
            base: parts.base,
            end: parts.end,
            first_store_ms: parts.first_store_ms,
            last_store_ms: parts.last_store_ms,
            keys_path: keys_path(&parts.dir, parts.base),
            path,
            mmap,
            index: parts.index,
            bytes,
        })
    }

    /// Opens a sealed segment found on disk at start. `next_base` is the base
    /// of the following segment, when there is one.
    pub(crate) fn open(
        dir: &Path,
        base: u64,
        next_base: Option<u64>,
        config: &HotConfig,
    ) -> Result<Self> {
        let (interval, indexed) = (config.index_interval_bytes, &config.indexed_properties);
        let path = log_path(dir, base);
        let (mmap, bytes) = map(&path)?;
        let data: &[u8] = mmap.as_deref().unwrap_or(&[]);

        let idx_path = index_path(dir, base);
        let mut entries = index::load(&idx_path, base).unwrap_or_default();
        let trustworthy = entries
            .first()
            .is_some_and(|e| e.offset == base && e.position == 0)
            && entries.last().is_some_and(|e| {
                (e.position as usize) < data.len()
                    && record::verify(&data[e.position as usize..])
                        .is_ok_and(|h| h.offset == e.offset)
            });
        if !trustworthy && !data.is_empty() {
            tracing::warn!(path = %idx_path.display(), "segment index missing or damaged; rebuilding it from the log");
            entries = rebuild_index(data, base, interval);
            IndexWriter::rewrite(&idx_path, base, &entries)
                .map_err(|e| HotError::io("rewriting an index", &idx_path, e))?;
        }

        let (start_pos, start_off) = entries.last().map_or((0, base), |e| (e.position, e.offset));
        let tail = segment_view::scan(data, start_pos, start_off, |_, _| {});
        let mut end = tail.end_offset;
        if let Some(why) = &tail.stopped_by {
            tracing::error!(path = %path.display(), position = tail.end_position, reason = %why,
                "sealed segment is damaged after this point; reads there will fail");
            if let Some(next) = next_base {
                end = end.max(next);
            }
        }
        let first_store_ms = entries.first().map_or(0, |e| e.store_ms);
        let last_store_ms = tail.last_store_ms.unwrap_or(first_store_ms);

        let kpath = keys_path(dir, base);
        if !keys_file_is_ours(&kpath, base) && !data.is_empty() {
            tracing::warn!(path = %kpath.display(), "key index missing or damaged; rebuilding it from the log");
            let keys = collect_keys(data, 0, base, indexed);
            KeysWriter::rewrite(&kpath, base, &keys)
                .map_err(|e| HotError::io("rewriting a key index", &kpath, e))?;
        }
        Ok(Self {
            base,
            end,
            first_store_ms,
            last_store_ms,
            path,
            keys_path: kpath,
            mmap,
            index: entries,
            bytes,
        })
    }

    pub(crate) fn view(&self) -> SegmentView<'_> {
        SegmentView {
            base: self.base,
            end: self.end,
            bytes: self.mmap.as_deref().unwrap_or(&[]),
            index: &self.index,
            path: &self.path,
        }
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.bytes
    }

    /// Removes the segment's files (the log first, so a crash never leaves a
    /// log without its sidecars). Open maps stay valid until dropped.
    pub(crate) fn delete_files(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        for p in [
            self.path.clone(),
            index_path(dir, self.base),
            self.keys_path.clone(),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(HotError::io("deleting an evicted segment", &p, e)),
            }
        }
        Ok(())
    }

    /// Offsets of records that may carry `key` (to be checked against the
    /// records). An unreadable or damaged key index is an error, never "none";
    /// only a segment without records has nothing to look up (at start a
    /// missing key index is rebuilt only for segments holding records).
    pub(crate) fn key_candidates(&self, key: &str) -> Result<Vec<u64>> {
        if self.end == self.base {
            return Ok(Vec::new());
        }
        key_index::candidates(&self.keys_path, self.base, key)
    }
}

fn keys_file_is_ours(path: &Path, base: u64) -> bool {
    use std::io::Read;
    let mut header = [0u8; 16];
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    f.read_exact(&mut header).is_ok() && key_index::parse(&header, base).is_some()
}

/// Index entries for a whole log image: the first record, then one per `interval` bytes.
pub(crate) fn rebuild_index(data: &[u8], base: u64, interval: u64) -> Vec<IndexEntry> {
    let mut entries: Vec<IndexEntry> = Vec::new();
    let mut at = base;
    segment_view::scan(data, 0, base, |pos, rec| {
        if entries.last().is_none_or(|e| pos - e.position >= interval)
            && let Ok(h) = record::peek_header(rec)
        {
            entries.push(IndexEntry {
                offset: at,
                position: pos,
                store_ms: h.store_ms,
            });
        }
        at += 1;
    });
    entries
}

/// (key hash, offset) of every key of every valid record from `(pos, offset)` on.
pub(crate) fn collect_keys(
    data: &[u8],
    pos: u64,
    offset: u64,
    indexed: &[String],
) -> Vec<(u64, u64)> {
    let mut keys = Vec::new();
    segment_view::scan(data, pos, offset, |_, rec| {
        if let Ok(r) = record::decode(rec) {
            keys.extend(
                key_index::terms_of(&r.keys, &r.properties, indexed)
                    .into_iter()
                    .map(|h| (h, r.offset)),
            );
        }
    });
    keys
}
