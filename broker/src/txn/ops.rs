//! Deciding a transaction: commit or rollback, by the producer (API) or by
//! the check limit ([`super::checks`]).
//!
//! Every decision on a queue runs under the queue's fire lock (with the
//! check tick and the timer hand-over), so the table's row is read and
//! changed by one decision at a time: a repeated decision finds the first
//! one and answers 200, the opposite one 409, and a commit whose client
//! timed out and retried appends nothing the second time.

use std::sync::Arc;

use shale_hot::{MessageId, Record};

use super::records::{TxnId, committed, decision_note, half_key};
use super::table::{Txn, TxnDecision, TxnEvent};
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};
use crate::timers::TimerQueue;
use crate::timers::index::TimerState;
use crate::topics::{MessageType, Topic};

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub topic: String,
    pub queue: u32,
    pub decision: TxnDecision,
    /// Whether this call decided it (`false`: it was decided before, the same way).
    pub now: bool,
}

/// Why a transaction was rolled back (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackReason {
    Producer,
    CheckLimit,
}

fn not_found(id: &str) -> BrokerError {
    BrokerError::new(
        ErrorCode::TransactionNotFound,
        format!(
            "transaction {id} not found (never stored, or decided more than {} minutes ago)",
            super::table::DECISION_RETENTION_MS / 60_000
        ),
    )
}

impl Broker {
    /// Commits or rolls back the transaction `id` (API: 200 done or
    /// repeated, 404 unknown, 409 decided the other way).
    pub async fn decide_transaction(
        self: &Arc<Self>,
        id: &str,
        decision: TxnDecision,
    ) -> BrokerResult<Decided> {
        let txn = TxnId::parse(id).ok_or_else(|| not_found(id))?;
        let topic = match self.topics.get(&txn.topic) {
            Some(t)
                if t.config().message_type == MessageType::Transaction
                    && txn.queue() < t.queues() =>
            {
                t
            }
            _ => return Err(not_found(id)),
        };
        let q = self.timer_queue(&topic.name, txn.queue()).await?;
        let one = q.firing.lock().await;
        let row = q.txns.lock().get(txn.seq0()).cloned();
        let row = match row {
            Some(r) if r.rand == txn.first.random() && r.born_ms == txn.first.store_ms() => r,
            _ => return Err(not_found(id)),
        };
        let done = |now| Decided {
            topic: topic.name.clone(),
            queue: q.queue,
            decision,
            now,
        };
        let committing = q.committing.lock().get(&txn.seq0()).copied();
        if let Some(end) = committing {
            // Being committed right now (its messages are going to disk).
            if decision != TxnDecision::Committed {
                return Err(BrokerError::new(
                    ErrorCode::TransactionAlreadyResolved,
                    format!("transaction {id} is being committed"),
                ));
            }
            drop(one);
            let target = self.queue_for_write(&q.topic, q.queue).await?.0;
            self.queue_durable(&topic, &target, end).await?;
            return Ok(done(false));
        }
        if row.decision == decision {
            return Ok(done(false));
        }
        if row.decision != TxnDecision::Pending {
            return Err(BrokerError::new(
                ErrorCode::TransactionAlreadyResolved,
                format!(
                    "transaction {id} was already {}",
                    match row.decision {
                        TxnDecision::Committed => "committed",
                        _ => "rolled back",
                    }
                ),
            ));
        }
        match decision {
            TxnDecision::Committed => self.commit(&topic, &q, &txn, &row, one).await?,
            _ => {
                self.rollback(&topic, &q, txn.seq0(), &row, RollbackReason::Producer)
                    .await?
            }
        }
        Ok(done(true))
    }

