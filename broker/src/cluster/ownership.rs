//! Queue ownership on this node: taking, serving, handing over, letting go.
//!
//! A queue is served here only while this node holds it: its manifest names
//! this node (taken with [`shale_tiering::Tier::acquire`], epoch raised) and
//! its [`Gate`] is open. Every write passes the gate with a [`WritePermit`]
//! held until the write is durable; a hand-over closes the gate and waits for
//! the permits out, so nothing is appended after the last upload.
//!
//! Taking a queue settles its local data first. Local data is kept only if
//! this node wrote the epoch being replaced (its marker file
//! `meta/owned/{topic}/{queue}` names that epoch, so nobody owned the queue in
//! between) and it reaches the manifest's end; otherwise the messages after
//! the last segment this node uploaded itself (the manifest says which epoch
//! staged each segment) were never uploaded, and another owner may have given
//! their offsets to other messages: they are moved to
//! `quarantine/{topic}/{queue}/…` (logged, counted in
//! `shale_quarantined_messages_total`), never mixed in. The marker is written
//! (durably) before the gate opens.
//!
//! Transitions of one queue (take, hand over, let go) are serialised by a
//! per-queue lock; none holds a synchronous lock across I/O.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use shale_hot::durable_file;
use shale_tiering::Acquired;

use super::Elsewhere;
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, error_chain};

/// Magic and version of the ownership marker file.
const MARKER_MAGIC: [u8; 4] = *b"SHOW";
const MARKER_VERSION: u16 = 1;

/// The door writes of one held queue pass.
#[derive(Debug)]
pub struct Gate {
    open: AtomicBool,
    lock: Arc<tokio::sync::RwLock<()>>,
    /// Serialises the queue's transitions.
    transition: Arc<tokio::sync::Mutex<()>>,
}

/// Held by a write from its ownership check until it is durable.
pub type WritePermit = tokio::sync::OwnedRwLockReadGuard<()>;

impl super::Cluster {
    fn gate(&self, topic: &str, queue: u32) -> Option<Arc<Gate>> {
        self.gates.lock().get(&(topic.to_string(), queue)).cloned()
    }

    /// The gate of a queue, made closed if absent (its transition lock is the
    /// queue's, whether held or not).
    fn gate_or_new(&self, topic: &str, queue: u32) -> Arc<Gate> {
        self.gates
            .lock()
            .entry((topic.to_string(), queue))
            .or_insert_with(|| {
                Arc::new(Gate {
                    open: AtomicBool::new(false),
                    lock: Arc::new(tokio::sync::RwLock::new(())),
                    transition: Arc::new(tokio::sync::Mutex::new(())),
                })
            })
            .clone()
    }

    /// True when this node serves the queue now.
    pub fn holds(&self, topic: &str, queue: u32) -> bool {
        self.gate(topic, queue)
            .is_some_and(|g| g.open.load(Ordering::SeqCst))
    }

    /// Queues held here, sorted.
    pub fn held(&self) -> Vec<(String, u32)> {
        let mut out: Vec<_> = self
            .gates
            .lock()
            .iter()
            .filter(|(_, g)| g.open.load(Ordering::SeqCst))
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }

    /// Closes every gate at once (the lease is lost): no write passes any more.
    fn close_all(&self) -> Vec<(String, u32)> {
        let gates = self.gates.lock();
        let mut out = Vec::new();
        for (k, g) in gates.iter() {
            if g.open.swap(false, Ordering::SeqCst) {
                out.push(k.clone());
            }
        }
        out
    }
}

impl Broker {
    /// A permit to write `topic/queue`: this node holds it (taking it now if
    /// placement gives it to this node and its owner is gone), its gate is
    /// open and its lease is fresh. Otherwise [`BrokerError::NotOwner`] whose
    /// cause is [`Elsewhere`] when another node should serve it.
    pub async fn write_permit(&self, topic: &str, queue: u32) -> BrokerResult<WritePermit> {
        for attempt in 0..2 {
            if let Some(gate) = self.cluster.gate(topic, queue) {
                let permit = gate.lock.clone().read_owned().await;
                if gate.open.load(Ordering::SeqCst) {
                    if !self.cluster.may_write() {
                        return Err(BrokerError::unavailable(
                            "this node could not renew its cluster lease in time and stopped writing; retry shortly",
                        ));
                    }
                    return Ok(permit);
                }
            }
            let target = self.cluster.placed_on(topic, queue);
            if target != self.node_id {
                return Err(self.elsewhere(topic, queue, &target));
            }
            if attempt == 0 {
                self.take_queue(topic, queue).await?;
            }
        }
        Err(BrokerError::unavailable(format!(
            "queue {topic}/{queue} is moving to this node; retry shortly"
        )))
    }

