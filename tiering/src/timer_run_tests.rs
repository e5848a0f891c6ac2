//! Tests of [`super`]: the run codec and its index (property tests), damage
//! detection, and the object-store I/O.

use std::sync::Arc;

use object_store::memory::InMemory;
use proptest::prelude::*;
use shale_hot::{MessageId, Record};

use super::*;
use crate::fault_store::{FaultStore, Faults};

fn record(key: TimerKey, keys: &[&str], body: &str) -> Bytes {
    Bytes::from(
        Record {
            offset: key.1,
            store_ms: 1_000,
            born_ms: 900,
            deliver_at_ms: Some(key.0),
            message_id: MessageId::new(1_000, 3, key.1, 7),
            tag: Some("t".into()),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            properties: vec![("p".into(), "v".into())],
            message_group: None,
            body: Bytes::from(body.to_string()),
        }
        .encode(),
    )
}

fn timer(key: TimerKey, keys: &[&str]) -> RunEntry {
    RunEntry::Timer {
        key,
        record: record(key, keys, "body"),
    }
}

fn tombstone(key: TimerKey) -> RunEntry {
    RunEntry::Tombstone { key }
}

fn encode(entries: &[RunEntry], block_bytes: usize) -> EncodedRun {
    let mut w = RunWriter::new(block_bytes);
    for e in entries {
        w.push(e.clone()).unwrap();
    }
    w.finish()
}

/// A few entries in three blocks (block size 1: one entry per block).
fn small_run() -> EncodedRun {
    let entries = [
        timer((10, 1), &["a"]),
        tombstone((10, 2)),
        timer((11, 0), &[]),
    ];
    encode(&entries, 1)
}

fn footer_bytes(run: &EncodedRun) -> &[u8] {
    let s = &run.summary;
    &run.bytes[s.footer_offset as usize..(s.footer_offset + u64::from(s.footer_len)) as usize]
}

fn block_bytes<'a>(run: &'a EncodedRun, b: &BlockMeta) -> &'a [u8] {
    &run.bytes[b.offset as usize..(b.offset + u64::from(b.len)) as usize]
}

#[test]
fn an_empty_run_is_valid() {
    let w = RunWriter::new(64);
    assert!(w.is_empty());
    let run = w.finish();
    assert_eq!(
        run.summary,
        RunSummary {
            min_key: None,
            max_key: None,
            timers: 0,
            tombstones: 0,
            bytes: 32,
            footer_offset: 6,
            footer_len: 10,
        }
    );
    assert_eq!(run.footer.blocks, vec![]);
    assert_eq!(decode_footer(footer_bytes(&run)).unwrap(), run.footer);
    assert_eq!(
        decode_run(&run.bytes).unwrap(),
        (run.footer.clone(), vec![])
    );
    assert!(
        run.footer
            .blocks_between(None, (i64::MAX, u64::MAX))
            .is_empty()
    );
    assert_eq!(run.footer.block_of((0, 0)), None);
}

/// The format is persisted: its bytes must not change by accident.
#[test]
fn the_bytes_of_a_run_are_pinned() {
    let run = encode(&[tombstone((-1, 2)), tombstone((5, 0))], 1);
    assert_eq!(
        hex::encode(&run.bytes),
        concat!(
            "53485452",
            "0100", // header: magic, version
            // block 0 at 6: one entry, a tombstone (-1, 2), CRC
            "01000000",
            "01",
            "ffffffffffffffff",
            "0200000000000000",
            "da14dc67",
            // block 1 at 31: one entry, a tombstone (5, 0), CRC
            "01000000",
            "01",
            "0500000000000000",
            "0000000000000000",
            "3660bca8",
            // footer at 56: version, 2 blocks
            "0100",
            "02000000",
            // first, last, offset 6, len 25, 1 entry, no bloom
            "ffffffffffffffff0200000000000000",
            "ffffffffffffffff0200000000000000",
            "0600000000000000",
            "19000000",
            "01000000",
            "00000000",
            // first, last, offset 31, len 25, 1 entry, no bloom
            "05000000000000000000000000000000",
            "05000000000000000000000000000000",
            "1f00000000000000",
            "19000000",
            "01000000",
            "00000000",
            "70542116", // footer CRC
            // trailer: footer at 56, 114 bytes, magic
            "3800000000000000",
            "72000000",
            "53485452",
        )
    );
}

