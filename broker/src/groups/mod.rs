//! Consumer groups (RocketMQ 5 simple consumer / SQS receive-delete).
//!
//! - [`config`]: a group's settings, kept in `{data_dir}/meta/groups/{name}.json`
//!   and copied to the object store (`{prefix}/groups/{name}/group.json`);
//!   a group is created with defaults on first use.
//! - [`cursor`]: the delivery state of one queue for a group (one consumer in
//!   BROADCASTING mode): in flight, retries, FIFO holds, committed offset.
//! - [`receipt`]: tamper-proof receipt handles.
//! - [`deliver`]: receive, ack, change-invisibility, offsets and reset over
//!   both tiers, dead-lettering into `%DLQ%{group}`.
//!
//! Cursors live in memory behind one async mutex per node (one node owns
//! every queue until node membership lands).

pub mod api;
pub mod config;
pub mod cursor;
pub mod deliver;
pub mod durable;
pub mod filter;
pub mod receipt;
pub mod report;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use config::GroupConfig;
use cursor::Cursor;

/// Which cursor: group, topic, queue and (BROADCASTING) consumer id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CursorKey {
    pub group: String,
    pub topic: String,
    pub queue: u32,
    /// Empty in CLUSTERING mode.
    pub consumer: String,
}

/// Every group of the node and their cursors.
#[derive(Debug)]
pub struct Groups {
    dir: PathBuf,
    configs: RwLock<HashMap<String, GroupConfig>>,
    /// Serialises creations and updates of group settings.
    pub admin: tokio::sync::Mutex<()>,
    pub cursors: tokio::sync::Mutex<HashMap<CursorKey, Cursor>>,
    /// The receipt-handle key, loaded from (or created in) the object store on first use.
    pub secret: tokio::sync::OnceCell<Vec<u8>>,
    /// Woken by acks, nacks and invisibility changes (long polls re-check).
    pub changed: tokio::sync::Notify,
    /// Rotates the queue a receive starts with.
    pub round_robin: std::sync::atomic::AtomicU32,
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
                .map_err(|e| e.to_string())
                .and_then(|b| decode(&b))
            {
                Ok(cfg) => {
                    configs.insert(cfg.name.clone(), cfg);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "skipping an unreadable group file")
                }
            }
        }
        Ok(Groups {
            dir: dir.to_path_buf(),
            configs: RwLock::new(configs),
            admin: tokio::sync::Mutex::new(()),
            cursors: tokio::sync::Mutex::new(HashMap::new()),
            secret: tokio::sync::OnceCell::new(),
            changed: tokio::sync::Notify::new(),
            round_robin: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// The committed offset of every cursor of `group` this node holds.
    pub async fn committed_of(&self, group: &str) -> Vec<(CursorKey, u64)> {
        self.cursors
            .lock()
            .await
            .iter()
            .filter(|(k, _)| k.group == group)
            .map(|(k, c)| (k.clone(), c.committed))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<GroupConfig> {
        self.configs.read().get(name).cloned()
    }

    pub fn list(&self) -> Vec<GroupConfig> {
        let mut v: Vec<GroupConfig> = self.configs.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Stores a group's settings crash-safely (blocking I/O). Callers hold [`Self::admin`].
    pub fn put_blocking(&self, cfg: &GroupConfig) -> std::io::Result<()> {
        let bytes = encode(cfg);
        let target = self.dir.join(format!("{}.json", cfg.name));
        let tmp = self.dir.join(format!("{}.json.tmp", cfg.name));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &target)?;
        fs::File::open(&self.dir)?.sync_all()?;
        self.configs.write().insert(cfg.name.clone(), cfg.clone());
        Ok(())
    }
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
pub fn decode(bytes: &[u8]) -> Result<GroupConfig, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if v.get("version").and_then(|v| v.as_u64()) != Some(GROUP_FILE_VERSION as u64) {
        return Err("unsupported group file version".into());
    }
    let mut obj = v;
    if let Some(m) = obj.as_object_mut() {
        m.remove("version");
    }
    let cfg: GroupConfig = serde_json::from_value(obj).map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| e.message().to_string())?;
    Ok(cfg)
}
