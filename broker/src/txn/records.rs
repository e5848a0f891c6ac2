//! How transactions are written in a queue's timer journal, and read back.
//!
//! - A **half message** is a timer due at [`PARKED_AT`] (never: only a
//!   decision takes it out), with property [`HALF_PROPERTY`] =
//!   `{i}/{n}/{check_after_ms}/{producer_group}`: message `i` of the `n`
//!   of its transaction, whose first half is at journal offset `seq - i`.
//!   One request's halves go in one append, so they are contiguous.
//! - A **check note** (no delivery time: not a timer) records that check
//!   `checks` was offered: [`CHECK_PROPERTY`] = `{seq0}/{checks}/{next_check_ms}`.
//! - A **decision note** (not a timer either) records a commit or a
//!   rollback: [`DECISION_PROPERTY`] = `{seq0}/{n}/commit|rollback`, at its
//!   store time. It ends every half of the transaction, like a recall
//!   record ends a delay message (the spill writes tombstones for them).
//!
//! A committed half is appended to its queue without delivery time, with
//! [`crate::timers::TIMER_PROPERTY`] = its journal offset (as fired timers
//! are) and [`TXN_PROPERTY`] = the transaction id.

use shale_hot::{AppendRequest, MessageId, Record};

use super::table::{TxnDecision, TxnEvent};
use crate::timers::Key;

/// The delivery time of a half message: beyond any delay (a year at most),
/// so no half is ever due and every spilled one stays in the runs.
pub const PARKED_AT: i64 = 1 << 46;
/// Property of a half message in the journal.
pub const HALF_PROPERTY: &str = "shale.txn.half";
/// Property of a check note.
pub const CHECK_PROPERTY: &str = "shale.txn.check";
/// Property of a decision note.
pub const DECISION_PROPERTY: &str = "shale.txn.decision";
/// Property of a committed message in its queue: its transaction id.
pub const TXN_PROPERTY: &str = "shale.transaction_id";

/// The timer key of the half message at journal offset `seq`.
pub fn half_key(seq: u64) -> Key {
    (PARKED_AT, seq)
}

/// Marks `batch` (one transaction's messages, in order) as half messages.
pub fn mark_halves(batch: &mut [AppendRequest], check_after_ms: u32, producer_group: &str) {
    let n = batch.len();
    for (i, r) in batch.iter_mut().enumerate() {
        r.deliver_at_ms = Some(PARKED_AT);
        r.properties.push((
            HALF_PROPERTY.to_string(),
            format!("{i}/{n}/{check_after_ms}/{producer_group}"),
        ));
    }
}

fn property<'a>(r: &'a Record, name: &str) -> Option<&'a str> {
    r.properties
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A check note: `check` offered, the next due at `next_check_ms`.
pub fn check_note(seq0: u64, checks: u32, next_check_ms: i64) -> AppendRequest {
    note(CHECK_PROPERTY, format!("{seq0}/{checks}/{next_check_ms}"))
}

/// A decision note for the transaction of `n` halves from `seq0`.
pub fn decision_note(seq0: u64, n: u32, decision: TxnDecision) -> AppendRequest {
    let word = match decision {
        TxnDecision::Committed => "commit",
        _ => "rollback",
    };
    note(DECISION_PROPERTY, format!("{seq0}/{n}/{word}"))
}

fn note(name: &str, value: String) -> AppendRequest {
    AppendRequest {
        born_ms: 0,
        deliver_at_ms: None,
        tag: None,
        keys: Vec::new(),
        properties: vec![(name.to_string(), value)],
        message_group: None,
        body: bytes::Bytes::new(),
    }
}

/// Where a half message stands in its transaction: `(seq0, i, n)`.
pub fn half_of(r: &Record) -> Option<(u64, u32, u32)> {
    let v = property(r, HALF_PROPERTY)?;
    let mut p = v.splitn(4, '/');
    let i: u32 = p.next()?.parse().ok()?;
    let n: u32 = p.next()?.parse().ok()?;
    Some((r.offset.checked_sub(u64::from(i))?, i, n))
}

/// The halves a decision note ends: `seq0..seq0+n`.
pub fn decided_halves(r: &Record) -> Option<std::ops::Range<u64>> {
    let v = property(r, DECISION_PROPERTY)?;
    let mut p = v.splitn(3, '/');
    let seq0: u64 = p.next()?.parse().ok()?;
    let n: u64 = p.next()?.parse().ok()?;
    Some(seq0..seq0 + n)
}

/// The `Begin` event of a first half message, from its properties and
/// where it was stored.
fn begin(
    properties: &[(String, String)],
    offset: u64,
    id: MessageId,
    born_ms: i64,
) -> Option<TxnEvent> {
    let v = properties
        .iter()
        .find(|(k, _)| k == HALF_PROPERTY)
        .map(|(_, v)| v)?;
    let mut p = v.splitn(4, '/');
    let i: u64 = p.next()?.parse().ok()?;
    let n: u32 = p.next()?.parse().ok()?;
    let check_after_ms: u32 = p.next()?.parse().ok()?;
    let producer_group = p.next()?.to_string();
    (i == 0).then_some(TxnEvent::Begin {
        seq0: offset,
        n,
        rand: id.random(),
        producer_group,
        born_ms,
        check_after_ms,
    })
}

/// The `Begin` event of a half message just appended (first of its transaction).
pub fn begin_of(req: &AppendRequest, a: &shale_hot::Appended) -> Option<TxnEvent> {
    begin(&req.properties, a.offset, a.message_id, req.born_ms)
}

