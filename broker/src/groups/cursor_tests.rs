//! Cursor rules with an explicit clock: delivery, ack, invisibility and
//! backoff, dead-lettering, filters, FIFO order — and a property test that
//! random receivers, acks, nacks and timeouts never lose a message, never
//! have one in flight twice, and keep FIFO order.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn policy(max: u32) -> RedeliveryPolicy {
    RedeliveryPolicy {
        max_attempts: max,
        backoff_ms: vec![100, 200],
    }
}

fn nonces() -> impl FnMut() -> u64 {
    let mut n = 1000;
    move || {
        n += 1;
        n
    }
}

#[test]
fn forgetting_counts_as_consumed_and_frees_its_fifo_group() {
    let mut c = Cursor::at(0);
    // FIFO: 0 is in flight, 1 (same group) is held behind it.
    c.offer(0, true, Some(7), 0, 1000, 1).unwrap();
    assert_eq!(c.offer(1, true, Some(7), 0, 1000, 2), None);
    // 0 turns out lost: the group moves on to 1, and the committed offset follows.
    c.forget(0);
    assert_eq!(c.committed, 1);
    let due = c.due(0, 10, 1000, &policy(3), nonces());
    assert!(
        matches!(due[..], [Decision::Deliver { offset: 1, .. }]),
        "{due:?}"
    );
    // The next new offset itself (never offered): the cursor steps past it.
    c.forget(2);
    assert_eq!(c.next, 3);
    c.forget(1);
    assert_eq!(c.committed, 3);
}

#[test]
fn ack_moves_the_committed_offset_past_the_lowest_unacked() {
    let mut c = Cursor::at(10);
    let d0 = c.offer(10, true, None, 0, 1000, 1).unwrap();
    c.offer(11, true, None, 0, 1000, 2).unwrap();
    assert_eq!((c.committed, c.next), (10, 12));
    assert_eq!(c.ack(11, 1, 2, 5), Ok(()));
    assert_eq!(c.committed, 10);
    let Decision::Deliver {
        offset,
        attempt,
        nonce,
        ..
    } = d0
    else {
        panic!()
    };
    assert_eq!(c.ack(offset, attempt, nonce, 5), Ok(()));
    assert_eq!(c.committed, 12);
    assert_eq!(
        c.ack(offset, attempt, nonce, 5),
        Err(HandleError::Expired),
        "acked twice"
    );
}

#[test]
fn a_message_not_acked_in_time_comes_back_after_the_backoff_and_old_handles_expire() {
    let p = policy(3);
    let mut c = Cursor::at(0);
    c.offer(0, true, None, 0, 1000, 7).unwrap();
    let mut n = nonces();
    assert!(
        c.due(999, 10, 1000, &p, &mut n).is_empty(),
        "still invisible"
    );
    assert!(
        c.due(1099, 10, 1000, &p, &mut n).is_empty(),
        "backoff of attempt 1 is 100 ms"
    );
    assert_eq!(
        c.ack(0, 1, 7, 1000),
        Err(HandleError::Expired),
        "visible again: the handle is over"
    );
    let d = c.due(1100, 10, 1000, &p, &mut n);
    assert_eq!(
        d,
        vec![Decision::Deliver {
            offset: 0,
            attempt: 2,
            nonce: 1001,
            invisible_until: 2100
        }]
    );
    assert_eq!(c.inflight(1100), 1);
    // Attempt 2 ran out: backoff 200, then attempt 3; then dead-lettered.
    assert_eq!(c.due(2299, 10, 1000, &p, &mut n), vec![]);
    assert!(matches!(
        c.due(2300, 10, 1000, &p, &mut n)[..],
        [Decision::Deliver { attempt: 3, .. }]
    ));
    assert_eq!(
        c.due(3500, 10, 1000, &p, &mut n),
        vec![Decision::DeadLetter {
            offset: 0,
            attempts: 3,
            claim: 1003
        }]
    );
    // It leaves the cursor only once the dead-letter append is reported done.
    assert_eq!((c.committed, c.pending.len()), (0, 1));
    assert!(c.due(99_999, 10, 1000, &p, &mut n).is_empty(), "claimed");
    assert!(!c.dead_lettered(0, 9999), "another claim");
    assert!(c.dead_lettered(0, 1003));
    assert_eq!((c.committed, c.pending.len()), (1, 0));
}

