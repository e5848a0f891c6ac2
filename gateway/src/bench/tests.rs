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
