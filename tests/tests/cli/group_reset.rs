//! `shale group reset`: the preview, and applying only with --yes.

use serde_json::Value;
use shale_tests::Node;
use shale_tests::cli::Cli;

use crate::{bodies, node};

/// Offsets of group `g` on topic `t` per queue (committed).
fn committed(node: &Node) -> Vec<u64> {
    let v = Cli::new(
        &node.base,
        &["group", "describe", "g", "--topic", "t", "--json"],
    )
    .run()
    .json();
    v["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|q| q["committed_offset"].as_u64().expect("committed"))
        .collect()
}

#[tokio::test]
async fn group_reset_previews_and_applies_only_when_confirmed() {
    let (_dir, node) = node();
    Cli::new(&node.base, &["topic", "create", "t", "--queues", "2"])
        .run()
        .ok();
    Cli::new(&node.base, &["send", "t", "--lines", "--queue", "0"])
        .stdin("a\nb\nc\nd\ne\n")
        .run()
        .ok();
    Cli::new(&node.base, &["send", "t", "--lines", "--queue", "1"])
        .stdin("x\ny\nz\n")
        .run()
        .ok();
    Cli::new(&node.base, &["group", "create", "g", "--from", "earliest"])
        .run()
        .ok();
    assert_eq!(
        Cli::new(&node.base, &["consume", "g", "t", "--max", "8", "--json"])
            .run()
            .ndjson()
            .len(),
        8
    );
    assert_eq!(committed(&node), vec![5, 3]);

    // Not a terminal and no --yes: the preview, exit 2, nothing applied.
    let refused = Cli::new(
        &node.base,
        &[
            "group", "reset", "g", "--topic", "t", "--to", "EARLIEST", "--json",
        ],
    )
    .run();
    assert_eq!(refused.code(), 2, "{refused:?}");
    assert!(refused.stderr.contains("--yes"), "{refused:?}");
    let preview: Value = serde_json::from_str(&refused.stdout).expect("preview JSON");
    assert_eq!(preview["applied"], false);
    let rows = |p: &Value| -> Vec<(u64, u64, u64, u64)> {
        p["preview"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                let n = |k: &str| r[k].as_u64().expect(k);
                (
                    n("current_offset"),
                    n("new_offset"),
                    n("replays"),
                    n("skips"),
                )
            })
            .collect()
    };
    assert_eq!(rows(&preview), vec![(5, 0, 5, 0), (3, 0, 3, 0)]);
    assert_eq!(committed(&node), vec![5, 3], "not applied");
    let text = Cli::new(
        &node.base,
        &[
            "group",
            "reset",
            "g",
            "--topic",
            "t",
            "--to",
            "-1h",
            "--dry-run",
        ],
    )
    .run();
    assert!(
        text.ok().contains("replays 5") && text.stdout.contains("replays 8, skips 0"),
        "{text:?}"
    );
    assert_eq!(committed(&node), vec![5, 3], "a dry run applies nothing");

    // At a terminal: a question; anything but y/yes applies nothing (exit 1).
    let declined = Cli::new(
        &node.base,
        &["group", "reset", "g", "--topic", "t", "--to", "EARLIEST"],
    )
    .run_on_terminal(b"n\n");
    assert_eq!(declined.code(), 1, "{declined:?}");
    assert!(
        declined.stderr.contains("[y/N]") && declined.stderr.contains("not confirmed"),
        "{declined:?}"
    );
    assert_eq!(committed(&node), vec![5, 3]);
    let confirmed = Cli::new(
        &node.base,
        &["group", "reset", "g", "--topic", "t", "--to", "EARLIEST"],
    )
    .run_on_terminal(b"y\n");
    assert!(confirmed.ok().contains("applied"), "{confirmed:?}");
    assert_eq!(committed(&node), vec![0, 0]);
    Cli::new(
        &node.base,
        &[
            "group", "reset", "g", "--topic", "t", "--to", "LATEST", "--yes",
        ],
    )
    .run()
    .ok();
    assert_eq!(committed(&node), vec![5, 3]);

    // Explicit offsets: only the named queue moves.
    let applied = Cli::new(
        &node.base,
        &[
            "group", "reset", "g", "--topic", "t", "--offset", "0=2", "--yes", "--json",
        ],
    )
    .run()
    .json();
    assert_eq!(rows(&applied), vec![(5, 2, 3, 0), (3, 3, 0, 0)]);
    assert_eq!(applied["applied"], true);
    assert_eq!(committed(&node), vec![2, 3]);
    let again = Cli::new(&node.base, &["consume", "g", "t", "--max", "3", "--json"])
        .run()
        .ndjson();
    assert_eq!(
        bodies(&again),
        vec!["c", "d", "e"],
        "the reset replays from offset 2"
    );

    // A time: the preview's new offsets are the node's offsets for that time.
    let third = Cli::new(
        &node.base,
        &["replay", "t", "--queue", "0", "--offset", "2"],
    )
    .run()
    .ndjson();
    let t = third[0]["store_ms"].as_i64().expect("store_ms");
    let by_time = Cli::new(
        &node.base,
        &[
            "group",
            "reset",
            "g",
            "--topic",
            "t",
            "--to",
            &t.to_string(),
            "--yes",
            "--json",
        ],
    )
    .run()
    .json();
    let rows = rows(&by_time);
    let client = shale_client::Client::new(&node.base).expect("client");
    for (queue, row) in rows.iter().enumerate() {
        let at_t = client
            .offset_for_timestamp("t", queue as u32, t)
            .await
            .expect("offset");
        assert_eq!(row.1, at_t, "queue {queue}: the node's offset for {t}");
    }
    assert!(rows[0].1 <= 2, "{rows:?}");
    assert_eq!(committed(&node), vec![rows[0].1, rows[1].1]);
    let latest = Cli::new(
        &node.base,
        &[
            "group", "reset", "g", "--topic", "t", "--to", "LATEST", "-y",
        ],
    )
    .run();
    assert!(latest.ok().contains("applied"), "{latest:?}");
    assert_eq!(committed(&node), vec![5, 3]);

    for bad in [
        &["--to", "yesterday"][..],
        &["--offset", "9=1", "--yes"],
        &[],
    ] {
        let out = Cli::new(&node.base, &["group", "reset", "g", "--topic", "t"])
            .args(bad)
            .run();
        assert_eq!(out.code(), 2, "{bad:?}: {out:?}");
    }
}
