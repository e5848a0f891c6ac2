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
