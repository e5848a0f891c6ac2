//! Timer runs: immutable sorted files of a queue's pending delay timers in
//! the object store, so that timers due far in the future cost no memory.
//! A node keeps only each run's small footer (block index and filters) and
//! loads the blocks just ahead of their due time.
//!
//! A run holds entries in strictly ascending [`TimerKey`] order
//! `(deliver_at_ms, seq)`: pending timers (their journal record, in the hot
//! tier's own encoding, CRC included) and tombstones (the timer with this key
//! was recalled; it may live in another, older run). Runs live at
//! `{prefix}/topics/{topic}/timers/{queue}/runs/{name}`
//! ([`crate::paths::Layout::timer_run`]); which runs are live is the
//! [`crate::timer_checkpoint::TimerCheckpoint`]'s business.
//!
//! Byte layout (integers little-endian):
//!
//! ```text
//! header   "SHTR" | version u16
//! block*   entries u32 |
//!            per entry: kind u8 (0 timer, 1 tombstone) | deliver_at i64 | seq u64
//!                       [timers only: record len u32 | hot-encoded record]
//!          | crc32c u32 of the block's bytes before it
//! footer   version u16 | blocks u32 |
//!            per block: first (i64, u64) | last (i64, u64) | offset u64 | len u32
//!                       | entries u32 | bloom len u32 | bloom bytes
//!          | crc32c u32 of the footer's bytes before it
//! trailer  footer offset u64 | footer len u32 | "SHTR"
//! ```
//!
//! A block closes once it reaches the writer's target size, so it holds at
//! least one entry. Blocks tile the bytes between the header and the footer,
//! each starting where the one before ends. The footer's position is also in
//! the run's [`RunSummary`] (kept in the checkpoint), so a reader needs one
//! ranged GET for the footer (the trailer, fetched with it, must agree) and
//! at most one per stretch of adjacent blocks (`ObjectStore::get_ranges` may
//! merge nearby stretches too).
//!
//! Each block's bloom filter holds the message keys (`Record::keys`) of its
//! timers: about 10 bits per distinct key (at least 64), 7 probes by double
//! hashing `h1 + i * h2` over the stable 64-bit FNV-1a of the key
//! ([`shale_hot::fnv1a`]), `h2` being the FNV-1a of the key prefixed by
//! byte `0x01`. The hash is persisted, so it must never depend on the build
//! or the machine. A block without message keys has an empty filter, which
//! matches nothing.
//!
//! Invariants: keys strictly ascend within a run (no key twice, so no timer
//! and its tombstone in one run); a timer's record decodes, its offset is the
//! key's seq and its `deliver_at_ms` the key's time (checked when pushed;
//! readers rely on the block CRC and hand records out undecoded, as slices of
//! what was read). Any truncation or flipped
//! byte in a block, the footer or the trailer decodes as an error (CRC32C,
//! lengths, cross-checks), never as other entries and never as a panic.
//! Runs are written create-only and never changed.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TieringError};

/// `(deliver_at_ms, seq)`: delivery order, ties by journal offset.
pub type TimerKey = (i64, u64);

const MAGIC: &[u8; 4] = b"SHTR";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 4 + 2;
const TRAILER_LEN: usize = 8 + 4 + 4;
const KIND_TIMER: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;
/// Kind, deliver_at and seq.
const ENTRY_HEAD_LEN: usize = 1 + 8 + 8;
/// Entry count and CRC.
const BLOCK_FRAME_LEN: usize = 4 + 4;
/// A block's index entry without its bloom bytes.
const BLOCK_META_LEN: usize = 16 + 16 + 8 + 4 + 4 + 4;
/// Version, block count and CRC.
const FOOTER_FRAME_LEN: usize = 2 + 4 + 4;
const BLOOM_BITS_PER_KEY: usize = 10;
const BLOOM_MIN_BITS: usize = 64;
const BLOOM_PROBES: u64 = 7;
/// Largest block target: a block (at most this plus one record) must fit
/// its `u32` length.
const MAX_BLOCK_BYTES: usize = 1 << 30;

