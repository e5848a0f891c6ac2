//! The delivery state of one queue for one consumer group (one consumer, in
//! BROADCASTING mode): what was delivered, what waits for a retry, what is
//! held back by FIFO order, and the committed offset.
//!
//! Pure state, no I/O: the caller reads records and asks the cursor what to
//! do with them, so every rule is testable with an injected time.
//!
//! Invariants:
//! - `committed <= every pending/held offset < next`, and `committed` is the
//!   lowest offset not yet acked (or filtered, or dead-lettered);
//! - a message is in flight to at most one receiver: it is in `pending` with
//!   one `(attempts, nonce)`, and only a handle carrying both, presented before
//!   `invisible_until`, can ack it or change its invisibility;
//! - a message not acked by `invisible_until` becomes deliverable again at
//!   `invisible_until + backoff(attempts)`; after `max_attempts` deliveries it
//!   is dead-lettered instead;
//! - FIFO: while a message of a `message_group` is pending, later messages of
//!   that group are *held* (not delivered) — groups proceed independently.

use std::collections::{BTreeMap, HashSet};

/// A delivered, not yet acked message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Deliveries so far (1 after the first).
    pub attempts: u32,
    pub invisible_until: i64,
    /// Changes with every delivery and invisibility change: older handles expire.
    pub nonce: u64,
    /// FIFO group key (hash of `message_group`), if the topic is FIFO.
    pub fifo_group: Option<u64>,
}

/// What the cursor decided for a message it was offered or had pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Deliver it now as attempt `attempt` with this nonce.
    Deliver {
        offset: u64,
        attempt: u32,
        nonce: u64,
        invisible_until: i64,
    },
    /// Its attempts are used up: dead-letter it (it counts as acked here).
    DeadLetter { offset: u64, attempts: u32 },
}

/// Why a handle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// The delivery it names is over (acked, visible again, redelivered).
    Expired,
}

/// Delivery state of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Lowest offset not acked.
    pub committed: u64,
    /// Next offset never offered to the cursor.
    pub next: u64,
    pub pending: BTreeMap<u64, Pending>,
    /// FIFO messages read but held back behind an earlier message of their group.
    pub held: BTreeMap<u64, u64>,
}

/// Retry delays and the attempt limit of a group.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_ms: Vec<u64>,
}

impl RetryPolicy {
    /// Delay after the `attempts`-th delivery ran out (the last value repeats).
    pub fn backoff(&self, attempts: u32) -> i64 {
        let i = (attempts.max(1) - 1) as usize;
        let ms = self
            .backoff_ms
            .get(i)
            .or(self.backoff_ms.last())
            .copied()
            .unwrap_or(0);
        i64::try_from(ms).unwrap_or(i64::MAX)
    }
}

impl Cursor {
    /// A cursor starting at `offset` (nothing delivered yet).
    pub fn at(offset: u64) -> Self {
        Cursor {
            committed: offset,
            next: offset,
            ..Default::default()
        }
    }

    fn recompute_committed(&mut self) {
        let first_pending = self.pending.keys().next().copied().unwrap_or(u64::MAX);
        let first_held = self.held.keys().next().copied().unwrap_or(u64::MAX);
        self.committed = first_pending.min(first_held).min(self.next);
    }

    /// FIFO groups with a message pending.
    fn blocked_groups(&self) -> HashSet<u64> {
        self.pending.values().filter_map(|p| p.fifo_group).collect()
    }

    /// Messages in flight right now (delivered, invisible).
    pub fn inflight(&self, now: i64) -> usize {
        self.pending
            .values()
            .filter(|p| p.invisible_until > now)
            .count()
    }

    /// Earliest time a pending message becomes deliverable again.
    pub fn next_retry_at(&self, policy: &RetryPolicy) -> Option<i64> {
        self.pending
            .values()
            .map(|p| p.invisible_until.saturating_add(policy.backoff(p.attempts)))
            .min()
    }

