//! What the broker needs to open: local directories, segment limits, the
//! object store. Front-ends build it from their own settings (the HTTP node
//! from `shale.toml`, environment and flags) after validating them.

use std::path::PathBuf;

use shale_tiering::ObjectStoreUrl;

/// Settings of one broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Hot tier (`{data_dir}/hot`) and local metadata (`{data_dir}/meta`).
    pub data_dir: PathBuf,
    /// The object store holding sealed segments, manifests and shared metadata.
    pub object_store: ObjectStoreUrl,
    /// Seal the active segment at this size.
    pub segment_bytes: u64,
    /// Seal the active segment at this age.
    pub segment_ms: u64,
    /// Local disk budget of the hot tier (`None`: unbounded).
    pub hot_bytes: Option<u64>,
    /// This node's id (reported as the owner of its queues).
    pub node_id: String,
    /// Membership timing and this node's advertise URL.
    pub cluster: crate::cluster::ClusterConfig,
    /// Least time between the starts of two OBJECT group commits (see [`crate::wal`]).
    pub object_commit_interval: std::time::Duration,
    /// Furthest ahead a delay message may be due, in ms (see
    /// [`crate::produce::plan::DEFAULT_MAX_DELAY_MS`], at most
    /// [`crate::produce::plan::MAX_MAX_DELAY_MS`]).
    pub max_delay_ms: i64,
}
