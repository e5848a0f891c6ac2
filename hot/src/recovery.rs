//! Start-up recovery of one queue directory.
//!
//! What is on disk after any crash is: sealed `.log` files (immutable, fsynced
//! before their rename), usually one `.log.partial` (rarely two: a crash
//! between creating the next segment and sealing the previous one), their
//! `.index`/`.keys` sidecars, and perhaps `.tmp` leftovers of an atomic replace.
//!
//! For an active segment, recovery reads only its tail: it keeps the index
//! entries whose records check out, scans forward from the last one, and stops
//! at the first byte that is not a whole, checksummed record with the next
//! offset. Everything after that point (a torn write, an unflushed page, stale
//! bytes of an earlier life of the file) is cut off and the cut is fsynced
//! before anything new is written, so stale bytes can never come back.
//! A missing or damaged index only makes that scan longer.

use std::fs::OpenOptions;
use std::path::Path;

use memmap2::Mmap;

use crate::active_segment::{
    ActiveSegment, LastRecord, RecoveredState, index_path, keys_path, partial_path,
};
use crate::error::{HotError, Result};
use crate::index::{self, IndexEntry};
use crate::key_index;
use crate::record;
use crate::sealed_segment::{self, SealedSegment};
use crate::segment_view;
use crate::store::HotConfig;

/// The segments of a recovered queue.
#[derive(Debug)]
pub(crate) struct RecoveredQueue {
    pub sealed: Vec<SealedSegment>,
    pub active: ActiveSegment,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FileKind {
    Sealed,
    Partial,
    Sidecar,
}

fn classify(name: &str) -> Option<(u64, FileKind)> {
    let (digits, rest) = name.split_at_checked(20)?;
    let base = digits
        .parse::<u64>()
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))?;
    match rest {
        ".log" => Some((base, FileKind::Sealed)),
        ".log.partial" => Some((base, FileKind::Partial)),
        ".index" | ".keys" => Some((base, FileKind::Sidecar)),
        _ => None,
    }
}

