//! The cluster: nodes sharing one bucket and prefix, one owner per queue.
//!
//! - **Membership** ([`Cluster::tick`]): each node renews its own lease
//!   object (`shale_tiering::lease`) every `heartbeat` and lists the others';
//!   [`view`] judges liveness by how long each lease stayed unchanged on this
//!   node's monotonic clock. A lease silent for a whole `lease` period is
//!   declared dead with a conditional write that races the owner's own
//!   renewal for the same version, so exactly one of them wins.
//! - **Self-fencing** ([`Cluster::may_write`]): a node writes its queues only
//!   while its last successful renewal was *sent* less than `lease - margin`
//!   ago. An observer declares it dead no earlier than a whole `lease` after
//!   it first saw that renewal, so by then the node has stopped by itself;
//!   and once the expiry has landed no renewal of the old incarnation can
//!   succeed. A node that lost its lease starts a new incarnation and takes
//!   queues again only through the normal rules.
//! - **Placement** ([`placement`]): rendezvous hashing over the members.
//! - **Ownership** (`ownership`): a node takes the queues placement gives it
//!   once their manifest's owner is gone (see [`view::View::owner_is_gone`]),
//!   hands over (seal, upload, checkpoint, release) those it should no longer
//!   own, and serves only queues it holds; requests for other queues are
//!   answered with where their owner is ([`Elsewhere`]), for the front-end to
//!   forward.
//!
//! With one node and a local-filesystem store all of this runs the same way
//! (the node is the only member and owns every queue).
//!
//! Cost at rest: per node and heartbeat one PUT and one DELETE (its own
//! lease) and one LIST (everyone's), plus one GET per other node that
//! renewed: nothing grows with the number of queues.

pub mod ownership;
pub mod peer;
pub mod placement;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use object_store::ObjectStore;
use shale_hot::Clock;
use shale_tiering::lease::{self, NodeLease, NodeState};
use shale_tiering::paths::Layout;
use shale_tiering::{NodeRecord, QueueOwner};

use crate::error::error_chain;
use view::View;

/// Timing of the membership.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// How the other nodes reach this one.
    pub advertise_url: String,
    /// Interval of lease renewals and listings.
    pub heartbeat: Duration,
    /// A lease unchanged this long (as an observer sees it) is declared dead.
    pub lease: Duration,
    /// A node stops writing `lease - margin` after sending its last successful renewal.
    pub margin: Duration,
    /// The monotonic clock leases are timed with (`None`: the real one).
    /// Separate from the broker's clock, so tests that move message time by
    /// hours do not expire leases, and lease tests move lease time alone.
    pub lease_clock: Option<Arc<dyn Clock>>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            advertise_url: "http://127.0.0.1:8080".to_string(),
            heartbeat: Duration::from_secs(2),
            lease: Duration::from_secs(10),
            margin: Duration::from_secs(3),
            lease_clock: None,
        }
    }
}

impl ClusterConfig {
    /// Checks the timings are coherent.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat.is_zero() || self.margin.is_zero() {
            return Err("cluster heartbeat and margin must be positive".to_string());
        }
        if self.lease <= self.margin + self.heartbeat {
            return Err(format!(
                "the cluster lease ({:?}) must exceed the margin ({:?}) plus a heartbeat ({:?})",
                self.lease, self.margin, self.heartbeat
            ));
        }
        Ok(())
    }
}

/// Where a queue is served when it is not served here: the answer a
/// front-end forwards on (the cause inside [`crate::BrokerError::NotOwner`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue {topic}/{queue} is served by node {node} at {address}")]
pub struct Elsewhere {
    pub topic: String,
    pub queue: u32,
    pub node: String,
    pub address: String,
}

/// A node as `GET /v1/cluster` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub address: String,
    pub started_ms: i64,
    pub last_heartbeat_ms: i64,
    pub state: NodeState,
    /// Whether this node counts it as a live member.
    pub live: bool,
}

/// The membership of this node and its view of the others.
#[derive(Debug)]
pub struct Cluster {
    node_id: String,
    config: ClusterConfig,
    started_ms: i64,
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    /// Wall time (written into leases, informative only).
    clock: Arc<dyn Clock>,
    /// Lease timing (see [`ClusterConfig::lease_clock`]).
    mono: Arc<dyn Clock>,
    lease: tokio::sync::Mutex<Option<NodeLease>>,
    /// 0 until joined.
    incarnation: AtomicU64,
    /// Monotonic ms at which the last successful renewal was sent.
    renewed_sent_at: AtomicI64,
    joined: AtomicBool,
    leaving: AtomicBool,
    view: parking_lot::RwLock<View>,
    /// Per queue held here: the gate writes pass (see [`ownership`]).
    gates: parking_lot::Mutex<HashMap<(String, u32), Arc<ownership::Gate>>>,
}

