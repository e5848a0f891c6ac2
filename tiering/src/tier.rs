//! [`Tier`]: the object-store side of one node — the queues it owns (and
//! uploads), retention, eviction of uploaded local segments, cold reads, and
//! topic metadata objects.
//!
//! Ownership: a node writes a queue only after [`Tier::acquire`] took its
//! manifest (raising its epoch and naming the node as [`QueueOwner`]); the
//! caller (the cluster layer of the broker) decides when that is allowed.
//! [`Tier::release`] hands a queue over (owner cleared, epoch kept), and a
//! fence by a newer owner drops it. Uploads and retention of a queue this
//! node does not own fail with [`TieringError::NotOwned`]: nothing here takes
//! a queue implicitly, so a node can never steal a queue by uploading.
//!
//! Locks: the `owned` map lock is synchronous and never held across I/O. A
//! queue's entry is a slot (a `OnceCell`) inserted under the map lock and
//! filled outside it, so different queues take their manifests concurrently
//! while two callers for the same queue share one acquisition. A failed or
//! refused acquisition leaves the slot empty and the next caller tries again;
//! a fence removes the slot only if it is still the registered one, so it
//! never drops a newer acquisition.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use shale_hot::QueueLog;
use tokio::sync::{Mutex, OnceCell};

use crate::cold_reader::ColdReader;
use crate::error::{Result, TieringError};
use crate::manifest::{QueueManifest, QueueOwner, SegmentEntry};
use crate::parquet_segment::DEFAULT_ROW_GROUP_BYTES;
use crate::paths::Layout;
use crate::retention;
use crate::uploader::QueueUploader;

type Owned = Arc<Held>;

/// A queue this node holds: the epoch (fixed while held) and its uploader.
#[derive(Debug)]
struct Held {
    epoch: u64,
    up: Mutex<QueueUploader>,
}
/// A queue's uploader once its manifest is taken; empty while the first
/// open runs (the others wait on the cell) or after it failed.
type Slot = Arc<OnceCell<Owned>>;

/// What [`Tier::acquire`] found and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// The epoch this node now holds the queue under.
    pub epoch: u64,
    /// The epoch it replaced (0: a new queue). `epoch - 1` for a takeover.
    pub previous_epoch: u64,
    /// The owner named by the replaced version.
    pub previous_owner: Option<QueueOwner>,
    /// Where the queue's cold segments end: a node without local data starts there.
    pub end_offset: u64,
    /// Owners whose write-ahead chunks must be replayed before the queue is
    /// served ([`QueueManifest::recovering_from`]).
    pub recovering_from: Vec<QueueOwner>,
}

impl Acquired {
    fn held(m: &QueueManifest) -> Self {
        Self {
            epoch: m.epoch,
            previous_epoch: m.epoch,
            previous_owner: m.owner.clone(),
            end_offset: m.end_offset(),
            recovering_from: m.recovering_from.clone(),
        }
    }
}

/// The object-store tier of a node.
#[derive(Debug)]
pub struct Tier {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    reader: ColdReader,
    owned: parking_lot::Mutex<HashMap<(String, u32), Slot>>,
    row_group_bytes: usize,
}