/// One entry of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEntry {
    /// A pending timer: `record` is the hot-encoded journal record (its
    /// `offset` is the seq, its `deliver_at_ms` is `key.0`).
    Timer { key: TimerKey, record: Bytes },
    /// The timer `key` was recalled (it may live in another run).
    Tombstone { key: TimerKey },
}

impl RunEntry {
    /// The entry's place in the run.
    pub fn key(&self) -> TimerKey {
        match self {
            RunEntry::Timer { key, .. } | RunEntry::Tombstone { key } => *key,
        }
    }
}

/// What a run holds, without reading it: kept in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub min_key: Option<TimerKey>,
    pub max_key: Option<TimerKey>,
    pub timers: u64,
    pub tombstones: u64,
    /// The whole object's size.
    pub bytes: u64,
    /// Where the footer is, so that a reader needs one ranged GET for it.
    pub footer_offset: u64,
    pub footer_len: u32,
}

impl RunSummary {
    /// The summary's own consistency: keys present exactly when there are
    /// entries, in order, and the footer and trailer inside the object.
    pub fn check(&self) -> std::result::Result<(), String> {
        let entries = self.timers.saturating_add(self.tombstones);
        match (self.min_key, self.max_key) {
            (Some(min), Some(max)) if entries > 0 => {
                if min > max {
                    return Err(format!("min_key {min:?} above max_key {max:?}"));
                }
            }
            (None, None) if entries == 0 => {}
            _ => {
                return Err(format!(
                    "{entries} entries with min_key {:?} and max_key {:?}",
                    self.min_key, self.max_key
                ));
            }
        }
        let end = self
            .footer_offset
            .checked_add(u64::from(self.footer_len))
            .and_then(|e| e.checked_add(TRAILER_LEN as u64));
        if self.footer_offset < HEADER_LEN as u64 || end != Some(self.bytes) {
            return Err(format!(
                "a footer of {} bytes at {} does not end a run of {} bytes",
                self.footer_len, self.footer_offset, self.bytes
            ));
        }
        Ok(())
    }
}

/// A finished run: its bytes, its summary and its block index.
#[derive(Debug, Clone)]
pub struct EncodedRun {
    pub bytes: Bytes,
    pub summary: RunSummary,
    /// The footer as written (what [`read_footer`] would return).
    pub footer: RunFooter,
}

/// The index entry of one block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockMeta {
    pub first: TimerKey,
    pub last: TimerKey,
    /// Where the block starts in the run.
    pub offset: u64,
    pub len: u32,
    pub entries: u32,
    /// Bloom filter of the message keys of the block's timers (empty: none).
    bloom: Bytes,
}

impl BlockMeta {
    /// Whether a timer of this block may carry message key `key` (never a
    /// false negative; false positives about 1%).
    pub fn may_contain_message_key(&self, key: &str) -> bool {
        let bits = self.bloom.len() as u64 * 8;
        if bits == 0 {
            return false;
        }
        probes(key_hashes(key), bits)
            .all(|bit| self.bloom[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }

    /// Bytes of the block's bloom filter.
    pub fn bloom_len(&self) -> usize {
        self.bloom.len()
    }

    fn range(&self) -> std::result::Result<Range<u64>, String> {
        let end = self
            .offset
            .checked_add(u64::from(self.len))
            .ok_or_else(|| format!("block at {} overflows", self.offset))?;
        Ok(self.offset..end)
    }
}

/// A run's block index, in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFooter {
    pub blocks: Vec<BlockMeta>,
}

impl RunFooter {
    /// Blocks that may hold keys in `(after, through]`, in order (every
    /// block overlapping that range).
    pub fn blocks_between(&self, after: Option<TimerKey>, through: TimerKey) -> &[BlockMeta] {
        let start = match after {
            Some(after) => self.blocks.partition_point(|b| b.last <= after),
            None => 0,
        };
        let end = self.blocks.partition_point(|b| b.first <= through);
        &self.blocks[start..end.max(start)]
    }

    /// The block that would hold `key`, if any.
    pub fn block_of(&self, key: TimerKey) -> Option<&BlockMeta> {
        let i = self.blocks.partition_point(|b| b.last < key);
        self.blocks.get(i).filter(|b| b.first <= key)
    }

