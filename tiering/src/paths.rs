//! The bucket layout, in one place.
//!
//! ```text
//! {prefix}/topics/{topic}/queues/{queue}/segments/{base_offset:020}.parquet   public (replay jobs read it)
//! {prefix}/topics/{topic}/queues/{queue}/manifest/{seq:020}.json            internal, versioned, create-only
//! {prefix}/topics/{topic}/topic.json                                          internal, versioned
//! ```

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

    /// The directory of the queue's manifest versions.
    pub fn manifest_dir(&self, topic: &str, queue: u32) -> Path {
        self.queue_dir(topic, queue).child("manifest")
    }

    /// A topic's metadata.
    pub fn topic_meta(&self, topic: &str) -> Path {
        self.topic_dir(topic).child("topic.json")
    }
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
        assert_eq!(
            l.manifest_dir("orders", 3).as_ref(),
            "tenant/a/topics/orders/queues/3/manifest"
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