/// Recovers the queue stored in `dir`, or initialises an empty one whose
/// first offset is `initial_base` (a queue continuing after its cold segments).
pub(crate) fn recover_queue(
    dir: &Path,
    config: &HotConfig,
    initial_base: u64,
) -> Result<RecoveredQueue> {
    std::fs::create_dir_all(dir).map_err(|e| HotError::io("creating a queue directory", dir, e))?;
    let mut sealed_bases = Vec::new();
    let mut partial_bases = Vec::new();
    let mut sidecars = Vec::new();
    let listing =
        std::fs::read_dir(dir).map_err(|e| HotError::io("listing a queue directory", dir, e))?;
    for entry in listing {
        let entry = entry.map_err(|e| HotError::io("listing a queue directory", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        match classify(&name) {
            Some((base, FileKind::Sealed)) => sealed_bases.push(base),
            Some((base, FileKind::Partial)) => partial_bases.push(base),
            Some((base, FileKind::Sidecar)) => sidecars.push((base, entry.path())),
            None => {
                tracing::warn!(path = %entry.path().display(), "ignoring an unknown file in a queue directory")
            }
        }
    }
    sealed_bases.sort_unstable();
    partial_bases.sort_unstable();
    for (base, path) in sidecars {
        if !sealed_bases.contains(&base) && !partial_bases.contains(&base) {
            let _ = std::fs::remove_file(path);
        }
    }

    let mut sealed = Vec::with_capacity(sealed_bases.len() + 1);
    for (i, base) in sealed_bases.iter().enumerate() {
        let next = sealed_bases.get(i + 1).or(partial_bases.first()).copied();
        sealed.push(SealedSegment::open(dir, *base, next, config)?);
    }
    let last_partial = partial_bases.pop();
    for base in partial_bases {
        tracing::warn!(dir = %dir.display(), base, "sealing an earlier active segment left by a crash");
        let seg = recover_active(dir, base, config)?;
        sealed.push(SealedSegment::from_parts(seg.seal()?)?);
    }
    sealed.sort_by_key(|s| s.base);
    let active = match last_partial {
        Some(base) => recover_active(dir, base, config)?,
        None => {
            let base = sealed.last().map_or(initial_base, |s| s.end);
            ActiveSegment::create(dir, base, config.segment_bytes, config.index_interval_bytes)?
        }
    };
    let mut expected = sealed.first().map_or(active.base, |s| s.base);
    for (base, end) in sealed
        .iter()
        .map(|s| (s.base, s.end))
        .chain([(active.base, active.end)])
    {
        if base != expected {
            tracing::error!(dir = %dir.display(), expected, found = base, "queue segments are not contiguous");
        }
        expected = end;
    }
    Ok(RecoveredQueue { sealed, active })
}

/// Recovers an active segment by reading its tail (see the module docs).
pub(crate) fn recover_active(dir: &Path, base: u64, config: &HotConfig) -> Result<ActiveSegment> {
    let path = partial_path(dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| HotError::io("opening a segment", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| HotError::io("reading a segment's size", &path, e))?
        .len();
    let state = {
        // SAFETY: read-only map of a file only this queue uses; dropped before the file changes.
        let ro = if len > 0 {
            Some(
                unsafe { Mmap::map(&file) }
                    .map_err(|e| HotError::io("mapping a segment", &path, e))?,
            )
        } else {
            None
        };
        scan_active(dir, base, ro.as_deref().unwrap_or(&[]), config)
    };
    if len > state.write_pos {
        file.set_len(state.write_pos)
            .map_err(|e| HotError::io("cutting a torn segment tail", &path, e))?;
    }
    file.sync_all()
        .map_err(|e| HotError::io("syncing a recovered segment", &path, e))?;
    ActiveSegment::from_file(
        dir,
        base,
        file,
        config.segment_bytes,
        config.index_interval_bytes,
        state,
    )
}

fn entry_checks_out(data: &[u8], e: &IndexEntry) -> bool {
    (e.position as usize) < data.len()
        && record::verify(&data[e.position as usize..])
            .is_ok_and(|h| h.offset == e.offset && h.store_ms == e.store_ms)
}

/// Works out the valid prefix of an active segment's bytes.
fn scan_active(dir: &Path, base: u64, data: &[u8], config: &HotConfig) -> RecoveredState {
    let interval = config.index_interval_bytes;
    let indexed = &config.indexed_properties;
    let mut entries = index::load(&index_path(dir, base), base).unwrap_or_default();
    if entries
        .first()
        .is_some_and(|e| e.offset != base || e.position != 0)
    {
        entries.clear();
    }
    while entries.last().is_some_and(|e| !entry_checks_out(data, e)) {
        entries.pop();
    }
    let (start_pos, start_off) = entries.last().map_or((0, base), |e| (e.position, e.offset));

    let mut last_indexed = entries.last().map(|e| e.position);
    let mut tail_keys = Vec::new();
    let mut last_record = None;
    let outcome = segment_view::scan(data, start_pos, start_off, |pos, rec| {
        let Ok(r) = record::decode(rec) else { return };
        if last_indexed.is_none_or(|p| pos - p >= interval) {
            entries.push(IndexEntry {
                offset: r.offset,
                position: pos,
                store_ms: r.store_ms,
            });
            last_indexed = Some(pos);
        }
        tail_keys.extend(
            key_index::terms_of(&r.keys, &r.properties, indexed)
                .into_iter()
                .map(|h| (h, r.offset)),
        );
        last_record = Some(LastRecord {
            position: pos,
            offset: r.offset,
            store_ms: r.store_ms,
        });
    });
    if let Some(why) = &outcome.stopped_by {
        tracing::warn!(
            dir = %dir.display(), base, position = outcome.end_position, cut_bytes = data.len() as u64 - outcome.end_position,
            reason = %why, "cutting the torn or corrupt tail of an active segment"
        );
    }
    let keys_image = std::fs::read(keys_path(dir, base)).unwrap_or_default();
    let keys = match key_index::parse(&keys_image, base) {
        Some(existing) => existing
            .into_iter()
            .filter(|(_, o)| *o < start_off)
            .chain(tail_keys)
            .collect(),
        None => sealed_segment::collect_keys(data, 0, base, indexed),
    };
    RecoveredState {
        write_pos: outcome.end_position,
        end: outcome.end_offset,
        first_store_ms: entries.first().map(|e| e.store_ms),
        index: entries,
        keys,
        last_record,
    }
}
