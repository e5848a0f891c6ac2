//! The bucket layout, in one place.
//!
//! ```text
//! {prefix}/topics/{topic}/queues/{queue}/segments/{base_offset:020}.parquet   public (replay jobs read it)
//! {prefix}/topics/{topic}/queues/{queue}/staging/{epoch:020}-{base_offset:020}.parquet   internal, an upload not yet published
//! {prefix}/topics/{topic}/queues/{queue}/manifest/{seq:020}.json            internal, versioned, create-only
//! {prefix}/topics/{topic}/queues/{queue}/dedup/{epoch:020}.json              internal, the dedup ids a hand-over under that epoch passed on
//! {prefix}/topics/{topic}/timers/{queue}/checkpoint/{seq:020}.json            internal, versioned (FencedObject), the queue's timer checkpoint
//! {prefix}/topics/{topic}/timers/{queue}/runs/{epoch:020}-{n:020}.run       internal, immutable sorted runs of pending timers, create-only
//! {prefix}/topics/{topic}/timers/{queue}/txns/{epoch:020}-{n:020}.tbl       internal, immutable transaction table snapshots, create-only
//! {prefix}/topics/{topic}/topic.json                                          internal, versioned
//! {prefix}/groups/{group}/group.json                                          internal, versioned (group settings)
//! {prefix}/groups/{group}/topics/{topic}/queues/{queue}/checkpoint/{seq:020}.json                        CLUSTERING
//! {prefix}/groups/{group}/topics/{topic}/queues/{queue}/consumers/{consumer}/checkpoint/{seq:020}.json   BROADCASTING
//! {prefix}/secrets/receipt-handle-key                                          internal, 32 bytes, create-only
//! {prefix}/cluster/nodes/{node_id}/{seq:020}.json                              internal, node leases, create-only
//! {prefix}/wal/{node_id}/{incarnation:020}/{seq:020}.wal                     internal, OBJECT write-ahead chunks, create-only
//! {prefix}/cluster/topics-changed                                              internal, rewritten at every topic change
//! {prefix}/cluster/groups-changed                                              internal, rewritten at every group settings change
//! ```
//!
//! `segments/` holds exactly the committed segments: an upload goes to
//! `staging/` under the uploader's epoch first, and is copied to its public
//! key only once the manifest lists it (see [`crate::uploader`]). A stale
//! owner's upload therefore stays under its own epoch's staging key, which no
//! other owner writes, and never reaches `segments/`.
//!
//! A queue's delay timers due far ahead live in `timers/{queue}/runs/`
//! ([`crate::timer_run`]); the checkpoint ([`crate::timer_checkpoint`])
//! lists the live ones, so a run it does not list is an orphan to collect.
//! Like everything of a topic, they are under `{prefix}/topics/{topic}/`,
//! which deleting the topic deletes.
//!
//! Group checkpoints are internal, versioned and create-only like manifests.
//! Everything of a group lives under `{prefix}/groups/{group}/`, so deleting
//! the group is deleting that prefix.

use object_store::path::Path;

/// Object paths under one prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: Path,
}

