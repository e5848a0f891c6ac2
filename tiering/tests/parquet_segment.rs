#![allow(clippy::unwrap_used)]
//! Parquet segments: round trip of every field, row-group pruning (a point
//! read with a cached footer is one ranged GET), and the contract's schema.

use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use shale_hot::{MessageId, Record};
use shale_tiering::parquet_segment::{encode_segment, read_footer, read_range};
use shale_tiering::{FaultStore, Faults, ObjectStoreUrl, open_object_store};

fn record(offset: u64) -> Record {
    Record {
        offset,
        store_ms: 1_700_000_000_000 + offset as i64,
        born_ms: 1_700_000_000_000,
        deliver_at_ms: offset.is_multiple_of(3).then_some(1_800_000_000_000),
        message_id: MessageId::new(1_700_000_000_000 + offset as i64, 2, offset, 7),
        tag: offset.is_multiple_of(2).then(|| format!("t{}", offset % 5)),
        keys: (0..(offset % 3))
            .map(|k| format!("k{k}-{offset}"))
            .collect(),
        properties: vec![
            ("n".into(), offset.to_string()),
            ("region".into(), "eu".into()),
        ],
        message_group: offset.is_multiple_of(4).then(|| "g".to_string()),
        body: if offset.is_multiple_of(7) {
            Bytes::from(vec![0xff, 0x00, offset as u8])
        } else {
            Bytes::from(format!(
                "{{\"order\":{offset},\"pad\":\"{}\"}}",
                "x".repeat(400)
            ))
        },
    }
}

#[tokio::test]
async fn segments_round_trip_and_point_reads_fetch_one_row_group() {
    let records: Vec<Record> = (100..2100).map(record).collect();
    let (bytes, entry) = encode_segment(&records, 64 * 1024).unwrap();
    assert_eq!(
        (entry.base_offset, entry.end_offset, entry.rows),
        (100, 2100, 2000)
    );
    assert_eq!(
        (entry.min_store_ms, entry.max_store_ms),
        (records[0].store_ms, records[1999].store_ms)
    );

    let faults = Faults::default();
    let (mem, _) = open_object_store(&ObjectStoreUrl::Memory).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(mem, faults.clone()));
    let path = Path::from("topics/t/queues/2/segments/00000000000000000100.parquet");
    store.put(&path, bytes.clone().into()).await.unwrap();
    let footer = read_footer(store.clone(), &path, entry.bytes)
        .await
        .unwrap();
    assert!(footer.row_groups.len() > 5, "{:?}", footer.row_groups);

    let all = read_range(store.clone(), &path, &footer, 100, 5000)
        .await
        .unwrap();
    assert_eq!(all, records);

    faults.reset_counts();
    let one = read_range(store.clone(), &path, &footer, 1234, 1)
        .await
        .unwrap();
    assert_eq!(one, vec![record(1234)]);
    assert_eq!(
        faults.counts().gets,
        1,
        "a point read with a cached footer must be one ranged GET"
    );

    let span = read_range(store.clone(), &path, &footer, 2090, 50)
        .await
        .unwrap();
    assert_eq!(
        span.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (2090..2100).collect::<Vec<_>>()
    );
    assert!(
        read_range(store, &path, &footer, 2100, 5)
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn gaps_and_empty_segments_are_refused() {
    for records in [vec![], vec![record(1), record(3)]] {
        let err = encode_segment(&records, 1024).unwrap_err();
        assert!(
            matches!(err, shale_tiering::TieringError::Invalid { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn bloom_filters_and_compression_are_as_the_contract_says() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let records: Vec<Record> = (0..500).map(record).collect();
    let (bytes, _) = encode_segment(&records, 32 * 1024).unwrap();
    let reader = SerializedFileReader::new(bytes).unwrap();
    let meta = reader.metadata();
    for rg in meta.row_groups() {
        for col in rg.columns() {
            let name = col.column_path().string();
            assert_eq!(
                col.compression(),
                parquet::basic::Compression::ZSTD(Default::default()),
                "{name}"
            );
            let bloom = col.bloom_filter_offset().is_some();
            assert_eq!(
                bloom,
                name == "message_id" || name == "keys.list.element",
                "bloom filter on {name}"
            );
        }
        assert!(rg.column(0).statistics().is_some() && rg.column(1).statistics().is_some());
    }
}

/// pyarrow (installed by scripts/test.sh into .venv) reads a segment and its
/// rows equal what was written.
#[test]
fn pyarrow_reads_a_segment() {
    let Ok(python) = std::env::var("SHALE_TEST_PYTHON") else {
        assert!(
            std::env::var("SHALE_REQUIRE_S3").is_err(),
            "scripts/test.sh must set SHALE_TEST_PYTHON"
        );
        eprintln!("SKIPPED: SHALE_TEST_PYTHON is not set (scripts/test.sh sets it)");
        return;
    };
    let records: Vec<Record> = (0..300).map(record).collect();
    let (bytes, _) = encode_segment(&records, 16 * 1024).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("00000000000000000000.parquet");
    std::fs::write(&file, &bytes).unwrap();
    let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
types = {f.name: str(f.type) for f in t.schema}
t = t.set_column(t.schema.get_field_index("store_ms"), "store_ms", t.column("store_ms").cast("int64"))
rows = []
for r in t.to_pylist():
    r["body"] = r["body"].hex()
    r["properties"] = [list(kv) for kv in r["properties"]]
    rows.append(r)
print(json.dumps({"types": types, "rows": rows}))
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["types"]["offset"], "int64");
    assert_eq!(v["types"]["store_ms"], "timestamp[ms]");
    assert_eq!(v["types"]["keys"], "list<element: string not null>");
    assert_eq!(v["types"]["body"], "binary");
    assert!(
        v["types"]["properties"]
            .as_str()
            .unwrap()
            .starts_with("map<string, string")
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), records.len());
    for (row, rec) in rows.iter().zip(&records) {
        assert_eq!(row["offset"], rec.offset);
        assert_eq!(row["store_ms"], rec.store_ms);
        assert_eq!(row["message_id"], rec.message_id.to_string());
        assert_eq!(row["body"], hex::encode(&rec.body));
        assert_eq!(row["keys"], serde_json::json!(rec.keys));
        assert_eq!(row["tag"], serde_json::json!(rec.tag));
        assert_eq!(row["message_group"], serde_json::json!(rec.message_group));
        let props: Vec<(String, String)> =
            serde_json::from_value(row["properties"].clone()).unwrap();
        assert_eq!(props, rec.properties);
    }
}
