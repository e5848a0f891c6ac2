//! Placement: which live node should own each queue.
//!
//! Rendezvous (highest-random-weight) hashing: every node scores every queue
//! with a hash of (node, topic, queue) and the highest score wins. Every node
//! computes the same answer from the same membership, with no coordination;
//! queues spread evenly, and when a node joins or leaves only the queues it
//! wins or held move (about 1/n of them), never a reshuffle of the others.

use shale_hot::fnv1a;

/// The score of `node` for queue `topic/queue` (well mixed, so close names
/// and numbers still spread).
fn score(node: &str, topic: &str, queue: u32) -> u64 {
    let h = fnv1a(&[
        node.as_bytes(),
        b"\0",
        topic.as_bytes(),
        b"\0",
        &queue.to_le_bytes(),
    ]);
    mix(h)
}

/// SplitMix64's finaliser: spreads the bits of a weak hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The node among `members` that should own `topic/queue` (`None` without members).
pub fn owner_of<'a>(members: &'a [String], topic: &str, queue: u32) -> Option<&'a str> {
    members
        .iter()
        .max_by_key(|m| (score(m, topic, queue), m.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn spreads_evenly() {
        let members = nodes(3);
        let mut counts = std::collections::HashMap::new();
        for q in 0..3000 {
            *counts
                .entry(owner_of(&members, "orders", q).unwrap())
                .or_insert(0) += 1;
        }
        for (node, n) in counts {
            assert!((850..=1150).contains(&n), "{node} owns {n} of 3000");
        }
    }

    #[test]
    fn a_join_moves_only_queues_to_the_new_node_and_a_leave_only_the_leavers() {
        let three = nodes(3);
        let four = nodes(4);
        let mut moved = 0;
        for q in 0..2000 {
            let before = owner_of(&three, "t", q).unwrap();
            let after = owner_of(&four, "t", q).unwrap();
            if before != after {
                assert_eq!(after, "node-3", "queue {q} moved between old nodes");
                moved += 1;
            }
        }
        assert!((350..=650).contains(&moved), "{moved} of 2000 moved");
        // Leaving is the same in reverse: only node-3's queues move.
        for q in 0..2000 {
            if owner_of(&four, "t", q).unwrap() != "node-3" {
                assert_eq!(owner_of(&four, "t", q), owner_of(&three, "t", q));
            }
        }
    }

    #[test]
    fn every_node_agrees_whatever_the_member_order() {
        let mut members = nodes(5);
        let first: Vec<_> = (0..100)
            .map(|q| owner_of(&members, "x", q).unwrap().to_string())
            .collect();
        members.reverse();
        let second: Vec<_> = (0..100)
            .map(|q| owner_of(&members, "x", q).unwrap().to_string())
            .collect();
        assert_eq!(first, second);
        assert_eq!(owner_of(&[], "x", 0), None);
    }
}
