//! Message query: by id and by key (API.md "Message query").
//!
//! An id names its queue and offset, so a lookup reads one record and
//! compares the whole id: a malformed id is INVALID_ARGUMENT, any miss (queue
//! beyond the topic, offset gone, random bits differ) is MESSAGE_NOT_FOUND.
//! A key query asks every queue's key index (hot) and the key bloom filters
//! of the cold segments overlapping the window, and merges by `store_ms`.
//!
//! Read committed: a message at or past its queue's visible end
//! ([`crate::visible_end`]) is not found yet, by id or by key (an id names an
//! offset the view answers as absent; key hits of the hot tier are cut at
//! the watermark, cold data lies below it).

use shale_hot::{MessageId, Record};

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};
use crate::visible_end::Watermark;

pub const DEFAULT_KEY_RESULTS: u64 = 32;
pub const MAX_KEY_RESULTS: u64 = 1024;

/// A query by key, as the client asked.
#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    /// Required.
    pub key: Option<String>,
    pub begin_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// 1-1024, default 32.
    pub max_messages: Option<u64>,
}

/// A message found by a query, with the queue that holds it.
#[derive(Debug)]
pub struct Found {
    pub queue: u32,
    pub record: Record,
    /// A delay message not yet due (its `offset` is its timer journal's).
    pub scheduled: bool,
}

fn message_not_found(id: &str) -> BrokerError {
    BrokerError::new(
        ErrorCode::MessageNotFound,
        format!("message {id} not found"),
    )
}

impl Broker {
    /// The message `id` of `topic`, from whichever tier holds it. Returns the
    /// topic's canonical name with it.
    pub async fn get_message(&self, topic: &str, id: &str) -> BrokerResult<(String, Found)> {
        let t = self.topics.require(topic)?;
        let message_id: MessageId = id
            .parse()
            .map_err(|e| BrokerError::invalid(format!("message id {id:?}: {e}")).with_source(e))?;
        let queue = message_id.queue();
        if queue >= t.queues() {
            return Err(message_not_found(id));
        }
        self.serve_queue(&t.name, queue).await?;
        match self.lookup_timer(&t, message_id).await? {
            crate::timers::lookup::TimerLookup::Scheduled(record) => {
                let found = Found {
                    queue,
                    record,
                    scheduled: true,
                };
                return Ok((t.name.clone(), found));
            }
            crate::timers::lookup::TimerLookup::Delivered(record) => {
                crate::metrics::read(&t.name, 1, record.body.len() as u64);
                let found = Found {
                    queue,
                    record,
                    scheduled: false,
                };
                return Ok((t.name.clone(), found));
            }
            crate::timers::lookup::TimerLookup::Unknown => {}
        }
        let log = crate::queue_view::TieredQueue::open(self, &t.name, queue).await?;
        let record = log
            .read_one(message_id.offset())
            .await?
            .filter(|r| r.message_id == message_id)
            .ok_or_else(|| message_not_found(id))?;
        crate::metrics::read(&t.name, 1, record.body.len() as u64);
        let found = Found {
            queue,
            record,
            scheduled: false,
        };
        Ok((t.name.clone(), found))
    }

    /// Messages carrying the key stored in `[begin_ms, end_ms]`, over all
    /// queues and both tiers, sorted by `store_ms` (then queue, offset): the
    /// earliest `max_messages`. Returns the topic's canonical name with them.
    pub async fn find_by_key(
        &self,
        topic: &str,
        q: KeyQuery,
    ) -> BrokerResult<(String, Vec<Found>)> {
        let t = self.topics.require(topic)?;
        let key = q
            .key
            .ok_or_else(|| BrokerError::invalid("key is required"))?;
        crate::validate::keys(std::slice::from_ref(&key))?;
        let begin = q.begin_ms.unwrap_or(0);
        let end = q.end_ms.unwrap_or(i64::MAX);
        if begin > end {
            return Err(BrokerError::invalid(format!(
                "begin_ms {begin} is after end_ms {end}"
            )));
        }
        let max = q.max_messages.unwrap_or(DEFAULT_KEY_RESULTS);
        if max == 0 || max > MAX_KEY_RESULTS {
            return Err(BrokerError::invalid(format!(
                "max_messages must be 1-{MAX_KEY_RESULTS}, got {max}"
            )));
        }
        let key_for_cold = key.clone();
        let watermark = Watermark::of(t.durability());
        let logs: Vec<_> = (0..t.queues())
            .filter_map(|q| self.hot.existing_queue(&t.name, q).map(|l| (q, l)))
            .collect();
        let mut found = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for (queue, log) in logs {
                let hits = log.find_by_key(&key, begin, end, max as usize)?;
                // Oldest first: what is cut is the newest, not yet visible.
                let visible = watermark.end(&log);
                for record in hits.into_iter().filter(|r| r.offset < visible) {
                    all.push(Found {
                        queue,
                        record,
                        scheduled: false,
                    });
                }
            }
            Ok::<_, shale_hot::HotError>(all)
        })
        .await??;
        // Cold data: messages of each queue below what its local copy still holds.
        for queue in 0..t.queues() {
            let local_min = self
                .hot
                .existing_queue(&t.name, queue)
                .map_or(u64::MAX, |l| l.min_offset());
            let cold = self
                .tier
                .reader()
                .find_by_key(&t.name, queue, &key_for_cold, begin, end, max as usize)
                .await?;
            found.extend(
                cold.into_iter()
                    .filter(|r| r.offset < local_min)
                    .map(|record| Found {
                        queue,
                        record,
                        scheduled: false,
                    }),
            );
        }
        found.sort_by_key(|f| (f.record.store_ms, f.queue, f.record.offset));
        found.truncate(max as usize);
        let body_bytes: u64 = found.iter().map(|f| f.record.body.len() as u64).sum();
        crate::metrics::read(&t.name, found.len() as u64, body_bytes);
        Ok((t.name.clone(), found))
    }
}
