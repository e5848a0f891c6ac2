//! Taking a queue over: what earlier owners committed to the object store
//! but never uploaded as segments comes back, at the same offsets.
//!
//! A takeover lists the replaced owner in the manifest's `recovering_from`
//! (with any owner an interrupted earlier recovery left there; see
//! [`shale_tiering::QueueManifest::recovering_from`]). Before the queue is
//! served, the new owner:
//! 1. reads the write-ahead chunks of each listed owner (one LIST per owner,
//!    each chunk GET once per node: both are cached, so taking the many
//!    queues of one dead node reads its chunks once);
//! 2. appends this queue's records beyond its local end, with their offsets,
//!    store times and ids ([`shale_hot::QueueLog::append_recovered`]);
//! 3. seals and uploads whatever the object store lacks when anything was
//!    recovered, or when the topic is OBJECT (its local messages beyond the
//!    last segment may never have been committed);
//! 4. records the recovered messages' dedup ids (a producer retrying a
//!    request whose answer the dead owner never sent is deduplicated), clears
//!    `recovering_from`, and only then opens the queue.
//!
//! Why the cache is safe: an owner is listed only once it is gone (its
//! lease expired, or it is an earlier incarnation of this node), and a gone
//! owner acknowledges nothing more — it checks its lease after every PUT — so
//! no chunk that matters appears after the first listing. A chunk a fenced
//! owner puts late is never read: once `recovering_from` is cleared, nobody
//! reads that owner's chunks for this queue again.
//!
//! Invariant: a queue opens only when every message any earlier owner
//! acknowledged at OBJECT level is in its segments, and its replicated
//! watermark is then the end of those segments.

use std::sync::Arc;
use std::time::Duration;

use shale_hot::Record;
use shale_tiering::wal::{ChunkId, WalSection, list_chunks, read_chunk};
use shale_tiering::{Acquired, QueueOwner};

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult};
use crate::topics::Durability;

/// Chunk bytes kept decoded for takeovers (per node).
const CHUNK_CACHE_BYTES: u64 = 256 << 20;
/// How long an owner's chunk list and chunks stay cached.
const CACHE_TTL: Duration = Duration::from_secs(120);
/// Chunks read at once.
const READ_CONCURRENCY: usize = 16;

/// Cached chunk lists and decoded chunks of owners being recovered from.
#[derive(Debug)]
pub struct Sources {
    lists: moka::future::Cache<QueueOwner, Arc<Vec<ChunkId>>>,
    chunks: moka::future::Cache<ChunkId, Arc<Vec<WalSection>>>,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            lists: moka::future::Cache::builder()
                .max_capacity(1024)
                .time_to_live(CACHE_TTL)
                .build(),
            chunks: moka::future::Cache::builder()
                .weigher(|_, v: &Arc<Vec<WalSection>>| {
                    let bytes: usize = v
                        .iter()
                        .flat_map(|s| &s.records)
                        .map(Record::encoded_len)
                        .sum();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .max_capacity(CHUNK_CACHE_BYTES)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }
}

impl Broker {
    /// Steps 1–4 of the module docs for a queue just taken (its local log
    /// settled, its gate still closed). Returns how many messages came back.
    pub(crate) async fn recover_queue(
        &self,
        topic: &str,
        queue: u32,
        acquired: &Acquired,
    ) -> BrokerResult<u64> {
        let t = self.topics.require(topic)?;
        let config = t.config();
        let log = self.hot.queue(topic, queue)?;
        let mut recovered = 0;
        if !acquired.recovering_from.is_empty() {
            let records = self
                .records_of(topic, config.created_ms, queue, &acquired.recovering_from)
                .await?;
            let run = contiguous_from(records, log.max_offset());
            if !run.is_empty() {
                let l = log.clone();
                recovered = tokio::task::spawn_blocking(move || l.append_recovered(&run)).await??;
            }
        }
        let cold_end = self.tier.held_end(topic, queue).await.unwrap_or(0);
        if recovered > 0 || (config.durability == Durability::Object && log.max_offset() > cold_end)
        {
            let sealing = log.clone();
            tokio::task::spawn_blocking(move || sealing.seal_active()).await??;
            self.tier.upload(&log).await?;
        }
        if recovered > 0 {
            // Reads only the (indexed) records carrying an id, from the mapped segments.
            crate::broker::rebuild_queue_dedup(&log, &self.dedup, self.clock.now_ms());
        }
        if matches!(
            config.message_type,
            crate::topics::MessageType::Delay | crate::topics::MessageType::Transaction
        ) {
            // Before `recovering_from` is cleared (the timers replay the same
            // owners' chunks) and after the queue's own records are back (the
            // timers look for their fires there): timers fire only once, and
            // a committed half message is appended only once.
            self.timers.forget(topic, queue);
            self.open_held_timers(topic, queue, &acquired.recovering_from)
                .await?;
        }
        self.tier.finish_recovery(topic, queue).await?;
        let cold_end = self.tier.held_end(topic, queue).await.unwrap_or(0);
        log.mark_replicated(cold_end);
        self.wal.reset_queue(topic, queue, log.replicated_offset());
        if recovered > 0 {
            crate::metrics::wal_recovered(topic, recovered);
            tracing::info!(topic, queue, messages = recovered, from = ?acquired.recovering_from, "recovered OBJECT-acknowledged messages from the previous owner's write-ahead chunks");
        }
        Ok(recovered)
    }

