//! From validated [`MessageInput`]s to what will be appended: the topic's
//! type rules (RocketMQ 5: a topic accepts only its own message type), the
//! delivery time of delay messages, the queue of each message, and which
//! messages repeat an earlier `dedup_id` of the same request.
//!
//! Pure: no I/O, the clock and the round-robin queue are passed in, so every
//! rule is unit-tested here. Either the whole request plans or it is rejected.

use shale_hot::AppendRequest;

use super::input::{DelayInput, MessageInput, at};
use super::queue_choice::group_queue;
use crate::dedup::DEDUP_PROPERTY;
use crate::error::BrokerError;
use crate::topics::{MessageType, TopicConfig};
use crate::txn::TxnSettings;

/// Latest delivery time accepted by default, relative to the request's arrival (40 days).
pub const DEFAULT_MAX_DELAY_MS: i64 = 40 * 24 * 60 * 60 * 1000;
/// The furthest `max_delay_ms` may be set (one year).
pub const MAX_MAX_DELAY_MS: i64 = 365 * 24 * 60 * 60 * 1000;

/// RocketMQ 4 delay levels 1-18, in ms.
pub const DELAY_LEVELS_MS: [i64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// One message of the request, ready to store.
#[derive(Debug)]
pub struct Planned {
    pub request: AppendRequest,
    pub queue: u32,
    pub dedup_id: Option<String>,
    /// Index of an earlier message of the same request with the same `dedup_id`:
    /// this one is not stored and repeats that one's result.
    pub repeat_of: Option<usize>,
    /// A delay message not yet due: it goes to the queue's timer journal.
    pub scheduled: bool,
}

/// Plans the whole request for `topic`; `born_ms` is the request's arrival
/// time; `round_robin` gives the queue of un-pinned messages (called at most once).
pub fn plan(
    topic: &TopicConfig,
    inputs: Vec<MessageInput>,
    transaction: Option<&TxnSettings>,
    born_ms: i64,
    max_delay_ms: i64,
    round_robin: impl FnOnce() -> u32,
) -> Result<Vec<Planned>, BrokerError> {
    check_transaction(topic, transaction, &inputs)?;
    let total: usize = inputs.iter().map(MessageInput::size).sum();
    if total > crate::validate::MAX_REQUEST_BYTES {
        return Err(BrokerError::too_large(format!(
            "the request's messages total {total} bytes, more than {}",
            crate::validate::MAX_REQUEST_BYTES
        )));
    }
    let mut shared_queue = None;
    let mut round_robin = Some(round_robin);
    let mut first_with_id = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        check_type(topic, &input).map_err(|e| at(i, e))?;
        let deliver_at_ms =
            deliver_at(&input.delay, born_ms, max_delay_ms).map_err(|e| at(i, e))?;
        let queue = match (input.queue, &input.message_group) {
            (Some(q), _) if q >= topic.queues => {
                return Err(at(
                    i,
                    BrokerError::invalid(format!(
                        "queue {q} does not exist: the topic has {} queues",
                        topic.queues
                    )),
                ));
            }
            (Some(q), _) => q,
            (None, Some(group)) => group_queue(group, topic.queues),
            (None, None) => *shared_queue.get_or_insert_with(|| match &input.dedup_id {
                // A retry of the request must reach the same queue (and so the
                // same owner and dedup window) whichever node it is sent to.
                Some(id) => group_queue(id, topic.queues),
                None => round_robin.take().map_or(0, |rr| rr()) % topic.queues.max(1),
            }),
        };
        let repeat_of = input
            .dedup_id
            .as_ref()
            .and_then(|id| first_with_id.get(id).copied());
        if let (Some(id), None) = (&input.dedup_id, repeat_of) {
            first_with_id.insert(id.clone(), i);
        }
        let mut properties = input.properties;
        if let Some(id) = &input.dedup_id {
            properties.push((DEDUP_PROPERTY.to_string(), id.clone()));
        }
        if transaction.is_some() {
            // One transaction, one queue: the first pinned one, else the shared one.
            let q = *shared_queue.get_or_insert(queue);
            if q != queue {
                return Err(at(
                    i,
                    BrokerError::invalid(format!(
                        "a transaction's messages go to one queue: queue {queue} differs from queue {q} of an earlier message"
                    )),
                ));
            }
        }
        out.push(Planned {
            request: AppendRequest {
                born_ms,
                deliver_at_ms,
                tag: input.tag,
                keys: input.keys,
                properties,
                message_group: input.message_group,
                body: input.body,
            },
            queue,
            dedup_id: input.dedup_id,
            repeat_of,
            scheduled: deliver_at_ms.is_some_and(|at| at > born_ms),
        });
    }
    if let Some(t) = transaction {
        let queue = out.first().map_or(0, |p| p.queue);
        for p in &mut out {
            p.queue = queue;
            p.scheduled = true;
        }
        let mut batch: Vec<AppendRequest> = out
            .iter_mut()
            .map(|p| std::mem::take(&mut p.request))
            .collect();
        crate::txn::records::mark_halves(&mut batch, t.check_after_ms, &t.producer_group);
        for (p, r) in out.iter_mut().zip(batch) {
            p.request = r;
        }
    }
    Ok(out)
}

