//! Finishing, at recovery, the commits a crash interrupted: halves found
//! in the queue (the restart scan of [`crate::timers::recover`] sees their
//! timer property) whose decision note never reached the journal get it
//! now, so the table says committed and no check or rollback follows.

use std::collections::BTreeSet;

use super::records::{PARKED_AT, decision_note, half_key};
use super::table::{TxnDecision, TxnEvent};
use crate::error::BrokerResult;
use crate::timers::{Key, TimerQueue};

/// Writes the commit notes missing for the halves in `fired_after`; the
/// journal offset to sync through when it wrote any. Blocking (appends).
pub(crate) fn finish_commits(q: &TimerQueue, fired_after: &[Key]) -> BrokerResult<Option<u64>> {
    let mut index = q.index.lock();
    let mut txns = q.txns.lock();
    let open: BTreeSet<(u64, u32)> = fired_after
        .iter()
        .filter(|k| k.0 == PARKED_AT)
        .filter_map(|k| txns.containing(k.1))
        .filter(|(seq0, _)| {
            txns.get(*seq0)
                .is_some_and(|t| t.decision == TxnDecision::Pending)
        })
        .collect();
    let mut end = None;
    for (seq0, n) in open {
        let a = q
            .journal
            .append(&[decision_note(seq0, n, TxnDecision::Committed)])?;
        let note = a[0].offset;
        for seq in seq0..seq0 + u64::from(n) {
            index.recall(half_key(seq), note);
        }
        index.skip_journal_to(note + 1);
        end = Some(note + 1);
        txns.apply(TxnEvent::Decided {
            seq0,
            decision: TxnDecision::Committed,
            at_ms: a[0].store_ms,
        });
        tracing::info!(topic = %q.topic, queue = q.queue, seq0, "finished a commit a restart interrupted");
    }
    Ok(end)
}
