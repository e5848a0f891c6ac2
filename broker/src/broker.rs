//! The broker handle: everything a running node holds, shared by every front-end.
//!
//! Local layout under `data_dir`:
//! ```text
//! hot/                 the hot tier (crate shale-hot)
//! meta/topics/*.json   topic metadata (see `topics`), mirrored to the object store
//! timers/              timer journals and fire states (see `timers`)
//! ```
//!
//! The object store (`shale-tiering`) holds sealed segments, their manifests
//! and a copy of every topic's metadata, so a node with an empty disk finds
//! every topic ([`Broker::load_topics_from_store`]) and serves every sealed
//! message. [`Broker::tiering_tick`] uploads, applies retention and keeps the
//! hot tier within `hot_bytes`; [`Broker::leave_cluster`] seals, uploads and
//! releases every held queue on shutdown (see [`crate::cluster`]).
//!
//! Invariants kept by [`Broker::open`]:
//! - topic metadata is the truth: hot data of a topic without metadata is the
//!   remnant of an interrupted delete and is removed;
//! - the dedup window is rebuilt from the last 5 minutes of every queue, so a
//!   restart does not let a repeated `dedup_id` be stored twice.
//!
//! Blocking storage calls run on the blocking pool (`spawn_blocking`), never
//! on the async workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use shale_hot::{Clock, HotConfig, HotStore, QueueLog, SystemClock};
use shale_tiering::Tier;

use crate::config::BrokerConfig;
use crate::dedup::{DEDUP_PROPERTY, DEDUP_WINDOW_MS, DedupHit, DedupWindow, dedup_id_of};
use crate::error::{BrokerResult, error_chain};
use crate::topics::TopicRegistry;

/// The shared state behind every handler.
#[derive(Debug)]
pub struct Broker {
    pub node_id: String,
    pub clock: Arc<dyn Clock>,
    pub hot: Arc<HotStore>,
    pub topics: TopicRegistry,
    pub dedup: DedupWindow,
    /// Consumer groups: settings and delivery cursors.
    pub groups: crate::groups::Groups,
    /// Where group cursors are checkpointed (the object store).
    pub checkpoints: shale_tiering::GroupCheckpoints,
    /// The object-store tier: uploads, cold reads, topic copies.
    pub tier: Arc<Tier>,
    /// Local disk budget of the hot tier (`None`: unbounded).
    pub hot_bytes: Option<u64>,
    draining: AtomicBool,
    /// Turns `true` when draining starts: long polls return early.
    drain_signal: tokio::sync::watch::Sender<bool>,
    /// Membership and queue ownership (see [`crate::cluster`]).
    pub cluster: crate::cluster::Cluster,
    /// Where the hot tier, local metadata and quarantined data live.
    pub data_dir: std::path::PathBuf,
    /// The topics stamp this node last brought its topics in line with
    /// (`None`: not yet; `Some(None)`: no topic was ever changed).
    topics_seen: parking_lot::Mutex<Option<Option<String>>>,
    /// The OBJECT group commit (see [`crate::wal`]).
    pub wal: crate::wal::ObjectWal,
    /// Earlier owners' write-ahead chunks, cached for takeovers.
    pub(crate) wal_sources: crate::wal::recover::Sources,
    /// Delay messages not yet due (see [`crate::timers`]).
    pub timers: crate::timers::Timers,
    /// Furthest ahead a delay message may be due (ms).
    pub max_delay_ms: i64,
    /// Writes to queues other nodes serve (set by the front-end).
    peer: std::sync::OnceLock<Arc<dyn crate::cluster::peer::Peer>>,
    /// Transaction checks waiting for their producer group's pollers.
    pub checks: crate::txn::checks::CheckBoard,
    /// Checks offered before an undecided transaction is rolled back.
    txn_max_checks: std::sync::atomic::AtomicU32,
}

