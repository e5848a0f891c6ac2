#![allow(clippy::unwrap_used)]
//! A sealed segment damaged on local disk does not block its queue's
//! uploads: the readable records go up, each lost offset becomes a marker
//! row, and a cold read of a lost offset is an error, never a message.

mod common;

use std::os::unix::fs::FileExt;

use bytes::Bytes;
use common::{HotQueue, filled_queue};
use object_store::path::Path;
use shale_hot::AppendRequest;
use shale_tiering::cold_reader::ColdReader;
use shale_tiering::parquet_segment::lost_reason;
use shale_tiering::paths::Layout;
use shale_tiering::uploader::QueueUploader;
use shale_tiering::{ObjectStoreUrl, TieringError, open_object_store};

/// Flips one bit in the body of record `nth` of the segment file at `path`.
fn damage_record(path: &std::path::Path, nth: usize) {
    let bytes = std::fs::read(path).unwrap();
    let mut pos = 0usize;
    for _ in 0..nth {
        pos += u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
    }
    let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
    let at = pos + len - 3;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_at(&[bytes[at] ^ 0x20], at as u64).unwrap();
}

#[tokio::test]
async fn a_damaged_segment_uploads_what_is_readable_and_marks_the_rest() {
    let HotQueue { dir, q, .. } = filled_queue("t", 0, 16 * 1024, 300, 10, |i| AppendRequest {
        keys: vec![format!("k{i}")],
        body: Bytes::from(format!("{{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(200))),
        ..Default::default()
    });
    let sealed = q.sealed_segments();
    assert!(sealed.len() >= 3, "{sealed:?}");
    let victim_seg = sealed[1];
    let hot_rows = q.read(0, 300, usize::MAX).unwrap();
    let file = dir
        .path()
        .join("t/0")
        .join(format!("{:020}.log", victim_seg.base_offset));
    damage_record(&file, 5);
    let lost = victim_seg.base_offset + 5;
    assert!(
        matches!(
            q.read(lost, 1, usize::MAX),
            Err(shale_hot::HotError::Corrupt { .. })
        ),
        "the hot tier must see the damage"
    );

    let (store, _) = open_object_store(&ObjectStoreUrl::Memory).unwrap();
    let layout = Layout::new(Path::from("p"));
    let mut up = QueueUploader::open(store.clone(), layout.clone(), "t", 0, 4096)
        .await
        .unwrap();
    let added = up.upload_sealed(&q).await.unwrap();
    assert_eq!(added.len(), sealed.len(), "every sealed segment went up");
    let end = up.manifest().manifest().end_offset();
    assert_eq!(end, sealed.last().unwrap().end_offset);

    let reader = ColdReader::new(store, layout, 8 << 20);
    let mut at = 0;
    while at < end {
        match reader.read("t", 0, at, 64).await {
            Ok(part) => {
                assert!(!part.is_empty(), "nothing at {at}");
                for r in part {
                    assert_ne!(r.offset, lost, "a lost message was served");
                    assert!(lost_reason(&r).is_none());
                    assert_eq!(r, hot_rows[r.offset as usize]);
                    at = r.offset + 1;
                }
            }
            Err(TieringError::Lost { offset, reason, .. }) => {
                assert_eq!(offset, lost);
                assert!(reason.contains("CRC32C"), "{reason}");
                at += 1;
            }
            Err(e) => panic!("reading {at}: {e}"),
        }
    }
    assert!(matches!(
        reader.read("t", 0, lost, 1).await,
        Err(TieringError::Lost { .. })
    ));
    assert_eq!(
        reader.read("t", 0, lost + 1, 1).await.unwrap()[0],
        hot_rows[lost as usize + 1]
    );
}
