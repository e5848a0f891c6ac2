//! What the HTTP node holds: the broker, the Prometheus handle that
//! renders `/metrics`, and the auth rules in force (`--auth-file`).
//!
//! [`AppState`] dereferences to [`Broker`], so background loops and tests
//! reach the broker's methods directly; handlers call the broker and nothing
//! else.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use shale_broker::tasks::Job;
use shale_broker::{Broker, BrokerConfig, Clock, SystemClock};
use shale_tiering::Tier;

use crate::auth::Auth;
use crate::config::{ConfigError, NodeConfig};

/// The shared state behind every handler.
#[derive(Debug)]
pub struct AppState {
    pub broker: Arc<Broker>,
    pub metrics: Option<PrometheusHandle>,
    /// `None`: auth is off (no `auth_file`).
    pub auth: Option<Arc<Auth>>,
    /// How the SQS-compatible endpoint names queues (URLs and ARNs).
    pub sqs: crate::sqs::Front,
}

impl Deref for AppState {
    type Target = Broker;

    fn deref(&self) -> &Broker {
        &self.broker
    }
}

impl AppState {
    /// Opens the node's broker (storage, topics, groups) and metrics.
    pub fn open(config: &NodeConfig) -> anyhow::Result<Arc<AppState>> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    /// [`Self::open`] with an injected clock (tests move time instead of sleeping).
    pub fn open_with_clock(
        config: &NodeConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<AppState>> {
        let auth = load_auth(config)?;
        let metrics = crate::metrics::install();
        let broker = Broker::open_with_clock(&broker_config(config)?, clock)?;
        broker.set_transaction_max_checks(config.transaction_max_checks);
        Ok(Self::over(
            broker,
            metrics,
            auth,
            crate::sqs::Front::of(config),
        ))
    }

    /// [`Self::open_with_clock`] over a given object-store tier (tests inject
    /// outages and latency with [`shale_tiering::FaultStore`]).
    pub fn open_with(
        config: &NodeConfig,
        clock: Arc<dyn Clock>,
        tier: Arc<Tier>,
    ) -> anyhow::Result<Arc<AppState>> {
        let auth = load_auth(config)?;
        let metrics = crate::metrics::install();
        let broker = Broker::open_with(&broker_config(config)?, clock, tier)?;
        broker.set_transaction_max_checks(config.transaction_max_checks);
        Ok(Self::over(
            broker,
            metrics,
            auth,
            crate::sqs::Front::of(config),
        ))
    }

    /// The state over an open broker, whose node-to-node writes go over HTTP.
    fn over(
        broker: Arc<Broker>,
        metrics: Option<PrometheusHandle>,
        auth: Option<Arc<Auth>>,
        sqs: crate::sqs::Front,
    ) -> Arc<AppState> {
        broker.set_peer(Arc::new(crate::cluster::forward::HttpPeer {
            node_id: broker.node_id.clone(),
            auth: auth.clone(),
        }));
        Arc::new(AppState {
            broker,
            metrics,
            auth,
            sqs,
        })
    }

    /// Adds the topics the object store knows and this node does not (see
    /// [`Broker::load_topics_from_store`]).
    pub async fn load_topics_from_store(&self) -> anyhow::Result<usize> {
        self.broker.load_topics_from_store().await
    }

    /// Local upkeep once: the broker's flush and seal, then the metrics
    /// exporter's upkeep.
    pub async fn maintenance_tick(&self) {
        self.broker.flush_and_seal().await;
        self.metrics_upkeep();
    }

    /// Job `metrics-upkeep`: drains the exporter's histogram buffers.
    pub fn metrics_upkeep(&self) {
        if let Some(m) = &self.metrics {
            m.run_upkeep();
        }
    }

    /// The node's background jobs: the broker's, plus the metrics upkeep.
    pub fn jobs(self: &Arc<Self>, flush_interval: std::time::Duration) -> Vec<Job> {
        let mut jobs = self.broker.jobs(flush_interval);
        let state = self.clone();
        jobs.push(Job::new("metrics-upkeep", flush_interval, move || {
            state.metrics_upkeep();
            async {}
        }));
        if let Some(auth) = &self.auth {
            let auth = auth.clone();
            jobs.push(Job::new(
                "auth-reload",
                crate::auth::RELOAD_PERIOD,
                move || {
                    let auth = auth.clone();
                    async move { auth.poll().await }
                },
            ));
        }
        jobs
    }
}

/// The auth rules of `auth_file` (with the node's cluster secret), if set.
fn load_auth(config: &NodeConfig) -> Result<Option<Arc<Auth>>, ConfigError> {
    let Some(path) = &config.auth_file else {
        return Ok(None);
    };
    let auth = Auth::load(path, config.cluster_secret_file.as_deref()).map_err(|reason| {
        ConfigError::Invalid {
            key: "auth_file",
            origin: None,
            reason,
        }
    })?;
    Ok(Some(Arc::new(auth)))
}

/// The broker's settings out of the node's.
fn broker_config(config: &NodeConfig) -> anyhow::Result<BrokerConfig> {
    let object_store = config
        .object_store_url()
        .map_err(|why| anyhow::anyhow!("object_store: {why}"))?;
    Ok(BrokerConfig {
        data_dir: config.data_dir.clone(),
        object_store,
        segment_bytes: config.segment_bytes,
        segment_ms: config.segment_ms,
        hot_bytes: config.hot_bytes,
        node_id: config.node_id.clone().unwrap_or_else(|| "local".into()),
        cluster: config.cluster_config(),
        object_commit_interval: std::time::Duration::from_millis(config.object_commit_interval_ms),
        max_delay_ms: i64::try_from(config.max_delay_ms).unwrap_or(i64::MAX),
    })
}
