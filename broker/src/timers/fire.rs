//! The `timers` job fires due timers into their queues; the `timer-upkeep`
//! job saves fire states, loads, spills, merges and collects runs
//! ([`super::store`]) and deletes journal segments no pending timer needs.
//!
//! A fire: take the due keys (in delivery order, marked in flight), read
//! their journal records, append them to the queue (each keeps its id and
//! gains [`TIMER_PROPERTY`]), a batch of at most [`FIRE_BATCH`] per append and
//! up to [`BATCHES_PER_SYNC`] appends, then wait once for the queue's
//! durability and mark them fired. Any failure puts what was not confirmed
//! back to pending: what was appended but not confirmed is found again by
//! the restart scan, and what was not appended fires on the next tick.

use std::sync::Arc;
use std::time::Duration;

use shale_hot::{AppendRequest, MessageId};

use super::index::{Key, Source};
use super::{TIMER_PROPERTY, TimerQueue};
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, error_chain};
use crate::topics::{Durability, MessageType};

/// Most timers fired in one append.
const FIRE_BATCH: usize = 1024;
/// Appends of one queue that share one durability wait (fsync) in a fire.
const BATCHES_PER_SYNC: usize = 8;
/// Queues fired at once.
const FIRE_CONCURRENCY: usize = 16;
/// Period of the job.
pub const TIMER_TICK: Duration = Duration::from_millis(5);
/// Most spills of one queue in one `timer-upkeep` tick (each at most
/// [`super::store::SPILL_MAX_BYTES`] of journal).
const SPILLS_PER_UPKEEP: usize = 4;
/// Period of the `timer-upkeep` job (fire states saved, runs kept, journals trimmed).
pub const HOUSEKEEP_PERIOD: Duration = Duration::from_secs(1);

impl Broker {
    /// Job `timers`: opens the journals found on disk, fires what is due on
    /// every queue this node owns and offers the due transaction checks
    /// ([`crate::txn::checks`]).
    pub async fn fire_timers(self: &Arc<Self>) {
        use futures::StreamExt;
        self.open_timers().await;
        let now = self.clock.now_ms();
        // Every queue at once (up to FIRE_CONCURRENCY): a burst due in one
        // millisecond drains in about one queue's share, not one after another.
        futures::stream::iter(self.timers.all())
            .for_each_concurrent(FIRE_CONCURRENCY, |q| async move {
                let horizon = now.saturating_add(super::store::LOAD_HORIZON_MS / 2);
                if q.index.lock().wants_load(horizon)
                    && let Ok(mut set) = q.runs.try_lock()
                    && let Err(e) = q.load_ahead(&self.tier, &mut set, now).await
                {
                    tracing::warn!(topic = %q.topic, queue = q.queue, error = %error_chain(&e), "loading timers from the object store failed; will retry");
                }
                self.check_transactions(&q, now).await;
                let due = q.index.lock().next_due().is_some_and(|at| at <= now);
                if due && let Err(e) = self.fire_due(&q, now).await {
                    tracing::warn!(topic = %q.topic, queue = q.queue, error = %error_chain(&e), "firing timers failed; will retry");
                }
            })
            .await;
    }

    /// Job `timer-upkeep` (every [`HOUSEKEEP_PERIOD`], apart from the fires so
    /// that spills and merges never hold them up): saves fire states, loads,
    /// spills, merges and collects runs, trims journals, refreshes the gauges.
    pub async fn timer_upkeep(self: &Arc<Self>) {
        let now = self.clock.now_ms();
        for q in self.timers.all() {
            q.txns.lock().expire(now);
            self.housekeep(&q, now).await;
        }
        crate::metrics::timers(self, now);
    }

    /// Opens the timers of every journal found on disk not opened yet and
    /// of every DELAY queue this node holds (the node calls it before
    /// serving; the job again, for any that failed). A queue another node
    /// serves is left to it.
    pub async fn open_timers(&self) {
        let mut wanted = self.timers.journals_on_disk();
        for (topic, queue) in self.cluster.held() {
            if self.topics.get(&topic).is_some_and(|t| {
                matches!(
                    t.config().message_type,
                    MessageType::Delay | MessageType::Transaction
                )
            }) {
                wanted.push((topic, queue));
            }
        }
        for (topic, queue) in wanted {
            if self.timers.get(&topic, queue).is_some() || self.topics.get(&topic).is_none() {
                continue;
            }
            match self.timer_queue(&topic, queue).await {
                Ok(_) => {}
                Err(e) if e.elsewhere().is_some() => {}
                Err(e) => {
                    tracing::warn!(topic, queue, error = %error_chain(&e), "cannot open timers; will retry")
                }
            }
        }
    }