    /// Ok when this node serves `topic/queue` now (see [`Self::write_permit`]).
    pub async fn serve_queue(&self, topic: &str, queue: u32) -> BrokerResult<()> {
        self.write_permit(topic, queue).await.map(drop)
    }

    fn elsewhere(&self, topic: &str, queue: u32, node: &str) -> BrokerError {
        match self.cluster.address_of(node) {
            Some(address) => BrokerError::NotOwner {
                message: format!(
                    "queue {topic}/{queue} is served by node {node}; retry there or later"
                ),
                source: Some(Box::new(Elsewhere {
                    topic: topic.to_string(),
                    queue,
                    node: node.to_string(),
                    address,
                })),
            },
            None => BrokerError::unavailable(format!(
                "queue {topic}/{queue} has no reachable owner yet; retry shortly"
            )),
        }
    }

    /// Takes `topic/queue` if its owner is gone; settles local data and opens
    /// the gate. `Unavailable` while another owner still holds it.
    pub async fn take_queue(&self, topic: &str, queue: u32) -> BrokerResult<()> {
        if !self.cluster.is_joined() {
            self.cluster.join().await?;
        }
        if !self.cluster.may_write() {
            return Err(BrokerError::unavailable(
                "this node has no fresh cluster lease; retry shortly",
            ));
        }
        let gate = self.cluster.gate_or_new(topic, queue);
        let _transition = gate.transition.lock().await;
        if gate.open.load(Ordering::SeqCst) {
            return Ok(());
        }
        let me = self.cluster.me();
        let cluster = &self.cluster;
        let acquired = self
            .tier
            .acquire(topic, queue, &me, |owner| {
                let gone = cluster.owner_is_gone(owner);
                if let Some(o) = owner.filter(|_| !gone) {
                    cluster.notice_owner(o);
                }
                gone
            })
            .await?;
        let Some(acquired) = acquired else {
            return Err(BrokerError::unavailable(format!(
                "queue {topic}/{queue} is still held by its previous owner; retry shortly"
            )));
        };
        self.settle_local(topic, queue, &acquired).await?;
        self.recover_queue(topic, queue, &acquired).await?;
        self.take_over_dedup(topic, queue, &acquired).await;
        self.groups.cursors.remove_queue(topic, queue);
        gate.open.store(true, Ordering::SeqCst);
        crate::metrics::queue_taken(acquired.previous_owner.is_some());
        tracing::info!(topic, queue, epoch = acquired.epoch, previous = ?acquired.previous_owner, "took the queue");
        Ok(())
    }

    /// Keeps or quarantines the local data of a queue just taken, records
    /// the new epoch, and makes sure the queue exists locally.
    async fn settle_local(&self, topic: &str, queue: u32, acq: &Acquired) -> BrokerResult<()> {
        let marker_path = self.owned_marker(topic, queue);
        let local = self.hot.existing_queue(topic, queue);
        let marker = {
            let p = marker_path.clone();
            tokio::task::spawn_blocking(move || read_marker(&p)).await??
        };
        let lineage = acq.epoch == acq.previous_epoch
            || marker == Some(acq.previous_epoch)
            || (marker.is_none() && acq.previous_owner.is_none());
        if let Some(log) = &local {
            let reaches = log.max_offset() >= acq.end_offset;
            if !(lineage && reaches) {
                // What this node uploaded itself (under its last epoch) is in the
                // object store; everything after it never was.
                let ours_end = match marker {
                    Some(e) => self
                        .tier
                        .reader()
                        .manifest(topic, queue)
                        .await?
                        .and_then(|m| {
                            m.segments
                                .iter()
                                .filter(|s| s.staged_epoch == Some(e))
                                .map(|s| s.end_offset)
                                .max()
                        })
                        .unwrap_or(0),
                    None => 0,
                };
                let beyond = log
                    .max_offset()
                    .saturating_sub(ours_end.max(log.min_offset()));
                let dest = (beyond > 0).then(|| {
                    self.data_dir
                        .join("quarantine")
                        .join(topic)
                        .join(queue.to_string())
                        .join(format!(
                            "epoch-{}-at-{}",
                            acq.previous_epoch,
                            self.clock.now_ms()
                        ))
                });
                let local_range = (log.min_offset(), log.max_offset());
                let hot = self.hot.clone();
                let (t, d) = (topic.to_string(), dest.clone());
                tokio::task::spawn_blocking(move || hot.detach_queue(&t, queue, d.as_deref()))
                    .await??;
                if let Some(dest) = dest {
                    tracing::error!(
                        topic, queue, messages = beyond, local_offsets = ?local_range, object_store_end = acq.end_offset, dir = %dest.display(),
                        "local messages this node never uploaded, and another owner has taken the queue since: kept aside, not served"
                    );
                    crate::metrics::quarantined(topic, beyond);
                }
            }
        }
        let (hot, t, epoch, end) = (
            self.hot.clone(),
            topic.to_string(),
            acq.epoch,
            acq.end_offset,
        );
        tokio::task::spawn_blocking(move || {
            write_marker(&marker_path, epoch)?;
            hot.queue_from(&t, queue, end)?;
            Ok::<_, BrokerError>(())
        })
        .await??;
        Ok(())
    }