impl Cluster {
    pub fn new(
        node_id: String,
        config: ClusterConfig,
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mono = config
            .lease_clock
            .clone()
            .unwrap_or_else(|| Arc::new(shale_hot::SystemClock));
        Self {
            mono,
            node_id,
            started_ms: clock.now_ms(),
            config,
            store,
            layout,
            clock,
            lease: tokio::sync::Mutex::new(None),
            incarnation: AtomicU64::new(0),
            renewed_sent_at: AtomicI64::new(i64::MIN / 2),
            joined: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            view: parking_lot::RwLock::new(View::default()),
            gates: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn now(&self) -> i64 {
        self.mono.monotonic_ms()
    }

    /// This node as the owner its manifests name (incarnation 0 before joining).
    pub fn me(&self) -> QueueOwner {
        QueueOwner {
            node: self.node_id.clone(),
            incarnation: self.incarnation.load(Ordering::SeqCst),
        }
    }

    /// True once this node holds a lease.
    pub fn is_joined(&self) -> bool {
        self.joined.load(Ordering::SeqCst)
    }

    /// Joins the cluster if not joined yet: registers a new incarnation, then
    /// lists the others. Safe to call from many tasks (one registration).
    pub async fn join(&self) -> shale_tiering::Result<()> {
        let mut lease = self.lease.lock().await;
        if lease.is_some() {
            return Ok(());
        }
        let sent = self.now();
        let registered = NodeLease::register(
            self.store.clone(),
            &self.layout,
            &self.node_id,
            &self.config.advertise_url,
            self.started_ms,
        )
        .await?;
        tracing::info!(node = %self.node_id, incarnation = registered.incarnation(), "joined the cluster");
        self.incarnation
            .store(registered.incarnation(), Ordering::SeqCst);
        self.renewed_sent_at.store(sent, Ordering::SeqCst);
        *lease = Some(registered);
        drop(lease);
        self.joined.store(true, Ordering::SeqCst);
        self.observe().await
    }

    /// One heartbeat: renew this node's lease, list the others, declare the
    /// silent ones dead. Returns `false` when this node's lease was lost (it
    /// must let go of every queue; the next tick joins again as a new
    /// incarnation).
    pub async fn tick(&self) -> bool {
        if !self.is_joined() {
            if let Err(e) = self.join().await {
                tracing::warn!(error = %error_chain(&e), "cannot join the cluster; will retry");
            }
            return true;
        }
        let kept = self.renew().await;
        if let Err(e) = self.observe().await {
            tracing::warn!(error = %error_chain(&e), "cannot list the cluster's nodes; will retry");
        }
        self.expire_silent().await;
        kept
    }

    async fn renew(&self) -> bool {
        let mut guard = self.lease.lock().await;
        let Some(lease) = guard.as_mut() else {
            return true;
        };
        let sent = self.now();
        let state = if self.leaving.load(Ordering::SeqCst) {
            NodeState::Leaving
        } else {
            NodeState::Alive
        };
        let res = if lease.record().state == state {
            lease.renew(self.clock.now_ms()).await
        } else {
            lease.set_state(state, self.clock.now_ms()).await
        };
        match res {
            Ok(()) => {
                self.renewed_sent_at.store(sent, Ordering::SeqCst);
                crate::metrics::lease_renewed(true);
                true
            }
            Err(e) if e.is_fenced() => {
                tracing::error!(node = %self.node_id, error = %error_chain(&e), "this node's lease was declared dead or taken by a newer start; letting every queue go and joining again");
                crate::metrics::lease_renewed(false);
                *guard = None;
                self.joined.store(false, Ordering::SeqCst);
                self.renewed_sent_at.store(i64::MIN / 2, Ordering::SeqCst);
                false
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "lease renewal failed; will retry");
                crate::metrics::lease_renewed(false);
                true
            }
        }
    }

    /// Lists every lease and reads those that changed.
    pub async fn observe(&self) -> shale_tiering::Result<()> {
        let listed = lease::list_leases(self.store.as_ref(), &self.layout).await?;
        let own = self
            .lease
            .lock()
            .await
            .as_ref()
            .map(|l| (l.seq(), l.record().clone()));
        let mut ids = Vec::with_capacity(listed.len());
        for (id, seq) in listed {
            let known = self.view.read().seq_of(&id);
            let record = match &own {
                _ if known == Some(seq) => None,
                // This node's own version needs no GET: it wrote it.
                Some((own_seq, r)) if id == self.node_id && *own_seq == seq => Some(r.clone()),
                _ => lease::read_lease(self.store.as_ref(), &self.layout, &id, seq).await?,
            };
            self.view.write().observe(&id, seq, record, self.now());
            ids.push(id);
        }
        self.view.write().finish_listing(&ids, self.now());
        Ok(())
    }

    async fn expire_silent(&self) {
        let silent = self
            .view
            .read()
            .silent(&self.node_id, self.now(), self.lease_ms());
        for (record, seq) in silent {
            match lease::expire(
                self.store.as_ref(),
                &self.layout,
                &record,
                seq,
                &self.node_id,
            )
            .await
            {
                Ok(true) => {
                    tracing::warn!(node = %record.id, incarnation = record.incarnation, "declared node dead: its lease did not change for a lease period");
                    let mut dead = record.clone();
                    dead.state = NodeState::Expired;
                    dead.expired_by = Some(self.node_id.clone());
                    self.view
                        .write()
                        .observe(&record.id, seq + 1, Some(dead), self.now());
                }
                Ok(false) => {} // it renewed (or another observer was first): the next listing tells.
                Err(e) => {
                    tracing::warn!(node = %record.id, error = %error_chain(&e), "cannot declare a silent node dead; will retry")
                }
            }
        }
    }

    /// True while this node may write the queues it holds: joined, and its
    /// last successful renewal was sent less than `lease - margin` ago.
    pub fn may_write(&self) -> bool {
        if !self.is_joined() {
            return false;
        }
        let budget = self.config.lease.saturating_sub(self.config.margin);
        let budget = i64::try_from(budget.as_millis()).unwrap_or(i64::MAX);
        self.now() - self.renewed_sent_at.load(Ordering::SeqCst) < budget
    }

    /// The live members placement spreads queues over (this node included
    /// unless it is leaving).
    pub fn members(&self) -> Vec<String> {
        let mut members = self
            .view
            .read()
            .members(&self.node_id, self.now(), self.lease_ms());
        if self.leaving.load(Ordering::SeqCst) {
            members.retain(|m| *m != self.node_id);
        } else if !members.contains(&self.node_id) {
            members.push(self.node_id.clone());
            members.sort();
        }
        members
    }

    /// The node placement gives `topic/queue` to.
    pub fn placed_on(&self, topic: &str, queue: u32) -> String {
        let members = self.members();
        placement::owner_of(&members, topic, queue)
            .unwrap_or(&self.node_id)
            .to_string()
    }

    /// Where to reach node `id` (its advertise URL), if it is known.
    pub fn address_of(&self, id: &str) -> Option<String> {
        if id == self.node_id {
            return Some(self.config.advertise_url.clone());
        }
        self.view.read().get(id).map(|o| o.record.address.clone())
    }

    /// May the owner a manifest names be replaced by this node?
    pub fn owner_is_gone(&self, owner: Option<&QueueOwner>) -> bool {
        let me = self.me();
        let view = self.view.read();
        view.owner_is_gone(owner, &me.node, me.incarnation, self.now(), self.lease_ms())
    }

    /// Notes an owner that no listing had (so that it is judged gone once a
    /// lease period of listings still lacks it).
    pub fn notice_owner(&self, owner: &QueueOwner) {
        self.view.write().notice_unknown(&owner.node, self.now());
    }

    /// Deletes the lease objects of nodes that left or were declared dead at
    /// least `quiet` ago and never came back (an autoscaling group's old node
    /// ids would otherwise pile up and be listed at every heartbeat). A node
    /// that does come back with such an id simply registers again. Returns
    /// the ids forgotten.
    pub async fn forget_departed(&self, quiet: Duration) -> Vec<String> {
        let quiet_ms = i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX);
        let gone = self
            .view
            .read()
            .departed(&self.node_id, self.now(), quiet_ms);
        let mut forgotten = Vec::new();
        for id in gone {
            match shale_tiering::lease::forget(self.store.as_ref(), &self.layout, &id).await {
                Ok(()) => {
                    self.view.write().remove(&id);
                    tracing::info!(node = %id, "forgot the lease of a node gone for good");
                    forgotten.push(id);
                }
                Err(e) => {
                    tracing::debug!(node = %id, error = %crate::error::error_chain(&e), "cannot delete a departed node's lease yet")
                }
            }
        }
        forgotten
    }