#[test]
fn nack_and_extend_change_the_handle() {
    let p = policy(5);
    let mut c = Cursor::at(0);
    c.offer(0, true, None, 0, 1000, 7).unwrap();
    assert_eq!(c.change_invisibility(0, 1, 7, 10, 5000, 8), Ok(5010));
    assert_eq!(
        c.ack(0, 1, 7, 20),
        Err(HandleError::Expired),
        "the old handle is replaced"
    );
    assert_eq!(c.change_invisibility(0, 1, 8, 20, 0, 9), Ok(20));
    let mut n = nonces();
    assert!(c.due(119, 10, 1000, &p, &mut n).is_empty());
    assert!(matches!(
        c.due(120, 10, 1000, &p, &mut n)[..],
        [Decision::Deliver { attempt: 2, .. }]
    ));
}

#[test]
fn filtered_messages_count_as_consumed() {
    let mut c = Cursor::at(0);
    assert_eq!(c.offer(0, false, None, 0, 1000, 1), None);
    assert_eq!(c.offer(1, false, None, 0, 1000, 2), None);
    assert_eq!((c.committed, c.next), (2, 2));
}

#[test]
fn fifo_holds_later_messages_of_a_group_until_the_earlier_is_done() {
    let p = policy(2);
    let mut n = nonces();
    let mut c = Cursor::at(0);
    assert!(c.offer(0, true, Some(1), 0, 1000, 1).is_some());
    assert!(
        c.offer(1, true, Some(2), 0, 1000, 2).is_some(),
        "other groups proceed"
    );
    assert_eq!(
        c.offer(2, true, Some(1), 0, 1000, 3),
        None,
        "held behind offset 0"
    );
    assert_eq!(c.offer(3, true, Some(1), 0, 1000, 4), None);
    assert!(c.due(10, 10, 1000, &p, &mut n).is_empty());
    c.ack(0, 1, 1, 10).unwrap();
    let d = c.due(10, 10, 1000, &p, &mut n);
    assert!(
        matches!(d[..], [Decision::Deliver { offset: 2, .. }]),
        "{d:?}: only the next of the group"
    );
    assert_eq!(c.committed, 1);
}

#[test]
fn reset_forgets_deliveries() {
    let mut c = Cursor::at(0);
    c.offer(0, true, None, 0, 1000, 1);
    c.reset(500);
    assert_eq!((c.committed, c.next, c.pending.len()), (500, 500, 0));
    c.skip_to(700);
    assert_eq!((c.committed, c.next), (700, 700));
}

#[derive(Debug, Clone)]
enum Step {
    Receive(usize),
    AckSome(u8),
    NackSome(u8),
    Advance(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1usize..5).prop_map(Step::Receive),
        3 => any::<u8>().prop_map(Step::AckSome),
        1 => any::<u8>().prop_map(Step::NackSome),
        2 => (0i64..1500).prop_map(Step::Advance),
    ]
}

