//! Storing a group's settings: the object store's copy
//! (`Layout::group_meta`) first, then the local file, so a setting a client
//! was told is stored survives the loss of this node's disk.
//!
//! Creations and updates are serialised by `Groups::admin`.

use std::sync::Arc;

use super::config::GroupConfig;
use super::secret::store_err;
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult};

/// The group, created with defaults on first use.
pub async fn ensure_group(state: &Arc<Broker>, name: &str) -> BrokerResult<GroupConfig> {
    if let Some(g) = state.groups.get(name) {
        return Ok(g);
    }
    crate::validate::group_name(name)?;
    let _admin = state.groups.admin.lock().await;
    if let Some(g) = state.groups.get(name) {
        return Ok(g);
    }
    put_group(state, GroupConfig::defaults(name)).await
}

/// Stores a group's settings: the object store's copy first, then the local
/// file. Callers hold `Groups::admin`.
pub async fn put_group(state: &Arc<Broker>, cfg: GroupConfig) -> BrokerResult<GroupConfig> {
    let path = state.tier.layout().group_meta(&cfg.name);
    state
        .tier
        .store()
        .put(&path, super::encode(&cfg).into())
        .await
        .map_err(store_err)?;
    let st = state.clone();
    let c = cfg.clone();
    tokio::task::spawn_blocking(move || st.groups.put_blocking(&c))
        .await?
        .map_err(|e| BrokerError::internal("writing group settings", e))?;
    Ok(cfg)
}
