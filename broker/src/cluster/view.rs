//! One node's view of the membership: the leases it has listed, and for how
//! long (on its own monotonic clock) each has stayed unchanged.
//!
//! Liveness is judged by *change*, never by the wall times written in the
//! leases, so nodes need no synchronised clocks: a node is live while its
//! lease has changed within the last lease period as this observer saw it.
//! The view is pure bookkeeping (no I/O): the cluster layer feeds it
//! listings and asks it questions.
//!
//! Rules for "may the owner named in a manifest be replaced" ([`View::owner_is_gone`]):
//! - released (no owner): yes;
//! - this node, an earlier or the current incarnation: yes (it is ours to take back);
//! - another node whose lease says `LEFT` or `EXPIRED` for that incarnation: yes;
//! - another node that restarted (a newer incarnation): yes, after a lease
//!   period of grace in which the restarted node may take its queues back
//!   (keeping its local data);
//! - a node this view has not listed: only once a listing made a lease period
//!   after it was first noticed still lacks it (its lease is gone);
//! - anything else (alive, or silent but not yet declared dead by an expiry
//!   that landed): no.

use std::collections::{BTreeMap, HashMap};

use shale_tiering::{NodeRecord, NodeState, QueueOwner};

/// A lease as this observer knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub record: NodeRecord,
    pub seq: u64,
    /// When (monotonic ms) this observer first saw `seq`.
    pub changed_at: i64,
    /// When it first saw `record.incarnation`.
    pub incarnation_seen_at: i64,
}

/// The membership as one node sees it.
#[derive(Debug, Default)]
pub struct View {
    nodes: BTreeMap<String, Observed>,
    /// When the last complete listing finished.
    listed_at: Option<i64>,
    /// Owners named by manifests that no listing had, with when they were first noticed.
    unknown: HashMap<String, i64>,
}