    /// Entries of every block.
    pub fn entries(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.entries)).sum()
    }

    /// Approximate in-memory size (bytes), for accounting.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.blocks.capacity() * std::mem::size_of::<BlockMeta>()
            + self.blocks.iter().map(BlockMeta::bloom_len).sum::<usize>()
    }
}

/// The block being filled.
#[derive(Debug)]
struct OpenBlock {
    offset: usize,
    first: TimerKey,
    last: TimerKey,
    entries: u32,
    /// Hashes of the message keys of its timers.
    hashes: Vec<(u64, u64)>,
}

/// Builds a run in memory; entries must be pushed in strictly ascending key
/// order.
#[derive(Debug)]
pub struct RunWriter {
    block_bytes: usize,
    out: BytesMut,
    blocks: Vec<BlockMeta>,
    open: Option<OpenBlock>,
    min_key: Option<TimerKey>,
    last_key: Option<TimerKey>,
    timers: u64,
    tombstones: u64,
}

impl RunWriter {
    /// A writer closing a block once it reaches `block_bytes` (e.g. 64 KiB;
    /// at most 1 GiB). Smaller blocks mean smaller reads and a bigger footer.
    pub fn new(block_bytes: usize) -> Self {
        let mut out = BytesMut::new();
        out.put_slice(MAGIC);
        out.put_u16_le(VERSION);
        Self {
            block_bytes: block_bytes.min(MAX_BLOCK_BYTES),
            out,
            blocks: Vec::new(),
            open: None,
            min_key: None,
            last_key: None,
            timers: 0,
            tombstones: 0,
        }
    }

    /// Appends `entry`. Refused (nothing written) when its key is not above
    /// the previous one, or when a timer's record does not decode or does not
    /// match its key.
    pub fn push(&mut self, entry: RunEntry) -> std::result::Result<(), String> {
        let key = entry.key();
        if let Some(last) = self.last_key.filter(|last| key <= *last) {
            return Err(format!("key {key:?} does not follow {last:?}"));
        }
        let hashes = match &entry {
            RunEntry::Timer { record, .. } => record_key_hashes(key, record)?,
            RunEntry::Tombstone { .. } => Vec::new(),
        };
        let open = self.open.get_or_insert_with(|| {
            let offset = self.out.len();
            self.out.put_u32_le(0); // the entry count, set when the block closes
            OpenBlock {
                offset,
                first: key,
                last: key,
                entries: 0,
                hashes: Vec::new(),
            }
        });
        match &entry {
            RunEntry::Timer { record, .. } => {
                self.out.put_u8(KIND_TIMER);
                put_key(&mut self.out, key);
                // At most shale_hot::MAX_RECORD_BYTES: decoded above.
                self.out.put_u32_le(record.len() as u32);
                self.out.put_slice(record);
                self.timers += 1;
            }
            RunEntry::Tombstone { .. } => {
                self.out.put_u8(KIND_TOMBSTONE);
                put_key(&mut self.out, key);
                self.tombstones += 1;
            }
        }
        open.last = key;
        open.entries += 1;
        open.hashes.extend(hashes);
        self.min_key.get_or_insert(key);
        self.last_key = Some(key);
        if self.out.len() - open.offset >= self.block_bytes {
            self.close_block();
        }
        Ok(())
    }

    /// True before the first entry.
    pub fn is_empty(&self) -> bool {
        self.last_key.is_none()
    }

    fn close_block(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        let start = open.offset;
        self.out[start..start + 4].copy_from_slice(&open.entries.to_le_bytes());
        let crc = crc32c::crc32c(&self.out[start..]);
        self.out.put_u32_le(crc);
        open.hashes.sort_unstable();
        open.hashes.dedup();
        self.blocks.push(BlockMeta {
            first: open.first,
            last: open.last,
            offset: start as u64,
            len: u32::try_from(self.out.len() - start).expect("a block stays under 4 GiB"),
            entries: open.entries,
            bloom: build_bloom(&open.hashes),
        });
    }

