//! Everything a running node holds, shared by every handler.
//!
//! Local layout under `data_dir`:
//! ```text
//! hot/                 the hot tier (crate shale-hot)
//! meta/topics/*.json   topic metadata (see `topics`)
//! ```
//!
//! Invariants kept by [`AppState::open`]:
//! - topic metadata is the truth: hot data of a topic without metadata is the
//!   remnant of an interrupted delete and is removed;
//! - the dedup window is rebuilt from the last 5 minutes of every queue, so a
//!   restart does not let a repeated `dedup_id` be stored twice.
//!
//! Blocking storage calls run on the blocking pool (`spawn_blocking`), never
//! on the async workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics_exporter_prometheus::PrometheusHandle;
use shale_hot::{Clock, HotConfig, HotStore, SystemClock};

use crate::config::NodeConfig;
use crate::dedup::{DEDUP_PROPERTY, DEDUP_WINDOW_MS, DedupHit, DedupWindow, dedup_id_of};
use crate::error::error_chain;
use crate::topics::TopicRegistry;

/// The shared state behind every handler.
#[derive(Debug)]
pub struct AppState {
    pub node_id: String,
    pub clock: Arc<dyn Clock>,
    pub hot: Arc<HotStore>,
    pub topics: TopicRegistry,
    pub dedup: DedupWindow,
    pub metrics: Option<PrometheusHandle>,
    draining: AtomicBool,
    /// Turns `true` when draining starts: long polls return early.
    drain_signal: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// Opens the node's storage (hot tier under `{data_dir}/hot`, topic metadata) and metrics.
    pub fn open(config: &NodeConfig) -> anyhow::Result<Arc<AppState>> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    /// [`Self::open`] with an injected clock (tests move time instead of sleeping).
    pub fn open_with_clock(
        config: &NodeConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<AppState>> {
        let metrics = crate::metrics::install();
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
        Ok(Arc::new(AppState {
            node_id: config.node_id.clone().unwrap_or_else(|| "local".into()),
            clock,
            hot,
            topics,
            dedup,
            metrics,
            draining: AtomicBool::new(false),
            drain_signal,
        }))
    }

    /// Periodic background work: fsync ASYNC data, seal segments past `segment_ms`.
    pub async fn maintenance_tick(&self) {
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
        if let Some(m) = &self.metrics {
            m.run_upkeep();
        }
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
            let Some(queue) = hot.existing_queue(&topic.name, q) else {
                continue;
            };
            // Only records carrying a dedup id are read (the hot tier indexes the property).
            let since = now_ms - DEDUP_WINDOW_MS;
            let result = queue
                .find_with_property(DEDUP_PROPERTY, since, i64::MAX, usize::MAX)
                .map(|records| {
                    for r in &records {
                        if let Some(id) = dedup_id_of(r) {
                            dedup.record(&topic.name, id, DedupHit::of_record(q, r));
                        }
                    }
                });
            if let Err(e) = result {
                tracing::error!(
                    topic = %topic.name, queue = q, error = %error_chain(&e),
                    "cannot rebuild the dedup window of a queue; repeats of its recent ids may be stored again"
                );
            }
        }
    }
}
