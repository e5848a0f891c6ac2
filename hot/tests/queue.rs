//! Behaviour of a queue through the public API: appends, reads, segment
//! rolling, lookups by time, id and key, and restarts.

mod common;

use common::*;
use shale_hot::{HotError, ManualClock};

#[test]
fn appends_get_contiguous_offsets_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(1 << 20), &clock);
    let q = store.queue("orders", 3).unwrap();
    let a = q.append(&[msg(0, 10), msg(1, 10)]).unwrap();
    let b = q.append(&[msg(2, 10)]).unwrap();
    assert_eq!([a[0].offset, a[1].offset, b[0].offset], [0, 1, 2]);
    assert_eq!(q.max_offset(), 3);
    let recs = q.read(0, 10, usize::MAX).unwrap();
    assert_eq!(recs.len(), 3);
    for (i, r) in recs.iter().enumerate() {
        let m = msg(i, 10);
        assert_eq!(
            (r.offset, &r.body, &r.keys, &r.tag, r.born_ms),
            (i as u64, &m.body, &m.keys, &m.tag, m.born_ms)
        );
        assert_eq!(r.message_id.queue(), 3);
        assert_eq!(r.message_id.offset(), i as u64);
    }
    assert!(a[0].message_id < a[1].message_id || a[0].store_ms == a[1].store_ms);
    assert!(q.read(3, 10, usize::MAX).unwrap().is_empty());
    assert!(matches!(
        q.read(4, 10, usize::MAX),
        Err(HotError::OffsetOutOfRange {
            offset: 4,
            min: 0,
            max: 3
        })
    ));
}

#[test]
fn read_limits_messages_and_bytes_but_returns_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &config(1 << 20), &ManualClock::new(T0));
    let q = store.queue("t", 0).unwrap();
    q.append(&(0..20).map(|i| msg(i, 1000)).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(q.read(0, 5, usize::MAX).unwrap().len(), 5);
    let one_len = q.read(0, 1, usize::MAX).unwrap()[0].encoded_len();
    assert_eq!(q.read(0, 100, one_len * 3).unwrap().len(), 3);
    assert_eq!(q.read(0, 100, 1).unwrap().len(), 1);
}

#[test]
fn segments_roll_by_size_and_everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cfg = config(8192);
    let mut ids = Vec::new();
    {
        let store = open(dir.path(), &cfg, &clock);
        let q = store.queue("t", 0).unwrap();
        for i in 0..200 {
            clock.advance(1);
            ids.push(q.append(&[msg(i, 300)]).unwrap()[0].message_id);
        }
        assert!(q.stats().segments > 5, "{:?}", q.stats());
        store.flush_all().unwrap();
    }
    assert!(files_with_suffix(&queue_dir(dir.path(), "t", 0), ".log").len() > 5);
    let store = open(dir.path(), &cfg, &clock);
    let q = store.queue("t", 0).unwrap();
    assert_eq!(q.max_offset(), 200);
    let mut all = Vec::new();
    let mut at = 0;
    while at < 200 {
        let part = q.read(at, 37, usize::MAX).unwrap();
        at += part.len() as u64;
        all.extend(part);
    }
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
        assert_eq!(r.body, msg(i, 300).body);
        assert_eq!(r.message_id, ids[i]);
    }
    assert_eq!(q.append(&[msg(200, 10)]).unwrap()[0].offset, 200);
}

#[test]
fn segments_seal_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(1 << 20), &clock);
    let q = store.queue("t", 0).unwrap();
    q.append(&[msg(0, 10)]).unwrap();
    store.seal_expired().unwrap();
    assert_eq!(q.stats().segments, 1);
    clock.advance(60_000);
    store.seal_expired().unwrap();
    assert_eq!(q.stats().segments, 2);
    assert_eq!(
        files_with_suffix(&queue_dir(dir.path(), "t", 0), ".log").len(),
        1
    );
    // An empty active segment never seals.
    clock.advance(600_000);
    store.seal_expired().unwrap();
    assert_eq!(q.stats().segments, 2);
    assert_eq!(q.read(0, 10, usize::MAX).unwrap().len(), 1);
}

