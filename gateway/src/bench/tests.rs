//! Unit tests of the bench helpers.

use anyhow::Context;
use serde_json::Value;

use super::report::median;
use super::throughput::produce_body;

#[test]
fn median_of_odd_and_even() {
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    assert!(median(vec![]).is_nan());
}

#[test]
fn produce_body_has_the_requested_shape() -> anyhow::Result<()> {
    let b = produce_body(3, 1024, 1)?;
    let v: Value = serde_json::from_slice(&b)?;
    let msgs = v["messages"].as_array().context("messages")?;
    assert_eq!(msgs.len(), 3);
    assert!(
        msgs.iter()
            .all(|m| m["body"].as_str().map(str::len) == Some(1024))
    );
    Ok(())
}

#[test]
fn latencies_are_matched_by_message_id() {
    use std::time::{Duration, Instant};

    use super::groups::match_latencies;

    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let produced = vec![
        ("a".to_string(), ms(10)),
        ("b".to_string(), ms(20)),
        ("c".to_string(), ms(30)),
        ("d".to_string(), ms(40)),
    ];
    let received = vec![
        // Out of order, one before its produce call returned, one twice,
        // one never produced; "d" never arrives.
        ("b".to_string(), ms(23)),
        ("a".to_string(), ms(15)),
        ("c".to_string(), ms(29)),
        ("b".to_string(), ms(50)),
        ("x".to_string(), ms(60)),
    ];
    let m = match_latencies(&produced, &received);
    assert_eq!(m.latencies_us, vec![3_000, 5_000, 0]);
    assert_eq!((m.early, m.duplicates, m.unknown, m.missing), (1, 1, 1, 1));
}

#[test]
fn ndjson_lines_are_split_across_chunks_and_offsets_checked() -> anyhow::Result<()> {
    use super::cold::{LineCheck, line_offset};

    let line = |o: u64| {
        format!(
            r#"{{"message_id":"ab","topic":"t","queue":0,"offset":{o},"keys":[],"properties":{{"offset":"9"}},"body":"\"offset\":7"}}"#
        )
    };
    assert_eq!(line_offset(line(42).as_bytes()), Some(42));
    assert_eq!(line_offset(br#"{"body":"x"}"#), None);

    let stream: String = (0..5).map(|o| line(o) + "\n").collect();
    // Every split point, so lines cross chunk boundaries.
    for cut in [1, 7, 50, stream.len() - 1] {
        let mut check = LineCheck::default();
        check.feed(&stream.as_bytes()[..cut])?;
        check.feed(&stream.as_bytes()[cut..])?;
        assert_eq!(check.finish()?, 5);
    }
    let mut gap = LineCheck::default();
    assert!(
        gap.feed(format!("{}\n{}\n", line(0), line(2)).as_bytes())
            .is_err()
    );
    let mut truncated = LineCheck::default();
    truncated.feed(line(0).as_bytes())?;
    assert!(truncated.finish().is_err());
    Ok(())
}

#[test]
fn order_messages_are_realistic_json() -> anyhow::Result<()> {
    use super::cold::order_message;

    let n = 1000;
    let mut total = 0;
    for i in 0..n {
        let o = order_message(i);
        let v: Value = serde_json::from_str(&o.body)?;
        assert_eq!(v["order_id"].as_str(), Some(o.key.as_str()));
        assert_eq!(v["status"].as_str(), Some(o.tag));
        total += o.body.len();
    }
    let mean = total / n as usize;
    assert!((230..=290).contains(&mean), "mean body {mean} B");
    Ok(())
}

/// The whole `--cold` path at a tiny size: fill, hand-over, GET baseline,
/// cold replay on a fresh node; the report carries every figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_bench_reports_its_figures() -> anyhow::Result<()> {
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::BenchArgs,
    }

    let dir = tempfile::tempdir()?;
    let store = tempfile::tempdir()?;
    let store_url = format!("file://{}", store.path().display());
    let cli = Cli::try_parse_from([
        "bench",
        "--cold",
        "--cold-messages",
        "2000",
        "--cold-segment-bytes",
        "65536",
        "--runs",
        "1",
        "--cold-object-store",
        &store_url,
    ])?;
    let report = super::run_in(&cli.args, dir.path()).await?;
    let cold = report.to_json()["cold"].clone();
    assert_eq!(cold["messages"], 2000);
    assert!(cold["segments"].as_u64().context("segments")? > 1);
    for field in [
        "object_bytes",
        "median_baseline_mb_per_s",
        "median_replay_mb_per_s",
        "median_replay_msgs_per_s",
        "median_ratio_to_baseline",
        "median_hot_replay_msgs_per_s",
    ] {
        let v = cold[field].as_f64().with_context(|| field.to_string())?;
        assert!(v > 0.0 && v.is_finite(), "{field} = {v}");
    }
    assert_eq!(cold["runs"][0]["replay_lines"], 2000);
    assert!(
        report.throughput.is_empty(),
        "--cold replaces the throughput"
    );
    assert!(
        report
            .to_markdown(&cli.args)
            .contains("cold NDJSON replay, fresh node")
    );
    // The bench's prefix is removed from the given store.
    assert_eq!(std::fs::read_dir(store.path())?.count(), 0);
    Ok(())
}