proptest! {
    #[test]
    fn random_receivers_lose_nothing_and_keep_fifo_order(
        groups in proptest::collection::vec(0u64..4, 1..40),
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let p = policy(3);
        let mut n = nonces();
        let mut c = Cursor::at(0);
        let mut now = 0i64;
        // Handles given out: offset -> (attempt, nonce).
        let mut handles: BTreeMap<u64, (u32, u64)> = BTreeMap::new();
        let mut done: BTreeSet<u64> = BTreeSet::new();
        let apply = |c: &mut Cursor, d: Decision, handles: &mut BTreeMap<u64, (u32, u64)>, done: &mut BTreeSet<u64>| -> Result<(), TestCaseError> {
            match d {
                Decision::Deliver { offset, attempt, nonce, .. } => {
                    // FIFO: nothing earlier of the same group is still open.
                    let g = groups[offset as usize];
                    for earlier in 0..offset {
                        if groups[earlier as usize] == g {
                            prop_assert!(done.contains(&earlier), "offset {} of group {} delivered before {}", offset, g, earlier);
                        }
                    }
                    handles.insert(offset, (attempt, nonce));
                }
                Decision::DeadLetter { offset, claim, .. } => {
                    handles.remove(&offset);
                    prop_assert!(c.dead_lettered(offset, claim));
                    prop_assert!(done.insert(offset));
                }
            }
            Ok(())
        };
        for s in steps {
            match s {
                Step::Receive(max) => {
                    for d in c.due(now, max, 1000, &p, &mut n) {
                        apply(&mut c, d, &mut handles, &mut done)?;
                    }
                    while c.next < groups.len() as u64 && c.pending.len() + c.held.len() < 8 {
                        let o = c.next;
                        let nonce = n();
                        if let Some(d) = c.offer(o, true, Some(groups[o as usize]), now, 1000, nonce) {
                            apply(&mut c, d, &mut handles, &mut done)?;
                        }
                    }
                }
                Step::AckSome(mask) => {
                    for (i, (o, (a, nonce))) in handles.clone().into_iter().enumerate() {
                        if mask & (1 << (i % 8)) != 0 && c.ack(o, a, nonce, now).is_ok() {
                            handles.remove(&o);
                            prop_assert!(done.insert(o), "acked twice: {}", o);
                        }
                    }
                }
                Step::NackSome(mask) => {
                    for (i, (o, (a, nonce))) in handles.clone().into_iter().enumerate() {
                        if mask & (1 << (i % 8)) != 0 && let Ok(_) = c.change_invisibility(o, a, nonce, now, 0, n()) {
                            handles.remove(&o);
                        }
                    }
                }
                Step::Advance(ms) => now += ms,
            }
            // Never more than one delivery of a message in flight.
            prop_assert!(c.pending.keys().all(|o| !done.contains(o)));
            prop_assert!(c.committed <= c.next);
        }
        // Drain: keep receiving and acking until everything is acked or dead-lettered.
        for _ in 0..200 {
            now += 10_000;
            for d in c.due(now, 100, 1000, &p, &mut n) {
                apply(&mut c, d, &mut handles, &mut done)?;
            }
            while c.next < groups.len() as u64 {
                let o = c.next;
                let nonce = n();
                if let Some(d) = c.offer(o, true, Some(groups[o as usize]), now, 1000, nonce) {
                    apply(&mut c, d, &mut handles, &mut done)?;
                }
            }
            for (o, (a, nonce)) in handles.clone() {
                if c.ack(o, a, nonce, now).is_ok() {
                    handles.remove(&o);
                    done.insert(o);
                }
            }
            if done.len() == groups.len() {
                break;
            }
        }
        prop_assert_eq!(done.len(), groups.len(), "lost messages");
        prop_assert_eq!(c.committed, groups.len() as u64);
    }
}

#[test]
fn a_failed_dead_letter_append_keeps_the_message_deliverable() {
    let p = policy(1);
    let mut c = Cursor::at(0);
    let mut n = nonces();
    c.offer(0, true, Some(5), 0, 1000, 7).unwrap();
    assert_eq!(c.offer(1, true, Some(5), 0, 1000, 8), None, "held behind 0");
    let [
        Decision::DeadLetter {
            offset: 0, claim, ..
        },
    ] = c.due(1100, 10, 1000, &p, &mut n)[..]
    else {
        panic!("not dead-lettered")
    };
    // While the append runs, its FIFO group stays blocked and nothing moves.
    assert!(c.due(1100, 10, 1000, &p, &mut n).is_empty());
    assert_eq!(
        c.next_retry_at(&p),
        None,
        "a claimed message is not a retry"
    );
    c.release_dead_letter(0, claim, 2000);
    assert_eq!(c.committed, 0);
    assert_eq!(c.next_retry_at(&p), Some(2100));
    let again = c.due(2100, 10, 1000, &p, &mut n);
    let [
        Decision::DeadLetter {
            offset: 0, claim, ..
        },
    ] = again[..]
    else {
        panic!("{again:?}")
    };
    assert!(c.dead_lettered(0, claim));
    assert!(matches!(
        c.due(2100, 10, 1000, &p, &mut n)[..],
        [Decision::Deliver { offset: 1, .. }]
    ));
}

