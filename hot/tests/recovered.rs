//! Records recovered from another copy of a queue (the object store's
//! write-ahead chunks) keep their offsets, store times and ids; the
//! replicated watermark only moves forward and never past what is written.

mod common;

use common::*;
use shale_hot::{HotError, ManualClock};

#[test]
fn recovered_records_keep_their_offsets_times_and_ids_and_survive_a_restart() {
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = ManualClock::new(T0);
    let src = open(src_dir.path(), &config(4096), &clock)
        .queue("t", 2)
        .unwrap();
    for i in 0..30 {
        src.append(&[msg(i, 300)]).unwrap();
        clock.advance(5);
    }
    let original = src.read(0, 100, usize::MAX).unwrap();
    assert_eq!(original.len(), 30);

    let later = ManualClock::new(T0 + 1_000_000);
    let dst_store = open(dst_dir.path(), &config(4096), &later);
    let dst = dst_store.queue_from("t", 2, 10).unwrap();
    // Records below the log's end are skipped, the rest appended (across rolls).
    assert_eq!(dst.append_recovered(&original[5..20]).unwrap(), 10);
    assert_eq!(dst.append_recovered(&original[15..30]).unwrap(), 10);
    assert_eq!(dst.append_recovered(&original[..]).unwrap(), 0);
    assert_eq!(dst.max_offset(), 30);
    let check = |q: &shale_hot::QueueLog| {
        let got = q.read(10, 20, usize::MAX).unwrap();
        assert!(
            got == original[10..],
            "recovered records differ from the originals"
        );
        let id = original[17].message_id;
        assert!(q.get_by_id(&id).unwrap() == Some(original[17].clone()));
        assert_eq!(q.offset_for_timestamp(original[22].store_ms).unwrap(), 22);
    };
    check(&dst);
    // New messages continue after them, never stamped before them.
    let next = dst.append(&[msg(99, 10)]).unwrap();
    assert_eq!(next[0].offset, 30);
    assert!(next[0].store_ms >= original[29].store_ms);
    dst.flush().unwrap();
    drop(dst);
    drop(dst_store);
    let reopened = open(dst_dir.path(), &config(4096), &later)
        .queue("t", 2)
        .unwrap();
    check(&reopened);
}

#[test]
fn recovered_records_with_a_gap_or_out_of_order_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(1 << 20), &clock);
    let src = store.queue("src", 0).unwrap();
    for i in 0..6 {
        src.append(&[msg(i, 10)]).unwrap();
        clock.advance(1);
    }
    let recs = src.read(0, 10, usize::MAX).unwrap();
    let dst = store.queue("dst", 0).unwrap();
    let gap = vec![recs[0].clone(), recs[2].clone()];
    assert!(matches!(
        dst.append_recovered(&gap),
        Err(HotError::InvalidRecord(_))
    ));
    let mut backwards = vec![recs[0].clone(), recs[1].clone()];
    backwards[1].store_ms = recs[0].store_ms - 1;
    assert!(matches!(
        dst.append_recovered(&backwards),
        Err(HotError::InvalidRecord(_))
    ));
    let late_start = vec![recs[3].clone()];
    assert!(matches!(
        dst.append_recovered(&late_start),
        Err(HotError::InvalidRecord(_))
    ));
    assert_eq!(dst.max_offset(), 0);
    assert_eq!(dst.append_recovered(&recs).unwrap(), 6);
}

#[test]
fn the_replicated_watermark_moves_forward_only_and_never_past_the_written_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &config(1 << 20), &ManualClock::new(T0));
    let q = store.queue("t", 0).unwrap();
    let mut watch = q.watch_replicated_offset();
    assert_eq!(q.replicated_offset(), 0);
    q.append(&[msg(0, 10), msg(1, 10), msg(2, 10)]).unwrap();
    q.mark_replicated(2);
    assert_eq!(q.replicated_offset(), 2);
    assert!(watch.has_changed().unwrap());
    watch.borrow_and_update();
    q.mark_replicated(1);
    assert_eq!(q.replicated_offset(), 2);
    assert!(!watch.has_changed().unwrap());
    q.mark_replicated(10);
    assert_eq!(q.replicated_offset(), 3);
}