    /// Every record of `topic/queue` (this generation) in the chunks of `owners`, by offset.
    pub(crate) async fn records_of(
        &self,
        topic: &str,
        created_ms: i64,
        queue: u32,
        owners: &[QueueOwner],
    ) -> BrokerResult<Vec<Record>> {
        let mut records: Vec<Record> = Vec::new();
        for owner in owners {
            for sections in self.chunks_of(owner).await? {
                for s in sections.iter() {
                    if s.topic == topic && s.topic_created_ms == created_ms && s.queue == queue {
                        records.extend(s.records.iter().cloned());
                    }
                }
            }
        }
        records.sort_by_key(|r| r.offset);
        records.dedup_by_key(|r| r.offset);
        Ok(records)
    }

    /// The decoded chunks of `owner` (cached; see the module docs).
    async fn chunks_of(&self, owner: &QueueOwner) -> BrokerResult<Vec<Arc<Vec<WalSection>>>> {
        let (store, layout) = (self.tier.store().clone(), self.tier.layout().clone());
        let ids = self
            .wal_sources
            .lists
            .try_get_with(owner.clone(), async {
                list_chunks(store.as_ref(), &layout, &owner.node, owner.incarnation)
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(|e| chunks_unreadable(&e))?;
        use futures::StreamExt;
        let reads = futures::stream::iter(ids.iter().cloned())
            .map(|id| {
                let (store, layout) = (store.clone(), layout.clone());
                async move {
                    self.wal_sources
                        .chunks
                        .try_get_with(id.clone(), async move {
                            read_chunk(store.as_ref(), &layout, &id)
                                .await
                                .map(|c| Arc::new(c.unwrap_or_default()))
                        })
                        .await
                        .map_err(|e| chunks_unreadable(&e))
                }
            })
            .buffered(READ_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        reads.into_iter().collect()
    }
}

fn chunks_unreadable(e: &shale_tiering::TieringError) -> BrokerError {
    BrokerError::unavailable(format!(
        "the previous owner's write-ahead chunks cannot be read yet ({}); the queue opens once they are",
        crate::error::error_chain(e)
    ))
}

/// The records continuing a log that ends at `end`, without a gap. A gap
/// would mean a chunk is missing: what follows it cannot be placed, so it is
/// left out (and said loudly).
fn contiguous_from(records: Vec<Record>, end: u64) -> Vec<Record> {
    let mut next = end;
    let mut run = Vec::new();
    for r in records {
        if r.offset < next {
            continue;
        }
        if r.offset > next {
            tracing::error!(
                expected = next,
                found = r.offset,
                "a gap in the write-ahead chunks being recovered; the records after it are not replayed"
            );
            break;
        }
        next += 1;
        run.push(r);
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u64) -> Record {
        Record {
            offset,
            store_ms: offset as i64,
            born_ms: 0,
            deliver_at_ms: None,
            message_id: shale_hot::MessageId::new(offset as i64, 0, offset, 0),
            tag: None,
            keys: vec![],
            properties: vec![],
            message_group: None,
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn only_the_records_continuing_the_log_are_replayed() {
        let offsets = |v: Vec<Record>| v.iter().map(|r| r.offset).collect::<Vec<_>>();
        let all: Vec<Record> = [3, 4, 5, 6, 8, 9].into_iter().map(rec).collect();
        assert_eq!(offsets(contiguous_from(all.clone(), 4)), vec![4, 5, 6]);
        assert_eq!(offsets(contiguous_from(all.clone(), 0)), Vec::<u64>::new());
        assert_eq!(offsets(contiguous_from(all, 10)), Vec::<u64>::new());
    }
}
