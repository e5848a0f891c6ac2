//! `shale send` from every input, `shale consume` (filters, ack, --no-ack) and `shale group create|list|describe`.

use std::collections::BTreeSet;

use serde_json::Value;
use shale_tests::cli::Cli;

use crate::{bodies, node};

#[test]
fn send_from_every_input_then_consume_acks_what_it_printed() {
    let (dir, node) = node();
    Cli::new(&node.base, &["topic", "create", "t", "--queues", "2"])
        .run()
        .ok();
    let one = Cli::new(
        &node.base,
        &[
            "send",
            "t",
            "first",
            "--tag",
            "a",
            "--key",
            "k1",
            "--key",
            "k2",
            "--property",
            "region=eu",
            "--queue",
            "1",
            "--json",
        ],
    )
    .run()
    .ndjson();
    assert_eq!(
        (one.len(), &one[0]["queue"], &one[0]["offset"]),
        (1, &Value::from(1), &Value::from(0))
    );
    let lines = Cli::new(
        &node.base,
        &[
            "send", "t", "--lines", "--tag", "b", "--batch", "2", "--json",
        ],
    )
    .stdin("l1\r\nl2\n\nl3\n")
    .run()
    .ndjson();
    assert_eq!(lines.len(), 3, "empty lines are skipped");
    let ndjson =
        "{\"body\": \"n1\", \"tag\": \"c\", \"keys\": [\"kn\"]}\n{\"body_base64\": \"/wA=\"}\n";
    Cli::new(&node.base, &["send", "t", "--ndjson"])
        .stdin(ndjson)
        .run()
        .ok();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "from a file").expect("write");
    let table = Cli::bare(&["send", "t", "--file"])
        .arg(&file)
        .arg("--url")
        .arg(&node.base)
        .run();
    let rows: Vec<&str> = table.ok().lines().collect();
    assert!(
        rows[0].starts_with("MESSAGE_ID") && rows.len() == 2,
        "{rows:?}"
    );
    assert_eq!(
        rows[1].split_whitespace().next().map(str::len),
        Some(32),
        "{rows:?}"
    );
    let whole = Cli::new(&node.base, &["send", "t", "--queue", "0"])
        .stdin("all\nof stdin")
        .run();
    whole.ok();

    // A filter is the group's subscription: what it does not match counts as consumed.
    Cli::new(
        &node.base,
        &["group", "create", "only-c", "--from", "EARLIEST"],
    )
    .run()
    .ok();
    let filtered = Cli::new(
        &node.base,
        &[
            "consume",
            "only-c",
            "t",
            "--filter-tag",
            "c",
            "--max",
            "1",
            "--json",
        ],
    )
    .run()
    .ndjson();
    assert_eq!(bodies(&filtered), vec!["n1"]);
    assert_eq!(filtered[0]["keys"], serde_json::json!(["kn"]));
    Cli::new(
        &node.base,
        &[
            "group",
            "create",
            "g",
            "--from",
            "EARLIEST",
            "--max-attempts",
            "3",
        ],
    )
    .run()
    .ok();
    let got = Cli::new(
        &node.base,
        &["consume", "g", "t", "--max", "8", "--wait", "5s", "--json"],
    )
    .run()
    .ndjson();
    let received: BTreeSet<String> = got
        .iter()
        .map(|m| {
            m["body"].as_str().map_or_else(
                || format!("b64:{}", m["body_base64"].as_str().unwrap()),
                str::to_string,
            )
        })
        .collect();
    let expected: BTreeSet<String> = [
        "first",
        "l1",
        "l2",
        "l3",
        "b64:/wA=",
        "from a file",
        "all\nof stdin",
        "n1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(received, expected, "{got:#?}");
    let first = got.iter().find(|m| m["body"] == "first").expect("first");
    assert_eq!(first["properties"]["region"], "eu");
    assert_eq!(first["keys"], serde_json::json!(["k1", "k2"]));
    assert!(first["receipt_handle"].is_string());

    // Everything was acked: nothing more within the idle time, and no lag.
    let idle = Cli::new(&node.base, &["consume", "g", "t", "--idle-exit", "1s"]).run();
    assert_eq!(idle.ok(), "");
    let offsets = Cli::new(
        &node.base,
        &["group", "describe", "g", "--topic", "t", "--json"],
    )
    .run()
    .json();
    for q in offsets["offsets"].as_array().expect("offsets") {
        assert_eq!(
            (&q["lag"], &q["inflight"]),
            (&Value::from(0), &Value::from(0)),
            "{offsets}"
        );
    }
    // --no-ack leaves the message in flight; text output is QUEUE:OFFSET TAG KEYS BODY.
    Cli::new(
        &node.base,
        &["send", "t", "two\nlines", "--tag", "d", "--queue", "0"],
    )
    .run()
    .ok();
    let text = Cli::new(&node.base, &["consume", "g", "t", "--max", "1", "--no-ack"]).run();
    assert!(text.ok().ends_with("  d  -  two\\nlines\n"), "{text:?}");
    let offsets = Cli::new(
        &node.base,
        &["group", "describe", "g", "--topic", "t", "--json"],
    )
    .run()
    .json();
    assert_eq!(offsets["offsets"][0]["inflight"], 1, "{offsets}");
    let groups = Cli::new(&node.base, &["group", "list", "--json"])
        .run()
        .json();
    let g = groups
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "g")
        .expect("g listed");
    assert_eq!(g["max_delivery_attempts"], 3);
}
