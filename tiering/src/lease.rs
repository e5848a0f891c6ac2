//! Node leases: how the nodes sharing one bucket and prefix know each other,
//! and how a dead node is declared dead exactly once.
//!
//! Layout: `{prefix}/cluster/nodes/{node_id}/{seq:020}.json`, one immutable
//! [`NodeRecord`] per version, each created with `PutMode::Create` under the
//! next sequence number (S3 `If-None-Match: *`, a hard link on a local file
//! system), so of two writers racing for version N+1 exactly one wins. There
//! is one lease per *node*, never per queue: staying alive costs one PUT and
//! one DELETE per renewal whatever the number of queues.
//!
//! Writers of a node's lease:
//! - the node itself: [`NodeLease::register`] starts a new *incarnation*
//!   (raised at every start, so queue ownership recorded under an older one is
//!   recognisably stale), [`NodeLease::renew`] writes the next version with a
//!   new heartbeat, [`NodeLease::set_state`] announces leaving and leaving;
//! - an observer that has seen the lease unchanged for a whole lease period
//!   ([`expire`]): it writes the next version as [`NodeState::Expired`]. The
//!   node's own renewal races for the same sequence number, so either the
//!   renewal lands (the node is alive, the expiry fails) or the expiry lands
//!   (the renewal fails and the node learns it is dead). This is what makes a
//!   takeover safe against a renewal in flight: an observer only takes the
//!   dead node's queues after its expiry has landed, and the dead node then
//!   holds no renewal newer than the one the observer saw unchanged for a
//!   lease period.
//!
//! Invariants:
//! - a version's `incarnation` never decreases along the sequence;
//! - a node never renews over a version it did not write: a conflict is
//!   resolved by reading the newest version, and anything but its own record
//!   (an expiry, a newer incarnation of the same id) is [`TieringError::Fenced`];
//! - old versions are deleted by the node behind itself (it knows their
//!   numbers, so no listing), keeping a few for readers in flight.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TieringError};
use crate::fenced::{create, is_conflict, version_path};
use crate::paths::Layout;

/// Current lease format.
pub const LEASE_FORMAT: u32 = 1;
/// Versions kept behind the newest one.
const KEEP_VERSIONS: u64 = 3;
/// Conflicts tolerated while registering before giving up.
const MAX_REGISTER_ATTEMPTS: u32 = 16;

/// What a node says about itself (or an observer said about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    /// Serving and renewing.
    Alive,
    /// Handing its queues over before it stops: it takes no new queue.
    Leaving,
    /// Gone after a clean hand-over.
    Left,
    /// Declared dead by an observer (`expired_by`) after a lease period of silence.
    Expired,
}

/// One version of a node's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub format: u32,
    pub id: String,
    /// Raised at every start of the node.
    pub incarnation: u64,
    /// How the other nodes reach this one (its advertise URL).
    pub address: String,
    pub started_ms: i64,
    /// Wall time of the renewal (informative: liveness is judged by change, not by this).
    pub heartbeat_ms: i64,
    pub state: NodeState,
    /// The observer that declared it dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_by: Option<String>,
}

impl NodeRecord {
    fn check(&self) -> std::result::Result<(), String> {
        if self.format != LEASE_FORMAT {
            return Err(format!("unknown lease format {}", self.format));
        }
        if self.id.is_empty() || self.incarnation == 0 {
            return Err("a lease needs an id and an incarnation".to_string());
        }
        Ok(())
    }
}

/// A node's own lease, as its holder.
#[derive(Debug)]
pub struct NodeLease {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    record: NodeRecord,
    seq: u64,
}

impl NodeLease {
    /// Starts a new incarnation of node `id`: the next version, with the
    /// incarnation after the newest one stored.
    pub async fn register(
        store: Arc<dyn ObjectStore>,
        layout: &Layout,
        id: &str,
        address: &str,
        started_ms: i64,
    ) -> Result<Self> {
        let dir = layout.node_lease_dir(id);
        for _ in 0..MAX_REGISTER_ATTEMPTS {
            let latest = read_latest(store.as_ref(), &dir).await?;
            let (seq, incarnation) = latest
                .as_ref()
                .map_or((0, 1), |(r, s)| (s + 1, r.incarnation + 1));
            let record = NodeRecord {
                format: LEASE_FORMAT,
                id: id.to_string(),
                incarnation,
                address: address.to_string(),
                started_ms,
                heartbeat_ms: started_ms,
                state: NodeState::Alive,
                expired_by: None,
            };
            match create(store.as_ref(), &dir, seq, &record).await {
                Ok(()) => {
                    let lease = Self {
                        store: store.clone(),
                        dir: dir.clone(),
                        record,
                        seq,
                    };
                    lease.delete_behind().await;
                    return Ok(lease);
                }
                Err(e) if is_conflict(&e) || crate::retry_store::is_transient(&e) => continue,
                Err(e) => return Err(TieringError::store(format!("registering node {id}"), e)),
            }
        }
        Err(TieringError::Contended {
            path: dir.to_string(),
            attempts: MAX_REGISTER_ATTEMPTS,
        })
    }