    fn owned_marker(&self, topic: &str, queue: u32) -> PathBuf {
        self.data_dir
            .join("meta")
            .join("owned")
            .join(topic)
            .join(queue.to_string())
    }

    /// Hands `topic/queue` over: closes its gate, waits for the writes in
    /// flight, seals and uploads everything, checkpoints its group cursors
    /// and clears the manifest's owner. The local copy (all of it uploaded)
    /// is deleted, or kept with `keep_local` (a shutdown: this node is likely
    /// to take the queue back on restart, and keeps it only if nobody owned
    /// it in between). On failure the gate opens again (the next pass retries).
    pub async fn hand_over_queue(
        &self,
        topic: &str,
        queue: u32,
        keep_local: bool,
    ) -> BrokerResult<()> {
        let Some(gate) = self.cluster.gate(topic, queue) else {
            return Ok(());
        };
        let _transition = gate.transition.lock().await;
        if !gate.open.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let drained = gate.lock.write().await;
        let result = self.upload_for_hand_over(topic, queue).await;
        match result {
            Ok(()) => {
                self.groups.cursors.remove_queue(topic, queue);
                let (hot, t) = (self.hot.clone(), topic.to_string());
                let marker = self.owned_marker(topic, queue);
                let local = tokio::task::spawn_blocking(move || {
                    if keep_local {
                        return Ok(None);
                    }
                    let _ = std::fs::remove_file(&marker);
                    hot.detach_queue(&t, queue, None)
                })
                .await?;
                if let Err(e) = local {
                    tracing::warn!(topic, queue, error = %error_chain(&e), "handed over, but the local copy could not be deleted");
                }
                self.cluster
                    .gates
                    .lock()
                    .remove(&(topic.to_string(), queue));
                drop(drained);
                crate::metrics::queue_handed_over();
                tracing::info!(topic, queue, "handed the queue over");
                Ok(())
            }
            Err(e) if e.is_retryable() && self.tier.held_epoch(topic, queue).is_some() => {
                gate.open.store(true, Ordering::SeqCst);
                Err(e)
            }
            Err(e) => {
                // Fenced: someone else owns it already.
                self.let_go(topic, queue).await;
                Err(e)
            }
        }
    }

    async fn upload_for_hand_over(&self, topic: &str, queue: u32) -> BrokerResult<()> {
        if let Some(log) = self.hot.existing_queue(topic, queue) {
            let sealing = log.clone();
            tokio::task::spawn_blocking(move || sealing.seal_active()).await??;
            crate::groups::durable::checkpoint_queue(self, topic, queue).await?;
            self.tier.upload(&log).await?;
        }
        self.hand_over_timers(topic, queue).await?;
        let uploaded = self.tier.held_end(topic, queue).await.unwrap_or(0);
        self.pass_on_dedup(topic, queue).await;
        self.tier.release(topic, queue).await?;
        // Every write-ahead chunk of this queue is covered by the upload now.
        self.wal.handed_over(topic, queue, uploaded);
        Ok(())
    }

    /// Lets go of every queue of a deleted topic (nothing is written).
    pub(crate) async fn release_topic_queues(&self, topic: &str) {
        let queues: Vec<u32> = self
            .cluster
            .gates
            .lock()
            .keys()
            .filter(|(t, _)| t == topic)
            .map(|(_, q)| *q)
            .collect();
        for q in queues {
            self.let_go(topic, q).await;
        }
    }

    /// Forgets a queue without writing anything (fenced, or the lease is lost).
    async fn let_go(&self, topic: &str, queue: u32) {
        if let Some(g) = self.cluster.gate(topic, queue) {
            g.open.store(false, Ordering::SeqCst);
        }
        self.cluster
            .gates
            .lock()
            .remove(&(topic.to_string(), queue));
        self.tier.abandon(topic, queue).await;
        self.groups.cursors.remove_queue(topic, queue);
        self.timers.forget(topic, queue);
    }

