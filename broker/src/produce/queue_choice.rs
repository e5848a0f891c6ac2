//! Which queue a produced message goes to.
//!
//! Order of precedence: an explicit `queue`; else, on FIFO topics, a stable
//! hash (FNV-1a, never std's per-process randomized hasher) of
//! `message_group`, so one group always lands in one queue and keeps its
//! order across restarts and nodes; else one queue per request, shared by all
//! its un-pinned messages so a typical batch is one atomic append: the hash
//! of the first un-pinned message's `dedup_id` when it has one (so a retry,
//! sent to any node of a cluster, reaches the queue — and the owner and dedup
//! window — of the first attempt), else the next round-robin queue.

/// 64-bit FNV-1a over the concatenation of `parts` (the one in `shale_hot`,
/// which the key index uses too).
pub use shale_hot::fnv1a;

/// The queue of a FIFO `message_group` on a topic with `queues` queues.
pub fn group_queue(group: &str, queues: u32) -> u32 {
    debug_assert!(queues > 0);
    (fnv1a(&[group.as_bytes()]) % u64::from(queues.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fnv_known_vectors() {
        assert_eq!(fnv1a(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&[b"foo", b"bar"]), fnv1a(&[b"foobar"]));
    }

    proptest! {
        #[test]
        fn group_queue_is_stable_and_in_range(group in ".{1,64}", queues in 1u32..=1024) {
            let q = group_queue(&group, queues);
            prop_assert!(q < queues);
            prop_assert_eq!(q, group_queue(&group, queues));
        }
    }
}