/// TRANSACTION topics take only transactions (settings in range, no
/// `dedup_id`: a retried half message is resolved by check-back); other
/// topics take none.
fn check_transaction(
    topic: &TopicConfig,
    transaction: Option<&TxnSettings>,
    inputs: &[MessageInput],
) -> Result<(), BrokerError> {
    let Some(t) = transaction else {
        if topic.message_type == MessageType::Transaction {
            return Err(BrokerError::mismatch(format!(
                "topic {:?} is TRANSACTION: a produce needs `transaction` ({{producer_group, check_after_ms}})",
                topic.name
            )));
        }
        return Ok(());
    };
    if topic.message_type != MessageType::Transaction {
        return Err(BrokerError::mismatch(format!(
            "topic {:?} is {:?}: `transaction` is only accepted on TRANSACTION topics",
            topic.name, topic.message_type
        )));
    }
    crate::validate::group_name(&t.producer_group).map_err(|e| {
        BrokerError::invalid(format!("transaction.producer_group: {}", e.message()))
    })?;
    if !crate::txn::CHECK_AFTER_RANGE.contains(&t.check_after_ms) {
        return Err(BrokerError::invalid(format!(
            "transaction.check_after_ms must be {}-{}, got {}",
            crate::txn::CHECK_AFTER_RANGE.start(),
            crate::txn::CHECK_AFTER_RANGE.end(),
            t.check_after_ms
        )));
    }
    if let Some(i) = inputs.iter().position(|m| m.dedup_id.is_some()) {
        return Err(at(
            i,
            BrokerError::invalid(
                "dedup_id is not accepted on TRANSACTION topics: a half message stored twice is resolved by check-back",
            ),
        ));
    }
    Ok(())
}

/// RocketMQ 5 type rules: FIFO needs a group, only FIFO takes one; only DELAY
/// takes delay fields, and a DELAY message without one is delivered at once
/// (API.md "Produce").
fn check_type(topic: &TopicConfig, m: &MessageInput) -> Result<(), BrokerError> {
    let kind = topic.message_type;
    match (kind, &m.message_group) {
        (MessageType::Fifo, None) => {
            return Err(BrokerError::mismatch(format!(
                "topic {:?} is FIFO: every message needs a message_group",
                topic.name
            )));
        }
        (MessageType::Fifo, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(BrokerError::mismatch(format!(
                "topic {:?} is {kind:?}: message_group is only accepted on FIFO topics",
                topic.name
            )));
        }
    }
    match (kind, m.delay.is_empty()) {
        (MessageType::Delay, _) | (_, true) => Ok(()),
        (_, false) => Err(BrokerError::mismatch(format!(
            "topic {:?} is {kind:?}: delay_ms, deliver_at_ms and delay_level are only accepted on DELAY topics",
            topic.name
        ))),
    }
}