    /// Redeliveries and dead-letters due at `now` (oldest offset first), then
    /// held FIFO messages whose group is free, at most `max` decisions.
    /// `nonce` supplies fresh nonces.
    pub fn due(
        &mut self,
        now: i64,
        max: usize,
        invisible_ms: i64,
        policy: &RetryPolicy,
        mut nonce: impl FnMut() -> u64,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.invisible_until.saturating_add(policy.backoff(p.attempts)))
            .map(|(o, _)| *o)
            .collect();
        for offset in due {
            if out.len() >= max {
                break;
            }
            let Some(p) = self.pending.get_mut(&offset) else {
                continue;
            };
            if p.attempts >= policy.max_attempts {
                let attempts = p.attempts;
                self.pending.remove(&offset);
                out.push(Decision::DeadLetter { offset, attempts });
                continue;
            }
            p.attempts += 1;
            p.nonce = nonce();
            p.invisible_until = now.saturating_add(invisible_ms);
            out.push(Decision::Deliver {
                offset,
                attempt: p.attempts,
                nonce: p.nonce,
                invisible_until: p.invisible_until,
            });
        }
        // Held FIFO messages, in offset order, once their group has nothing pending.
        let mut blocked = self.blocked_groups();
        let held: Vec<(u64, u64)> = self.held.iter().map(|(o, g)| (*o, *g)).collect();
        for (offset, group) in held {
            if out.len() >= max {
                break;
            }
            if blocked.contains(&group) {
                continue;
            }
            self.held.remove(&offset);
            let n = nonce();
            let invisible_until = now.saturating_add(invisible_ms);
            self.pending.insert(
                offset,
                Pending {
                    attempts: 1,
                    invisible_until,
                    nonce: n,
                    fifo_group: Some(group),
                },
            );
            blocked.insert(group);
            out.push(Decision::Deliver {
                offset,
                attempt: 1,
                nonce: n,
                invisible_until,
            });
        }
        self.recompute_committed();
        out
    }

    /// Offers the next new message (`offset == self.next`). `matches`: it passes
    /// the group's filter (else it counts as consumed). Returns the delivery,
    /// or `None` when it was filtered out or held back.
    pub fn offer(
        &mut self,
        offset: u64,
        matches: bool,
        fifo_group: Option<u64>,
        now: i64,
        invisible_ms: i64,
        nonce: u64,
    ) -> Option<Decision> {
        debug_assert_eq!(offset, self.next);
        self.next = offset + 1;
        let decision = if !matches {
            None
        } else if let Some(g) = fifo_group
            .filter(|g| self.blocked_groups().contains(g) || self.held.values().any(|h| h == g))
        {
            self.held.insert(offset, g);
            None
        } else {
            let invisible_until = now.saturating_add(invisible_ms);
            self.pending.insert(
                offset,
                Pending {
                    attempts: 1,
                    invisible_until,
                    nonce,
                    fifo_group,
                },
            );
            Some(Decision::Deliver {
                offset,
                attempt: 1,
                nonce,
                invisible_until,
            })
        };
        self.recompute_committed();
        decision
    }

    /// Skips offsets the queue no longer holds (retention) or that are gone.
    pub fn skip_to(&mut self, offset: u64) {
        if offset > self.next {
            self.next = offset;
        }
        self.pending.retain(|o, _| *o >= offset);
        self.held.retain(|o, _| *o >= offset);
        self.recompute_committed();
    }

    /// Forgets `offset` for good (the queue cannot return it: gone, or lost to
    /// damage): it counts as consumed.
    pub fn forget(&mut self, offset: u64) {
        self.pending.remove(&offset);
        self.held.remove(&offset);
        if offset == self.next {
            self.next = offset + 1;
        }
        self.recompute_committed();
    }

    fn check(&self, offset: u64, attempt: u32, nonce: u64, now: i64) -> Result<(), HandleError> {
        match self.pending.get(&offset) {
            Some(p) if p.attempts == attempt && p.nonce == nonce && now < p.invisible_until => {
                Ok(())
            }
            _ => Err(HandleError::Expired),
        }
    }

    /// Acks the delivery a handle names.
    pub fn ack(
        &mut self,
        offset: u64,
        attempt: u32,
        nonce: u64,
        now: i64,
    ) -> Result<(), HandleError> {
        self.check(offset, attempt, nonce, now)?;
        self.pending.remove(&offset);
        self.recompute_committed();
        Ok(())
    }

    /// Changes the invisibility of a delivery; returns its new nonce (the old
    /// handle expires). `invisible_ms == 0` gives it up now: it is delivered
    /// again after the backoff of its attempt.
    pub fn change_invisibility(
        &mut self,
        offset: u64,
        attempt: u32,
        nonce: u64,
        now: i64,
        invisible_ms: i64,
        new_nonce: u64,
    ) -> Result<i64, HandleError> {
        self.check(offset, attempt, nonce, now)?;
        let p = self.pending.get_mut(&offset).ok_or(HandleError::Expired)?;
        p.invisible_until = now.saturating_add(invisible_ms);
        p.nonce = new_nonce;
        Ok(p.invisible_until)
    }

    /// Moves the cursor to `offset` (backtracking or skipping ahead): every
    /// delivery in flight is forgotten.
    pub fn reset(&mut self, offset: u64) {
        *self = Cursor::at(offset);
    }
}

#[cfg(test)]
#[path = "cursor_tests.rs"]
mod tests;
