//! `shale replay` to stdout, a file and Parquet files read back with the parquet crate.

use serde_json::Value;
use shale_tests::cli::Cli;

use crate::node;

#[test]
fn replay_to_ndjson_a_file_and_parquet() {
    let (dir, node) = node();
    Cli::new(&node.base, &["topic", "create", "t", "--queues", "2"])
        .run()
        .ok();
    let input = [
        r#"{"body": "a0", "tag": "x", "keys": ["k"], "properties": {"p": "1"}, "queue": 0}"#,
        r#"{"body_base64": "/wA=", "queue": 0}"#,
        r#"{"body": "a2", "tag": "y", "queue": 0}"#,
        r#"{"body": "b0", "tag": "x", "queue": 1}"#,
        r#"{"body": "b1", "keys": ["k"], "queue": 1}"#,
        r#"{"body": "b2", "queue": 1}"#,
    ];
    Cli::new(&node.base, &["send", "t", "--ndjson", "--no-dedup-id"])
        .stdin(input.join("\n"))
        .run()
        .ok();
    let replay = |extra: &[&str]| -> Vec<Value> {
        let out = Cli::new(&node.base, &["replay", "t"]).args(extra).run();
        assert_eq!(
            out.stderr, "",
            "no progress bar when stderr is not a terminal"
        );
        out.ndjson()
    };
    let text = |messages: &[Value]| -> Vec<String> {
        messages
            .iter()
            .map(|m| {
                m["body"]
                    .as_str()
                    .map_or_else(|| format!("b64:{}", m["body_base64"]), str::to_string)
            })
            .collect()
    };
    let all = replay(&[]);
    assert_eq!(
        text(&all),
        vec!["a0", "b64:\"/wA=\"", "a2", "b0", "b1", "b2"]
    );
    assert_eq!(all[0]["properties"], serde_json::json!({"p": "1"}));
    assert_eq!(text(&replay(&["--queue", "1"])), vec!["b0", "b1", "b2"]);
    assert_eq!(text(&replay(&["--tag", "x"])), vec!["a0", "b0"]);
    assert_eq!(text(&replay(&["--key", "k"])), vec!["a0", "b1"]);
    assert_eq!(text(&replay(&["--offset", "2"])), vec!["a2", "b2"]);
    let first_store = all
        .iter()
        .map(|m| m["store_ms"].as_i64().expect("store_ms"))
        .min()
        .expect("min");
    assert_eq!(replay(&["--from-time", &first_store.to_string()]).len(), 6);
    assert_eq!(
        replay(&["--to-time", &first_store.to_string()]).len(),
        0,
        "to-time is exclusive"
    );
    assert_eq!(replay(&["--from-time", "-1h", "--to-time", "+1h"]).len(), 6);
    assert_eq!(replay(&["--from-time", "LATEST"]).len(), 0);

    // What replay prints can be sent again (reserved shale.* properties dropped).
    Cli::new(&node.base, &["topic", "create", "copy"])
        .run()
        .ok();
    let again: Vec<String> = all
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m["properties"]["shale.dedup_id"] = "as the node sets it".into();
            m.to_string()
        })
        .collect();
    let sent = Cli::new(&node.base, &["send", "copy", "--ndjson", "--json"])
        .stdin(again.join("\n"))
        .run()
        .ndjson();
    assert_eq!(sent.len(), 6);
    let copied = Cli::new(&node.base, &["replay", "copy", "--queue", "1"])
        .run()
        .ndjson();
    assert_eq!(text(&copied), vec!["b0", "b1", "b2"], "queues kept");
    assert_eq!(copied[0]["tag"], "x");
    assert!(
        copied[0]["properties"]["shale.dedup_id"]
            .as_str()
            .is_some_and(|d| d.starts_with("cli-"))
    );

    let file = dir.path().join("out.ndjson");
    let out = Cli::new(&node.base, &["replay", "t"])
        .arg("--output")
        .arg(&file)
        .run();
    assert_eq!(out.ok(), "");
    let written: Vec<Value> = std::fs::read_to_string(&file)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(written, all);

    let parquet = dir.path().join("pq");
    Cli::new(&node.base, &["replay", "t"])
        .arg("--parquet-dir")
        .arg(&parquet)
        .run()
        .ok();
    for queue in 0..2u32 {
        let path = parquet.join(format!(
            "topics/t/queues/{queue}/segments/{:020}.parquet",
            0
        ));
        let rows = read_parquet(&path);
        let expected: Vec<&Value> = all.iter().filter(|m| m["queue"] == queue).collect();
        assert_eq!(rows.len(), expected.len(), "{}", path.display());
        for (row, message) in rows.iter().zip(expected) {
            assert_eq!(Some(row.0), message["offset"].as_i64());
            assert_eq!(Some(row.1.as_str()), message["message_id"].as_str());
            let body = message["body"]
                .as_str()
                .map_or_else(|| vec![0xff, 0], |b| b.as_bytes().to_vec());
            assert_eq!(row.2, body);
        }
    }
}

/// (offset, message_id, body) of each row, after checking the public columns.
fn read_parquet(path: &std::path::Path) -> Vec<(i64, String, Vec<u8>)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a Parquet file");
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "offset",
            "store_ms",
            "born_ms",
            "message_id",
            "tag",
            "keys",
            "message_group",
            "properties",
            "body",
            "deliver_at_ms"
        ]
    );
    let mut rows = Vec::new();
    for batch in reader.build().expect("reader") {
        let batch = batch.expect("batch");
        let offsets = batch.column(0).as_primitive::<Int64Type>();
        let ids = batch.column(3).as_string::<i32>();
        let bodies = batch.column(8).as_binary::<i32>();
        for i in 0..batch.num_rows() {
            rows.push((
                offsets.value(i),
                ids.value(i).to_string(),
                bodies.value(i).to_vec(),
            ));
        }
    }
    rows
}