    /// Starts leaving: the next renewal says so, and placement leaves this node out.
    pub fn start_leaving(&self) {
        self.leaving.store(true, Ordering::SeqCst);
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::SeqCst)
    }

    /// Writes the final state of this node's lease (after its hand-over).
    pub async fn leave(&self) -> shale_tiering::Result<()> {
        let mut guard = self.lease.lock().await;
        if let Some(lease) = guard.as_mut() {
            lease
                .set_state(NodeState::Left, self.clock.now_ms())
                .await?;
        }
        *guard = None;
        self.joined.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Every node this one knows, for `GET /v1/cluster`.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let members = self.members();
        let view = self.view.read();
        let mut out: Vec<NodeInfo> = view
            .all()
            .map(|o| info(&o.record, members.contains(&o.record.id)))
            .collect();
        if !out.iter().any(|n| n.id == self.node_id) {
            let me = NodeRecord {
                format: lease::LEASE_FORMAT,
                id: self.node_id.clone(),
                incarnation: self.incarnation.load(Ordering::SeqCst).max(1),
                address: self.config.advertise_url.clone(),
                started_ms: self.started_ms,
                heartbeat_ms: self.started_ms,
                state: NodeState::Alive,
                expired_by: None,
            };
            out.push(info(&me, true));
            out.sort_by(|a, b| a.id.cmp(&b.id));
        }
        out
    }
}

fn info(r: &NodeRecord, live: bool) -> NodeInfo {
    NodeInfo {
        id: r.id.clone(),
        address: r.address.clone(),
        started_ms: r.started_ms,
        last_heartbeat_ms: r.heartbeat_ms,
        state: r.state,
        live,
    }
}
