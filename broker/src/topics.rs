//! Topic metadata: what a topic is, and where the node keeps it.
//!
//! Layout owned here: one file per topic, `{data_dir}/meta/topics/{name}.json`,
//! a `shale_hot::durable_file` frame (magic `SHTP`, frame version 1, CRC32C)
//! around the JSON `{"version": 1, "name", "queues", "message_type",
//! "retention_ms", "durability", "created_ms"}`. A file without the frame
//! (written before frames existed) is read as that JSON. The object store's
//! copy is the bare JSON ([`encode_topic`]).
//!
//! Invariants:
//! - a file is replaced crash-safely (temp file, fsync, rename, fsync of the
//!   directory), so after a crash it holds either the old or the new config;
//!   a flipped bit fails the CRC and the file is skipped, never misread;
//! - the metadata file is the source of truth for a topic's existence: it is
//!   written before any message can be stored and removed before the hot data;
//! - a file that fails to parse or validate is logged with its path and
//!   skipped; it never stops the node from starting;
//! - `queues` only grows, so a queue number valid once stays valid.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use shale_hot::durable_file;

use crate::error::{BrokerError, error_chain};

/// Version of the topic metadata file format.
pub const TOPIC_FILE_VERSION: u32 = 1;
/// Most queues a topic may have (message ids carry 10 bits of queue number).
pub const MAX_QUEUES: u32 = 1024;
/// Queues of a topic created without `queues`.
pub const DEFAULT_QUEUES: u32 = 8;
/// Shortest retention accepted (1 minute).
pub const MIN_RETENTION_MS: u64 = 60_000;
/// Retention of a topic created without `retention_ms` (3 days).
pub const DEFAULT_RETENTION_MS: u64 = 3 * 24 * 60 * 60 * 1000;

/// What kind of messages a topic holds (RocketMQ 5: a topic accepts only its own type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    Normal,
    Fifo,
    Delay,
    /// Not supported by this node yet: creating such a topic is 400 INVALID_ARGUMENT.
    Transaction,
}

/// How durable a message is when its produce call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Durability {
    /// Written to the hot tier (page cache); fsynced by the background flush.
    Async,
    /// fsynced on the node's disk (group commit) before the answer.
    Sync,
    /// Stored in the object store. Not supported by this node yet: 400 INVALID_ARGUMENT.
    Object,
}

impl Durability {
    /// Parses the `Shale-Durability` header value.
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "ASYNC" => Some(Durability::Async),
            "SYNC" => Some(Durability::Sync),
            "OBJECT" => Some(Durability::Object),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Async => "ASYNC",
            Durability::Sync => "SYNC",
            Durability::Object => "OBJECT",
        }
    }
}

/// A topic's configuration, as stored and as returned (the topic object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub name: String,
    /// Number of queues, 1-1024.
    pub queues: u32,
    pub message_type: MessageType,
    /// How long messages are kept, at least 60000.
    pub retention_ms: u64,
    pub durability: Durability,
    pub created_ms: i64,
}

impl TopicConfig {
    /// True when `other` asks for the same topic (creation time aside).
    pub fn same_settings(&self, other: &TopicConfig) -> bool {
        self.queues == other.queues
            && self.message_type == other.message_type
            && self.retention_ms == other.retention_ms
            && self.durability == other.durability
    }

    /// Checks the ranges of the settings.
    pub fn validate(&self) -> Result<(), BrokerError> {
        if !(1..=MAX_QUEUES).contains(&self.queues) {
            return Err(BrokerError::invalid(format!(
                "queues must be 1-{MAX_QUEUES}, got {}",
                self.queues
            )));
        }
        // At most i64::MAX: times are i64 milliseconds (the OpenAPI document
        // says int64); that is still 292 million years.
        if self.retention_ms < MIN_RETENTION_MS || i64::try_from(self.retention_ms).is_err() {
            return Err(BrokerError::invalid(format!(
                "retention_ms must be {MIN_RETENTION_MS}-{}, got {}",
                i64::MAX,
                self.retention_ms
            )));
        }
        Ok(())
    }
}

/// The on-disk form of [`TopicConfig`], with its format version.
#[derive(Debug, Serialize, Deserialize)]
struct TopicFile {
    version: u32,
    #[serde(flatten)]
    config: TopicConfig,
}