#[test]
fn offset_for_timestamp_finds_the_first_message_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(4096), &clock);
    let q = store.queue("t", 0).unwrap();
    for i in 0..100 {
        clock.set(T0 + 10 * i as i64);
        q.append(&[msg(i, 200)]).unwrap();
    }
    assert_eq!(q.offset_for_timestamp(0).unwrap(), 0);
    assert_eq!(q.offset_for_timestamp(T0).unwrap(), 0);
    assert_eq!(q.offset_for_timestamp(T0 + 1).unwrap(), 1);
    assert_eq!(q.offset_for_timestamp(T0 + 500).unwrap(), 50);
    assert_eq!(q.offset_for_timestamp(T0 + 505).unwrap(), 51);
    assert_eq!(q.offset_for_timestamp(T0 + 990).unwrap(), 99);
    assert_eq!(q.offset_for_timestamp(T0 + 991).unwrap(), 100);
}

#[test]
fn store_time_never_goes_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(1 << 20), &clock);
    let q = store.queue("t", 0).unwrap();
    q.append(&[msg(0, 1)]).unwrap();
    clock.set(T0 - 5_000);
    let second = q.append(&[msg(1, 1)]).unwrap();
    assert_eq!(second[0].store_ms, T0);
}

#[test]
fn lookup_by_id_and_by_key_across_segments_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cfg = config(4096);
    let ids: Vec<_> = {
        let store = open(dir.path(), &cfg, &clock);
        let q = store.queue("t", 1).unwrap();
        (0..60)
            .map(|i| {
                clock.advance(100);
                q.append(&[msg(i, 200)]).unwrap()[0].message_id
            })
            .collect()
    };
    // Lose every key index: they are rebuilt from the logs.
    for p in files_with_suffix(&queue_dir(dir.path(), "t", 1), ".keys") {
        std::fs::remove_file(p).unwrap();
    }
    let store = open(dir.path(), &cfg, &clock);
    let q = store.queue("t", 1).unwrap();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(q.get_by_id(id).unwrap().unwrap().offset, i as u64);
    }
    let mut forged = ids[5];
    forged.0[15] ^= 1;
    assert!(q.get_by_id(&forged).unwrap().is_none());
    let hits = q.find_by_key("key-3", 0, i64::MAX, 100).unwrap();
    assert_eq!(
        hits.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![3, 13, 23, 33, 43, 53]
    );
    let windowed = q.find_by_key("key-3", T0 + 1400, T0 + 3400, 100).unwrap();
    assert_eq!(
        windowed.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![13, 23, 33]
    );
    assert_eq!(q.find_by_key("key-3", 0, i64::MAX, 2).unwrap().len(), 2);
    assert!(q.find_by_key("nope", 0, i64::MAX, 10).unwrap().is_empty());
}

/// Review bug 2: an unreadable or damaged key index made key queries (and the
/// gateway's dedup rebuild) silently miss. It is an error naming the file.
#[test]
fn an_unreadable_or_damaged_key_index_is_an_error_not_no_match() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(4096), &clock);
    let q = store.queue("t", 0).unwrap();
    for i in 0..40 {
        clock.advance(10);
        q.append(&[msg(i, 200)]).unwrap();
    }
    assert!(q.sealed_segments().len() >= 2, "needs sealed segments");
    assert_eq!(q.find_by_key("key-3", 0, i64::MAX, 100).unwrap().len(), 4);
    let keys = files_with_suffix(&queue_dir(dir.path(), "t", 0), ".keys");
    let (first_sealed, active) = (&keys[0], keys.last().unwrap());

    // A sealed segment's key index replaced by a directory: unreadable.
    let original = std::fs::read(first_sealed).unwrap();
    std::fs::remove_file(first_sealed).unwrap();
    std::fs::create_dir(first_sealed).unwrap();
    let err = q.find_by_key("key-3", 0, i64::MAX, 100).unwrap_err();
    assert!(
        matches!(&err, HotError::Io { path, .. } if path == first_sealed),
        "{err:?}"
    );
    let err = q
        .find_with_property("marked", 0, i64::MAX, 100)
        .unwrap_err();
    assert!(
        matches!(&err, HotError::Io { path, .. } if path == first_sealed),
        "{err:?}"
    );
    std::fs::remove_dir(first_sealed).unwrap();

    // Missing altogether: every segment with records has one, so also an error.
    let err = q.find_by_key("key-3", 0, i64::MAX, 100).unwrap_err();
    assert!(
        matches!(&err, HotError::Io { path, source, .. }
            if path == first_sealed && source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    std::fs::write(first_sealed, original).unwrap();
    assert_eq!(q.find_by_key("key-3", 0, i64::MAX, 100).unwrap().len(), 4);

    // The active segment's key index with a flipped bit in an entry: corrupt.
    let mut bytes = std::fs::read(active).unwrap();
    assert!(
        bytes.len() > 16 + 24,
        "the active segment has keyed records"
    );
    bytes[16 + 3] ^= 0x40;
    std::fs::write(active, &bytes).unwrap();
    let err = q.find_by_key("key-3", 0, i64::MAX, 100).unwrap_err();
    assert!(
        matches!(&err, HotError::Corrupt { path, position: 16, .. } if path == active),
        "{err:?}"
    );
}

#[test]
fn a_full_batch_is_stored_atomically_when_it_is_bigger_than_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &config(4096), &ManualClock::new(T0));
    let q = store.queue("t", 0).unwrap();
    q.append(&[msg(0, 100)]).unwrap();
    let big: Vec<_> = (1..40).map(|i| msg(i, 500)).collect();
    q.append(&big).unwrap();
    let recs = q.read(0, 100, usize::MAX).unwrap();
    assert_eq!(recs.len(), 40);
    assert_eq!(recs[39].body, msg(39, 500).body);
}

