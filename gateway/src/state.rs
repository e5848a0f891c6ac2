//! Everything a running node holds. (Being written.)
use std::sync::Arc;

use crate::config::NodeConfig;

/// The shared state behind every handler.
#[derive(Debug)]
pub struct AppState {}

impl AppState {
    /// Opens the node's storage (hot tier under `{data_dir}/hot`, topic metadata) and metrics.
    pub fn open(config: &NodeConfig) -> anyhow::Result<Arc<AppState>> {
        let _ = config;
        todo!()
    }

    /// Periodic background work: fsync ASYNC data, seal segments past `segment_ms`.
    pub async fn maintenance_tick(&self) {}

    /// Final flush on shutdown: everything written becomes durable.
    pub async fn shutdown_flush(&self) -> anyhow::Result<()> {
        todo!()
    }
}