    pub fn record(&self) -> &NodeRecord {
        &self.record
    }

    pub fn incarnation(&self) -> u64 {
        self.record.incarnation
    }

    /// The sequence number of the newest version this holder wrote.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes the next version with heartbeat `now_ms`. [`TieringError::Fenced`]
    /// when the lease is no longer this holder's (expired by an observer, or a
    /// newer incarnation of the same id): the node must stop writing.
    pub async fn renew(&mut self, now_ms: i64) -> Result<()> {
        let state = self.record.state;
        self.write_next(now_ms, state).await
    }

    /// Announces a state change (leaving, left).
    pub async fn set_state(&mut self, state: NodeState, now_ms: i64) -> Result<()> {
        self.write_next(now_ms, state).await
    }

    async fn write_next(&mut self, now_ms: i64, state: NodeState) -> Result<()> {
        let mut next = self.record.clone();
        next.heartbeat_ms = now_ms;
        next.state = state;
        let seq = self.seq + 1;
        match create(self.store.as_ref(), &self.dir, seq, &next).await {
            Ok(()) => {}
            Err(e) if is_conflict(&e) || crate::retry_store::is_transient(&e) => {
                // Either our own write landed unanswered, or someone else wrote `seq`.
                match read_version(self.store.as_ref(), &self.dir, seq).await? {
                    Some(r) if r == next => {}
                    Some(r) => return Err(self.fenced(r.incarnation)),
                    None => {
                        return Err(TieringError::store(
                            format!("renewing the lease of {}", self.record.id),
                            e,
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(TieringError::store(
                    format!("renewing the lease of {}", self.record.id),
                    e,
                ));
            }
        }
        self.record = next;
        self.seq = seq;
        self.delete_behind().await;
        Ok(())
    }

    fn fenced(&self, current: u64) -> TieringError {
        TieringError::Fenced {
            queue: format!("node lease {}", self.record.id),
            ours: self.record.incarnation,
            current,
        }
    }

    /// Deletes the version that just fell out of the kept window (best effort).
    async fn delete_behind(&self) {
        if let Some(old) = self.seq.checked_sub(KEEP_VERSIONS + 1) {
            let _ = self.store.delete(&version_path(&self.dir, old)).await;
        }
    }
}

/// Declares node `id` dead: writes version `seen_seq + 1` as
/// [`NodeState::Expired`] (a copy of `seen`). `Ok(false)` when that version
/// exists already (the node renewed, or another observer expired it first):
/// the caller must read again before deciding anything.
pub async fn expire(
    store: &dyn ObjectStore,
    layout: &Layout,
    seen: &NodeRecord,
    seen_seq: u64,
    by: &str,
) -> Result<bool> {
    let dir = layout.node_lease_dir(&seen.id);
    let mut dead = seen.clone();
    dead.state = NodeState::Expired;
    dead.expired_by = Some(by.to_string());
    match create(store, &dir, seen_seq + 1, &dead).await {
        Ok(()) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) if crate::retry_store::is_transient(&e) => {
            // The answer was lost: it is ours only if what is there is our expiry.
            Ok(read_version(store, &dir, seen_seq + 1).await? == Some(dead))
        }
        Err(e) => Err(TieringError::store(format!("expiring node {}", seen.id), e)),
    }
}

/// Every node that has a lease under the prefix, with its newest sequence
/// number, in id order. One LIST of the nodes' prefix.
pub async fn list_leases(store: &dyn ObjectStore, layout: &Layout) -> Result<Vec<(String, u64)>> {
    let root = layout.nodes_root();
    let metas: Vec<_> = store
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|e| TieringError::store(format!("listing {root}"), e))?;
    let mut newest = std::collections::BTreeMap::<String, u64>::new();
    for m in metas {
        let parts: Vec<_> = m.location.parts().collect();
        let [.., id, file] = parts.as_slice() else {
            continue;
        };
        let Some(seq) = parse_seq(file.as_ref()) else {
            continue;
        };
        let slot = newest.entry(id.as_ref().to_string()).or_insert(seq);
        *slot = (*slot).max(seq);
    }
    Ok(newest.into_iter().collect())
}

/// Version `seq` of node `id`'s lease; `None` if it does not exist (any more).
pub async fn read_lease(
    store: &dyn ObjectStore,
    layout: &Layout,
    id: &str,
    seq: u64,
) -> Result<Option<NodeRecord>> {
    read_version(store, &layout.node_lease_dir(id), seq).await
}

/// Deletes every version of node `id`'s lease (a node long gone).
pub async fn forget(store: &dyn ObjectStore, layout: &Layout, id: &str) -> Result<()> {
    crate::objects::delete_prefix(store, &layout.node_lease_dir(id)).await
}

fn parse_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

async fn read_latest(store: &dyn ObjectStore, dir: &Path) -> Result<Option<(NodeRecord, u64)>> {
    let metas: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| TieringError::store(format!("listing {dir}"), e))?;
    let newest = metas
        .iter()
        .filter_map(|m| m.location.filename().and_then(parse_seq))
        .max();
    let Some(seq) = newest else {
        return Ok(None);
    };
    Ok(read_version(store, dir, seq).await?.map(|r| (r, seq)))
}

async fn read_version(store: &dyn ObjectStore, dir: &Path, seq: u64) -> Result<Option<NodeRecord>> {
    let path = version_path(dir, seq);
    let bytes = match store.get(&path).await {
        Ok(got) => got
            .bytes()
            .await
            .map_err(|e| TieringError::store(format!("reading {path}"), e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(TieringError::store(format!("reading {path}"), e)),
    };
    let invalid = |reason: String| TieringError::Invalid {
        path: path.to_string(),
        reason,
    };
    let record: NodeRecord = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    record.check().map_err(invalid)?;
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn setup() -> (Arc<dyn ObjectStore>, Layout) {
        (Arc::new(InMemory::new()), Layout::new(Path::from("p")))
    }

    #[tokio::test]
    async fn each_start_is_a_new_incarnation_and_renewals_are_listed() {
        let (store, layout) = setup();
        let mut a = NodeLease::register(store.clone(), &layout, "a", "http://a", 1)
            .await
            .unwrap();
        assert_eq!(a.incarnation(), 1);
        for ms in 2..10 {
            a.renew(ms).await.unwrap();
        }
        let listed = list_leases(store.as_ref(), &layout).await.unwrap();
        assert_eq!(listed, vec![("a".to_string(), a.seq())]);
        // Old versions are deleted behind the holder.
        let all: Vec<_> = store.list(None).try_collect().await.unwrap();
        assert_eq!(all.len() as u64, KEEP_VERSIONS + 1);
        let again = NodeLease::register(store.clone(), &layout, "a", "http://a", 20)
            .await
            .unwrap();
        assert_eq!(again.incarnation(), 2);
        // The older incarnation is fenced at its next renewal.
        let err = a.renew(21).await.unwrap_err();
        assert!(err.is_fenced(), "{err}");
    }

    #[tokio::test]
    async fn an_expiry_and_a_renewal_race_for_one_version() {
        let (store, layout) = setup();
        let mut a = NodeLease::register(store.clone(), &layout, "a", "http://a", 1)
            .await
            .unwrap();
        let seen = read_lease(store.as_ref(), &layout, "a", a.seq())
            .await
            .unwrap()
            .unwrap();
        let seen_seq = a.seq();
        // The node renews first: the observer's expiry of what it saw fails.
        a.renew(2).await.unwrap();
        assert!(
            !expire(store.as_ref(), &layout, &seen, seen_seq, "b")
                .await
                .unwrap()
        );
        // The observer expires what it saw last: the node's next renewal is refused.
        let seen = a.record().clone();
        assert!(
            expire(store.as_ref(), &layout, &seen, a.seq(), "b")
                .await
                .unwrap()
        );
        let err = a.renew(3).await.unwrap_err();
        assert!(err.is_fenced(), "{err}");
        let (_, seq) = list_leases(store.as_ref(), &layout).await.unwrap()[0].clone();
        let stored = read_lease(store.as_ref(), &layout, "a", seq)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.state, NodeState::Expired);
        assert_eq!(stored.expired_by.as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn a_renewal_whose_answer_was_lost_is_recognised_as_ours() {
        let (store, layout) = setup();
        let mut a = NodeLease::register(store.clone(), &layout, "a", "http://a", 1)
            .await
            .unwrap();
        // Simulate the landed-but-unanswered write: the next version already holds our record.
        let mut next = a.record().clone();
        next.heartbeat_ms = 5;
        create(
            store.as_ref(),
            &layout.node_lease_dir("a"),
            a.seq() + 1,
            &next,
        )
        .await
        .unwrap();
        a.renew(5).await.unwrap();
        assert_eq!(a.record().heartbeat_ms, 5);
    }
}
