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
//!   that group are *held* (not delivered) — groups proceed independently;
//! - a message whose attempts ran out stays in `pending` (claimed in
//!   `dead_lettering`) until the caller reports it durably dead-lettered
//!   ([`Cursor::dead_lettered`]); a failed append gives the claim back
//!   ([`Cursor::release_dead_letter`]) and the message stays deliverable;
//! - new offsets from `next` are read by one receiver at a time: it claims
//!   them ([`Cursor::claim_read`]), reads without holding any lock, and
//!   offers what it read only while its claim still holds
//!   ([`Cursor::holds_read`]), so no two receivers offer the same offset.

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
    /// Its attempts are used up: append it to the dead-letter topic, then
    /// report [`Cursor::dead_lettered`] (or [`Cursor::release_dead_letter`])
    /// with `claim`. Until then it stays pending and blocks its FIFO group.
    DeadLetter {
        offset: u64,
        attempts: u32,
        claim: u64,
    },
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
    /// Pending messages being appended to the dead-letter topic: offset → claim.
    /// Not checkpointed: after a restart they are simply due again.
    pub dead_lettering: BTreeMap<u64, u64>,
    /// The claim of the receiver reading new offsets from `next`, if any.
    pub reading: Option<u64>,
    /// Another receiver found `reading` taken since it was claimed: the
    /// holder wakes waiting receives when it lets go.
    pub read_contended: bool,
}

/// Redelivery delays and the attempt limit of a group (not to be confused
/// with `shale_tiering::RetryPolicy`, which retries object-store calls).
#[derive(Debug, Clone)]
pub struct RedeliveryPolicy {
    pub max_attempts: u32,
    pub backoff_ms: Vec<u64>,
}

impl RedeliveryPolicy {
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

    /// Messages waiting for a redelivery: delivered and not acked, their
    /// invisibility over (timed out or nacked), so they wait out the group's
    /// backoff or are due now (or, with their attempts used up, wait for
    /// their move to the dead-letter topic). Not those being dead-lettered
    /// right now, nor FIFO messages held back before a first delivery.
    pub fn retrying(&self, now: i64) -> usize {
        self.pending
            .iter()
            .filter(|(o, p)| p.invisible_until <= now && !self.dead_lettering.contains_key(o))
            .count()
    }

    /// Earliest time a pending message becomes deliverable again.
    pub fn next_retry_at(&self, policy: &RedeliveryPolicy) -> Option<i64> {
        self.pending
            .iter()
            .filter(|(o, _)| !self.dead_lettering.contains_key(o))
            .map(|(_, p)| p)
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
        policy: &RedeliveryPolicy,
        mut nonce: impl FnMut() -> u64,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(o, _)| !self.dead_lettering.contains_key(o))
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
                let claim = nonce();
                self.dead_lettering.insert(offset, claim);
                out.push(Decision::DeadLetter {
                    offset,
                    attempts,
                    claim,
                });
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
        self.dead_lettering.retain(|o, _| *o >= offset);
        self.recompute_committed();
    }

    /// True while the delivery `(offset, attempt, nonce)` is the one in
    /// flight (a receiver re-checks this after reading the record).
    pub fn is_delivery(&self, offset: u64, attempt: u32, nonce: u64) -> bool {
        self.pending
            .get(&offset)
            .is_some_and(|p| p.attempts == attempt && p.nonce == nonce)
    }

    /// The dead-letter append under `claim` succeeded: the message leaves the
    /// cursor (it counts as consumed). False, and nothing changes, when the
    /// claim no longer holds (a reset or a skip came in between).
    pub fn dead_lettered(&mut self, offset: u64, claim: u64) -> bool {
        if self.dead_lettering.get(&offset) != Some(&claim) {
            return false;
        }
        self.dead_lettering.remove(&offset);
        self.pending.remove(&offset);
        self.recompute_committed();
        true
    }

    /// The dead-letter append under `claim` failed (or was abandoned): the
    /// message stays pending and is due again after the backoff of its
    /// attempts, counted from `now`.
    pub fn release_dead_letter(&mut self, offset: u64, claim: u64, now: i64) {
        if self.dead_lettering.get(&offset) != Some(&claim) {
            return;
        }
        self.dead_lettering.remove(&offset);
        if let Some(p) = self.pending.get_mut(&offset) {
            p.invisible_until = now;
        }
    }

    /// Claims the reading of new offsets from `next` under `claim`; returns
    /// where the read starts, or `None` when another receiver holds the claim.
    pub fn claim_read(&mut self, claim: u64) -> Option<u64> {
        if self.reading.is_some() {
            self.read_contended = true;
            return None;
        }
        self.reading = Some(claim);
        self.read_contended = false;
        Some(self.next)
    }

    /// True while `claim` holds the read and nothing moved `next` since it
    /// started at `from`: what it read may be offered.
    pub fn holds_read(&self, claim: u64, from: u64) -> bool {
        self.reading == Some(claim) && self.next == from
    }

    /// Lets go of the read `claim`; true when another receiver was turned
    /// away meanwhile (and should be woken).
    pub fn release_read(&mut self, claim: u64) -> bool {
        if self.reading != Some(claim) {
            return false;
        }
        self.reading = None;
        std::mem::take(&mut self.read_contended)
    }

    /// Forgets `offset` for good (the queue cannot return it: gone, or lost to
    /// damage): it counts as consumed.
    pub fn forget(&mut self, offset: u64) {
        self.pending.remove(&offset);
        self.dead_lettering.remove(&offset);
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

    /// Gives a delivery back for redelivery now, without the retry backoff
    /// (`backoff_ms`, the one its attempt would wait); the old handle expires.
    /// The delivery still counted as an attempt.
    pub fn give_back(
        &mut self,
        offset: u64,
        attempt: u32,
        nonce: u64,
        now: i64,
        backoff_ms: i64,
        new_nonce: u64,
    ) -> Result<(), HandleError> {
        self.check(offset, attempt, nonce, now)?;
        let p = self.pending.get_mut(&offset).ok_or(HandleError::Expired)?;
        p.invisible_until = now.saturating_sub(backoff_ms);
        p.nonce = new_nonce;
        Ok(())
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
