//! A replay: a queue range read in bounded chunks, for front-ends that
//! stream (the HTTP node's NDJSON answer).
//!
//! Invariants: memory stays constant whatever the range (the queue is read
//! at most [`CHUNK_MESSAGES`] records and [`CHUNK_BYTES`] at a time); the
//! replay ends at the `max_offset` (the visible end, see
//! [`crate::visible_end`]) seen when it was opened, or after
//! `max_messages` matching messages. [`Replay::next_chunk`] is blocking (it
//! may decode cold row groups): call it on a blocking thread.

use shale_hot::Record;

use super::scan::{self, ScanLimits};
use super::tag_filter::TagFilter;
use crate::error::BrokerResult;
use crate::queue_view::TieredQueue;

/// Most messages one chunk holds.
pub const CHUNK_MESSAGES: usize = 1024;
/// Most encoded bytes one chunk reads.
pub const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Where a replay is, and what is left of it.
#[derive(Debug)]
pub struct Replay {
    topic: String,
    queue: u32,
    log: TieredQueue,
    next: u64,
    end: u64,
    remaining: u64,
    filter: TagFilter,
}

impl Replay {
    pub(crate) fn new(
        topic: String,
        queue: u32,
        log: TieredQueue,
        offset: u64,
        end: u64,
        max_messages: u64,
        filter: TagFilter,
    ) -> Replay {
        Replay {
            topic,
            queue,
            log,
            next: offset,
            end,
            remaining: max_messages,
            filter,
        }
    }

    /// The topic's canonical name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The next non-empty chunk of matching records, or `None` at the end.
    /// Blocking.
    pub fn next_chunk(&mut self) -> BrokerResult<Option<Vec<Record>>> {
        while self.next < self.end && self.remaining > 0 {
            let limits = ScanLimits {
                max_messages: self.remaining.min(CHUNK_MESSAGES as u64) as usize,
                max_bytes: CHUNK_BYTES,
                end_offset: self.end,
            };
            let scanned = scan::scan(&self.log, self.next, &self.filter, limits)?;
            if scanned.next_offset == self.next {
                // Nothing examined: the queue ends before `end` (e.g. it was deleted).
                return Ok(None);
            }
            self.next = scanned.next_offset;
            if scanned.records.is_empty() {
                continue;
            }
            self.remaining -= scanned.records.len() as u64;
            let body_bytes: u64 = scanned.records.iter().map(|r| r.body.len() as u64).sum();
            crate::metrics::read(&self.topic, scanned.records.len() as u64, body_bytes);
            return Ok(Some(scanned.records));
        }
        Ok(None)
    }
}
