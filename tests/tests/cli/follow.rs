//! `shale tail` and `shale cluster`.

use std::time::{Duration, Instant};

use serde_json::Value;
use shale_tests::cli::Cli;

use crate::{bodies, node};

#[test]
fn tail_follows_new_messages_in_order() {
    let (_dir, node) = node();
    Cli::new(&node.base, &["topic", "create", "t", "--queues", "1"])
        .run()
        .ok();
    Cli::new(&node.base, &["send", "t", "old"]).run().ok();
    let (mut tail, lines) = Cli::new(&node.base, &["tail", "t", "--max", "3", "--json"]).spawn();
    // Tail starts at the end when it has read the topic: keep sending until it has seen three.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while !tail.exited() {
        assert!(Instant::now() < deadline, "tail did not print 3 messages");
        Cli::new(&node.base, &["send", "t", &format!("m{i}")])
            .run()
            .ok();
        i += 1;
    }
    let (status, stderr) = tail.wait(Duration::from_secs(10));
    assert!(status.success(), "{stderr}");
    let printed: Vec<Value> = lines
        .try_iter()
        .map(|l| serde_json::from_str(&l).expect("JSON line"))
        .collect();
    let printed = bodies(&printed);
    assert_eq!(printed.len(), 3, "{printed:?}");
    let first: usize = printed[0][1..].parse().expect("m<i>");
    assert_eq!(
        printed,
        (first..first + 3)
            .map(|n| format!("m{n}"))
            .collect::<Vec<_>>()
    );
    let idle = Cli::new(&node.base, &["tail", "t", "--idle-exit", "300ms"]).run();
    assert_eq!(idle.ok(), "");
}

#[test]
fn cluster_lists_nodes_and_queue_owners() {
    let (_dir, node) = node();
    Cli::new(&node.base, &["topic", "create", "t", "--queues", "2"])
        .run()
        .ok();
    let view = Cli::new(&node.base, &["cluster", "--json"]).run().json();
    let me = view["self"].as_str().expect("self");
    assert_eq!(view["nodes"][0]["id"], me);
    let owners: Vec<(&str, u64, &str)> = view["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| {
            (
                q["topic"].as_str().unwrap(),
                q["queue"].as_u64().unwrap(),
                q["owner"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(owners, vec![("t", 0, me), ("t", 1, me)]);
    let text = Cli::new(&node.base, &["cluster"]).run();
    assert!(text.ok().contains(&format!("{me} *")), "{text:?}");
}
