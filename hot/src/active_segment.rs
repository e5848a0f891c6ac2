//! The active segment of a queue: `{base:020}.log.partial`, written through a
//! read-write memory map.
//!
//! Invariants:
//! - the map covers `map_len` bytes, but only `[0, allocated)` has real disk
//!   blocks ([`crate::fs_util::allocate`]); a batch is written only after the
//!   blocks under it are allocated, so a full disk is an error *before* any
//!   byte of the batch lands, and a write can never fault;
//! - `[0, write_pos)` holds whole, checksummed records with contiguous
//!   offsets `[base, end)`; bytes after `write_pos` are zero;
//! - key entries of a batch are appended before its records, index entries
//!   after (the index is only a cache, see [`crate::index`]);
//! - sealing ([`ActiveSegment::seal_in_place`]) needs only `&self`, so a roll
//!   seals a segment it stopped writing while readers still read its map:
//!   the file is cut only to `write_pos`, never below what readers see.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions};

use crate::error::{HotError, Result};
use crate::fs_util;
use crate::index::{IndexEntry, IndexWriter};
use crate::key_index::{KeysWriter, terms_of};
use crate::message_id::MessageId;
use crate::queue::Appended;
use crate::record::{self, AppendRequest};
use crate::segment_view::SegmentView;

/// Smallest allocation step of the active file.
const MIN_GROWTH: u64 = 64 * 1024;
/// Largest allocation step of the active file.
const MAX_GROWTH: u64 = 8 * 1024 * 1024;

pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}
pub(crate) fn partial_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log.partial"))
}
pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}
pub(crate) fn keys_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.keys"))
}

/// The store time and id of each record of a batch.
#[derive(Clone, Copy)]
pub(crate) enum Stamps<'a> {
    /// New messages: one store time for the batch, fresh ids.
    Fresh(i64),
    /// Messages recovered from elsewhere keep theirs (one per record).
    Given(&'a [(i64, MessageId)]),
    /// New messages: one store time for the batch, ids minted by the caller
    /// from (index in the batch, offset).
    Minted(i64, &'a (dyn Fn(usize, u64) -> MessageId + Sync)),
}

/// Everything recovery learned about an existing active file.
#[derive(Debug)]
pub(crate) struct RecoveredState {
    pub write_pos: u64,
    pub end: u64,
    pub index: Vec<IndexEntry>,
    pub keys: Vec<(u64, u64)>,
    pub first_store_ms: Option<i64>,
    pub last_record: Option<LastRecord>,
}

/// Position and time of the newest record (seal indexes it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastRecord {
    pub position: u64,
    pub offset: u64,
    pub store_ms: i64,
}

/// The segment being written.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub base: u64,
    /// Offset the next record gets.
    pub end: u64,
    pub write_pos: u64,
    pub first_store_ms: Option<i64>,
    pub last_record: Option<LastRecord>,
    dir: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    mmap: MmapMut,
    map_len: u64,
    allocated: u64,
    index: Vec<IndexEntry>,
    index_writer: IndexWriter,
    keys: KeysWriter,
    last_indexed_pos: Option<u64>,
    interval: u64,
}

