//! Helpers shared by the hot tier's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use shale_hot::{AppendRequest, HotConfig, HotStore, ManualClock};

pub const T0: i64 = 1_700_000_000_000;

pub fn config(segment_bytes: u64) -> HotConfig {
    HotConfig {
        segment_bytes,
        segment_ms: 60_000,
        index_interval_bytes: 512,
        indexed_properties: vec!["marked".into()],
    }
}

pub fn open(dir: &Path, cfg: &HotConfig, clock: &ManualClock) -> Arc<HotStore> {
    HotStore::open(dir, cfg.clone(), Arc::new(clock.clone())).expect("open hot store")
}

pub fn msg(i: usize, body_len: usize) -> AppendRequest {
    AppendRequest {
        born_ms: T0 + i as i64,
        deliver_at_ms: None,
        tag: Some(format!("tag{}", i % 3)),
        keys: vec![format!("key-{}", i % 10), format!("uniq-{i}")],
        properties: vec![("i".into(), i.to_string())],
        message_group: None,
        body: Bytes::from(format!("{i:08}").repeat(body_len / 8 + 1)),
    }
}

pub fn queue_dir(root: &Path, topic: &str, queue: u32) -> PathBuf {
    root.join(topic).join(queue.to_string())
}

pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// Start position of every record in a segment file (walks the length fields).
pub fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() && bytes[pos] == b'S' && bytes[pos + 1] == b'H' {
        out.push(pos);
        let len = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        pos += len;
    }
    out
}
