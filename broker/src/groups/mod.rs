//! Consumer groups (RocketMQ 5 simple consumer / SQS receive-delete).
//!
//! - [`config`]: a group's settings, kept in `{data_dir}/meta/groups/{name}.json`
//!   and copied to the object store (`{prefix}/groups/{name}/group.json`);
//!   a group is created with defaults on first use.
//! - [`cursor`]: the delivery state of one queue for a group (one consumer in
//!   BROADCASTING mode): in flight, retries, FIFO holds, committed offset.
//! - [`cursor_map`]: the cursors this node holds, one lock each.
//! - [`receipt`]: tamper-proof receipt handles; [`secret`]: their key.
//! - [`receive`], [`dead_letter`], [`ack`], [`offsets`], [`settings`]: the
//!   operations over both tiers ([`deliver`] re-exports them under their
//!   old paths); [`api`]: the contract's limits on their arguments.
//! - [`durable`]: cursor checkpoints; [`report`]: the group gauges;
//!   [`ack_rate`]: recent ack rates (catch-up estimates); [`send_back`]:
//!   a dead-letter message produced again to its origin topic.
//!
//! Cursors live in memory, each behind its own short lock that is never
//! held across I/O (see [`cursor_map`]); one slow object-store read stalls
//! only the receive waiting on it.

pub mod ack;
pub mod ack_rate;
pub mod api;
pub mod config;
pub mod cursor;
pub mod cursor_map;
pub mod dead_letter;
pub mod deliver;
pub mod durable;
pub mod filter;
pub mod offsets;
pub mod receipt;
pub mod receive;
pub mod report;
pub mod secret;
pub mod send_back;
pub mod settings;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use config::GroupConfig;
use cursor_map::CursorMap;

use crate::error::{BrokerError, error_chain};

/// Which cursor: group, topic, queue and (BROADCASTING) consumer id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CursorKey {
    pub group: String,
    pub topic: String,
    pub queue: u32,
    /// Empty in CLUSTERING mode.
    pub consumer: String,
}

impl CursorKey {
    pub fn new(group: &str, topic: &str, queue: u32, consumer: &str) -> Self {
        CursorKey {
            group: group.to_string(),
            topic: topic.to_string(),
            queue,
            consumer: consumer.to_string(),
        }
    }
}

/// Every group of the node and their cursors.
#[derive(Debug)]
pub struct Groups {
    dir: PathBuf,
    configs: RwLock<HashMap<String, GroupConfig>>,
    /// Serialises creations and updates of group settings.
    pub admin: tokio::sync::Mutex<()>,
    pub cursors: CursorMap,
    /// Recent ack rates per cursor (catch-up estimates).
    pub ack_rates: ack_rate::AckRates,
    /// The receipt-handle key, loaded from (or created in) the object store on first use.
    pub secret: tokio::sync::OnceCell<Vec<u8>>,
    /// Woken by acks, nacks and invisibility changes (long polls re-check).
    pub changed: tokio::sync::Notify,
    /// Rotates the queue a receive starts with.
    pub round_robin: std::sync::atomic::AtomicU32,
    /// Source of cursor read claims (unique per node and run).
    claims: AtomicU64,
    /// The groups stamp the local settings were last brought in line with
    /// (`None`: not yet; `Some(None)`: no group was ever changed).
    pub seen: parking_lot::Mutex<Option<Option<String>>>,
}

impl Groups {
    /// Loads the group settings kept in `dir` (a damaged file is logged and skipped).
    pub fn open(dir: &Path) -> anyhow::Result<Groups> {
        fs::create_dir_all(dir)?;
        let mut configs = HashMap::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match fs::read(&path)
                .map_err(GroupFileError::Read)
                .and_then(|b| decode(&b))
            {
                Ok(cfg) => {
                    configs.insert(cfg.name.clone(), cfg);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %error_chain(&e), "skipping an unreadable group file")
                }
            }
        }
        Ok(Groups {
            dir: dir.to_path_buf(),
            configs: RwLock::new(configs),
            admin: tokio::sync::Mutex::new(()),
            cursors: CursorMap::default(),
            ack_rates: ack_rate::AckRates::default(),
            secret: tokio::sync::OnceCell::new(),
            changed: tokio::sync::Notify::new(),
            round_robin: std::sync::atomic::AtomicU32::new(0),
            claims: AtomicU64::new(1),
            seen: parking_lot::Mutex::new(None),
        })
    }

    /// The committed offset of every cursor of `group` this node holds.
    pub fn committed_of(&self, group: &str) -> Vec<(CursorKey, u64)> {
        self.cursors
            .collect(|k| k.group == group, |k, c| (k.clone(), c.committed))
    }

    /// A fresh claim for a cursor's read of new offsets.
    pub fn next_claim(&self) -> u64 {
        self.claims.fetch_add(1, Ordering::Relaxed)
    }

    pub fn get(&self, name: &str) -> Option<GroupConfig> {
        self.configs.read().get(name).cloned()
    }

    pub fn list(&self) -> Vec<GroupConfig> {
        let mut v: Vec<GroupConfig> = self.configs.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Stores a group's settings crash-safely (blocking I/O), as the same
    /// JSON that goes to the object store. Callers hold [`Self::admin`].
    pub fn put_blocking(&self, cfg: &GroupConfig) -> std::io::Result<()> {
        let target = self.dir.join(format!("{}.json", cfg.name));
        shale_hot::durable_file::write_atomic(&target, &encode(cfg))?;
        self.configs.write().insert(cfg.name.clone(), cfg.clone());
        Ok(())
    }
}

/// Why a group file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GroupFileError {
    #[error("reading the group file")]
    Read(#[source] std::io::Error),
    #[error("the group file is not valid JSON of a group")]
    Json(#[from] serde_json::Error),
    #[error("unsupported group file version {0:?}")]
    Version(Option<u64>),
    #[error("the group file holds invalid settings")]
    Invalid(#[source] BrokerError),
}

const GROUP_FILE_VERSION: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct GroupFile {
    version: u32,
    #[serde(flatten)]
    config: GroupConfig,
}

/// The versioned JSON of a group (its file and its object-store copy).
pub fn encode(cfg: &GroupConfig) -> Vec<u8> {
    serde_json::to_vec_pretty(&GroupFile {
        version: GROUP_FILE_VERSION,
        config: cfg.clone(),
    })
    .unwrap_or_default()
}

/// Parses and checks [`encode`]'s output.
pub fn decode(bytes: &[u8]) -> Result<GroupConfig, GroupFileError> {
    let mut obj: serde_json::Value = serde_json::from_slice(bytes)?;
    let version = obj.get("version").and_then(|v| v.as_u64());
    if version != Some(u64::from(GROUP_FILE_VERSION)) {
        return Err(GroupFileError::Version(version));
    }
    if let Some(m) = obj.as_object_mut() {
        m.remove("version");
    }
    let cfg: GroupConfig = serde_json::from_value(obj)?;
    cfg.validate().map_err(GroupFileError::Invalid)?;
    Ok(cfg)
}
