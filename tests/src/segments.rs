//! The hot tier's files as the tests see them, to cut and flip bytes.
//!
//! Layout (hot/src/lib.rs): `{data}/hot/{topic}/{queue}/{base:020}.log` for
//! sealed segments and `{base:020}.log.partial` for the active one. Record
//! framing (hot/src/record.rs): magic `SH`, u8 version, u8 flags, u32 LE total
//! length, u32 CRC32C, u64 LE offset at byte 12, …; variable fields start at
//! byte 60: u16 tag, u16 message_group, u16 key count + (u16 len + bytes)…,
//! u16 property count + (u16 name, u32 value)…, u32 body length + body.
//! Two zero bytes where a record would start mark the end of written data
//! (the active segment may be preallocated).
//!
//! This module re-implements only the framing, independently of the hot crate,
//! so a change of format breaks these tests loudly instead of silently.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};

/// One record's place in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpan {
    /// Byte position of the record in the file.
    pub start: usize,
    /// Total length, header included.
    pub len: usize,
    /// The record's queue offset.
    pub offset: u64,
    /// Byte range of the body within the file.
    pub body_start: usize,
    pub body_len: usize,
}

/// `{data}/hot/{topic}/{queue}`.
pub fn queue_dir(data_dir: &Path, topic: &str, queue: u32) -> PathBuf {
    data_dir.join("hot").join(topic).join(queue.to_string())
}

/// Segment files of a queue (`*.log` and `*.log.partial`), in offset order.
pub fn segment_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.ends_with(".log") || name.ends_with(".log.partial")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The active segment (`*.log.partial`) of a queue.
pub fn active_segment(dir: &Path) -> anyhow::Result<PathBuf> {
    let files = segment_files(dir)?;
    let partial: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".log.partial"))
        .collect();
    ensure!(
        partial.len() == 1,
        "expected one .log.partial in {}, found {files:?}",
        dir.display()
    );
    Ok(partial[0].clone())
}

/// Sealed segments (`*.log`) of a queue.
pub fn sealed_segments(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(segment_files(dir)?
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".log"))
        .collect())
}

fn u16_at(b: &[u8], at: usize) -> anyhow::Result<usize> {
    let s = b.get(at..at + 2).context("u16 past the record")?;
    Ok(u16::from_le_bytes([s[0], s[1]]) as usize)
}

fn u32_at(b: &[u8], at: usize) -> anyhow::Result<usize> {
    let s = b.get(at..at + 4).context("u32 past the record")?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// Walks the records of a segment's bytes until the end marker or the end of
/// the file. Fails on anything that is not a whole, well-framed record.
pub fn record_spans(bytes: &[u8]) -> anyhow::Result<Vec<RecordSpan>> {
    let mut spans = Vec::new();
    let mut pos = 0usize;
    while pos + 2 <= bytes.len() {
        if bytes[pos] == 0 && bytes[pos + 1] == 0 {
            break;
        }
        let rec = &bytes[pos..];
        ensure!(rec.len() >= 60, "short record header at {pos}");
        if &rec[0..2] != b"SH" {
            bail!("bad magic at byte {pos}: {:02x}{:02x}", rec[0], rec[1]);
        }
        ensure!(rec[2] == 1, "unknown record version {} at {pos}", rec[2]);
        let len = u32_at(rec, 4)?;
        ensure!(
            len >= 72 && len <= rec.len(),
            "impossible length {len} at {pos}"
        );
        let rec = &rec[..len];
        let offset = u64::from_le_bytes(rec[12..20].try_into()?);
        let mut p = 60;
        p += 2 + u16_at(rec, p)?; // tag
        p += 2 + u16_at(rec, p)?; // message_group
        let nkeys = u16_at(rec, p)?;
        p += 2;
        for _ in 0..nkeys {
            p += 2 + u16_at(rec, p)?;
        }
        let nprops = u16_at(rec, p)?;
        p += 2;
        for _ in 0..nprops {
            p += 2 + u16_at(rec, p)?;
            p += 4 + u32_at(rec, p)?;
        }
        let body_len = u32_at(rec, p)?;
        p += 4;
        ensure!(
            p + body_len == len,
            "record at {pos} does not add up: body ends at {} of {len}",
            p + body_len
        );
        spans.push(RecordSpan {
            start: pos,
            len,
            offset,
            body_start: pos + p,
            body_len,
        });
        pos += len;
    }
    Ok(spans)
}

/// Reads a segment file and walks its records.
pub fn file_records(path: &Path) -> anyhow::Result<Vec<RecordSpan>> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    record_spans(&bytes).with_context(|| format!("walk records of {}", path.display()))
}

/// Cuts `path` to `len` bytes (a torn write at the end of the file).
pub fn truncate(path: &Path, len: u64) -> anyhow::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()?;
    Ok(())
}

/// Overwrites `bytes` at `at`.
pub fn write_at(path: &Path, at: u64, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all_at(bytes, at)?;
    f.sync_all()?;
    Ok(())
}

/// Flips bit `bit` (0–7) of the byte at `at`.
pub fn flip_bit(path: &Path, at: u64, bit: u8) -> anyhow::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at)?;
    b[0] ^= 1 << bit;
    f.write_all_at(&b, at)?;
    f.sync_all()?;
    Ok(())
}