impl View {
    /// The version of `id` this view holds, if any.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        self.nodes.get(id).map(|o| o.seq)
    }

    /// Nodes other than `me` that left or were declared dead and whose lease
    /// has not changed for `quiet_ms` (their lease objects can go).
    pub fn departed(&self, me: &str, now: i64, quiet_ms: i64) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(id, o)| {
                id.as_str() != me
                    && matches!(o.record.state, NodeState::Left | NodeState::Expired)
                    && now - o.changed_at >= quiet_ms
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Forgets `id` (its lease objects were deleted).
    pub fn remove(&mut self, id: &str) {
        self.nodes.remove(id);
    }

    pub fn get(&self, id: &str) -> Option<&Observed> {
        self.nodes.get(id)
    }

    /// Records a listed version of `id` (`record` read for a new `seq`; `None`
    /// when the view holds that version already).
    pub fn observe(&mut self, id: &str, seq: u64, record: Option<NodeRecord>, now: i64) {
        match (self.nodes.get_mut(id), record) {
            (Some(o), Some(record)) if o.seq != seq => {
                if record.incarnation != o.record.incarnation {
                    o.incarnation_seen_at = now;
                }
                o.record = record;
                o.seq = seq;
                o.changed_at = now;
            }
            (None, Some(record)) => {
                self.nodes.insert(
                    id.to_string(),
                    Observed {
                        record,
                        seq,
                        changed_at: now,
                        incarnation_seen_at: now,
                    },
                );
                self.unknown.remove(id);
            }
            _ => {}
        }
    }

    /// Ends a complete listing: nodes it did not list are forgotten.
    pub fn finish_listing(&mut self, listed: &[String], now: i64) {
        self.nodes.retain(|id, _| listed.contains(id));
        self.listed_at = Some(now);
    }

    /// Remembers that a manifest names `node`, which this view does not know.
    pub fn notice_unknown(&mut self, node: &str, now: i64) {
        if !self.nodes.contains_key(node) {
            self.unknown.entry(node.to_string()).or_insert(now);
        }
    }

    /// The nodes placement spreads queues over: alive (not leaving), and
    /// either this node or changed within the last `lease_ms`. Sorted by id.
    pub fn members(&self, me: &str, now: i64, lease_ms: i64) -> Vec<String> {
        self.nodes
            .values()
            .filter(|o| o.record.state == NodeState::Alive)
            .filter(|o| o.record.id == me || now - o.changed_at < lease_ms)
            .map(|o| o.record.id.clone())
            .collect()
    }

    /// Other nodes claiming to live whose lease has not changed for `lease_ms`:
    /// to be declared dead (the caller writes the expiry).
    pub fn silent(&self, me: &str, now: i64, lease_ms: i64) -> Vec<(NodeRecord, u64)> {
        self.nodes
            .values()
            .filter(|o| o.record.id != me)
            .filter(|o| matches!(o.record.state, NodeState::Alive | NodeState::Leaving))
            .filter(|o| now - o.changed_at >= lease_ms)
            .map(|o| (o.record.clone(), o.seq))
            .collect()
    }

    /// Every lease this view holds, in id order.
    pub fn all(&self) -> impl Iterator<Item = &Observed> {
        self.nodes.values()
    }

    /// May `owner` (from a manifest) be replaced? See the module docs.
    pub fn owner_is_gone(
        &self,
        owner: Option<&QueueOwner>,
        me: &str,
        my_incarnation: u64,
        now: i64,
        lease_ms: i64,
    ) -> bool {
        let Some(owner) = owner else {
            return true;
        };
        if owner.node == me {
            return owner.incarnation <= my_incarnation;
        }
        let Some(o) = self.nodes.get(&owner.node) else {
            let noticed = self.unknown.get(&owner.node).copied();
            return match (noticed, self.listed_at) {
                (Some(noticed), Some(listed)) => listed - noticed >= lease_ms,
                _ => false,
            };
        };
        let dead = matches!(o.record.state, NodeState::Left | NodeState::Expired);
        if o.record.incarnation == owner.incarnation {
            return dead;
        }
        if o.record.incarnation > owner.incarnation {
            return dead || now - o.incarnation_seen_at >= lease_ms;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: i64 = 10_000;

    fn rec(id: &str, incarnation: u64, state: NodeState) -> NodeRecord {
        NodeRecord {
            format: shale_tiering::lease::LEASE_FORMAT,
            id: id.to_string(),
            incarnation,
            address: format!("http://{id}"),
            started_ms: 0,
            heartbeat_ms: 0,
            state,
            expired_by: None,
        }
    }

    fn owner(node: &str, incarnation: u64) -> QueueOwner {
        QueueOwner {
            node: node.to_string(),
            incarnation,
        }
    }

    #[test]
    fn a_node_is_a_member_while_its_lease_changes() {
        let mut v = View::default();
        v.observe("a", 1, Some(rec("a", 1, NodeState::Alive)), 0);
        v.observe("b", 1, Some(rec("b", 1, NodeState::Alive)), 0);
        assert_eq!(v.members("a", 5_000, LEASE), vec!["a", "b"]);
        // b keeps renewing, a (this node) does not need to be seen changing.
        v.observe("b", 2, Some(rec("b", 1, NodeState::Alive)), 9_000);
        assert_eq!(v.members("a", 15_000, LEASE), vec!["a", "b"]);
        assert!(v.silent("a", 15_000, LEASE).is_empty());
        // The same version listed again is no change.
        v.observe("b", 2, None, 18_000);
        assert_eq!(v.members("a", 19_000, LEASE), vec!["a"]);
        assert_eq!(v.silent("a", 19_000, LEASE)[0].1, 2);
    }

    #[test]
    fn who_may_replace_an_owner() {
        let mut v = View::default();
        v.observe("b", 1, Some(rec("b", 3, NodeState::Alive)), 0);
        v.finish_listing(&["b".to_string()], 0);
        let gone = |v: &View, o: Option<&QueueOwner>, now| v.owner_is_gone(o, "a", 2, now, LEASE);
        assert!(gone(&v, None, 0), "released");
        assert!(
            gone(&v, Some(&owner("a", 1)), 0),
            "our own earlier incarnation"
        );
        assert!(
            !gone(&v, Some(&owner("b", 3)), 50_000),
            "alive, never expired"
        );
        // b restarted: its old incarnation's queues wait a lease for b to take them back.
        v.observe("b", 2, Some(rec("b", 4, NodeState::Alive)), 1_000);
        assert!(!gone(&v, Some(&owner("b", 3)), 5_000));
        assert!(gone(&v, Some(&owner("b", 3)), 11_000));
        assert!(!gone(&v, Some(&owner("b", 4)), 11_000));
        // Declared dead: its queues are free at once.
        v.observe("b", 3, Some(rec("b", 4, NodeState::Expired)), 12_000);
        assert!(gone(&v, Some(&owner("b", 4)), 12_000));
        // A view that is behind (the owner's incarnation is newer) never replaces it.
        assert!(!gone(&v, Some(&owner("b", 9)), 99_000));
    }

    #[test]
    fn an_unknown_owner_is_gone_only_after_a_lease_of_listings_without_it() {
        let mut v = View::default();
        v.notice_unknown("c", 1_000);
        assert!(!v.owner_is_gone(Some(&owner("c", 1)), "a", 1, 1_000, LEASE));
        v.finish_listing(&[], 5_000);
        assert!(!v.owner_is_gone(Some(&owner("c", 1)), "a", 1, 5_000, LEASE));
        v.finish_listing(&[], 11_000);
        assert!(v.owner_is_gone(Some(&owner("c", 1)), "a", 1, 11_000, LEASE));
        // Once listed it is judged by its lease.
        v.observe("c", 1, Some(rec("c", 1, NodeState::Alive)), 12_000);
        assert!(!v.owner_is_gone(Some(&owner("c", 1)), "a", 1, 12_000, LEASE));
    }
}