#[test]
fn one_receiver_reads_new_offsets_at_a_time() {
    let mut c = Cursor::at(4);
    assert_eq!(c.claim_read(1), Some(4));
    assert_eq!(c.claim_read(2), None, "taken");
    assert!(c.holds_read(1, 4));
    c.offer(4, true, None, 0, 1000, 9).unwrap();
    assert!(!c.holds_read(1, 4), "next moved");
    assert!(!c.release_read(2), "not its claim");
    assert!(c.release_read(1), "the turned-away receiver is to be woken");
    assert_eq!(c.claim_read(2), Some(5));
    // A reset drops every claim: the old reader's records are not offered.
    c.reset(0);
    assert!(!c.holds_read(2, 5));
    assert!(!c.release_read(2));
    assert_eq!(c.claim_read(3), Some(0));
}

#[test]
fn give_back_makes_a_delivery_due_now_without_its_backoff() {
    let policy = RedeliveryPolicy {
        max_attempts: 16,
        backoff_ms: vec![10_000],
    };
    let mut c = Cursor::at(0);
    let first = c.offer(0, true, None, 0, 30_000, 7);
    assert!(
        matches!(first, Some(Decision::Deliver { attempt: 1, .. })),
        "{first:?}"
    );
    assert!(c.due(5, 10, 30_000, &policy, || 8).is_empty(), "invisible");
    // An old nonce cannot give it back; the right one can, and the message is due at once.
    assert_eq!(
        c.give_back(0, 1, 99, 5, 10_000, 9),
        Err(HandleError::Expired)
    );
    assert_eq!(c.give_back(0, 1, 7, 5, 10_000, 9), Ok(()));
    let again = c.due(5, 10, 30_000, &policy, || 10);
    assert!(
        matches!(
            again.as_slice(),
            [Decision::Deliver {
                offset: 0,
                attempt: 2,
                ..
            }]
        ),
        "{again:?}"
    );
}

#[test]
fn retrying_counts_deliveries_whose_invisibility_ran_out() {
    let mut c = Cursor::at(0);
    for o in 0..4 {
        // 1 is invisible for 500 ms, the others for 1000.
        let invisible = if o == 1 { 500 } else { 1000 };
        c.offer(o, true, None, 0, invisible, o + 1).unwrap();
    }
    assert_eq!((c.inflight(0), c.retrying(0)), (4, 0));
    // 0 is nacked, 1 times out, 2 is acked, 3 stays in flight.
    c.change_invisibility(0, 1, 1, 10, 0, 50).unwrap();
    c.ack(2, 1, 3, 10).unwrap();
    assert_eq!((c.inflight(10), c.retrying(10)), (2, 1));
    assert_eq!((c.inflight(600), c.retrying(600)), (1, 2));
    // Attempts used up: 0, 1 and 3 are dead-lettered when due; while their
    // move is under way they are no longer waiting for a retry.
    let due = c.due(2000, 10, 1000, &policy(1), nonces());
    assert_eq!(due.len(), 3, "{due:?}");
    assert_eq!(c.retrying(2000), 0);
    // A redelivery is in flight again, not retrying.
    let mut c = Cursor::at(0);
    c.offer(0, true, None, 0, 1000, 1).unwrap();
    c.due(5000, 10, 1000, &policy(3), nonces());
    assert_eq!((c.inflight(5000), c.retrying(5000)), (1, 0));
}
