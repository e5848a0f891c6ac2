//! The HTTP side of the cluster: any node serves any request.
//!
//! - [`forward`]: a request about one queue that another node serves is sent
//!   on to that node as is (method, path, query, headers, body), marked with
//!   [`FORWARDED`]; its answer goes back unchanged. A forwarded request that
//!   reaches a node which does not serve the queue either (views differ for a
//!   moment while a queue moves) is answered 503 `UNAVAILABLE` with
//!   `Retry-After`, never forwarded again, so requests cannot loop.
//! - [`gather`]: requests over many queues — a group receive, an ack of
//!   handles from several queues — are split among the queues' nodes and the
//!   answers merged.
//!
//! Node-to-node calls use each node's advertise URL (`--advertise-url`).

pub mod forward;
pub mod gather;

/// Header marking a request one node sent to another (its value: the sender's id).
pub const FORWARDED: &str = "shale-forwarded";

/// True when the request came from another node.
pub fn is_forwarded(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(FORWARDED)
}