#[test]
fn removing_a_topic_deletes_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(1 << 20), &clock);
    let q = store.queue("gone", 0).unwrap();
    q.append(&[msg(0, 10)]).unwrap();
    store.remove_topic("gone").unwrap();
    assert!(!dir.path().join("gone").exists());
    assert!(matches!(q.append(&[msg(1, 10)]), Err(HotError::Removed(_))));
    assert_eq!(store.queue("gone", 0).unwrap().max_offset(), 0);
    assert!(matches!(
        store.queue("../evil", 0),
        Err(HotError::InvalidRecord(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sync_appends_are_all_durable_and_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &config(64 * 1024), &ManualClock::new(T0));
    let q = store.queue("t", 0).unwrap();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..50 {
                let q2 = q.clone();
                let a = tokio::task::spawn_blocking(move || q2.append(&[msg(w * 1000 + i, 100)]))
                    .await
                    .unwrap()
                    .unwrap();
                q.sync(a[0].offset + 1).await.unwrap();
                assert!(q.durable_offset() > a[0].offset);
                offsets.push(a[0].offset);
            }
            offsets
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..800).collect::<Vec<u64>>());
}

#[test]
fn records_with_an_indexed_property_are_found_without_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cfg = config(4096);
    let marked = |i: usize| {
        let mut m = msg(i, 200);
        if i.is_multiple_of(7) {
            m.properties.push(("marked".into(), format!("m{i}")));
        }
        m
    };
    {
        let store = open(dir.path(), &cfg, &clock);
        let q = store.queue("t", 0).unwrap();
        for i in 0..70 {
            clock.advance(10);
            q.append(&[marked(i)]).unwrap();
        }
    }
    // Also after a restart, and after losing the key files (rebuilt from the logs).
    for p in files_with_suffix(&queue_dir(dir.path(), "t", 0), ".keys")
        .into_iter()
        .step_by(2)
    {
        std::fs::remove_file(p).unwrap();
    }
    let store = open(dir.path(), &cfg, &clock);
    let q = store.queue("t", 0).unwrap();
    let found: Vec<u64> = q
        .find_with_property("marked", 0, i64::MAX, 1000)
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(found, (0..70).filter(|i| i % 7 == 0).collect::<Vec<u64>>());
    let recent: Vec<u64> = q
        .find_with_property("marked", T0 + 400, i64::MAX, 1000)
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(recent, vec![42, 49, 56, 63]);
    // A property that is not indexed finds nothing (it is not scanned for).
    assert!(
        q.find_with_property("i", 0, i64::MAX, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_queue_created_after_its_cold_segments_continues_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(1 << 20), &clock);
    let q = store.queue_from("t", 0, 500).unwrap();
    assert_eq!((q.min_offset(), q.max_offset()), (500, 500));
    assert_eq!(q.append(&[msg(0, 10)]).unwrap()[0].offset, 500);
    // An existing queue keeps its own offsets whatever base is asked for.
    assert_eq!(store.queue_from("t", 0, 9).unwrap().max_offset(), 501);
    drop(q);
    drop(store);
    let store = open(dir.path(), &config(1 << 20), &clock);
    let q = store.queue("t", 0).unwrap();
    assert_eq!((q.min_offset(), q.max_offset()), (500, 501));
    assert!(matches!(
        q.read(499, 1, usize::MAX),
        Err(HotError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn seal_active_turns_everything_written_into_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &config(1 << 20), &ManualClock::new(T0));
    let q = store.queue("t", 0).unwrap();
    store.seal_all_active().unwrap();
    assert!(
        q.sealed_segments().is_empty(),
        "an empty active segment is not sealed"
    );
    q.append(&[msg(0, 10), msg(1, 10)]).unwrap();
    store.seal_all_active().unwrap();
    let sealed = q.sealed_segments();
    assert_eq!(sealed.len(), 1);
    assert_eq!((sealed[0].base_offset, sealed[0].end_offset), (0, 2));
    assert_eq!(q.append(&[msg(2, 10)]).unwrap()[0].offset, 2);
}

/// A roll seals the old segment without the segments lock: meanwhile readers
/// find its records in the "sealing" slot, so reads and key lookups see
/// every record of the queue throughout, and writers keep appending.
#[test]
fn reads_and_key_lookups_see_every_record_while_segments_roll() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(4096), &clock);
    let q = store.queue("t", 0).unwrap();
    q.append(&[msg(0, 200)]).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..300 {
                q.append(&[msg(i, 200)]).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(Ordering::Acquire) {
                    let max = q.max_offset();
                    let recs = q.read(0, usize::MAX, usize::MAX).unwrap();
                    assert!(recs.len() as u64 >= max, "{} < {max}", recs.len());
                    for (i, r) in recs.iter().enumerate() {
                        assert_eq!(r.offset, i as u64);
                    }
                    let hits = q.find_by_key("key-3", 0, i64::MAX, usize::MAX).unwrap();
                    let expected = (0..max).filter(|i| i % 10 == 3).count();
                    assert!(hits.len() >= expected, "{} < {expected}", hits.len());
                    let stats = q.stats();
                    assert_eq!(stats.min_offset, 0);
                }
            });
        }
    });
    assert!(q.sealed_segments().len() >= 10, "the test rolled segments");
    assert_eq!(q.read(0, usize::MAX, usize::MAX).unwrap().len(), 300);
    // Everything a roll sealed is durable, and all of it survives a restart.
    assert!(q.durable_offset() >= q.sealed_segments().last().unwrap().end_offset);
    drop((q, store));
    let store = open(dir.path(), &config(4096), &clock);
    let q = store.queue("t", 0).unwrap();
    assert_eq!(q.read(0, usize::MAX, usize::MAX).unwrap().len(), 300);
}

