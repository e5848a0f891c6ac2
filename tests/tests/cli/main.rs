//! The user subcommands of the real `shale` binary against a real node:
//! `topic`, `group` (with the reset preview), `send`, `consume`, `replay`
//! (NDJSON and Parquet), `tail`, `cluster`, `completions`, and their errors
//! and exit codes (1: the node said no or is unreachable; 2: usage).
//! One test binary; a module per subcommand family.

mod errors;
mod follow;
mod group_reset;
mod replay;
mod secure;
mod send_consume;
mod topics;

use serde_json::Value;
use shale_tests::Node;

/// A fresh node on a free port (its data dir lives as long as the TempDir).
pub fn node() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(&dir.path().join("data"), &[]).expect("node starts");
    (dir, node)
}

/// The text bodies of message objects.
pub fn bodies(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["body"].as_str().expect("text body").to_string())
        .collect()
}