    /// Job `cluster`: one heartbeat, then the ownership pass — take the
    /// queues placement gives this node, hand over the others. Also picks up
    /// topics created through other nodes.
    pub async fn cluster_tick(self: &Arc<Self>) {
        if !self.cluster.tick().await {
            for (topic, queue) in self.cluster.close_all() {
                self.let_go(&topic, queue).await;
            }
            return;
        }
        if let Err(e) = self.refresh_topics_from_store().await {
            tracing::debug!(error = %error_chain(e.as_ref()), "cannot list topics in the object store");
        }
        if let Err(e) = crate::groups::settings::refresh_from_store(self).await {
            tracing::debug!(error = %error_chain(&e), "cannot re-read group settings from the object store");
        }
        self.rebalance().await;
        crate::metrics::queues_owned(self.cluster.held().len());
    }

    /// The ownership pass alone.
    pub async fn rebalance(&self) {
        if !self.cluster.may_write() {
            return;
        }
        let mut to_take = Vec::new();
        let mut to_give = Vec::new();
        for topic in self.topics.list() {
            for q in 0..topic.queues() {
                let held = self.cluster.holds(&topic.name, q);
                let mine = self.cluster.placed_on(&topic.name, q) == self.node_id;
                if mine && !held {
                    to_take.push((topic.name.clone(), q));
                } else if held && !mine {
                    to_give.push((topic.name.clone(), q));
                }
            }
        }
        use futures::StreamExt;
        futures::stream::iter(to_give)
            .for_each_concurrent(crate::broker::UPLOAD_CONCURRENCY, |(t, q)| async move {
                if let Err(e) = self.hand_over_queue(&t, q, false).await {
                    tracing::warn!(topic = %t, queue = q, error = %error_chain(&e), "hand-over failed; will retry");
                }
            })
            .await;
        futures::stream::iter(to_take)
            .for_each_concurrent(crate::broker::UPLOAD_CONCURRENCY, |(t, q)| async move {
                if let Err(e) = self.take_queue(&t, q).await {
                    tracing::debug!(topic = %t, queue = q, error = %error_chain(&e), "queue not taken yet");
                }
            })
            .await;
    }

    /// Leaves the cluster on shutdown: announces it, hands every held queue
    /// over (within `budget`), and writes the final lease state.
    pub async fn leave_cluster(&self, budget: std::time::Duration) -> anyhow::Result<()> {
        self.cluster.start_leaving();
        let _ = self.cluster.tick().await;
        let held = self.cluster.held();
        let all = async {
            use futures::StreamExt;
            futures::stream::iter(held)
                .map(|(t, q)| async move {
                    self.hand_over_queue(&t, q, true)
                        .await
                        .map_err(|e| format!("{t}/{q}: {}", error_chain(&e)))
                })
                .buffer_unordered(crate::broker::UPLOAD_CONCURRENCY)
                .filter_map(|r| async move { r.err() })
                .collect::<Vec<_>>()
                .await
        };
        let failures = tokio::time::timeout(budget, all)
            .await
            .map_err(|_| anyhow::anyhow!("the hand-over did not finish within {budget:?}"))?;
        self.cluster
            .leave()
            .await
            .map_err(|e| anyhow::Error::new(e).context("writing the final lease state"))?;
        if !failures.is_empty() {
            anyhow::bail!("some queues were not handed over: {}", failures.join("; "));
        }
        Ok(())
    }
}

fn read_marker(path: &std::path::Path) -> BrokerResult<Option<u64>> {
    match durable_file::read_framed(path, MARKER_MAGIC) {
        Ok(None) => Ok(None),
        Ok(Some((_, payload))) => {
            let bytes: [u8; 8] = payload.as_slice().try_into().map_err(|_| {
                BrokerError::internal(
                    "reading an ownership marker",
                    format!("{} is not 8 bytes", path.display()),
                )
            })?;
            Ok(Some(u64::from_le_bytes(bytes)))
        }
        Err(e) => Err(BrokerError::internal("reading an ownership marker", e)),
    }
}

fn write_marker(path: &std::path::Path, epoch: u64) -> BrokerResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| BrokerError::internal("creating the ownership marker directory", e))?;
    }
    durable_file::write_framed(path, MARKER_MAGIC, MARKER_VERSION, &epoch.to_le_bytes())
        .map_err(|e| BrokerError::internal("writing an ownership marker", e))
}
