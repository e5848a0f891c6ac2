//! A queue's transaction table in the object store: snapshots written at
//! each spill of the timer journal (the table as of the checkpoint's
//! `spilled_end`), listed by the timer checkpoint, read back by a new owner.
//!
//! Invariants: a snapshot is written before the checkpoint lists it, and
//! the one it replaces is deleted only after; names come from the
//! checkpoint's `next_run` counter under the writer's epoch (so a fenced
//! writer's snapshot is never listed, and the next owner deletes it as an
//! orphan).

use shale_tiering::timer_checkpoint::TimerCheckpoint;
use shale_tiering::txn_table::{self, TxnRow, table_name};
use shale_tiering::{FencedObject, Tier};

use super::table::TxnTable;
use crate::error::BrokerResult;
use crate::timers::store::tiering_err;

/// Writes `rows` as the next snapshot of `ckpt`'s owner; its name.
pub(crate) async fn write(
    tier: &Tier,
    topic: &str,
    queue: u32,
    ckpt: &FencedObject<TimerCheckpoint>,
    rows: Vec<TxnRow>,
) -> BrokerResult<String> {
    let name = table_name(ckpt.epoch(), ckpt.value().next_run);
    let path = tier.layout().txn_table(topic, queue, &name);
    txn_table::put_table(tier.store().as_ref(), &path, &rows)
        .await
        .map_err(|e| tiering_err("writing a transaction table", e))?;
    crate::metrics::timer_index_objects("written", 1);
    Ok(name)
}

/// Lists the snapshot `name` (if any) in a checkpoint; `run_listed`: a run
/// was listed in the same update (and took the `next_run` number already).
pub(crate) fn list(c: &mut TimerCheckpoint, name: Option<&String>, run_listed: bool) {
    let Some(name) = name else {
        return;
    };
    if !run_listed {
        c.next_run += 1;
    }
    c.txn_table = Some(name.clone());
}

/// The snapshot a checkpoint listing `name` no longer needs.
pub(crate) fn replaced(c: &TimerCheckpoint, name: Option<&String>) -> Option<String> {
    name.and(c.txn_table.clone())
}

/// Reads the table the checkpoint lists (empty when none).
pub(crate) async fn read(
    tier: &Tier,
    topic: &str,
    queue: u32,
    c: &TimerCheckpoint,
) -> BrokerResult<TxnTable> {
    let Some(name) = &c.txn_table else {
        return Ok(TxnTable::default());
    };
    let path = tier.layout().txn_table(topic, queue, name);
    let rows = txn_table::read_table(tier.store().as_ref(), &path)
        .await
        .map_err(|e| tiering_err("reading a transaction table", e))?;
    crate::metrics::timer_index_objects("read", 1);
    Ok(TxnTable::from_rows(rows))
}

/// Deletes a snapshot no checkpoint lists any more (failure: garbage, logged).
pub(crate) async fn delete(tier: &Tier, topic: &str, queue: u32, name: &str) {
    let path = tier.layout().txn_table(topic, queue, name);
    if let Err(e) = txn_table::delete_table(tier.store().as_ref(), &path).await {
        tracing::warn!(topic, queue, snapshot = name, error = %e, "cannot delete a transaction table no longer listed; it stays as garbage");
    }
}

/// Deletes every snapshot but `keep` (a new owner: those of fenced writers).
pub(crate) async fn delete_orphans(tier: &Tier, topic: &str, queue: u32, keep: Option<&str>) {
    let dir = tier.layout().txn_tables_dir(topic, queue);
    let listed = match shale_tiering::timer_run::list_runs(tier.store().as_ref(), &dir).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(topic, queue, error = %e, "cannot list transaction tables to collect orphans");
            return;
        }
    };
    for path in listed {
        if let Some(name) = path.filename().filter(|n| Some(*n) != keep) {
            delete(tier, topic, queue, name).await;
        }
    }
}