impl Tier {
    /// A tier over `store` under `prefix`, with a cold-read cache of about `cache_bytes`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, cache_bytes: u64) -> Self {
        let layout = Layout::new(prefix);
        Self {
            reader: ColdReader::new(store.clone(), layout.clone(), cache_bytes),
            store,
            layout,
            owned: parking_lot::Mutex::new(HashMap::new()),
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
        }
    }

    /// Opens the store a URL names, behind bounded jittered retries.
    pub fn open(url: &crate::ObjectStoreUrl, cache_bytes: u64) -> Result<Self> {
        let (store, prefix) = crate::open_object_store(url)?;
        let store: Arc<dyn ObjectStore> =
            Arc::new(crate::RetryStore::new(store, crate::RetryPolicy::default()));
        Ok(Self::new(store, prefix, cache_bytes))
    }

    /// A tier over a process-local store behind a [`crate::FaultStore`]
    /// controlled by `faults` (tests: outages, latency, lost answers).
    pub fn in_memory_with_faults(faults: &crate::Faults, cache_bytes: u64) -> Self {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let faulty: Arc<dyn ObjectStore> = Arc::new(crate::FaultStore::new(store, faults.clone()));
        Self::new(faulty, Path::default(), cache_bytes)
    }

    pub fn reader(&self) -> &ColdReader {
        &self.reader
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The queue's slot, registered under the map lock (no I/O under it).
    fn slot(&self, topic: &str, queue: u32) -> Slot {
        let mut owned = self.owned.lock();
        owned.entry((topic.to_string(), queue)).or_default().clone()
    }

    /// The queue's uploader if this node holds it.
    fn owner(&self, topic: &str, queue: u32) -> Result<(Slot, Owned)> {
        let slot = self.owned.lock().get(&(topic.to_string(), queue)).cloned();
        slot.and_then(|slot| slot.get().cloned().map(|o| (slot, o)))
            .ok_or_else(|| TieringError::NotOwned {
                queue: format!("{topic}/{queue}"),
            })
    }

    /// Takes queue `topic/queue` for `me` if `may_take` agrees with the owner
    /// the manifest names now (`None`: released or never owned); it is asked
    /// again after every lost race. `Ok(None)` when it refused. A queue held
    /// already answers at once with its current epoch.
    pub async fn acquire(
        &self,
        topic: &str,
        queue: u32,
        me: &QueueOwner,
        may_take: impl Fn(Option<&QueueOwner>) -> bool,
    ) -> Result<Option<Acquired>> {
        let slot = self.slot(topic, queue);
        if let Some(held) = slot.get() {
            let up = held.up.lock().await;
            return Ok(Some(Acquired::held(up.manifest().manifest())));
        }
        let taken = std::sync::Mutex::new(None);
        let res = slot
            .get_or_try_init(|| async {
                let got = QueueUploader::acquire(
                    self.store.clone(),
                    self.layout.clone(),
                    topic,
                    queue,
                    self.row_group_bytes,
                    me,
                    &may_take,
                )
                .await?;
                match got {
                    Some((up, previous)) => {
                        *taken.lock().expect("not poisoned") = Some(Acquired {
                            epoch: up.manifest().epoch(),
                            previous_owner: previous.as_ref().and_then(|m| m.owner.clone()),
                            previous_epoch: previous.as_ref().map_or(0, |m| m.epoch),
                            end_offset: up.manifest().manifest().end_offset(),
                            recovering_from: up.manifest().manifest().recovering_from.clone(),
                        });
                        Ok(Arc::new(Held {
                            epoch: up.manifest().epoch(),
                            up: Mutex::new(up),
                        }))
                    }
                    None => Err(TieringError::NotOwned {
                        queue: format!("{topic}/{queue}"),
                    }),
                }
            })
            .await;
        match res {
            Ok(held) => {
                let manifest = held.up.lock().await.manifest().manifest().clone();
                self.reader.remember(topic, queue, manifest.clone()).await;
                let fresh = taken.lock().expect("not poisoned").take();
                Ok(Some(fresh.unwrap_or_else(|| Acquired::held(&manifest))))
            }
            Err(TieringError::NotOwned { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The epoch this node holds the queue under, if it holds it.
    pub fn held_epoch(&self, topic: &str, queue: u32) -> Option<u64> {
        let slot = self
            .owned
            .lock()
            .get(&(topic.to_string(), queue))
            .cloned()?;
        slot.get().map(|held| held.epoch)
    }

    /// Hands the queue over: the manifest names no owner any more (same
    /// epoch), and this node forgets it. Its sealed segments must have been
    /// uploaded first (the caller's job).
    pub async fn release(&self, topic: &str, queue: u32) -> Result<()> {
        let (slot, owner) = self.owner(topic, queue)?;
        let mut up = owner.up.lock().await;
        let res = up
            .manifest_mut()
            .update(|m| {
                m.owner = None;
                Ok(())
            })
            .await;
        let manifest = up.manifest().manifest().clone();
        drop(up);
        self.reader.remember(topic, queue, manifest).await;
        self.forget(topic, queue, &slot).await;
        res
    }

    /// Clears the queue's [`QueueManifest::recovering_from`] once what those
    /// owners' chunks held is in segments (nothing is written when it is empty).
    pub async fn finish_recovery(&self, topic: &str, queue: u32) -> Result<()> {
        let (slot, owner) = self.owner(topic, queue)?;
        let mut up = owner.up.lock().await;
        if up.manifest().manifest().recovering_from.is_empty() {
            return Ok(());
        }
        let res = up
            .manifest_mut()
            .update(|m| {
                m.recovering_from.clear();
                Ok(())
            })
            .await;
        let manifest = up.manifest().manifest().clone();
        drop(up);
        self.reader.remember(topic, queue, manifest).await;
        self.forget_if_fenced(topic, queue, &slot, res).await
    }

    /// Writes the dedup ids this node passes on with a hand-over of a queue it
    /// holds, under its epoch (a key no other owner writes).
    pub async fn put_dedup_snapshot(&self, topic: &str, queue: u32, json: Bytes) -> Result<()> {
        let epoch = self
            .held_epoch(topic, queue)
            .ok_or_else(|| TieringError::NotOwned {
                queue: format!("{topic}/{queue}"),
            })?;
        let path = self.layout.dedup_snapshot(topic, queue, epoch);
        self.store
            .put(&path, json.into())
            .await
            .map_err(|e| TieringError::store(format!("writing {path}"), e))?;
        Ok(())
    }

    /// The dedup ids the owner of `epoch` passed on, if it wrote any.
    pub async fn dedup_snapshot(
        &self,
        topic: &str,
        queue: u32,
        epoch: u64,
    ) -> Result<Option<Bytes>> {
        let path = self.layout.dedup_snapshot(topic, queue, epoch);
        match self.store.get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .map(Some)
                .map_err(|e| TieringError::store(format!("reading {path}"), e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(TieringError::store(format!("reading {path}"), e)),
        }
    }

    /// Where the cold segments of a queue this node holds end (`None`: not held).
    pub async fn held_end(&self, topic: &str, queue: u32) -> Option<u64> {
        let (_, owner) = self.owner(topic, queue).ok()?;
        let up = owner.up.lock().await;
        Some(up.manifest().manifest().end_offset())
    }

    /// Forgets the queue locally without writing anything (this node lost it).
    pub async fn abandon(&self, topic: &str, queue: u32) {
        let slot = self.owned.lock().get(&(topic.to_string(), queue)).cloned();
        if let Some(slot) = slot {
            self.forget(topic, queue, &slot).await;
        }
    }

    async fn forget(&self, topic: &str, queue: u32, slot: &Slot) {
        {
            let mut owned = self.owned.lock();
            let key = (topic.to_string(), queue);
            if owned.get(&key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                owned.remove(&key);
            }
        }
        self.reader.invalidate(topic, queue).await;
    }

    async fn forget_if_fenced<T>(
        &self,
        topic: &str,
        queue: u32,
        slot: &Slot,
        res: Result<T>,
    ) -> Result<T> {
        if res.as_ref().is_err_and(TieringError::is_fenced) {
            tracing::warn!(
                topic,
                queue,
                "fenced by a newer owner; this node lets the queue go"
            );
            self.forget(topic, queue, slot).await;
        }
        res
    }

    /// Uploads the queue's sealed segments not yet in its manifest.
    pub async fn upload(&self, log: &Arc<QueueLog>) -> Result<Vec<SegmentEntry>> {
        let (topic, queue) = (log.topic(), log.queue());
        let (slot, owner) = self.owner(topic, queue)?;
        let mut up = owner.up.lock().await;
        let res = up.upload_sealed(log).await;
        let manifest = up.manifest().manifest().clone();
        drop(up);
        self.reader.remember(topic, queue, manifest).await;
        self.forget_if_fenced(topic, queue, &slot, res).await
    }

    /// Drops cold segments whose newest message is older than `cutoff_ms`, then
    /// the local copies of everything below the new `min_offset`.
    pub async fn retain(&self, log: &QueueLog, cutoff_ms: i64) -> Result<Vec<SegmentEntry>> {
        let (topic, queue) = (log.topic(), log.queue());
        let (slot, owner) = self.owner(topic, queue)?;
        let mut up = owner.up.lock().await;
        let layout = self.layout.clone();
        let res = retention::apply_retention(
            up.manifest_mut(),
            self.store.as_ref(),
            &layout,
            topic,
            queue,
            cutoff_ms,
        )
        .await;
        let manifest = up.manifest().manifest().clone();
        drop(up);
        self.reader.remember(topic, queue, manifest.clone()).await;
        let removed = self.forget_if_fenced(topic, queue, &slot, res).await?;
        if !removed.is_empty() {
            log.evict_through(manifest.min_offset)
                .map_err(|e| TieringError::Invalid {
                    path: format!("{topic}/{queue}"),
                    reason: format!("evicting expired local segments: {e}"),
                })?;
        }
        Ok(removed)
    }

    /// Where the queue's cold segments end (0 without any): a queue created on
    /// this node starts there.
    pub async fn cold_end(&self, topic: &str, queue: u32) -> Result<u64> {
        Ok(self
            .reader
            .manifest(topic, queue)
            .await?
            .map_or(0, |m| m.end_offset()))
    }

    /// Deletes every object of `topic` (segments, manifests, metadata).
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        self.owned.lock().retain(|(t, _), _| t != topic);
        crate::objects::delete_prefix(self.store.as_ref(), &self.layout.topic_dir(topic)).await
    }

    /// Stores a topic's metadata object.
    pub async fn put_topic_meta(&self, topic: &str, json: Bytes) -> Result<()> {
        let path = self.layout.topic_meta(topic);
        self.store
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|e| TieringError::store(format!("writing {path}"), e))?;
        Ok(())
    }

    /// Stores a new topic's metadata object unless one exists: `Ok(None)` when
    /// it was created, else the bytes already stored (another node created
    /// the topic first; exactly one create wins).
    pub async fn create_topic_meta(&self, topic: &str, json: Bytes) -> Result<Option<Bytes>> {
        self.create_or_read(self.layout.topic_meta(topic), json)
            .await
    }

    /// Stores the record that dead-letter message `message_id` of `topic`
    /// was sent back, unless one exists: `Ok(None)` when it was created, else
    /// the record already stored (exactly one send-back is recorded).
    pub async fn create_sent_back(
        &self,
        topic: &str,
        message_id: &str,
        json: Bytes,
    ) -> Result<Option<Bytes>> {
        self.create_or_read(self.layout.sent_back(topic, message_id), json)
            .await
    }

    /// Stores (replaces) the document `name` about `topic` ([`Layout::topic_doc`]).
    pub async fn put_topic_doc(&self, topic: &str, name: &str, json: Bytes) -> Result<()> {
        let path = self.layout.topic_doc(topic, name);
        self.store
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|e| TieringError::store(format!("writing {path}"), e))?;
        Ok(())
    }

    /// The document `name` about `topic`, `None` if there is none.
    pub async fn topic_doc(&self, topic: &str, name: &str) -> Result<Option<Bytes>> {
        let path = self.layout.topic_doc(topic, name);
        self.read_optional(&path).await
    }

    async fn read_optional(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(got) => {
                Ok(Some(got.bytes().await.map_err(|e| {
                    TieringError::store(format!("reading {path}"), e)
                })?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(TieringError::store(format!("reading {path}"), e)),
        }
    }

    /// The record that dead-letter message `message_id` of `topic` was sent
    /// back, `None` if it was not.
    pub async fn sent_back(&self, topic: &str, message_id: &str) -> Result<Option<Bytes>> {
        let path = self.layout.sent_back(topic, message_id);
        self.read_optional(&path).await
    }

    /// Creates `path` with `json` unless it exists (create-only put): `None`
    /// when created, else the bytes already there.
    async fn create_or_read(&self, path: Path, json: Bytes) -> Result<Option<Bytes>> {
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(json), opts)
            .await
        {
            Ok(_) => Ok(None),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                let got = self
                    .store
                    .get(&path)
                    .await
                    .map_err(|e| TieringError::store(format!("reading {path}"), e))?;
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| TieringError::store(format!("reading {path}"), e))?;
                Ok(Some(bytes))
            }
            Err(e) => Err(TieringError::store(format!("creating {path}"), e)),
        }
    }

    /// Records that some topic was created, changed or deleted (every node
    /// re-reads the topics when this changes; see [`Tier::topics_stamp`]).
    pub async fn touch_topics_stamp(&self) -> Result<()> {
        self.touch_stamp(self.layout.topics_stamp()).await
    }

    /// Records that some group's settings changed (see [`Tier::groups_stamp`]).
    pub async fn touch_groups_stamp(&self) -> Result<()> {
        self.touch_stamp(self.layout.groups_stamp()).await
    }

    /// The stamp of the last group settings change, `None` before any.
    pub async fn groups_stamp(&self) -> Result<Option<String>> {
        self.stamp(self.layout.groups_stamp()).await
    }

    async fn touch_stamp(&self, path: Path) -> Result<()> {
        let nonce = format!("{:016x}", rand::random::<u64>());
        self.store
            .put(&path, PutPayload::from(nonce.into_bytes()))
            .await
            .map_err(|e| TieringError::store(format!("writing {path}"), e))?;
        Ok(())
    }

    /// The stamp of the last topic change (its ETag, or its time and size), `None` before any.
    pub async fn topics_stamp(&self) -> Result<Option<String>> {
        self.stamp(self.layout.topics_stamp()).await
    }

    async fn stamp(&self, path: Path) -> Result<Option<String>> {
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.e_tag.unwrap_or_else(|| {
                format!(
                    "{}-{}",
                    meta.last_modified.timestamp_nanos_opt().unwrap_or(0),
                    meta.size
                )
            }))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(TieringError::store(format!("reading {path}"), e)),
        }
    }

    /// The bytes of every topic metadata object in the bucket (each names its topic).
    pub async fn list_topic_metas(&self) -> Result<Vec<Bytes>> {
        self.list_metas(&self.layout.topics_root(), "topic.json")
            .await
    }

    /// The bytes of every group settings object in the bucket (each names its group).
    pub async fn list_group_metas(&self) -> Result<Vec<Bytes>> {
        self.list_metas(&self.layout.groups_root(), "group.json")
            .await
    }

    /// `{dir}/{file}` for every directory right under `root` that has one.
    async fn list_metas(&self, root: &Path, file: &str) -> Result<Vec<Bytes>> {
        let listing = self
            .store
            .list_with_delimiter(Some(root))
            .await
            .map_err(|e| TieringError::store(format!("listing {root}"), e))?;
        let mut out = Vec::new();
        for dir in listing.common_prefixes {
            // `dir` is already an encoded path: extend it rather than re-encoding a name.
            let path = dir.child(file);
            match self.store.get(&path).await {
                Ok(got) => {
                    let bytes = got
                        .bytes()
                        .await
                        .map_err(|e| TieringError::store(format!("reading {path}"), e))?;
                    out.push(bytes);
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(TieringError::store(format!("reading {path}"), e)),
            }
        }
        Ok(out)
    }
}
