//! Storing a group's settings: the object store's copy
//! (`Layout::group_meta`) first, then the local file, so a setting a client
//! was told is stored survives the loss of this node's disk.
//!
//! Creations and updates are serialised by `Groups::admin`. A group unknown
//! here is looked up in the object store before it is created with defaults
//! (it may have been created through another node of the cluster); every
//! change rewrites the groups stamp, and the nodes that use the group re-read
//! its settings when the stamp moves ([`refresh_from_store`]).

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
    // Another node may have stored it (created or configured there): the
    // store's copy wins; defaults are written only where there is none, with
    // a create-only write, so they never overwrite settings a client chose.
    let path = state.tier.layout().group_meta(name);
    let defaults = GroupConfig::defaults(name);
    let create = object_store::PutOptions {
        mode: object_store::PutMode::Create,
        ..Default::default()
    };
    let stored = state
        .tier
        .store()
        .put_opts(&path, super::encode(&defaults).into(), create)
        .await;
    let cfg = match stored {
        Ok(_) => defaults,
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => {
            let bytes = state
                .tier
                .store()
                .get(&path)
                .await
                .map_err(store_err)?
                .bytes()
                .await
                .map_err(store_err)?;
            super::decode(&bytes).map_err(|e| {
                BrokerError::internal("reading a group's settings from the object store", e)
            })?
        }
        Err(e) => return Err(store_err(e)),
    };
    adopt(state, cfg).await
}

/// Keeps `cfg` as the local copy of a group's settings.
async fn adopt(state: &Arc<Broker>, cfg: GroupConfig) -> BrokerResult<GroupConfig> {
    let st = state.clone();
    let c = cfg.clone();
    tokio::task::spawn_blocking(move || st.groups.put_blocking(&c))
        .await?
        .map_err(|e| BrokerError::internal("writing group settings", e))?;
    Ok(cfg)
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
    let cfg = adopt(state, cfg).await?;
    // The other nodes re-read group settings when this stamp moves.
    if let Err(e) = state.tier.touch_groups_stamp().await {
        tracing::warn!(error = %crate::error::error_chain(&e), "could not announce a group change; other nodes see it when they restart");
    }
    Ok(cfg)
}

/// Brings the local copies of group settings in line with the object store
/// when another node changed one (its stamp moved; one HEAD otherwise).
/// Returns how many changed.
pub async fn refresh_from_store(state: &Arc<Broker>) -> BrokerResult<usize> {
    let stamp = state.tier.groups_stamp().await?;
    if state.groups.seen.lock().as_ref() == Some(&stamp) {
        return Ok(0);
    }
    let _admin = state.groups.admin.lock().await;
    let mut changed = 0;
    for bytes in state.tier.list_group_metas().await? {
        let cfg = match super::decode(&bytes) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "skipping an unreadable group settings object");
                continue;
            }
        };
        // Only groups this node uses: the others are read on first use.
        if state.groups.get(&cfg.name).is_some_and(|g| g != cfg) {
            adopt(state, cfg).await?;
            changed += 1;
        }
    }
    *state.groups.seen.lock() = Some(stamp);
    Ok(changed)
}