impl Broker {
    /// Opens the node's storage over the object store named by `config`.
    pub fn open(config: &BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    /// [`Self::open`] with an injected clock (tests move time instead of sleeping).
    pub fn open_with_clock(
        config: &BrokerConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<Broker>> {
        let tier = Arc::new(
            Tier::open(&config.object_store, COLD_CACHE_BYTES)
                .map_err(|e| anyhow::Error::new(e).context("opening the object store"))?,
        );
        Self::open_with(config, clock, tier)
    }

    /// [`Self::open_with_clock`] over a given object-store tier (tests inject
    /// outages and latency with [`shale_tiering::FaultStore`]).
    pub fn open_with(
        config: &BrokerConfig,
        clock: Arc<dyn Clock>,
        tier: Arc<Tier>,
    ) -> anyhow::Result<Arc<Broker>> {
        let hot_config = HotConfig {
            segment_bytes: config.segment_bytes,
            segment_ms: i64::try_from(config.segment_ms).unwrap_or(i64::MAX),
            // Indexed so the dedup window is rebuilt from the few records that carry an id.
            indexed_properties: vec![DEDUP_PROPERTY.to_string()],
            ..Default::default()
        };
        let hot_dir = config.data_dir.join("hot");
        let hot = HotStore::open(&hot_dir, hot_config, clock.clone()).map_err(|e| {
            anyhow::Error::new(e).context(format!("opening the hot tier at {}", hot_dir.display()))
        })?;
        let topics = TopicRegistry::open(&config.data_dir.join("meta").join("topics"))?;
        remove_orphan_topics(&hot, &topics);
        let dedup = DedupWindow::default();
        rebuild_dedup(&hot, &topics, &dedup, clock.now_ms());
        let (drain_signal, _) = tokio::sync::watch::channel(false);
        let checkpoints =
            shale_tiering::GroupCheckpoints::new(tier.store().clone(), tier.layout().clone());
        config
            .cluster
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid cluster settings: {e}"))?;
        let cluster = crate::cluster::Cluster::new(
            config.node_id.clone(),
            config.cluster.clone(),
            tier.store().clone(),
            tier.layout().clone(),
            clock.clone(),
        );
        let timers =
            crate::timers::Timers::open(&config.data_dir, config.segment_bytes, clock.clone())?;
        timers.remove_orphans(|t| topics.get(t).is_some());
        if !(1..=crate::produce::plan::MAX_MAX_DELAY_MS).contains(&config.max_delay_ms) {
            anyhow::bail!(
                "max_delay_ms {} is outside 1..={} (one year)",
                config.max_delay_ms,
                crate::produce::plan::MAX_MAX_DELAY_MS
            );
        }
        Ok(Arc::new(Broker {
            max_delay_ms: config.max_delay_ms,
            timers,
            cluster,
            data_dir: config.data_dir.clone(),
            topics_seen: parking_lot::Mutex::new(None),
            peer: std::sync::OnceLock::new(),
            checks: Default::default(),
            txn_max_checks: std::sync::atomic::AtomicU32::new(crate::txn::DEFAULT_MAX_CHECKS),
            wal: crate::wal::ObjectWal::new(config.object_commit_interval),
            wal_sources: crate::wal::recover::Sources::default(),
            node_id: config.node_id.clone(),
            clock,
            hot,
            topics,
            dedup,
            tier,
            groups: crate::groups::Groups::open(&config.data_dir.join("meta").join("groups"))?,
            checkpoints,
            hot_bytes: config.hot_bytes,
            draining: AtomicBool::new(false),
            drain_signal,
        }))
    }

    /// Checks offered before an undecided transaction is rolled back.
    pub fn transaction_max_checks(&self) -> u32 {
        self.txn_max_checks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets [`Self::transaction_max_checks`] (the front-end's setting; at least 1).
    pub fn set_transaction_max_checks(&self, checks: u32) {
        self.txn_max_checks
            .store(checks.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Turns `true` when the node starts draining (long polls return early).
    pub fn drain_watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.drain_signal.subscribe()
    }

    /// Sets how this broker writes to queues other nodes serve (once).
    pub fn set_peer(&self, peer: Arc<dyn crate::cluster::peer::Peer>) {
        let _ = self.peer.set(peer);
    }

    /// The node-to-node transport, if the front-end set one.
    pub fn peer(&self) -> Option<&Arc<dyn crate::cluster::peer::Peer>> {
        self.peer.get()
    }

    /// Local upkeep (job `flush-and-seal`): fsync ASYNC data, seal segments past `segment_ms`.
    pub async fn flush_and_seal(&self) {
        let hot = self.hot.clone();
        let done = tokio::task::spawn_blocking(move || {
            if let Err(e) = hot.flush_all() {
                tracing::error!(error = %error_chain(&e), "background flush failed");
            }
            if let Err(e) = hot.seal_expired() {
                tracing::error!(error = %error_chain(&e), "sealing expired segments failed");
            }
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %error_chain(&e), "maintenance task failed");
        }
    }

    /// Brings the topics in line with the object store (a node with an empty
    /// disk, or one that missed changes while down). Call once after open.
    pub async fn load_topics_from_store(self: &Arc<Self>) -> anyhow::Result<usize> {
        let stamp = self.tier.topics_stamp().await.ok();
        let changed = self.sync_topics_with_store().await?;
        *self.topics_seen.lock() = stamp;
        Ok(changed)
    }

    /// Brings the topics in line with the object store when another node
    /// changed them (its stamp moved; one HEAD otherwise): topics created
    /// elsewhere are added, grown or changed ones updated, deleted ones
    /// forgotten here with their local data. Returns how many changed.
    pub async fn refresh_topics_from_store(self: &Arc<Self>) -> anyhow::Result<usize> {
        let stamp = self
            .tier
            .topics_stamp()
            .await
            .map_err(|e| anyhow::Error::new(e).context("reading the topics stamp"))?;
        if self.topics_seen.lock().as_ref() == Some(&stamp) {
            return Ok(0);
        }
        let changed = self.sync_topics_with_store().await?;
        *self.topics_seen.lock() = Some(stamp);
        Ok(changed)
    }

    async fn sync_topics_with_store(self: &Arc<Self>) -> anyhow::Result<usize> {
        // Held from the listing to the last change, so a create, patch or
        // delete through this node cannot fall in between and be undone.
        let _admin = self.topics.admin.lock().await;
        let metas = self
            .tier
            .list_topic_metas()
            .await
            .map_err(|e| anyhow::Error::new(e).context("listing topics in the object store"))?;
        let mut changed = 0;
        let mut listed = std::collections::BTreeSet::new();
        for bytes in metas {
            let config = match crate::topics::decode_topic(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %error_chain(e.as_ref()), "skipping an unreadable topic object");
                    continue;
                }
            };
            listed.insert(config.name.clone());
            if self
                .topics
                .get(&config.name)
                .is_some_and(|t| t.config() == config)
            {
                continue;
            }
            let state = self.clone();
            tokio::task::spawn_blocking(move || state.topics.put_blocking(config)).await??;
            changed += 1;
        }
        // Only user topics are created through the API (system ones, `%…`, are
        // made on first use by each node and their objects may lag).
        let gone: Vec<String> = self
            .topics
            .list()
            .iter()
            .filter(|t| !t.name.starts_with('%') && !listed.contains(&t.name))
            .map(|t| t.name.clone())
            .collect();
        for name in gone {
            self.forget_deleted_topic(&name).await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// The queue to append to with a permit held until the write is durable
    /// (see [`crate::cluster::ownership`]); a queue new to this node starts
    /// where its cold segments end, so offsets continue across nodes and disks.
    pub async fn queue_for_write(
        &self,
        topic: &str,
        queue: u32,
    ) -> BrokerResult<(Arc<QueueLog>, crate::cluster::ownership::WritePermit)> {
        let permit = self.write_permit(topic, queue).await?;
        Ok((self.local_queue(topic, queue).await?, permit))
    }

    /// The queue to watch for new data (long polls), if this node serves it.
    pub async fn queue_to_watch(&self, topic: &str, queue: u32) -> BrokerResult<Arc<QueueLog>> {
        self.serve_queue(topic, queue).await?;
        self.local_queue(topic, queue).await
    }

    async fn local_queue(&self, topic: &str, queue: u32) -> BrokerResult<Arc<QueueLog>> {
        if let Some(q) = self.hot.existing_queue(topic, queue) {
            return Ok(q);
        }
        let base = self.tier.cold_end(topic, queue).await?;
        let (hot, name) = (self.hot.clone(), topic.to_string());
        Ok(tokio::task::spawn_blocking(move || hot.queue_from(&name, queue, base)).await??)
    }

    /// Every object-store job once, in order: group checkpoints, group
    /// metrics, uploads with retention, eviction. (The node runs them as
    /// separate periodic jobs, see [`crate::tasks`]; tests call this.)
    pub async fn tiering_tick(&self) {
        self.checkpoint_groups().await;
        self.report_group_metrics().await;
        self.upload_and_retain().await;
        self.evict_to_budget().await;
    }

    /// Job `checkpoint-groups`: saves every changed group cursor to the object store.
    pub async fn checkpoint_groups(&self) {
        crate::groups::durable::checkpoint_all(self).await;
    }

    /// Job `group-metrics`: refreshes the per group and topic gauges.
    pub async fn report_group_metrics(&self) {
        crate::groups::report::report(self).await;
    }

    /// Job `upload`: uploads sealed segments ([`UPLOAD_CONCURRENCY`] queues at
    /// a time) and applies each topic's retention. Errors are logged; the
    /// next run retries.
    pub async fn upload_and_retain(&self) {
        let now = self.clock.now_ms();
        // Queues are independent: upload and retain several at once, but a
        // bounded number, so that a node with thousands of queues neither
        // floods the object store nor holds thousands of segments in memory.
        let held = self.hot.queues().into_iter();
        let held = held.filter(|log| self.cluster.holds(log.topic(), log.queue()));
        futures::stream::iter(held)
            .for_each_concurrent(UPLOAD_CONCURRENCY, |log| async move {
                let Some(topic) = self.topics.get(log.topic()) else {
                    return;
                };
                if let Err(e) = self.tier.upload(&log).await {
                    tracing::warn!(topic = log.topic(), queue = log.queue(), error = %error_chain(&e), "upload failed; will retry");
                    return;
                }
                // Uploaded segments are in the object store: OBJECT readers see them.
                if let Some(end) = self.tier.held_end(log.topic(), log.queue()).await {
                    log.mark_replicated(end);
                }
                let retention = i64::try_from(topic.config().retention_ms).unwrap_or(i64::MAX);
                if let Err(e) = self.tier.retain(&log, now.saturating_sub(retention)).await {
                    tracing::warn!(topic = log.topic(), queue = log.queue(), error = %error_chain(&e), "retention failed; will retry");
                }
            })
            .await;
    }

    /// Job `evict`: while the hot tier is over `hot_bytes`, removes uploaded
    /// local segments, oldest first.
    pub async fn evict_to_budget(&self) {
        let Some(budget) = self.hot_bytes else {
            return;
        };
        let hot = self.hot.clone();
        let ends = self.uploaded_ends().await;
        let evicted =
            tokio::task::spawn_blocking(move || evict_oldest_uploaded(&hot, &ends, budget)).await;
        match evicted {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %error_chain(&e), "evicting uploaded segments failed")
            }
            Err(e) => tracing::warn!(error = %error_chain(&e), "eviction task failed"),
        }
    }

    /// Where each local queue's uploaded (cold) data ends.
    async fn uploaded_ends(&self) -> Vec<(Arc<QueueLog>, u64)> {
        let mut out = Vec::new();
        for log in self.hot.queues() {
            if let Ok(end) = self.tier.cold_end(log.topic(), log.queue()).await {
                out.push((log, end));
            }
        }
        out
    }

    /// True when the hot tier is over its budget with nothing left it may
    /// evict: new writes would grow the backlog the object store has not taken.
    pub fn over_hot_budget(&self) -> bool {
        self.hot_bytes
            .is_some_and(|budget| self.hot.disk_bytes() > budget.saturating_add(budget / 4))
    }

    /// Final flush on shutdown: everything written becomes durable.
    pub async fn shutdown_flush(&self) -> anyhow::Result<()> {
        let hot = self.hot.clone();
        tokio::task::spawn_blocking(move || hot.flush_all())
            .await
            .map_err(|e| anyhow::Error::new(e).context("final flush task"))?
            .map_err(|e| anyhow::Error::new(e).context("final flush of the hot tier"))
    }

    /// Starts draining: `/readyz` answers 503, produce answers 503 with
    /// `Retry-After`, pending long polls return at once.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.drain_signal.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Resolves when draining starts (at once if it has).
    pub async fn drained(&self) {
        let mut rx = self.drain_signal.subscribe();
        // The sender lives as long as `self`, so this only ends when draining.
        let _ = rx.wait_for(|d| *d).await;
    }
}

/// Bytes of decoded cold row groups kept in memory.
const COLD_CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Queues uploaded (and retained) at the same time by one node.
pub const UPLOAD_CONCURRENCY: usize = 8;

/// Evicts uploaded sealed segments, oldest first across queues, until the hot
/// tier fits `budget`. Only segments ending at or below their queue's cold end go.
fn evict_oldest_uploaded(
    hot: &HotStore,
    ends: &[(Arc<QueueLog>, u64)],
    budget: u64,
) -> shale_hot::Result<()> {
    let mut used = hot.disk_bytes();
    if used <= budget {
        return Ok(());
    }
    let mut candidates: Vec<(i64, &Arc<QueueLog>, u64)> = ends
        .iter()
        .flat_map(|(log, end)| {
            log.sealed_segments()
                .into_iter()
                .filter(move |s| s.end_offset <= *end)
                .map(move |s| (s.last_store_ms, log, s.end_offset))
        })
        .collect();
    candidates.sort_by_key(|(ms, _, _)| *ms);
    for (_, log, through) in candidates {
        if used <= budget {
            break;
        }
        used = used.saturating_sub(log.evict_through(through)?);
    }
    Ok(())
}

/// Removes hot data of topics without metadata (an interrupted delete).
fn remove_orphan_topics(hot: &HotStore, topics: &TopicRegistry) {
    for name in hot.topics() {
        if topics.get(&name).is_some() {
            continue;
        }
        tracing::warn!(topic = %name, "removing hot data of a topic without metadata (interrupted delete)");
        if let Err(e) = hot.remove_topic(&name) {
            tracing::error!(topic = %name, error = %error_chain(&e), "cannot remove orphan topic data");
        }
    }
}

/// Refills the dedup window from every queue's last [`DEDUP_WINDOW_MS`].
fn rebuild_dedup(hot: &HotStore, topics: &TopicRegistry, dedup: &DedupWindow, now_ms: i64) {
    for topic in topics.list() {
        for q in 0..topic.queues() {
            if let Some(queue) = hot.existing_queue(&topic.name, q) {
                rebuild_queue_dedup(&queue, dedup, now_ms);
            }
        }
    }
}

/// Records the dedup ids of the last [`DEDUP_WINDOW_MS`] of `queue`'s local
/// records (at start, and for a queue just taken: what a takeover recovered
/// is deduplicated against a producer's retry through the new owner).
pub(crate) fn rebuild_queue_dedup(queue: &QueueLog, dedup: &DedupWindow, now_ms: i64) {
    // Only records carrying a dedup id are read (the hot tier indexes the property).
    let since = now_ms - DEDUP_WINDOW_MS;
    let result = queue
        .find_with_property(DEDUP_PROPERTY, since, i64::MAX, usize::MAX)
        .map(|records| {
            for r in &records {
                if let Some(id) = dedup_id_of(r) {
                    dedup.record(queue.topic(), id, DedupHit::of_record(queue.queue(), r));
                }
            }
        });
    if let Err(e) = result {
        tracing::error!(
            topic = %queue.topic(), queue = queue.queue(), error = %error_chain(&e),
            "cannot rebuild the dedup window of a queue; repeats of its recent ids may be stored again"
        );
    }
}