    /// Appends the halves of `row` to their queue under the queue's fire
    /// lock (`one`, held by the caller), marks the transaction committing,
    /// waits for the queue's durability without the lock (so the commits of
    /// one queue share its fsyncs), then ends the halves with a commit note
    /// under the lock again. The write permit, held throughout, keeps the
    /// queue from moving meanwhile.
    async fn commit(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        q: &Arc<TimerQueue>,
        txn: &TxnId,
        row: &Txn,
        one: tokio::sync::MutexGuard<'_, ()>,
    ) -> BrokerResult<()> {
        let (target, permit) = self.queue_for_write(&q.topic, q.queue).await?;
        let seq0 = txn.seq0();
        let mut records = Vec::with_capacity(row.n as usize);
        for seq in seq0..seq0 + u64::from(row.n) {
            records.push(self.half_record(q, seq).await?.ok_or_else(|| {
                BrokerError::internal(
                    "committing a transaction",
                    format!("half message {seq} of {}/{} is missing", q.topic, q.queue),
                )
            })?);
        }
        let id = txn.to_string();
        let batch: Vec<_> = records.iter().map(|r| committed(r, &id)).collect();
        let ids: Vec<MessageId> = records.iter().map(|r| r.message_id).collect();
        let t2 = target.clone();
        let appended =
            tokio::task::spawn_blocking(move || t2.append_minted(&batch, &|i, _| ids[i])).await??;
        let end = appended
            .last()
            .map_or(target.max_offset(), |a| a.offset + 1);
        let start = appended.first().map_or(end, |a| a.offset);
        // Until its note is written, restart scans must start at or before
        // `start` (see `target_advanced` below), and no check, rollback or
        // second commit touches it.
        q.committing.lock().insert(seq0, end);
        q.committing_starts.lock().insert(start);
        drop(one);
        // On failure it stays committing: a retry waits for the same end, and
        // a restart finds the messages (if they reached the disk) by the scan.
        self.queue_durable(topic, &target, end).await?;
        let _one = q.firing.lock().await;
        // From here the messages are in their queue: the note only records
        // it, and the answer does not wait for it to be durable. Until it is,
        // restart scans still start before this commit (`target_advanced`
        // comes after), so a crash that loses the note finds the messages
        // and writes it again ([`super::recover`]). Notes are durable in
        // journal order, so a later commit's advance covers this one's too.
        let note = self.append_decision(q, seq0, row.n, TxnDecision::Committed)?;
        q.committing.lock().remove(&seq0);
        drop(permit);
        crate::metrics::txn_decided(&q.topic, "commit");
        let (broker, topic, q) = (self.clone(), topic.clone(), q.clone());
        tokio::spawn(async move {
            match broker.journal_durable(&topic, &q, note + 1).await {
                Ok(()) => {
                    // Never past a commit whose note may not be durable yet.
                    let mut starts = q.committing_starts.lock();
                    starts.remove(&start);
                    let bound = starts.first().copied().unwrap_or(u64::MAX);
                    q.index.lock().target_advanced(end.min(bound));
                }
                Err(e) => {
                    tracing::warn!(topic = %q.topic, queue = q.queue, error = %crate::error::error_chain(&e), "a commit note is not durable yet; a restart finishes the commit from the queue")
                }
            }
        });
        Ok(())
    }

    /// Rolls back the pending transaction `seq0` (its halves never enter the
    /// queue). The caller holds the queue's fire lock.
    pub(crate) async fn rollback(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        q: &Arc<TimerQueue>,
        seq0: u64,
        row: &Txn,
        reason: RollbackReason,
    ) -> BrokerResult<()> {
        // Answered once durable: a rollback lost in a crash would be
        // checked (and could be committed) again.
        let note = self.append_decision(q, seq0, row.n, TxnDecision::RolledBack)?;
        self.journal_durable(topic, q, note + 1).await?;
        let label = match reason {
            RollbackReason::Producer => "rollback",
            RollbackReason::CheckLimit => "rollback_check_limit",
        };
        crate::metrics::txn_decided(&q.topic, label);
        Ok(())
    }

    /// Appends the decision note of `seq0` to the journal, ending its halves
    /// in the index and deciding it in the table; the note's offset. A
    /// one-record append under the index lock (as every journal append).
    fn append_decision(
        &self,
        q: &Arc<TimerQueue>,
        seq0: u64,
        n: u32,
        decision: TxnDecision,
    ) -> BrokerResult<u64> {
        let mut index = q.index.lock();
        let a = q.journal.append(&[decision_note(seq0, n, decision)])?;
        let note = a[0].offset;
        for seq in seq0..seq0 + u64::from(n) {
            index.recall(half_key(seq), note);
        }
        index.skip_journal_to(note + 1);
        q.txns.lock().apply(TxnEvent::Decided {
            seq0,
            decision,
            at_ms: a[0].store_ms,
        });
        Ok(note)
    }

    /// Waits until the queue `target` of `topic` is durable through `through`.
    async fn queue_durable(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        target: &Arc<shale_hot::QueueLog>,
        through: u64,
    ) -> BrokerResult<()> {
        let config = topic.config();
        let name = topic.name.clone();
        self.make_durable(target, name, config.created_ms, through, config.durability)
            .await
    }

    /// Waits until `q`'s journal is durable through `through` at the topic's durability.
    async fn journal_durable(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        q: &Arc<TimerQueue>,
        through: u64,
    ) -> BrokerResult<()> {
        let config = topic.config();
        self.make_durable(
            &q.journal,
            crate::timers::wal_topic(&topic.name),
            config.created_ms,
            through,
            config.durability,
        )
        .await
    }

    /// The half message at journal offset `seq`, from memory or the runs;
    /// `None` when it is no longer pending.
    pub(crate) async fn half_record(
        &self,
        q: &Arc<TimerQueue>,
        seq: u64,
    ) -> BrokerResult<Option<Record>> {
        let key = half_key(seq);
        let state = q.index.lock().state_of(key);
        match state {
            TimerState::Pending => crate::timers::lookup::pending_record(q, key).await,
            TimerState::InRuns => self.run_record(q, key).await,
            TimerState::Delivered | TimerState::Recalled => Ok(None),
        }
    }
}