    /// Closes the last block and writes the footer and trailer. An empty run
    /// (no blocks) is valid.
    pub fn finish(mut self) -> EncodedRun {
        self.close_block();
        let footer_offset = self.out.len();
        let footer = RunFooter {
            blocks: std::mem::take(&mut self.blocks),
        };
        encode_footer(&mut self.out, &footer);
        let footer_len = self.out.len() - footer_offset;
        self.out.put_u64_le(footer_offset as u64);
        self.out.put_u32_le(footer_len as u32);
        self.out.put_slice(MAGIC);
        let summary = RunSummary {
            min_key: self.min_key,
            max_key: self.last_key,
            timers: self.timers,
            tombstones: self.tombstones,
            bytes: self.out.len() as u64,
            footer_offset: footer_offset as u64,
            footer_len: footer_len as u32,
        };
        debug_assert_eq!(summary.check(), Ok(()));
        EncodedRun {
            bytes: self.out.freeze(),
            summary,
            footer,
        }
    }
}

fn put_key(out: &mut BytesMut, key: TimerKey) {
    out.put_i64_le(key.0);
    out.put_u64_le(key.1);
}

/// Checks that `record` is the journal record of timer `key` and returns the
/// hashes of its message keys.
fn record_key_hashes(key: TimerKey, record: &[u8]) -> std::result::Result<Vec<(u64, u64)>, String> {
    let r = shale_hot::decode(record).map_err(|e| format!("timer {key:?}: {e}"))?;
    if r.encoded_len() != record.len() {
        return Err(format!(
            "timer {key:?}: {} bytes after its record",
            record.len() - r.encoded_len()
        ));
    }
    if r.offset != key.1 || r.deliver_at_ms != Some(key.0) {
        return Err(format!(
            "timer {key:?} holds the record of offset {} due at {:?}",
            r.offset, r.deliver_at_ms
        ));
    }
    Ok(r.keys.iter().map(|k| key_hashes(k)).collect())
}

fn encode_footer(out: &mut BytesMut, footer: &RunFooter) {
    let start = out.len();
    out.put_u16_le(VERSION);
    out.put_u32_le(footer.blocks.len() as u32);
    for b in &footer.blocks {
        put_key(out, b.first);
        put_key(out, b.last);
        out.put_u64_le(b.offset);
        out.put_u32_le(b.len);
        out.put_u32_le(b.entries);
        out.put_u32_le(b.bloom.len() as u32);
        out.put_slice(&b.bloom);
    }
    let crc = crc32c::crc32c(&out[start..]);
    out.put_u32_le(crc);
}

/// The two stable hashes probes are derived from.
fn key_hashes(key: &str) -> (u64, u64) {
    let bytes = key.as_bytes();
    (
        shale_hot::fnv1a(&[bytes]),
        shale_hot::fnv1a(&[&[0x01], bytes]),
    )
}

