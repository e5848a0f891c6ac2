//! Acks and invisibility changes: a receipt handle is verified (MAC, group,
//! topic), its cursor restored from its checkpoint if this node does not
//! hold it yet, and the cursor decides under its own lock whether the
//! delivery the handle names is still the one in flight.
//!
//! Invariant: only the handle of the current delivery — right attempt and
//! nonce, before its `invisible_until` — acks a message or changes its
//! invisibility; anything else is RECEIPT_HANDLE_EXPIRED. No I/O happens
//! under a cursor lock.

use std::collections::BTreeSet;

use super::CursorKey;
use super::cursor::HandleError;
use super::receipt::Receipt;
use super::secret::secret;
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};

/// Outcome of one handle of an ack.
#[derive(Debug)]
pub enum AckOutcome {
    Ok,
    Err(BrokerError),
}

fn invalid_handle(why: &str) -> BrokerError {
    BrokerError::new(
        ErrorCode::InvalidReceiptHandle,
        format!("invalid receipt handle: {why}"),
    )
}

fn expired() -> BrokerError {
    BrokerError::new(
        ErrorCode::ReceiptHandleExpired,
        "the receipt handle has expired: the message became visible again or was delivered again",
    )
}

fn cursor_key(r: &Receipt) -> CursorKey {
    CursorKey::new(&r.group, &r.topic, r.queue, &r.consumer)
}

/// Verifies a handle for `group`/`topic`.
async fn verify(state: &Broker, group: &str, topic: &str, handle: &str) -> BrokerResult<Receipt> {
    let secret = secret(state).await?;
    let r = Receipt::decode(handle, secret).ok_or_else(|| invalid_handle("forged or malformed"))?;
    if r.group != group {
        return Err(invalid_handle("it belongs to another group"));
    }
    if r.topic != topic {
        return Err(invalid_handle("it belongs to another topic"));
    }
    Ok(r)
}

/// Acks each handle; one outcome per handle, in order.
pub async fn ack(
    state: &Broker,
    group: &str,
    topic: &str,
    handles: &[String],
) -> BrokerResult<Vec<AckOutcome>> {
    // Verify every handle first and restore each cursor they name once
    // (I/O, under no lock); then apply each ack under its cursor's lock.
    let mut checked = Vec::with_capacity(handles.len());
    let mut keys = BTreeSet::new();
    for h in handles {
        match verify(state, group, topic, h).await {
            Ok(r) => {
                keys.insert(cursor_key(&r));
                checked.push(Ok(r));
            }
            Err(e) if e.code() == ErrorCode::InvalidReceiptHandle => checked.push(Err(e)),
            Err(e) => return Err(e),
        }
    }
    // Handles of queues served by other nodes get that answer one by one (the
    // front-end forwards them to their owner); any other failure fails the call.
    let mut elsewhere = std::collections::BTreeMap::new();
    for k in &keys {
        match super::durable::restore_if_checkpointed(state, k).await {
            Ok(()) => {}
            Err(e) if e.elsewhere().is_some() => {
                elsewhere.insert(k.clone(), e);
            }
            Err(e) => return Err(e),
        }
    }
    let now = state.clock.now_ms();
    let mut freed_fifo = false;
    let out = checked
        .into_iter()
        .map(|c| {
            let r = match c {
                Ok(r) => r,
                Err(e) => return AckOutcome::Err(e),
            };
            if let Some(e) = elsewhere.get(&cursor_key(&r)) {
                return AckOutcome::Err(e.clone_elsewhere());
            }
            let Some(cursor) = state.groups.cursors.get(&cursor_key(&r)) else {
                return AckOutcome::Err(expired());
            };
            let mut c = cursor.lock();
            freed_fifo |= !c.held.is_empty();
            match c.ack(r.offset, r.attempt, r.nonce, now) {
                Ok(()) => {
                    drop(c);
                    state.groups.ack_rates.record(&cursor_key(&r), 1, now);
                    AckOutcome::Ok
                }
                Err(HandleError::Expired) => AckOutcome::Err(expired()),
            }
        })
        .collect();
    // Only a FIFO hold can turn deliverable because of an ack: wake waiting
    // receives then, not on every ack.
    if freed_fifo {
        state.groups.changed.notify_waiters();
    }
    Ok(out)
}

/// Gives a delivery back for redelivery at once, without the group's retry
/// backoff (it still counted as an attempt).
pub async fn give_back(
    state: &Broker,
    group: &str,
    topic: &str,
    handle: &str,
) -> BrokerResult<(String, i64)> {
    let r = verify(state, group, topic, handle).await?;
    let k = cursor_key(&r);
    super::durable::restore_if_checkpointed(state, &k).await?;
    let backoff = state
        .groups
        .get(group)
        .map_or(0, |g| g.redelivery_policy().backoff(r.attempt));
    let now = state.clock.now_ms();
    let cursor = state.groups.cursors.get(&k).ok_or_else(expired)?;
    let nonce = rand::random::<u64>();
    cursor
        .lock()
        .give_back(r.offset, r.attempt, r.nonce, now, backoff, nonce)
        .map_err(|HandleError::Expired| expired())?;
    state.groups.changed.notify_waiters();
    let secret = secret(state).await?;
    Ok((Receipt { nonce, ..r }.encode(secret), now))
}

/// Changes a delivery's invisibility; returns the new handle and its
/// deadline. With `keep_handle` the handle stays the same (SQS's rule: a
/// handle is good until the message is delivered again), else the old one
/// expires.
pub async fn change_invisibility(
    state: &Broker,
    group: &str,
    topic: &str,
    handle: &str,
    invisible_ms: i64,
    keep_handle: bool,
) -> BrokerResult<(String, i64)> {
    let r = verify(state, group, topic, handle).await?;
    let k = cursor_key(&r);
    super::durable::restore_if_checkpointed(state, &k).await?;
    let now = state.clock.now_ms();
    let nonce = if keep_handle {
        r.nonce
    } else {
        rand::random::<u64>()
    };
    let cursor = state.groups.cursors.get(&k).ok_or_else(expired)?;
    let until = cursor
        .lock()
        .change_invisibility(r.offset, r.attempt, r.nonce, now, invisible_ms, nonce)
        .map_err(|HandleError::Expired| expired())?;
    state.groups.changed.notify_waiters();
    let secret = secret(state).await?;
    Ok((Receipt { nonce, ..r }.encode(secret), until))
}