#[test]
fn bloom_hashes_are_pinned() {
    // FNV-1a of "a", and of "\x01a".
    assert_eq!(key_hashes("a").0, 0xaf63_dc4c_8601_ec8c);
    assert_eq!(key_hashes("a").1, shale_hot::fnv1a(&[b"\x01a"]));
    let run = encode(&[timer((1, 1), &["order-1"])], 64);
    // 64 bits (the minimum), 7 of them set.
    assert_eq!(hex::encode(&run.footer.blocks[0].bloom), "0202080820208000");
}

#[test]
fn a_block_without_message_keys_matches_nothing() {
    let run = encode(&[timer((1, 1), &[]), tombstone((2, 2))], 1 << 16);
    let b = &run.footer.blocks[0];
    assert_eq!(b.bloom_len(), 0);
    assert!(!b.may_contain_message_key(""));
    assert!(!b.may_contain_message_key("a"));
}

#[test]
fn blooms_have_few_false_positives() {
    let keys: Vec<String> = (0..1_000).map(|i| format!("order-{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let run = encode(&[timer((1, 1), &refs)], 1 << 20);
    let b = &run.footer.blocks[0];
    assert_eq!(b.bloom_len(), 1_250);
    assert!(refs.iter().all(|k| b.may_contain_message_key(k)));
    let false_positives = (0..10_000)
        .filter(|i| b.may_contain_message_key(&format!("other-{i}")))
        .count();
    // About 0.8% expected at 10 bits per key and 7 probes.
    assert!(
        false_positives < 150,
        "{false_positives} false positives in 10000"
    );
}

#[test]
fn push_refuses_keys_out_of_order_and_records_not_of_their_key() {
    let mut w = RunWriter::new(64);
    w.push(tombstone((5, 5))).unwrap();
    for key in [(5, 5), (5, 4), (4, 9)] {
        assert!(w.push(tombstone(key)).is_err(), "{key:?}");
        assert!(w.push(timer(key, &[])).is_err(), "{key:?}");
    }
    let wrong = [
        // another offset, another time, no time
        RunEntry::Timer {
            key: (6, 1),
            record: record((6, 2), &[], ""),
        },
        RunEntry::Timer {
            key: (6, 1),
            record: record((7, 1), &[], ""),
        },
        RunEntry::Timer {
            key: (6, 1),
            record: Bytes::from(
                Record {
                    deliver_at_ms: None,
                    ..shale_hot::decode(&record((6, 1), &[], "")).unwrap()
                }
                .encode(),
            ),
        },
        RunEntry::Timer {
            key: (6, 1),
            record: Bytes::from_static(b"not a record"),
        },
        RunEntry::Timer {
            key: (6, 1),
            record: [record((6, 1), &[], "").as_ref(), b"x"].concat().into(),
        },
    ];
    for e in wrong {
        assert!(w.push(e.clone()).is_err(), "{e:?}");
    }
    let run = w.finish();
    assert_eq!(decode_run(&run.bytes).unwrap().1, vec![tombstone((5, 5))]);
}

#[test]
fn every_truncation_and_flipped_byte_is_an_error() {
    let run = small_run();
    assert_eq!(run.footer.blocks.len(), 3);
    let bytes = run.bytes.to_vec();
    for i in 0..bytes.len() {
        assert!(decode_run(&bytes[..i]).is_err(), "truncation at {i}");
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(decode_run(&bad).is_err(), "flipped byte {i}");
    }
    let footer = footer_bytes(&run);
    for i in 0..footer.len() {
        assert!(decode_footer(&footer[..i]).is_err(), "footer cut at {i}");
        let mut bad = footer.to_vec();
        bad[i] ^= 0x01;
        assert!(decode_footer(&bad).is_err(), "footer byte {i}");
    }
    for b in &run.footer.blocks {
        let block = block_bytes(&run, b);
        for i in 0..block.len() {
            assert!(decode_block(&block[..i]).is_err(), "block cut at {i}");
            let mut bad = block.to_vec();
            bad[i] ^= 0x80;
            assert!(decode_block(&bad).is_err(), "block byte {i}");
        }
    }
}

/// Sorted, deduplicated random entries: some tombstones, timers with
/// random message keys, properties and bodies.
fn arb_entries() -> impl Strategy<Value = Vec<RunEntry>> {
    let entry = (
        -3i64..30,
        0u64..40,
        any::<bool>(),
        proptest::collection::vec("[a-z]{0,6}", 0..4),
        proptest::collection::vec(("[a-z]{1,4}", "[ -~]{0,8}"), 0..3),
        proptest::collection::vec(any::<u8>(), 0..200),
    );
    proptest::collection::vec(entry, 0..60).prop_map(|raw| {
        let mut entries: Vec<RunEntry> = raw
            .into_iter()
            .map(|(at, seq, dead, keys, properties, body)| {
                if dead {
                    return RunEntry::Tombstone { key: (at, seq) };
                }
                let record = Record {
                    offset: seq,
                    store_ms: 5,
                    born_ms: 4,
                    deliver_at_ms: Some(at),
                    message_id: MessageId::new(5, 0, seq, 1),
                    tag: None,
                    keys,
                    properties,
                    message_group: Some("g".into()),
                    body: Bytes::from(body),
                };
                RunEntry::Timer {
                    key: (at, seq),
                    record: Bytes::from(record.encode()),
                }
            })
            .collect();
        entries.sort_by_key(RunEntry::key);
        entries.dedup_by_key(|e| e.key());
        entries
    })
}

fn arb_key() -> impl Strategy<Value = TimerKey> {
    (-5i64..33, 0u64..42)
}

proptest! {
    #[test]
    fn runs_round_trip_and_their_index_finds_every_entry(
        entries in arb_entries(),
        block_size in 1usize..600,
        probes in proptest::collection::vec((proptest::option::of(arb_key()), arb_key()), 20),
    ) {
        let run = encode(&entries, block_size);
        let s = &run.summary;
        prop_assert_eq!(s.min_key, entries.first().map(RunEntry::key));
        prop_assert_eq!(s.max_key, entries.last().map(RunEntry::key));
        let timers = entries.iter().filter(|e| matches!(e, RunEntry::Timer { .. })).count();
        prop_assert_eq!(s.timers as usize, timers);
        prop_assert_eq!((s.timers + s.tombstones) as usize, entries.len());
        prop_assert_eq!(s.bytes as usize, run.bytes.len());
        prop_assert_eq!(decode_footer(footer_bytes(&run)).unwrap(), run.footer.clone());
        let mut all = Vec::new();
        for b in &run.footer.blocks {
            let block = decode_block(block_bytes(&run, b)).unwrap();
            prop_assert_eq!(block.len(), b.entries as usize);
            prop_assert_eq!(block.first().map(RunEntry::key), Some(b.first));
            prop_assert_eq!(block.last().map(RunEntry::key), Some(b.last));
            for e in &block {
                prop_assert_eq!(run.footer.block_of(e.key()), Some(b));
                if let RunEntry::Timer { record, .. } = e {
                    for k in shale_hot::decode(record).unwrap().keys {
                        prop_assert!(b.may_contain_message_key(&k), "{k:?} missed");
                    }
                }
            }
            all.extend(block);
        }
        prop_assert_eq!(&all, &entries);
        prop_assert_eq!(decode_run(&run.bytes).unwrap(), (run.footer.clone(), entries.clone()));
        for (after, through) in probes {
            let want: Vec<&BlockMeta> = run
                .footer
                .blocks
                .iter()
                .filter(|b| after.is_none_or(|a| b.last > a) && b.first <= through)
                .collect();
            let got: Vec<&BlockMeta> = run.footer.blocks_between(after, through).iter().collect();
            prop_assert_eq!(got, want);
            let holding = run.footer.blocks.iter().find(|b| b.first <= through && through <= b.last);
            prop_assert_eq!(run.footer.block_of(through), holding);
        }
    }
}

#[tokio::test]
async fn runs_are_put_once_read_by_ranges_listed_and_deleted() {
    let faults = Faults::default();
    let store = FaultStore::new(Arc::new(InMemory::new()), faults.clone());
    let dir = Path::from("p/runs");
    let path = dir.child("00000000000000000001-00000000000000000000.run");
    let entries: Vec<RunEntry> = (0..6).map(|i| timer((i, i as u64), &["k"])).collect();
    let run = encode(&entries, 1);
    assert_eq!(run.footer.blocks.len(), 6);

    // A put whose answer was lost, retried: fine.
    faults.lose_next_put_acks(1);
    assert!(put_run(&store, &path, run.bytes.clone()).await.is_err());
    put_run(&store, &path, run.bytes.clone()).await.unwrap();
    put_run(&store, &path, run.bytes.clone()).await.unwrap();
    // A different run under the same name is not.
    let other = encode(&entries[..2], 1);
    let err = put_run(&store, &path, other.bytes).await.unwrap_err();
    assert!(matches!(err, TieringError::Invalid { .. }), "{err:?}");

    faults.reset_counts();
    let footer = read_footer(&store, &path, &run.summary).await.unwrap();
    assert_eq!(footer, run.footer);
    assert_eq!(faults.counts().gets, 1);

    let blocks = &footer.blocks;
    let adjacent = read_blocks(&store, &path, &blocks[1..4]).await.unwrap();
    assert_eq!(
        adjacent,
        vec![
            vec![entries[1].clone()],
            vec![entries[2].clone()],
            vec![entries[3].clone()]
        ]
    );
    assert_eq!(faults.counts().gets, 2, "three adjacent blocks in one GET");
    let apart = [blocks[0].clone(), blocks[2].clone(), blocks[5].clone()];
    let got = read_blocks(&store, &path, &apart).await.unwrap();
    assert_eq!(
        got,
        vec![
            vec![entries[0].clone()],
            vec![entries[2].clone()],
            vec![entries[5].clone()]
        ]
    );
    assert_eq!(
        read_blocks(&store, &path, &[]).await.unwrap(),
        Vec::<Vec<RunEntry>>::new()
    );

    // A summary or block index that does not describe the object is an error.
    let mut wrong = run.summary.clone();
    wrong.footer_offset -= 1;
    wrong.footer_len += 1;
    assert!(read_footer(&store, &path, &wrong).await.is_err());
    let mut shifted = blocks[1].clone();
    shifted.offset = blocks[2].offset;
    assert!(read_blocks(&store, &path, &[shifted]).await.is_err());

    let other_path = dir.child("00000000000000000001-00000000000000000001.run");
    put_run(&store, &other_path, run.bytes.clone())
        .await
        .unwrap();
    assert_eq!(
        list_runs(&store, &dir).await.unwrap(),
        vec![path.clone(), other_path.clone()]
    );
    delete_run(&store, &path).await.unwrap();
    delete_run(&store, &path).await.unwrap();
    assert_eq!(list_runs(&store, &dir).await.unwrap(), vec![other_path]);
    let gone = read_footer(&store, &path, &run.summary).await.unwrap_err();
    assert!(gone.is_store_failure(), "{gone:?}");
}

#[tokio::test]
async fn a_damaged_object_is_invalid_not_a_wrong_answer() {
    let store = InMemory::new();
    let path = Path::from("r.run");
    let run = small_run();
    let mut bad = run.bytes.to_vec();
    let b = &run.footer.blocks[1];
    bad[b.offset as usize + 5] ^= 1;
    let last = bad.len() - 1;
    bad[last - 8] ^= 1; // the trailer's footer length
    put_run(&store, &path, Bytes::from(bad)).await.unwrap();
    let err = read_footer(&store, &path, &run.summary).await.unwrap_err();
    assert!(matches!(err, TieringError::Invalid { .. }), "{err:?}");
    let err = read_blocks(&store, &path, &run.footer.blocks)
        .await
        .unwrap_err();
    assert!(matches!(err, TieringError::Invalid { .. }), "{err:?}");
}