impl Layout {
    pub fn new(prefix: Path) -> Self {
        Self { prefix }
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Where every topic's objects live.
    pub fn topics_root(&self) -> Path {
        self.prefix.child("topics")
    }

    /// Everything of one topic.
    pub fn topic_dir(&self, topic: &str) -> Path {
        self.topics_root().child(topic)
    }

    fn queue_dir(&self, topic: &str, queue: u32) -> Path {
        self.topic_dir(topic)
            .child("queues")
            .child(queue.to_string())
    }

    /// The Parquet object of the segment starting at `base_offset`.
    pub fn segment(&self, topic: &str, queue: u32, base_offset: u64) -> Path {
        self.queue_dir(topic, queue)
            .child("segments")
            .child(format!("{base_offset:020}.parquet"))
    }

    /// The directory of the queue's uploads not yet published (see the module docs).
    pub fn staging_dir(&self, topic: &str, queue: u32) -> Path {
        self.queue_dir(topic, queue).child("staging")
    }

    /// Where the owner of `epoch` uploads the segment starting at
    /// `base_offset` before the manifest lists it: unique to the epoch, so
    /// no other owner ever writes it.
    pub fn staged_segment(&self, topic: &str, queue: u32, epoch: u64, base_offset: u64) -> Path {
        self.staging_dir(topic, queue)
            .child(format!("{epoch:020}-{base_offset:020}.parquet"))
    }

    /// The dedup ids the owner of `epoch` passed on when it handed the queue over.
    pub fn dedup_snapshot(&self, topic: &str, queue: u32, epoch: u64) -> Path {
        self.queue_dir(topic, queue)
            .child("dedup")
            .child(format!("{epoch:020}.json"))
    }

    /// The directory of the queue's manifest versions.
    pub fn manifest_dir(&self, topic: &str, queue: u32) -> Path {
        self.queue_dir(topic, queue).child("manifest")
    }

    fn timers_dir(&self, topic: &str, queue: u32) -> Path {
        self.topic_dir(topic)
            .child("timers")
            .child(queue.to_string())
    }

    /// The directory of the versions of a queue's timer checkpoint.
    pub fn timer_checkpoint_dir(&self, topic: &str, queue: u32) -> Path {
        self.timers_dir(topic, queue).child("checkpoint")
    }

    /// The directory of a queue's timer runs.
    pub fn timer_runs_dir(&self, topic: &str, queue: u32) -> Path {
        self.timers_dir(topic, queue).child("runs")
    }

    /// The directory of a queue's transaction table snapshots.
    pub fn txn_tables_dir(&self, topic: &str, queue: u32) -> Path {
        self.timers_dir(topic, queue).child("txns")
    }

    /// The transaction table snapshot `name` of a queue (see
    /// [`crate::txn_table::table_name`]).
    pub fn txn_table(&self, topic: &str, queue: u32, name: &str) -> Path {
        self.txn_tables_dir(topic, queue).child(name)
    }

    /// The timer run `name` of a queue (see
    /// [`crate::timer_checkpoint::run_name`]).
    pub fn timer_run(&self, topic: &str, queue: u32, name: &str) -> Path {
        self.timer_runs_dir(topic, queue).child(name)
    }

    /// Everything of one consumer group.
    pub fn group_dir(&self, group: &str) -> Path {
        self.groups_root().child(group)
    }

    /// A consumer group's settings (the JSON of its local file, as is).
    pub fn group_meta(&self, group: &str) -> Path {
        self.group_dir(group).child("group.json")
    }

    /// The key receipt handles are signed with, shared by every node.
    pub fn receipt_handle_key(&self) -> Path {
        self.prefix.child("secrets").child("receipt-handle-key")
    }

    /// The directory of the versions of a group's checkpoint of one queue;
    /// `consumer` is the consumer id in BROADCASTING mode (each consumer has
    /// its own progress), `None` in CLUSTERING mode.
    pub fn group_checkpoint_dir(
        &self,
        group: &str,
        topic: &str,
        queue: u32,
        consumer: Option<&str>,
    ) -> Path {
        let queue_dir = self
            .group_dir(group)
            .child("topics")
            .child(topic)
            .child("queues")
            .child(queue.to_string());
        match consumer {
            Some(id) => queue_dir.child("consumers").child(id).child("checkpoint"),
            None => queue_dir.child("checkpoint"),
        }
    }

    /// Rewritten at every topic create, change and delete: nodes re-read the
    /// topics when it changes (one HEAD per heartbeat instead of a listing).
    pub fn topics_stamp(&self) -> Path {
        self.prefix.child("cluster").child("topics-changed")
    }

    /// Rewritten at every change of a group's settings (like [`Self::topics_stamp`]).
    pub fn groups_stamp(&self) -> Path {
        self.prefix.child("cluster").child("groups-changed")
    }

    /// Where every group's objects live.
    pub fn groups_root(&self) -> Path {
        self.prefix.child("groups")
    }

    /// Where every node's lease lives.
    pub fn nodes_root(&self) -> Path {
        self.prefix.child("cluster").child("nodes")
    }

    /// Where every node's OBJECT write-ahead chunks live.
    pub fn wal_root(&self) -> Path {
        self.prefix.child("wal")
    }

    /// The write-ahead chunks of one incarnation of a node.
    pub fn wal_dir(&self, node_id: &str, incarnation: u64) -> Path {
        self.wal_root()
            .child(node_id)
            .child(format!("{incarnation:020}"))
    }

    /// Write-ahead chunk `seq` of a node's incarnation.
    pub fn wal_chunk(&self, node_id: &str, incarnation: u64, seq: u64) -> Path {
        self.wal_dir(node_id, incarnation)
            .child(format!("{seq:020}.wal"))
    }

    /// The directory of the versions of one node's lease.
    pub fn node_lease_dir(&self, node_id: &str) -> Path {
        self.nodes_root().child(node_id)
    }

    /// A topic's metadata.
    pub fn topic_meta(&self, topic: &str) -> Path {
        self.topic_dir(topic).child("topic.json")
    }

    /// A front-end's document about `topic` (e.g. an SQS queue's attributes):
    /// `topics/{topic}/docs/{name}.json` (removed with the topic).
    pub fn topic_doc(&self, topic: &str, name: &str) -> Path {
        self.topic_dir(topic)
            .child("docs")
            .child(format!("{name}.json"))
    }

    /// The record that a dead-letter message of `topic` (a `%DLQ%` topic)
    /// was sent back to its origin: `topics/{topic}/sent-back/{message_id}.json`
    /// (removed with the topic).
    pub fn sent_back(&self, topic: &str, message_id: &str) -> Path {
        self.topic_dir(topic)
            .child("sent-back")
            .child(format!("{message_id}.json"))
    }
}

/// The `(epoch, base_offset)` of a staged segment's file name, as
/// [`Layout::staged_segment`] writes it; `None` for any other name.
pub fn parse_staged(path: &Path) -> Option<(u64, u64)> {
    let stem = path.filename()?.strip_suffix(".parquet")?;
    let (epoch, base) = stem.split_once('-')?;
    let number = |s: &str| {
        (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((number(epoch)?, number(base)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_contract() {
        let l = Layout::new(Path::from("tenant/a"));
        assert_eq!(
            l.segment("orders", 3, 1200).as_ref(),
            "tenant/a/topics/orders/queues/3/segments/00000000000000001200.parquet"
        );
        let staged = l.staged_segment("orders", 3, 7, 1200);
        assert_eq!(
            staged.as_ref(),
            "tenant/a/topics/orders/queues/3/staging/00000000000000000007-00000000000000001200.parquet"
        );
        assert!(staged.prefix_matches(&l.staging_dir("orders", 3)));
        assert_eq!(parse_staged(&staged), Some((7, 1200)));
        assert_eq!(parse_staged(&l.segment("orders", 3, 1200)), None);
        assert_eq!(parse_staged(&Path::from("s/7-1200.parquet")), None);
        assert_eq!(
            l.manifest_dir("orders", 3).as_ref(),
            "tenant/a/topics/orders/queues/3/manifest"
        );
        assert_eq!(
            l.group_checkpoint_dir("g", "orders", 3, None).as_ref(),
            "tenant/a/groups/g/topics/orders/queues/3/checkpoint"
        );
        assert_eq!(
            l.group_checkpoint_dir("g", "orders", 3, Some("10.0.0.1@42"))
                .as_ref(),
            "tenant/a/groups/g/topics/orders/queues/3/consumers/10.0.0.1@42/checkpoint"
        );
        assert_eq!(
            Layout::new(Path::default())
                .group_checkpoint_dir("%RETRY%g", "t", 0, Some("a/b"))
                .as_ref(),
            "groups/%25RETRY%25g/topics/t/queues/0/consumers/a%2Fb/checkpoint"
        );
        assert_eq!(
            l.timer_checkpoint_dir("orders", 3).as_ref(),
            "tenant/a/topics/orders/timers/3/checkpoint"
        );
        assert_eq!(
            l.timer_runs_dir("orders", 3).as_ref(),
            "tenant/a/topics/orders/timers/3/runs"
        );
        let run = l.timer_run("orders", 3, "00000000000000000002-00000000000000000005.run");
        assert_eq!(
            run.as_ref(),
            "tenant/a/topics/orders/timers/3/runs/00000000000000000002-00000000000000000005.run"
        );
        // Deleting the topic (its whole prefix) deletes its timers.
        for p in [run, l.timer_checkpoint_dir("orders", 3)] {
            assert!(p.prefix_matches(&l.topic_dir("orders")), "{p}");
        }
        assert_eq!(l.group_meta("g").as_ref(), "tenant/a/groups/g/group.json");
        assert_eq!(
            l.receipt_handle_key().as_ref(),
            "tenant/a/secrets/receipt-handle-key"
        );
        // System names keep their `%` (encoded by object_store, decoded on the way back).
        assert_eq!(
            Layout::new(Path::default())
                .segment("%DLQ%g", 0, 0)
                .as_ref(),
            "topics/%25DLQ%25g/queues/0/segments/00000000000000000000.parquet"
        );
    }
}
