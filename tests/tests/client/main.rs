//! `shale-client` against the real binary: every call of the contract once,
//! with its answer checked (topics, produce JSON/raw/delay/transaction, reads
//! as a page and as an NDJSON stream, queries, timers and recall, groups,
//! transactions and check-back, cluster and health, error codes).
//! One test binary; a module per part of the contract.

mod delay;
mod groups;
mod topics;
mod transactions;

use shale_client::{Client, CreateTopic, MessageType};
use shale_tests::Node;

/// A fresh node and a client of it (base URL given with a trailing `/`).
pub fn start() -> (tempfile::TempDir, Node, Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(&dir.path().join("data"), &[]).expect("node");
    let client = Client::new(format!("{}/", node.base)).expect("client");
    (dir, node, client)
}

/// A topic to create.
pub fn topic(name: &str, queues: u32, kind: MessageType) -> CreateTopic {
    CreateTopic {
        queues: Some(queues),
        message_type: Some(kind),
        ..CreateTopic::new(name)
    }
}