/// The table event a journal record states, if any.
pub fn event_of(r: &Record) -> Option<TxnEvent> {
    if property(r, HALF_PROPERTY).is_some() {
        return begin(&r.properties, r.offset, r.message_id, r.born_ms);
    }
    if let Some(v) = property(r, CHECK_PROPERTY) {
        let mut p = v.splitn(3, '/');
        return Some(TxnEvent::Checked {
            seq0: p.next()?.parse().ok()?,
            checks: p.next()?.parse().ok()?,
            next_check_ms: p.next()?.parse().ok()?,
        });
    }
    let v = property(r, DECISION_PROPERTY)?;
    let mut p = v.splitn(3, '/');
    let seq0 = p.next()?.parse().ok()?;
    let _n: u32 = p.next()?.parse().ok()?;
    let decision = match p.next()? {
        "commit" => TxnDecision::Committed,
        "rollback" => TxnDecision::RolledBack,
        _ => return None,
    };
    Some(TxnEvent::Decided {
        seq0,
        decision,
        at_ms: r.store_ms,
    })
}

/// The request that appends the half message `r` to its queue on commit:
/// no delivery time, no half property, the timer and transaction properties.
pub fn committed(r: &Record, txn_id: &str) -> AppendRequest {
    let mut req = r.to_request();
    req.deliver_at_ms = None;
    req.properties.retain(|(k, _)| k != HALF_PROPERTY);
    req.properties.push((
        crate::timers::TIMER_PROPERTY.to_string(),
        r.offset.to_string(),
    ));
    req.properties
        .push((TXN_PROPERTY.to_string(), txn_id.to_string()));
    req
}

/// The half key a committed message in its queue carries.
pub fn committed_key(r: &Record) -> Option<Key> {
    property(r, TXN_PROPERTY)?;
    let seq = property(r, crate::timers::TIMER_PROPERTY)?.parse().ok()?;
    Some(half_key(seq))
}

/// A transaction id: the first half message's id, then the topic
/// (`{32 hex digits}.{topic}`), so any node finds the queue and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnId {
    pub first: MessageId,
    pub topic: String,
}

impl TxnId {
    /// The queue of the transaction.
    pub fn queue(&self) -> u32 {
        self.first.queue()
    }

    /// The journal offset of its first half.
    pub fn seq0(&self) -> u64 {
        self.first.offset()
    }

    /// Parses what [`std::fmt::Display`] writes.
    pub fn parse(s: &str) -> Option<TxnId> {
        let (hex, topic) = (s.get(..32)?, s.get(32..)?.strip_prefix('.')?);
        let first: MessageId = hex.parse().ok()?;
        if topic.is_empty() || !first.is_scheduled() {
            return None;
        }
        Some(TxnId {
            first,
            topic: topic.to_string(),
        })
    }
}

impl std::fmt::Display for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.first, self.topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(offset: u64, req: &AppendRequest) -> Record {
        Record {
            offset,
            store_ms: 77,
            born_ms: req.born_ms,
            deliver_at_ms: req.deliver_at_ms,
            message_id: MessageId::scheduled(5, 2, offset, 99),
            tag: req.tag.clone(),
            keys: req.keys.clone(),
            properties: req.properties.clone(),
            message_group: None,
            body: req.body.clone(),
        }
    }

    #[test]
    fn halves_notes_and_ids_read_back() {
        let mut batch = vec![
            AppendRequest {
                born_ms: 5,
                body: Bytes::from_static(b"a"),
                ..Default::default()
            },
            AppendRequest {
                born_ms: 5,
                body: Bytes::from_static(b"b"),
                ..Default::default()
            },
        ];
        mark_halves(&mut batch, 6000, "pg/x");
        let second = record(11, &batch[1]);
        assert_eq!(half_of(&second), Some((10, 1, 2)));
        assert_eq!(event_of(&second), None);
        let first = record(10, &batch[0]);
        assert_eq!(
            event_of(&first),
            Some(TxnEvent::Begin {
                seq0: 10,
                n: 2,
                rand: 99,
                producer_group: "pg/x".into(),
                born_ms: 5,
                check_after_ms: 6000
            })
        );
        let note = record(12, &decision_note(10, 2, TxnDecision::Committed));
        assert_eq!(decided_halves(&note), Some(10..12));
        assert_eq!(
            event_of(&note),
            Some(TxnEvent::Decided {
                seq0: 10,
                decision: TxnDecision::Committed,
                at_ms: 77
            })
        );
        let check = record(13, &check_note(10, 3, 9000));
        assert_eq!(
            event_of(&check),
            Some(TxnEvent::Checked {
                seq0: 10,
                checks: 3,
                next_check_ms: 9000
            })
        );
        let out = committed(&second, "id");
        assert_eq!(out.deliver_at_ms, None);
        assert!(out.properties.iter().all(|(k, _)| k != HALF_PROPERTY));
        assert_eq!(committed_key(&record(40, &out)), Some(half_key(11)));

        let id = TxnId {
            first: first.message_id,
            topic: "orders.eu".into(),
        };
        assert_eq!(TxnId::parse(&id.to_string()), Some(id.clone()));
        assert_eq!(id.queue(), 2);
        assert_eq!(id.seq0(), 10);
        assert_eq!(TxnId::parse("nope"), None);
        assert_eq!(TxnId::parse(&format!("{}.", first.message_id)), None);
    }
}
