//! Transactional half messages (RocketMQ's distributed-transaction pattern):
//! a producer stores half messages, runs its local transaction, then commits
//! (the messages enter their queue) or rolls back (they never do); a
//! producer that goes silent is asked, by check-back, to decide.
//!
//! A TRANSACTION queue's half messages live in the queue's timer store
//! ([`crate::timers`]) as timers that never come due ([`records::PARKED_AT`]):
//! they are stored at the topic's durability, spill to the object store,
//! move with their queue and are replayed from the write-ahead chunks like
//! delay messages. The state of each transaction (producer group, check
//! schedule and count, decision) is the queue's [`table::TxnTable`], changed
//! only by journal records ([`records`]) and snapshotted at each spill
//! ([`snapshot`]). One request's halves are one transaction on one queue.
//!
//! - **Commit** ([`ops`]): under the queue's fire lock, the halves are read
//!   (memory or runs) and appended to their queue in one append, keeping
//!   their ids, with the timer and transaction properties; once durable, a
//!   decision note ends them in the journal. A crash between the two is
//!   repaired at recovery ([`recover`]): the queue scan finds the committed
//!   halves (as it finds fired timers) and the missing note is written, so
//!   a transaction is appended once and never rolled back after.
//! - **Rollback**: a decision note alone.
//! - **Check-back** ([`checks`]): a pending transaction whose check is due
//!   is offered to its producer group's pollers on this node (one poller
//!   takes it), and a check note counts it; after the configured number of
//!   checks it is rolled back.
//!
//! Committed messages enter their queue in commit order (a commit appends
//! when it is decided, not when the halves were stored).

pub mod checks;
pub mod ops;
pub mod records;
pub mod recover;
pub mod snapshot;
pub mod table;

/// Checks offered before a transaction is rolled back, by default.
pub const DEFAULT_MAX_CHECKS: u32 = 15;
/// `check_after_ms` when the producer gives none.
pub const DEFAULT_CHECK_AFTER_MS: u32 = 6000;
/// The range `check_after_ms` must be in.
pub const CHECK_AFTER_RANGE: std::ops::RangeInclusive<u32> = 1000..=3_600_000;

/// What a producer sends with half messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnSettings {
    pub producer_group: String,
    pub check_after_ms: u32,
}