    /// Fires every timer of `q` due at `now`, a batch at a time.
    async fn fire_due(self: &Arc<Self>, q: &Arc<TimerQueue>, now: i64) -> BrokerResult<()> {
        let Ok(_one) = q.firing.try_lock() else {
            return Ok(());
        };
        let Some(topic) = self.topics.get(&q.topic) else {
            return Ok(());
        };
        if topic.config().message_type != MessageType::Delay {
            return Ok(());
        }
        let durability = topic.config().durability;
        loop {
            let (target, permit) = match self.queue_for_write(&q.topic, q.queue).await {
                Ok(held) => held,
                // Not ours (any more): the owner fires.
                Err(e) if e.elsewhere().is_some() => return Ok(()),
                Err(e) => return Err(e),
            };
            // Up to BATCHES_PER_SYNC appends share one durability wait.
            let mut keys: Vec<Key> = Vec::new();
            let mut stored: Vec<i64> = Vec::new();
            let mut end = 0;
            let mut failure = None;
            let mut more = true;
            for _ in 0..BATCHES_PER_SYNC {
                let due = q.index.lock().take_due(now, FIRE_BATCH);
                more = due.len() == FIRE_BATCH;
                if due.is_empty() {
                    break;
                }
                let batch: Vec<Key> = due.iter().map(|(k, _)| *k).collect();
                match self.append_due(q, &target, due).await {
                    Ok((store_ms, after)) => {
                        keys.extend(batch);
                        stored.extend(store_ms);
                        end = after;
                    }
                    Err(e) => {
                        q.index.lock().not_fired(&batch);
                        failure = Some(e);
                        break;
                    }
                }
                if !more {
                    break;
                }
            }
            if !keys.is_empty() {
                match self.fired_durable(q, &target, end, durability).await {
                    Ok(()) => {
                        let now = self.clock.now_ms();
                        for ((at, _), store_ms) in keys.iter().zip(&stored) {
                            crate::metrics::timer_fired(&q.topic, (*store_ms).max(now) - at);
                        }
                        q.index.lock().fired(&keys, end);
                    }
                    Err(e) => {
                        q.index.lock().not_fired(&keys);
                        failure.get_or_insert(e);
                    }
                }
            }
            drop(permit);
            if let Some(e) = failure {
                return Err(e);
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Appends the timers `due` to `target` in one append (not yet durable);
    /// their store times, and the offset after the last.
    async fn append_due(
        self: &Arc<Self>,
        q: &Arc<TimerQueue>,
        target: &Arc<shale_hot::QueueLog>,
        due: Vec<(Key, Source)>,
    ) -> BrokerResult<(Vec<i64>, u64)> {
        let journal = q.journal.clone();
        let target = target.clone();
        let appended = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(due.len());
            let mut ids: Vec<MessageId> = Vec::with_capacity(due.len());
            for ((_, seq), source) in &due {
                let r = match source {
                    Source::Journal => journal.read_one(*seq)?,
                    Source::Loaded(bytes) => Some(super::entries::decode_loaded(bytes)?),
                };
                let r = r.ok_or_else(|| {
                    BrokerError::internal(
                        "firing a timer",
                        format!(
                            "journal offset {seq} of {}/{} is missing",
                            journal.topic(),
                            journal.queue()
                        ),
                    )
                })?;
                let mut req: AppendRequest = r.to_request();
                req.properties
                    .push((TIMER_PROPERTY.to_string(), seq.to_string()));
                ids.push(r.message_id);
                batch.push(req);
            }
            let appended = target.append_minted(&batch, &|i, _| ids[i])?;
            Ok::<_, BrokerError>(appended)
        })
        .await??;
        let end = appended.last().map_or(0, |a| a.offset + 1);
        Ok((appended.iter().map(|a| a.store_ms).collect(), end))
    }

    /// Waits for `target`'s durability through `end` (its end after the fires).
    async fn fired_durable(
        self: &Arc<Self>,
        q: &TimerQueue,
        target: &Arc<shale_hot::QueueLog>,
        end: u64,
        durability: Durability,
    ) -> BrokerResult<()> {
        let created_ms = match durability {
            Durability::Object => self.topics.require(&q.topic)?.config().created_ms,
            _ => 0,
        };
        self.make_durable(target, q.topic.clone(), created_ms, end, durability)
            .await
    }

    /// Loads, spills, merges and collects `q`'s runs, checkpoints, saves its
    /// local fire state and deletes journal segments nothing pending needs.
    async fn housekeep(&self, q: &Arc<TimerQueue>, now: i64) {
        if let Err(e) = self.tier_timers(q, now).await {
            tracing::warn!(topic = %q.topic, queue = q.queue, error = %error_chain(&e), "timer runs could not be maintained; will retry");
            if matches!(e, BrokerError::NotOwner { .. }) {
                // Fenced: a newer owner has the timers.
                self.timers.forget(&q.topic, q.queue);
                return;
            }
        }
        let q2 = q.clone();
        let done = tokio::task::spawn_blocking(move || {
            // ASYNC journals are written back here (SYNC ones at produce).
            q2.journal.flush()?;
            q2.save_state()?;
            // Only after the state is saved: a restart must not need what goes.
            let keep_from = {
                let index = q2.index.lock();
                let spilled = index.spilled_end();
                index.min_journal_seq().map_or(spilled, |s| s.min(spilled))
            };
            q2.journal.evict_through(keep_from)?;
            Ok::<_, BrokerError>(())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(topic = %q.topic, queue = q.queue, error = %error_chain(&e), "timer housekeeping failed; will retry")
            }
            Err(e) => tracing::warn!(error = %e, "timer housekeeping task failed"),
        }
    }

    /// The object-store side of `q`'s housekeeping (see [`super::store`]).
    async fn tier_timers(&self, q: &Arc<TimerQueue>, now: i64) -> BrokerResult<()> {
        let Ok(mut set) = q.runs.try_lock() else {
            return Ok(());
        };
        q.load_ahead(&self.tier, &mut set, now).await?;
        // A backlog goes up a bounded run at a time, a few per tick, so the
        // other queues' upkeep is not held up for long.
        for _ in 0..SPILLS_PER_UPKEEP {
            if !q.spill_due(&mut set) || q.spill(&self.tier, &mut set, now).await? {
                break;
            }
        }
        q.merge(&self.tier, &mut set).await?;
        q.collect(&self.tier, &mut set).await?;
        q.checkpoint(&mut set, false).await
    }
}
