#![allow(clippy::unwrap_used)]
//! Salvage of damaged sealed segments: every record that still checks out
//! comes back, the damaged offsets are named, nothing unchecked is returned.

mod common;

use common::*;
use shale_hot::{LostRange, ManualClock};

/// A store with one sealed segment of 40 records (bodies `i` repeated) and
/// the byte positions where its records start.
fn sealed_segment(dir: &std::path::Path) -> (std::path::PathBuf, Vec<usize>) {
    let clock = ManualClock::new(T0);
    let store = open(dir, &config(1 << 20), &clock);
    let q = store.queue("t", 0).unwrap();
    for i in 0..40 {
        q.append(&[msg(i, 200)]).unwrap();
    }
    q.seal_active().unwrap();
    let sealed = files_with_suffix(&queue_dir(dir, "t", 0), ".log")[0].clone();
    let starts = record_starts(&std::fs::read(&sealed).unwrap());
    assert_eq!(starts.len(), 40);
    (sealed, starts)
}

fn damage(path: &std::path::Path, at: &[usize]) {
    let mut bytes = std::fs::read(path).unwrap();
    for &p in at {
        bytes[p] ^= 0x10;
    }
    std::fs::write(path, &bytes).unwrap();
}

fn salvage_after(damaged: impl Fn(&[usize]) -> Vec<usize>) -> shale_hot::SalvagedSegment {
    let dir = tempfile::tempdir().unwrap();
    let (sealed, starts) = sealed_segment(dir.path());
    damage(&sealed, &damaged(&starts));
    let store = open(dir.path(), &config(1 << 20), &ManualClock::new(T0));
    let q = store.queue("t", 0).unwrap();
    q.salvage_sealed(0).unwrap()
}

fn offsets(s: &shale_hot::SalvagedSegment) -> Vec<u64> {
    s.records.iter().map(|r| r.offset).collect()
}

fn lost(s: &shale_hot::SalvagedSegment) -> Vec<std::ops::Range<u64>> {
    s.lost
        .iter()
        .map(|l: &LostRange| l.offsets.clone())
        .collect()
}

#[test]
fn an_intact_segment_salvages_whole() {
    let s = salvage_after(|_| vec![]);
    assert_eq!(offsets(&s), (0..40).collect::<Vec<_>>());
    assert!(s.lost.is_empty());
}

#[test]
fn a_flipped_body_bit_loses_that_record_only() {
    let s = salvage_after(|starts| vec![starts[17] + 150]);
    assert_eq!(lost(&s), vec![17..18]);
    let want: Vec<u64> = (0..40).filter(|&o| o != 17).collect();
    assert_eq!(offsets(&s), want);
    assert!(s.lost[0].reason.contains("CRC32C mismatch"), "{:?}", s.lost);
    for r in &s.records {
        assert_eq!(r.body, msg(r.offset as usize, 200).body);
    }
}

#[test]
fn a_damaged_length_field_does_not_derail_the_rest() {
    // Byte 5 is inside the record's length: the frame no longer adds up.
    let s = salvage_after(|starts| vec![starts[3] + 5, starts[30] + 1]);
    assert_eq!(lost(&s), vec![3..4, 30..31]);
    assert_eq!(s.records.len(), 38);
}

#[test]
fn damage_in_the_last_record_loses_only_the_tail() {
    let s = salvage_after(|starts| vec![starts[39] + 100]);
    assert_eq!(lost(&s), vec![39..40]);
    assert_eq!(offsets(&s), (0..39).collect::<Vec<_>>());
}

#[test]
fn only_sealed_segments_are_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    sealed_segment(dir.path());
    let store = open(dir.path(), &config(1 << 20), &ManualClock::new(T0));
    let q = store.queue("t", 0).unwrap();
    assert!(q.salvage_sealed(1).is_none());
    assert!(
        q.salvage_sealed(40).is_none(),
        "the active segment is not sealed"
    );
}
