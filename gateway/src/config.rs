//! Node settings. (Being written.)
use std::path::PathBuf;

/// Settings of one node.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// HTTP(S) listen address; port 0 picks a free port.
    pub listen: String,
    /// Hot tier (`{data_dir}/hot`) and local state (topic metadata, node id).
    pub data_dir: PathBuf,
    /// Object store URL: `file:///abs/path`, `s3://bucket/prefix`, `memory://`.
    pub object_store: String,
    /// Seal the active segment at this size.
    pub segment_bytes: u64,
    /// Seal the active segment at this age.
    pub segment_ms: u64,
    /// Local disk budget of the hot tier (used once tiering lands).
    pub hot_bytes: Option<u64>,
    /// Stable node id (default: generated and kept in the data dir).
    pub node_id: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Period of the background fsync that makes ASYNC writes durable.
    pub flush_interval_ms: u64,
    /// How long SIGTERM waits for in-flight requests before stopping.
    pub drain_timeout_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./shale-data"),
            object_store: "file://./shale-data/objects".into(),
            segment_bytes: 64 * 1024 * 1024,
            segment_ms: 10 * 60 * 1000,
            hot_bytes: None,
            node_id: None,
            tls_cert: None,
            tls_key: None,
            flush_interval_ms: 1000,
            drain_timeout_ms: 30_000,
        }
    }
}
