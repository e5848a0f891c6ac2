//! Check-back: pending transactions whose check is due are offered to their
//! producer group, and rolled back after the check limit.
//!
//! The `timers` job calls [`Broker::check_transactions`] for each open
//! TRANSACTION queue. A due transaction gets a check note (its count and
//! next check time, so a restart continues the count) and an offer on this
//! node's [`CheckBoard`]; a poller takes an offer (so each is given to one
//! poller), and the next check offers it again `check_after_ms` later
//! until a decision comes. Offers live in memory only: after a restart the
//! next check offers again. An offer whose transaction was decided, or
//! checked again since, is dropped instead of given out.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use shale_hot::Record;

use super::ops::RollbackReason;
use super::records::{TxnId, check_note};
use super::table::{GroupPending, TxnDecision, TxnEvent};
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, error_chain};
use crate::timers::TimerQueue;

/// Transactions checked per queue per tick.
const CHECK_BATCH: usize = 256;
/// Offers kept per producer group on a node (the oldest go first).
const MAX_OFFERS: usize = 65_536;

/// A check offered to a producer group.
#[derive(Debug, Clone)]
pub struct CheckOffer {
    pub transaction_id: String,
    pub topic: String,
    pub queue: u32,
    pub seq0: u64,
    /// The transaction's first half message.
    pub message: Record,
    pub check_count: u32,
}

/// Checks waiting for a poller, by producer group.
#[derive(Debug, Default)]
pub struct CheckBoard {
    offers: parking_lot::Mutex<HashMap<String, VecDeque<CheckOffer>>>,
    posted: tokio::sync::Notify,
}

impl CheckBoard {
    fn post(&self, group: &str, offer: CheckOffer) {
        {
            let mut offers = self.offers.lock();
            let q = offers.entry(group.to_string()).or_default();
            if q.len() >= MAX_OFFERS {
                q.pop_front();
            }
            q.push_back(offer);
        }
        self.posted.notify_waiters();
    }

    fn take(
        &self,
        group: &str,
        max: usize,
        wanted: impl Fn(&CheckOffer) -> bool,
    ) -> Vec<CheckOffer> {
        let mut offers = self.offers.lock();
        let Some(q) = offers.get_mut(group) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while out.len() < max {
            let Some(o) = q.pop_front() else { break };
            if wanted(&o) {
                out.push(o);
            }
        }
        if q.is_empty() {
            offers.remove(group);
        }
        out
    }
}

/// A producer group as this node sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerGroupView {
    /// Pending transactions on this node's queues, and the oldest one's birth.
    pub pending: GroupPending,
    /// Checks waiting for a poller here.
    pub checks_waiting: u64,
}

impl Broker {
    /// Offers the due checks of `q` and rolls back the transactions past the
    /// check limit (job `timers`).
    pub(crate) async fn check_transactions(self: &Arc<Self>, q: &Arc<TimerQueue>, now: i64) {
        if q.txns.lock().next_check().is_none_or(|at| at > now) {
            return;
        }
        let Ok(_one) = q.firing.try_lock() else {
            return;
        };
        let Some(topic) = self.topics.get(&q.topic) else {
            return;
        };
        let due = q.txns.lock().due_checks(now, CHECK_BATCH);
        for seq0 in due {
            if let Err(e) = self.check_one(&topic, q, seq0, now).await {
                tracing::warn!(topic = %q.topic, queue = q.queue, seq0, error = %error_chain(&e), "a transaction check failed; will retry");
                return;
            }
        }
    }

    async fn check_one(
        self: &Arc<Self>,
        topic: &Arc<crate::topics::Topic>,
        q: &Arc<TimerQueue>,
        seq0: u64,
        now: i64,
    ) -> BrokerResult<()> {
        let Some(row) = q.txns.lock().get(seq0).cloned() else {
            return Ok(());
        };
        if row.decision != TxnDecision::Pending
            || row.next_check_ms > now
            || q.committing.lock().contains_key(&seq0)
        {
            return Ok(());
        }
        if row.checks >= self.transaction_max_checks() {
            tracing::info!(topic = %q.topic, queue = q.queue, seq0, checks = row.checks, "rolling back a transaction nobody decided");
            return self
                .rollback(topic, q, seq0, &row, RollbackReason::CheckLimit)
                .await;
        }
        let message = self.half_record(q, seq0).await?.ok_or_else(|| {
            BrokerError::internal(
                "checking a transaction",
                format!("half message {seq0} of {}/{} is missing", q.topic, q.queue),
            )
        })?;
        let checks = row.checks + 1;
        let next = now.saturating_add(i64::from(row.check_after_ms));
        let q2 = q.clone();
        tokio::task::spawn_blocking(move || {
            let mut index = q2.index.lock();
            let a = q2.journal.append(&[check_note(seq0, checks, next)])?;
            index.skip_journal_to(a[0].offset + 1);
            q2.txns.lock().apply(TxnEvent::Checked {
                seq0,
                checks,
                next_check_ms: next,
            });
            Ok::<_, BrokerError>(())
        })
        .await??;
        let id = TxnId {
            first: message.message_id,
            topic: q.topic.clone(),
        };
        self.checks.post(
            &row.producer_group,
            CheckOffer {
                transaction_id: id.to_string(),
                topic: q.topic.clone(),
                queue: q.queue,
                seq0,
                message,
                check_count: checks,
            },
        );
        crate::metrics::txn_check_offered(&q.topic);
        Ok(())
    }

    /// Takes up to `max` checks of producer group `group` waiting on this
    /// node, waiting up to `wait` for one (returns early when draining).
    pub async fn transaction_checks(
        &self,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Vec<CheckOffer> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut drain = self.drain_watch();
        loop {
            let posted = self.checks.posted.notified();
            tokio::pin!(posted);
            posted.as_mut().enable();
            let got = self.checks.take(group, max, |o| self.still_wanted(o));
            if !got.is_empty() || tokio::time::Instant::now() >= deadline || *drain.borrow() {
                return got;
            }
            tokio::select! {
                _ = &mut posted => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = drain.changed() => {}
            }
        }
    }

    /// Whether an offer's transaction is still pending at the same check.
    fn still_wanted(&self, o: &CheckOffer) -> bool {
        self.timers.get(&o.topic, o.queue).is_some_and(|q| {
            q.txns
                .lock()
                .get(o.seq0)
                .is_some_and(|t| t.decision == TxnDecision::Pending && t.checks == o.check_count)
        })
    }

    /// Producer group `group` on this node: pending transactions of the
    /// queues it owns and checks waiting here.
    pub fn producer_group(&self, group: &str) -> ProducerGroupView {
        let mut view = ProducerGroupView::default();
        for q in self.timers.all() {
            let p = q.txns.lock().group_pending(group);
            view.pending.pending += p.pending;
            view.pending.oldest_born_ms = match (view.pending.oldest_born_ms, p.oldest_born_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        view.checks_waiting = self
            .checks
            .offers
            .lock()
            .get(group)
            .map_or(0, |q| q.len() as u64);
        view
    }

    /// Pending transactions of `topic` on this node (the queues it holds
    /// are opened first, so a restart does not show 0).
    pub async fn pending_transactions(&self, topic: &str) -> BrokerResult<u64> {
        let t = self.topics.require(topic)?;
        let mut n = 0;
        for q in 0..t.queues() {
            n += self.queue_pending_transactions(&t.name, q).await?;
        }
        Ok(n)
    }
}