/// A topic as the running node holds it.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    config: parking_lot::RwLock<TopicConfig>,
    /// `true` once deleted. Writers hold the read side while they append, the
    /// delete takes the write side: no message is stored after (or during)
    /// the removal of a topic's data.
    pub deleted: tokio::sync::RwLock<bool>,
    /// Round-robin position for messages without queue or group.
    round_robin: AtomicU32,
}

impl Topic {
    fn new(config: TopicConfig) -> Arc<Topic> {
        let start = rand::random::<u32>();
        Arc::new(Topic {
            name: config.name.clone(),
            config: parking_lot::RwLock::new(config),
            deleted: tokio::sync::RwLock::new(false),
            round_robin: AtomicU32::new(start),
        })
    }

    pub fn config(&self) -> TopicConfig {
        self.config.read().clone()
    }

    pub fn queues(&self) -> u32 {
        self.config.read().queues
    }

    /// The topic's durability level (fixed at creation): what produce waits
    /// for and how far readers see ([`crate::visible_end`]).
    pub fn durability(&self) -> Durability {
        self.config.read().durability
    }

    /// The next round-robin queue.
    pub fn next_round_robin(&self) -> u32 {
        self.round_robin.fetch_add(1, Ordering::Relaxed) % self.queues()
    }
}

/// All topics of the node and their metadata directory.
#[derive(Debug)]
pub struct TopicRegistry {
    dir: PathBuf,
    topics: parking_lot::RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes create, patch and delete (metadata writes).
    pub admin: tokio::sync::Mutex<()>,
}