/// The delivery time asked for (exactly one of the three fields), at most
/// `max_delay_ms` after `born_ms`. A time in the past is kept as given: it is due at once.
fn deliver_at(
    delay: &DelayInput,
    born_ms: i64,
    max_delay_ms: i64,
) -> Result<Option<i64>, BrokerError> {
    let given = [
        delay.delay_ms.is_some(),
        delay.deliver_at_ms.is_some(),
        delay.delay_level.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(BrokerError::invalid(
            "give only one of delay_ms, deliver_at_ms and delay_level",
        ));
    }
    let at = if let Some(ms) = delay.delay_ms {
        born_ms.saturating_add(ms)
    } else if let Some(at) = delay.deliver_at_ms {
        at
    } else if let Some(level) = delay.delay_level {
        let ms = usize::try_from(level)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|i| DELAY_LEVELS_MS.get(i))
            .ok_or_else(|| {
                BrokerError::invalid(format!("delay_level must be 1-18, got {level}"))
            })?;
        born_ms + ms
    } else {
        return Ok(None);
    };
    if at.saturating_sub(born_ms) > max_delay_ms {
        return Err(BrokerError::invalid(format!(
            "delivery time {at} is more than max_delay_ms ({max_delay_ms} ms) ahead"
        )));
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::topics::Durability;
    use proptest::prelude::*;

    fn topic(kind: MessageType, queues: u32) -> TopicConfig {
        TopicConfig {
            name: "t".into(),
            queues,
            message_type: kind,
            retention_ms: 60_000,
            durability: Durability::Sync,
            created_ms: 0,
        }
    }

    fn msg() -> MessageInput {
        MessageInput {
            body: bytes::Bytes::from_static(b"x"),
            ..Default::default()
        }
    }

    fn code(r: Result<Vec<Planned>, BrokerError>) -> ErrorCode {
        r.unwrap_err().code()
    }

    #[test]
    fn type_rules() {
        let grouped = MessageInput {
            message_group: Some("g".into()),
            ..msg()
        };
        let delayed = MessageInput {
            delay: DelayInput {
                delay_ms: Some(5),
                ..Default::default()
            },
            ..msg()
        };
        let normal = topic(MessageType::Normal, 4);
        let fifo = topic(MessageType::Fifo, 4);
        let delay = topic(MessageType::Delay, 4);
        assert_eq!(
            code(plan(
                &fifo,
                vec![msg()],
                None,
                0,
                DEFAULT_MAX_DELAY_MS,
                || 0
            )),
            ErrorCode::MessageTypeMismatch
        );
        assert_eq!(
            code(plan(
                &normal,
                vec![grouped.clone()],
                None,
                0,
                DEFAULT_MAX_DELAY_MS,
                || 0
            )),
            ErrorCode::MessageTypeMismatch
        );
        assert_eq!(
            code(plan(
                &normal,
                vec![delayed.clone()],
                None,
                0,
                DEFAULT_MAX_DELAY_MS,
                || 0
            )),
            ErrorCode::MessageTypeMismatch
        );
        // A DELAY message without a delay is delivered at once, not scheduled.
        let now = plan(&delay, vec![msg()], None, 0, DEFAULT_MAX_DELAY_MS, || 0).unwrap();
        assert!(!now[0].scheduled && now[0].request.deliver_at_ms.is_none());
        assert_eq!(
            code(plan(
                &normal,
                vec![msg()],
                Some(&crate::txn::TxnSettings {
                    producer_group: "pg".into(),
                    check_after_ms: 6000
                }),
                0,
                DEFAULT_MAX_DELAY_MS,
                || 0
            )),
            ErrorCode::MessageTypeMismatch
        );
        assert!(plan(&fifo, vec![grouped], None, 0, DEFAULT_MAX_DELAY_MS, || 0).is_ok());
        let p = plan(&delay, vec![delayed], None, 100, DEFAULT_MAX_DELAY_MS, || 0).unwrap();
        assert_eq!(p[0].request.deliver_at_ms, Some(105));
    }

    #[test]
    fn delays() {
        let d = |delay_ms, deliver_at_ms, delay_level| DelayInput {
            delay_ms,
            deliver_at_ms,
            delay_level,
        };
        assert_eq!(
            deliver_at(&d(None, None, Some(1)), 10, DEFAULT_MAX_DELAY_MS).unwrap(),
            Some(1_010)
        );
        assert_eq!(
            deliver_at(&d(None, None, Some(18)), 0, DEFAULT_MAX_DELAY_MS).unwrap(),
            Some(7_200_000)
        );
        assert!(crate::error::is_invalid(&deliver_at(
            &d(None, None, Some(0)),
            0,
            DEFAULT_MAX_DELAY_MS
        )));
        assert!(crate::error::is_invalid(&deliver_at(
            &d(None, None, Some(19)),
            0,
            DEFAULT_MAX_DELAY_MS
        )));
        assert!(crate::error::is_invalid(&deliver_at(
            &d(Some(1), Some(2), None),
            0,
            DEFAULT_MAX_DELAY_MS
        )));
        assert!(
            deliver_at(
                &d(Some(DEFAULT_MAX_DELAY_MS), None, None),
                0,
                DEFAULT_MAX_DELAY_MS
            )
            .is_ok()
        );
        assert!(crate::error::is_invalid(&deliver_at(
            &d(Some(DEFAULT_MAX_DELAY_MS + 1), None, None),
            0,
            DEFAULT_MAX_DELAY_MS
        )));
        assert!(crate::error::is_invalid(&deliver_at(
            &d(None, Some(DEFAULT_MAX_DELAY_MS + 11), None),
            10,
            DEFAULT_MAX_DELAY_MS
        )));
        // A node configured for a year takes what the default refuses.
        assert!(
            deliver_at(
                &d(Some(DEFAULT_MAX_DELAY_MS + 1), None, None),
                0,
                MAX_MAX_DELAY_MS
            )
            .is_ok()
        );
    }

    #[test]
    fn queues_and_repeats() {
        let t = topic(MessageType::Normal, 4);
        let pinned = MessageInput {
            queue: Some(3),
            ..msg()
        };
        let with_id = MessageInput {
            dedup_id: Some("d".into()),
            ..msg()
        };
        let p = plan(
            &t,
            vec![msg(), pinned, msg(), with_id.clone(), with_id],
            None,
            0,
            DEFAULT_MAX_DELAY_MS,
            || 6,
        )
        .unwrap();
        let queues: Vec<u32> = p.iter().map(|m| m.queue).collect();
        assert_eq!(queues, vec![2, 3, 2, 2, 2]);
        assert_eq!(p[3].repeat_of, None);
        assert_eq!(p[4].repeat_of, Some(3));
        assert!(
            p[3].request
                .properties
                .contains(&(DEDUP_PROPERTY.into(), "d".into()))
        );
        let bad = MessageInput {
            queue: Some(4),
            ..msg()
        };
        assert_eq!(
            code(plan(&t, vec![bad], None, 0, DEFAULT_MAX_DELAY_MS, || 0)),
            ErrorCode::InvalidArgument
        );
    }

    proptest! {
        #[test]
        fn unpinned_messages_share_one_queue(n in 1usize..50, queues in 1u32..64, rr: u32) {
            let t = topic(MessageType::Normal, queues);
            let p = plan(&t, vec![msg(); n], None, 0, DEFAULT_MAX_DELAY_MS, || rr).unwrap();
            prop_assert!(p.iter().all(|m| m.queue == rr % queues));
        }

        #[test]
        fn fifo_groups_map_to_stable_queues(groups in proptest::collection::vec("[a-z]{1,8}", 1..20), queues in 1u32..64) {
            let t = topic(MessageType::Fifo, queues);
            let inputs: Vec<_> = groups.iter().map(|g| MessageInput { message_group: Some(g.clone()), ..msg() }).collect();
            let p = plan(&t, inputs, None, 0, DEFAULT_MAX_DELAY_MS, || 0).unwrap();
            for (m, g) in p.iter().zip(&groups) {
                prop_assert_eq!(m.queue, group_queue(g, queues));
            }
        }
    }
}