#[tokio::test]
async fn the_durable_offset_watch_moves_on_fsyncs_not_on_appends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &config(1 << 20), &clock);
    let q = store.queue("t", 0).unwrap();
    let mut durable = q.watch_durable_offset();
    let written = q.watch_max_offset();
    assert_eq!(*durable.borrow_and_update(), 0);

    q.append(&[msg(0, 10), msg(1, 10)]).unwrap();
    assert!(written.has_changed().unwrap(), "an append moves max_offset");
    assert!(
        !durable.has_changed().unwrap(),
        "but not the durable offset"
    );
    assert_eq!((q.max_offset(), q.durable_offset()), (2, 0));

    // A group commit moves it, and a waiter wakes.
    let (synced, seen) = tokio::join!(
        q.sync(2),
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            durable.wait_for(|d| *d >= 2)
        )
    );
    synced.unwrap();
    assert_eq!(*seen.unwrap().unwrap(), 2);

    // So do the blocking flush and a seal.
    q.append(&[msg(2, 10)]).unwrap();
    assert!(!durable.has_changed().unwrap());
    let flusher = q.clone();
    tokio::task::spawn_blocking(move || flusher.flush())
        .await
        .unwrap()
        .unwrap();
    assert!(durable.has_changed().unwrap());
    assert_eq!(*durable.borrow_and_update(), 3);
    q.append(&[msg(3, 10)]).unwrap();
    let sealer = q.clone();
    tokio::task::spawn_blocking(move || sealer.seal_active())
        .await
        .unwrap()
        .unwrap();
    assert!(durable.has_changed().unwrap());
    assert_eq!((*durable.borrow_and_update(), q.durable_offset()), (4, 4));
}

#[test]
fn a_reopened_queue_is_durable_through_what_recovery_found() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    {
        let store = open(dir.path(), &config(1 << 20), &clock);
        let q = store.queue("t", 0).unwrap();
        q.append(&[msg(0, 10), msg(1, 10)]).unwrap();
        assert_eq!(q.durable_offset(), 0);
    }
    let store = open(dir.path(), &config(1 << 20), &clock);
    let q = store.queue("t", 0).unwrap();
    assert_eq!(q.durable_offset(), 2);
    assert_eq!(*q.watch_durable_offset().borrow(), 2);
}