/// The `BLOOM_PROBES` bit positions of a key in a filter of `bits` bits.
fn probes((h1, h2): (u64, u64), bits: u64) -> impl Iterator<Item = u64> {
    (0..BLOOM_PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

fn build_bloom(hashes: &[(u64, u64)]) -> Bytes {
    if hashes.is_empty() {
        return Bytes::new();
    }
    let bits = (hashes.len() * BLOOM_BITS_PER_KEY).max(BLOOM_MIN_BITS);
    let mut bloom = vec![0u8; bits.div_ceil(8)];
    let bits = bloom.len() as u64 * 8;
    for h in hashes {
        for bit in probes(*h, bits) {
            bloom[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }
    Bytes::from(bloom)
}

/// Bounds-checked little-endian reads; running short is an error.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.pos))?;
        let got = &self.buf[self.pos..end];
        self.pos = end;
        Ok(got)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> std::result::Result<u16, String> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn key(&mut self) -> std::result::Result<TimerKey, String> {
        Ok((i64::from_le_bytes(self.array()?), self.u64()?))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Splits off a trailing CRC32C and checks it; the bytes it covers.
fn checked_body<'a>(bytes: &'a [u8], what: &str) -> std::result::Result<&'a [u8], String> {
    if bytes.len() < 4 {
        return Err(format!("{} bytes is too short for a {what}", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!(
            "{what} checksum mismatch: stored {stored:08x}, computed {computed:08x}"
        ));
    }
    Ok(body)
}

/// Decodes a footer (from its version to its CRC included), checking its
/// CRC and that its blocks are ordered, non-empty and tile the run from the
/// header on.
pub fn decode_footer(bytes: &[u8]) -> std::result::Result<RunFooter, String> {
    if bytes.len() < FOOTER_FRAME_LEN {
        return Err(format!("{} bytes is too short for a footer", bytes.len()));
    }
    let mut r = Reader::new(checked_body(bytes, "footer")?);
    let version = r.u16()?;
    if version != VERSION {
        return Err(format!("unknown run version {version}"));
    }
    let n = r.u32()? as usize;
    let mut blocks: Vec<BlockMeta> = Vec::with_capacity(n.min(r.remaining() / BLOCK_META_LEN));
    let mut next_offset = HEADER_LEN as u64;
    for i in 0..n {
        let first = r.key()?;
        let last = r.key()?;
        let offset = r.u64()?;
        let len = r.u32()?;
        let entries = r.u32()?;
        let bloom_len = r.u32()? as usize;
        let bloom = Bytes::copy_from_slice(r.take(bloom_len)?);
        if first > last || blocks.last().is_some_and(|p| p.last >= first) {
            return Err(format!("block {i}: keys {first:?}..{last:?} out of order"));
        }
        if entries == 0 || (len as usize) < BLOCK_FRAME_LEN + ENTRY_HEAD_LEN {
            return Err(format!("block {i}: {entries} entries in {len} bytes"));
        }
        if offset != next_offset {
            return Err(format!(
                "block {i} starts at {offset}, the previous one ends at {next_offset}"
            ));
        }
        let block = BlockMeta {
            first,
            last,
            offset,
            len,
            entries,
            bloom,
        };
        next_offset = block.range()?.end;
        blocks.push(block);
    }
    if r.remaining() != 0 {
        return Err(format!("{} bytes after the last block", r.remaining()));
    }
    Ok(RunFooter { blocks })
}

/// Decodes a block, checking its CRC32C; its entries in key order.
pub fn decode_block(bytes: &[u8]) -> std::result::Result<Vec<RunEntry>, String> {
    decode_block_bytes(&Bytes::copy_from_slice(bytes))
}

/// [`decode_block`] over shared bytes: records are slices of `bytes`, not copies.
fn decode_block_bytes(bytes: &Bytes) -> std::result::Result<Vec<RunEntry>, String> {
    if bytes.len() < BLOCK_FRAME_LEN {
        return Err(format!("{} bytes is too short for a block", bytes.len()));
    }
    let body = checked_body(bytes, "block")?;
    let mut r = Reader::new(body);
    let n = r.u32()? as usize;
    let mut entries: Vec<RunEntry> = Vec::with_capacity(n.min(r.remaining() / ENTRY_HEAD_LEN));
    for i in 0..n {
        let kind = r.u8()?;
        let key = r.key()?;
        if let Some(prev) = entries.last().map(RunEntry::key).filter(|p| *p >= key) {
            return Err(format!("entry {i}: key {key:?} does not follow {prev:?}"));
        }
        let entry = match kind {
            KIND_TIMER => {
                let len = r.u32()? as usize;
                let start = r.pos;
                r.take(len)?;
                RunEntry::Timer {
                    key,
                    record: bytes.slice(start..start + len),
                }
            }
            KIND_TOMBSTONE => RunEntry::Tombstone { key },
            other => return Err(format!("entry {i}: unknown kind {other}")),
        };
        entries.push(entry);
    }
    if r.remaining() != 0 {
        return Err(format!("{} bytes after the last entry", r.remaining()));
    }
    Ok(entries)
}

/// The trailer's `(footer offset, footer len)` of a whole run.
fn decode_trailer(run: &[u8]) -> std::result::Result<(u64, u32), String> {
    if run.len() < TRAILER_LEN {
        return Err(format!("{} bytes is too short for a trailer", run.len()));
    }
    let mut r = Reader::new(&run[run.len() - TRAILER_LEN..]);
    let footer_offset = r.u64()?;
    let footer_len = r.u32()?;
    if r.take(4)? != MAGIC {
        return Err("not a timer run (bad trailer magic)".into());
    }
    let ends_run = footer_offset
        .checked_add(u64::from(footer_len))
        .and_then(|e| e.checked_add(TRAILER_LEN as u64))
        == Some(run.len() as u64);
    if !ends_run {
        return Err(format!(
            "the trailer's footer ({footer_len} bytes at {footer_offset}) does not end the run"
        ));
    }
    Ok((footer_offset, footer_len))
}

/// Decodes and checks a whole run (header, trailer, footer, every block and
/// the footer's account of each): every entry in key order. For tools and
/// tests; nodes read footers and blocks with ranged GETs instead.
pub fn decode_run(run: &[u8]) -> std::result::Result<(RunFooter, Vec<RunEntry>), String> {
    let mut r = Reader::new(run);
    if r.take(4)? != MAGIC {
        return Err("not a timer run (bad magic)".into());
    }
    let version = r.u16()?;
    if version != VERSION {
        return Err(format!("unknown run version {version}"));
    }
    let (footer_offset, footer_len) = decode_trailer(run)?;
    if footer_offset < HEADER_LEN as u64 {
        return Err(format!(
            "the footer starts at {footer_offset}, in the header"
        ));
    }
    let footer_range = footer_offset as usize..footer_offset as usize + footer_len as usize;
    let footer = decode_footer(&run[footer_range])?;
    let blocks_end = footer
        .blocks
        .last()
        .map_or(Ok(HEADER_LEN as u64), |b| b.range().map(|r| r.end))?;
    if blocks_end != footer_offset {
        return Err(format!(
            "the blocks end at {blocks_end}, the footer starts at {footer_offset}"
        ));
    }
    let mut entries = Vec::new();
    for (i, meta) in footer.blocks.iter().enumerate() {
        let range = meta.range()?;
        let block = decode_block(&run[range.start as usize..range.end as usize])
            .map_err(|e| format!("block {i}: {e}"))?;
        check_block_against(meta, &block).map_err(|e| format!("block {i}: {e}"))?;
        entries.extend(block);
    }
    Ok((footer, entries))
}

/// Checks that a decoded block is the one its index entry describes.
fn check_block_against(meta: &BlockMeta, block: &[RunEntry]) -> std::result::Result<(), String> {
    let first = block.first().map(RunEntry::key);
    let last = block.last().map(RunEntry::key);
    if block.len() != meta.entries as usize || first != Some(meta.first) || last != Some(meta.last)
    {
        return Err(format!(
            "{} entries {first:?}..{last:?} where the footer says {} entries {:?}..{:?}",
            block.len(),
            meta.entries,
            meta.first,
            meta.last
        ));
    }
    Ok(())
}

fn invalid(path: &Path, reason: impl Into<String>) -> TieringError {
    TieringError::Invalid {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Writes a run (create-only). A run already there with the same length is
/// this writer's own earlier attempt (a retried PUT whose answer was lost):
/// run names are never reused.
pub async fn put_run(store: &dyn ObjectStore, path: &Path, bytes: Bytes) -> Result<()> {
    let len = bytes.len() as u64;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(path, PutPayload::from(bytes), opts).await {
        Ok(_) => Ok(()),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => {
            let there = store
                .head(path)
                .await
                .map_err(|e| TieringError::store(format!("checking {path}"), e))?;
            if there.size == len {
                return Ok(());
            }
            Err(invalid(
                path,
                format!(
                    "a run of {} bytes is already there (writing {len})",
                    there.size
                ),
            ))
        }
        Err(e) => Err(TieringError::store(format!("writing {path}"), e)),
    }
}

/// Reads a run's footer with one ranged GET (footer and trailer), checking
/// the trailer against `summary`.
pub async fn read_footer(
    store: &dyn ObjectStore,
    path: &Path,
    summary: &RunSummary,
) -> Result<RunFooter> {
    summary.check().map_err(|e| invalid(path, e))?;
    let range = summary.footer_offset..summary.bytes;
    let got = store
        .get_range(path, range.clone())
        .await
        .map_err(|e| TieringError::store(format!("reading the footer of {path}"), e))?;
    if got.len() as u64 != range.end - range.start {
        return Err(invalid(
            path,
            format!(
                "{} bytes where the footer and trailer take {}",
                got.len(),
                range.end - range.start
            ),
        ));
    }
    let footer_len = summary.footer_len as usize;
    let mut trailer = Reader::new(&got[footer_len..]);
    let at = trailer.u64().map_err(|e| invalid(path, e))?;
    let len = trailer.u32().map_err(|e| invalid(path, e))?;
    let magic = trailer.take(4).map_err(|e| invalid(path, e))?;
    if magic != MAGIC || at != summary.footer_offset || len != summary.footer_len {
        return Err(invalid(
            path,
            format!(
                "the trailer (footer of {len} bytes at {at}) disagrees with the summary ({} at {})",
                summary.footer_len, summary.footer_offset
            ),
        ));
    }
    let footer = decode_footer(&got[..footer_len]).map_err(|e| invalid(path, e))?;
    let blocks_end = match footer.blocks.last() {
        Some(b) => b.range().map_err(|e| invalid(path, e))?.end,
        None => HEADER_LEN as u64,
    };
    if blocks_end != summary.footer_offset
        || footer.entries() != summary.timers + summary.tombstones
    {
        return Err(invalid(
            path,
            format!(
                "the footer's {} entries ending at {blocks_end} disagree with the summary",
                footer.entries()
            ),
        ));
    }
    Ok(footer)
}

/// Reads and decodes `blocks` of a run: one result per block, in the order
/// given. Blocks adjacent in the run (and in `blocks`) are fetched with one
/// ranged GET.
pub async fn read_blocks(
    store: &dyn ObjectStore,
    path: &Path,
    blocks: &[BlockMeta],
) -> Result<Vec<Vec<RunEntry>>> {
    // Stretches of adjacent blocks: (range, how many blocks).
    let mut stretches: Vec<(Range<u64>, usize)> = Vec::new();
    for b in blocks {
        let range = b.range().map_err(|e| invalid(path, e))?;
        match stretches.last_mut() {
            Some((r, n)) if r.end == range.start => {
                r.end = range.end;
                *n += 1;
            }
            _ => stretches.push((range, 1)),
        }
    }
    if stretches.is_empty() {
        return Ok(Vec::new());
    }
    let ranges: Vec<Range<u64>> = stretches.iter().map(|(r, _)| r.clone()).collect();
    let got = store
        .get_ranges(path, &ranges)
        .await
        .map_err(|e| TieringError::store(format!("reading blocks of {path}"), e))?;
    if got.len() != ranges.len() {
        return Err(invalid(
            path,
            "the store answered the wrong number of ranges",
        ));
    }
    let mut out = Vec::with_capacity(blocks.len());
    let mut metas = blocks.iter();
    for ((range, n), bytes) in stretches.iter().zip(got) {
        if bytes.len() as u64 != range.end - range.start {
            return Err(invalid(
                path,
                format!("{} bytes for the range {range:?}", bytes.len()),
            ));
        }
        for meta in metas.by_ref().take(*n) {
            let start = (meta.offset - range.start) as usize;
            let block = bytes.slice(start..start + meta.len as usize);
            let what = |e: String| invalid(path, format!("block at {}: {e}", meta.offset));
            let entries = decode_block_bytes(&block).map_err(what)?;
            check_block_against(meta, &entries).map_err(what)?;
            out.push(entries);
        }
    }
    Ok(out)
}

/// Deletes a run (a missing one is fine).
pub async fn delete_run(store: &dyn ObjectStore, path: &Path) -> Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(TieringError::store(format!("deleting {path}"), e)),
    }
}

/// Every object under `dir` (a queue's runs directory holds nothing but
/// runs), sorted: what the checkpoint does not list is an orphan.
pub async fn list_runs(store: &dyn ObjectStore, dir: &Path) -> Result<Vec<Path>> {
    let metas: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| TieringError::store(format!("listing {dir}"), e))?;
    let mut paths: Vec<Path> = metas.into_iter().map(|m| m.location).collect();
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
#[path = "timer_run_tests.rs"]
mod tests;