impl ActiveSegment {
    /// Creates an empty active segment and makes its existence durable.
    pub(crate) fn create(dir: &Path, base: u64, map_len: u64, interval: u64) -> Result<Self> {
        let path = partial_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| HotError::io("creating a segment", &path, e))?;
        let setup = || -> std::io::Result<()> {
            fs_util::allocate(&file, 0, MIN_GROWTH.min(map_len))?;
            file.sync_all()
        };
        if let Err(e) = setup() {
            let _ = std::fs::remove_file(&path);
            return Err(HotError::io("allocating a new segment", &path, e));
        }
        let state = RecoveredState {
            write_pos: 0,
            end: base,
            index: Vec::new(),
            keys: Vec::new(),
            first_store_ms: None,
            last_record: None,
        };
        let seg = Self::from_file(dir, base, file, map_len, interval, state);
        if seg.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        let seg = seg?;
        fs_util::fsync_dir(dir).map_err(|e| HotError::io("syncing a queue directory", dir, e))?;
        Ok(seg)
    }

    /// Opens an active file whose valid contents recovery has established.
    /// The file must already be cut to `state.write_pos` (or be longer only by zeros).
    pub(crate) fn from_file(
        dir: &Path,
        base: u64,
        file: File,
        map_len: u64,
        interval: u64,
        state: RecoveredState,
    ) -> Result<Self> {
        let path = partial_path(dir, base);
        let allocated = file
            .metadata()
            .map_err(|e| HotError::io("reading a segment's size", &path, e))?
            .len();
        let map_len = map_len.max(allocated).max(state.write_pos).max(MIN_GROWTH);
        // SAFETY: the file is owned by this queue and never truncated below the
        // readable region while mapped; pages past EOF are never touched before
        // `allocate` extends the file over them.
        let mmap = unsafe { MmapOptions::new().len(map_len as usize).map_mut(&file) }
            .map_err(|e| HotError::io("mapping a segment", &path, e))?;
        let index_writer = IndexWriter::rewrite(&index_path(dir, base), base, &state.index)
            .map_err(|e| HotError::io("writing an index", index_path(dir, base), e))?;
        let keys = KeysWriter::rewrite(&keys_path(dir, base), base, &state.keys)
            .map_err(|e| HotError::io("writing a key index", keys_path(dir, base), e))?;
        Ok(Self {
            base,
            end: state.end,
            write_pos: state.write_pos,
            first_store_ms: state.first_store_ms,
            last_record: state.last_record,
            dir: dir.to_path_buf(),
            path,
            file: Arc::new(file),
            mmap,
            map_len,
            allocated,
            last_indexed_pos: state.index.last().map(|e| e.position),
            index: state.index,
            index_writer,
            keys,
            interval,
        })
    }

    pub(crate) fn view(&self) -> SegmentView<'_> {
        SegmentView {
            base: self.base,
            end: self.end,
            bytes: &self.mmap[..self.write_pos as usize],
            index: &self.index,
            path: &self.path,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.write_pos == 0
    }

    /// Whether `total` more bytes fit in the mapped range.
    pub(crate) fn fits(&self, total: u64) -> bool {
        self.write_pos + total <= self.map_len
    }

    /// Grows the mapping of an empty segment so a batch of `total` bytes fits.
    pub(crate) fn grow_map(&mut self, total: u64) -> Result<()> {
        debug_assert!(self.is_empty());
        // SAFETY: as in `from_file`; the old map is dropped when replaced.
        let mmap = unsafe { MmapOptions::new().len(total as usize).map_mut(&*self.file) }
            .map_err(|e| HotError::io("mapping a segment", &self.path, e))?;
        self.mmap = mmap;
        self.map_len = total;
        Ok(())
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.allocated
    }

    /// Offsets of records that may carry `key` (to be checked against the
    /// records). An unreadable or damaged key index is an error, never "none".
    pub(crate) fn key_candidates(&self, key: &str) -> Result<Vec<u64>> {
        crate::key_index::candidates(self.keys.path(), self.base, key)
    }

    fn ensure_allocated(&mut self, needed: u64) -> Result<()> {
        if needed <= self.allocated {
            return Ok(());
        }
        let step = self.allocated.clamp(MIN_GROWTH, MAX_GROWTH);
        let target = needed.max(self.allocated + step).min(self.map_len);
        if let Err(e) = fs_util::allocate(&self.file, self.allocated, target) {
            // A partial allocation may have grown the file; keep our view of it exact.
            if let Ok(m) = self.file.metadata() {
                self.allocated = m.len().min(self.map_len);
            }
            return Err(HotError::io("allocating segment space", &self.path, e));
        }
        self.allocated = target;
        Ok(())
    }

    /// Writes a batch whose encoded lengths are `lens`, offsets from `self.end`.
    /// All or nothing: on error nothing of the batch is readable or recovered.
    pub(crate) fn append(
        &mut self,
        batch: &[AppendRequest],
        lens: &[usize],
        stamps: Stamps<'_>,
        queue: u32,
        indexed: &[String],
    ) -> Result<Vec<Appended>> {
        let total: u64 = lens.iter().map(|l| *l as u64).sum();
        debug_assert!(self.fits(total));
        self.ensure_allocated(self.write_pos + total)?;

        let first = self.end;
        let key_entries: Vec<(u64, u64)> = batch
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                terms_of(&r.keys, &r.properties, indexed)
                    .into_iter()
                    .map(move |h| (h, first + i as u64))
            })
            .collect();
        self.keys
            .append(&key_entries)
            .map_err(|e| HotError::io("writing the key index", self.keys.path(), e))?;

        let mut out = Vec::with_capacity(batch.len());
        let mut new_index = Vec::new();
        let mut pos = self.write_pos;
        for (i, (req, len)) in batch.iter().zip(lens).enumerate() {
            let offset = first + i as u64;
            let (store_ms, id) = match stamps {
                Stamps::Fresh(ms) => (ms, MessageId::new(ms, queue, offset, rand::random::<u32>())),
                Stamps::Given(given) => given[i],
                Stamps::Minted(ms, mint) => (ms, mint(i, offset)),
            };
            record::encode_into(
                &mut self.mmap[pos as usize..pos as usize + len],
                req,
                offset,
                store_ms,
                id,
            );
            if self
                .last_indexed_pos
                .is_none_or(|p| pos - p >= self.interval)
            {
                new_index.push(IndexEntry {
                    offset,
                    position: pos,
                    store_ms,
                });
                self.last_indexed_pos = Some(pos);
            }
            self.last_record = Some(LastRecord {
                position: pos,
                offset,
                store_ms,
            });
            out.push(Appended {
                offset,
                message_id: id,
                store_ms,
            });
            pos += *len as u64;
        }
        self.write_pos = pos;
        self.end = first + batch.len() as u64;
        if let Some(first) = out.first() {
            self.first_store_ms.get_or_insert(first.store_ms);
        }
        if let Err(e) = self.index_writer.append(&new_index) {
            // The index is a cache: a missing entry only lengthens scans, recovery re-derives it.
            tracing::warn!(path = %self.index_writer.path().display(), error = %e, "could not append to a segment index");
        }
        self.index.extend(new_index);
        Ok(out)
    }

    /// Handles to fsync for a group commit: the log, and the key index if it grew.
    pub(crate) fn sync_handles(&mut self) -> (Arc<File>, Option<File>) {
        (self.file.clone(), self.keys.take_unsynced())
    }

    /// Makes the segment immutable (recovery's path, which owns it):
    /// [`Self::index_last_record`], then [`Self::seal_in_place`].
    pub(crate) fn seal(mut self) -> Result<SealedParts> {
        self.index_last_record()?;
        self.seal_in_place()
    }

    /// Adds the index entry of the newest record if it has none, so that a
    /// sealed segment's index ends at its last record. A buffered write, no
    /// fsync (that is [`Self::seal_in_place`]'s).
    pub(crate) fn index_last_record(&mut self) -> Result<()> {
        let Some(last) = self.last_record else {
            return Ok(());
        };
        if self.last_indexed_pos == Some(last.position) {
            return Ok(());
        }
        let e = IndexEntry {
            offset: last.offset,
            position: last.position,
            store_ms: last.store_ms,
        };
        self.index_writer.append(&[e]).map_err(|err| {
            HotError::io("indexing the last record", self.index_writer.path(), err)
        })?;
        self.index.push(e);
        self.last_indexed_pos = Some(last.position);
        Ok(())
    }

    /// The files a group commit must fsync while this segment is being sealed
    /// (its log and key index): records of the next segment may be
    /// acknowledged as durable before the seal's own fsyncs are done.
    pub(crate) fn sealing_sync_files(&self) -> Result<Vec<Arc<File>>> {
        let keys = self
            .keys
            .handle()
            .map_err(|e| HotError::io("opening a key index to sync", self.keys.path(), e))?;
        Ok(vec![self.file.clone(), Arc::new(keys)])
    }

    /// Seals a segment no longer written to (the caller stopped appending and
    /// called [`Self::index_last_record`]) while readers may still read it:
    /// flushes the map, syncs both indexes, cuts the file to its records,
    /// syncs it, renames `.log.partial` to `.log` and syncs the directory.
    /// The map stays valid for readers throughout: the cut only drops the zeros
    /// after `write_pos`, which no reader touches, and a rename does not move a
    /// mapping. Returns what the sealed segment needs to be opened.
    pub(crate) fn seal_in_place(&self) -> Result<SealedParts> {
        let io = |what: &'static str, p: &Path, e: std::io::Error| HotError::io(what, p, e);
        debug_assert!(
            self.last_record
                .is_none_or(|l| self.last_indexed_pos == Some(l.position))
        );
        self.mmap
            .flush()
            .map_err(|e| io("flushing a segment", &self.path, e))?;
        self.index_writer
            .sync()
            .map_err(|e| io("syncing an index", self.index_writer.path(), e))?;
        self.keys
            .sync()
            .map_err(|e| io("syncing a key index", self.keys.path(), e))?;
        self.file
            .set_len(self.write_pos)
            .map_err(|e| io("cutting a segment to size", &self.path, e))?;
        self.file
            .sync_all()
            .map_err(|e| io("syncing a segment", &self.path, e))?;
        let sealed_path = log_path(&self.dir, self.base);
        std::fs::rename(&self.path, &sealed_path)
            .map_err(|e| io("renaming a sealed segment", &self.path, e))?;
        fs_util::fsync_dir(&self.dir).map_err(|e| io("syncing a queue directory", &self.dir, e))?;
        Ok(SealedParts {
            dir: self.dir.clone(),
            base: self.base,
            end: self.end,
            first_store_ms: self.first_store_ms.unwrap_or(0),
            last_store_ms: self.last_record.map_or(0, |l| l.store_ms),
            index: self.index.clone(),
        })
    }
}

/// What a freshly sealed segment hands to [`crate::sealed_segment::SealedSegment::from_parts`].
#[derive(Debug)]
pub(crate) struct SealedParts {
    pub dir: PathBuf,
    pub base: u64,
    pub end: u64,
    pub first_store_ms: i64,
    pub last_store_ms: i64,
    pub index: Vec<IndexEntry>,
}