impl TopicRegistry {
    /// Loads every valid topic file under `dir` (created if missing).
    pub fn open(dir: &Path) -> anyhow::Result<TopicRegistry> {
        fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!(e).context(format!("creating {}", dir.display())))?;
        let mut topics = BTreeMap::new();
        let entries = fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!(e).context(format!("listing {}", dir.display())))?;
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %error_chain(&e), "cannot list topic metadata entry");
                    continue;
                }
            };
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                tracing::error!(path = %path.display(), "skipping topic metadata file with a non-UTF-8 name");
                continue;
            };
            if file_name.ends_with(".tmp") {
                // An interrupted replace: the target still holds the previous version.
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %error_chain(&e), "cannot remove leftover temp file");
                }
                continue;
            }
            let Some(name) = file_name.strip_suffix(".json") else {
                continue;
            };
            match read_topic_file(&path, name) {
                Ok(config) => {
                    topics.insert(config.name.clone(), Topic::new(config));
                }
                Err(e) => tracing::error!(
                    path = %path.display(),
                    error = %error_chain(e.as_ref()),
                    "skipping invalid topic metadata file"
                ),
            }
        }
        Ok(TopicRegistry {
            dir: dir.to_path_buf(),
            topics: parking_lot::RwLock::new(topics),
            admin: tokio::sync::Mutex::new(()),
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// The topic or 404 TOPIC_NOT_FOUND.
    pub fn require(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        self.get(name)
            .ok_or_else(|| BrokerError::topic_not_found(name))
    }

    /// All topics, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Persists `config` (blocking I/O) and makes it the topic's config,
    /// inserting the topic if new. Callers hold [`Self::admin`].
    pub fn put_blocking(&self, config: TopicConfig) -> std::io::Result<Arc<Topic>> {
        write_topic_file(&self.dir, &config)?;
        let mut topics = self.topics.write();
        if let Some(existing) = topics.get(&config.name) {
            *existing.config.write() = config;
            return Ok(existing.clone());
        }
        let topic = Topic::new(config);
        topics.insert(topic.name.clone(), topic.clone());
        Ok(topic)
    }

    /// Removes the topic's metadata (blocking I/O). Callers hold [`Self::admin`].
    pub fn remove_blocking(&self, name: &str) -> std::io::Result<()> {
        let path = self.dir.join(format!("{name}.json"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        sync_dir(&self.dir)?;
        self.topics.write().remove(name);
        Ok(())
    }
}

/// The versioned JSON of a topic, as stored in its file and in the object store.
pub fn encode_topic(config: &TopicConfig) -> Vec<u8> {
    let file = TopicFile {
        version: TOPIC_FILE_VERSION,
        config: config.clone(),
    };
    serde_json::to_vec_pretty(&file).unwrap_or_default()
}

/// Parses and validates [`encode_topic`]'s output (from the object store).
pub fn decode_topic(bytes: &[u8]) -> Result<TopicConfig, Box<dyn std::error::Error + Send + Sync>> {
    let file: TopicFile = serde_json::from_slice(bytes)?;
    if file.version != TOPIC_FILE_VERSION {
        return Err(format!("unsupported version {}", file.version).into());
    }
    if !crate::validate::is_known_name_shape(&file.config.name) {
        return Err("not a valid topic name".into());
    }
    file.config
        .validate()
        .map_err(|e| e.message().to_string())?;
    Ok(file.config)
}

/// Reads and validates one topic file; `name` is the name its file name gives.
fn read_topic_file(path: &Path, name: &str) -> Result<TopicConfig, Box<dyn std::error::Error>> {
    // A file written before frames existed is plain JSON (version 0).
    let (_, bytes) = durable_file::read_framed(path, TOPIC_FILE_MAGIC)?
        .ok_or_else(|| format!("{} vanished while being read", path.display()))?;
    let file: TopicFile = serde_json::from_slice(&bytes)?;
    if file.version != TOPIC_FILE_VERSION {
        return Err(format!("unsupported version {}", file.version).into());
    }
    if file.config.name != name {
        return Err(format!("file holds topic {:?}", file.config.name).into());
    }
    if !crate::validate::is_known_name_shape(name) {
        return Err("not a valid topic name".into());
    }
    file.config.validate()?;
    Ok(file.config)
}

/// Magic of a local topic file (a framed [`durable_file`] holding the JSON).
pub const TOPIC_FILE_MAGIC: [u8; 4] = *b"SHTP";
/// Version of the frame around the JSON.
const TOPIC_FRAME_VERSION: u16 = 1;

/// Replaces `{dir}/{name}.json` crash-safely, framed with a checksum.
fn write_topic_file(dir: &Path, config: &TopicConfig) -> std::io::Result<()> {
    let file = TopicFile {
        version: TOPIC_FILE_VERSION,
        config: config.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    let target = dir.join(format!("{}.json", config.name));
    durable_file::write_framed(&target, TOPIC_FILE_MAGIC, TOPIC_FRAME_VERSION, &bytes)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> TopicConfig {
        TopicConfig {
            name: name.into(),
            queues: 4,
            message_type: MessageType::Fifo,
            retention_ms: MIN_RETENTION_MS,
            durability: Durability::Async,
            created_ms: 7,
        }
    }

    #[test]
    fn round_trips_and_skips_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let reg = TopicRegistry::open(dir.path()).unwrap();
        reg.put_blocking(config("a")).unwrap();
        reg.put_blocking(config("%DLQ%g")).unwrap();
        fs::write(dir.path().join("bad.json"), b"{not json").unwrap();
        fs::write(
            dir.path().join("other.json"),
            serde_json::to_vec(&config("x")).unwrap(),
        )
        .unwrap();
        fs::write(dir.path().join("left.json.tmp"), b"partial").unwrap();

        let reg = TopicRegistry::open(dir.path()).unwrap();
        let names: Vec<_> = reg.list().iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, vec!["%DLQ%g".to_string(), "a".to_string()]);
        assert_eq!(reg.require("a").unwrap().config(), config("a"));
        assert!(!dir.path().join("left.json.tmp").exists());

        reg.remove_blocking("a").unwrap();
        assert!(reg.get("a").is_none());
        let reg = TopicRegistry::open(dir.path()).unwrap();
        assert!(reg.get("a").is_none());
    }

    #[test]
    fn reads_legacy_json_files_and_skips_damaged_frames() {
        let dir = tempfile::tempdir().unwrap();
        // A file of a node from before frames: plain JSON.
        let legacy = serde_json::to_vec(&TopicFile {
            version: TOPIC_FILE_VERSION,
            config: config("old"),
        })
        .unwrap();
        fs::write(dir.path().join("old.json"), legacy).unwrap();
        let reg = TopicRegistry::open(dir.path()).unwrap();
        reg.put_blocking(config("new")).unwrap();
        let written = fs::read(dir.path().join("new.json")).unwrap();
        assert_eq!(&written[..4], b"SHTP");

        // One flipped bit in the JSON of the framed file: skipped, not misread.
        let mut damaged = written.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x01;
        fs::write(dir.path().join("new.json"), damaged).unwrap();
        let reg = TopicRegistry::open(dir.path()).unwrap();
        assert_eq!(reg.require("old").unwrap().config(), config("old"));
        assert!(reg.get("new").is_none());
    }

    #[test]
    fn durability_order() {
        assert!(Durability::Async < Durability::Sync && Durability::Sync < Durability::Object);
    }
}
