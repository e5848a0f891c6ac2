//! 64-bit FNV-1a: the one stable hash of the workspace.
//!
//! Invariant: the result depends only on the bytes, never on the build, the
//! platform or the process (unlike std's randomized hasher), because it is
//! persisted and shared: the hot tier's key index (`{base:020}.keys`) stores
//! these hashes on disk, and the gateway picks a FIFO `message_group`'s
//! queue with it, so that a group keeps its queue across restarts and nodes.
//! Changing a single output would orphan stored key entries and move groups
//! between queues: the tests pin literal values.

/// 64-bit FNV-1a over the concatenation of `parts` (so `[b"foo", b"bar"]`
/// hashes like `[b"foobar"]`, and no parts like one empty part).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET_BASIS;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A verbatim copy of `gateway/src/routes/produce/queue_choice.rs`'s
    /// `fnv1a`, which this function replaces: queue choice must not change.
    fn gateway_fnv1a(parts: &[&[u8]]) -> u64 {
        const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET_BASIS;
        for part in parts {
            for &b in *part {
                h ^= u64::from(b);
                h = h.wrapping_mul(PRIME);
            }
        }
        h
    }

    #[test]
    fn known_values() {
        let cases: [(&[&[u8]], u64); 8] = [
            (&[], 0xcbf2_9ce4_8422_2325),
            (&[b""], 0xcbf2_9ce4_8422_2325),
            (&[b"a"], 0xaf63_dc4c_8601_ec8c),
            (&[b"foo", b"bar"], 0x8594_4171_f739_67e8),
            (&[b"foobar"], 0x8594_4171_f739_67e8),
            (&[b"orders-eu"], 0x9503_84f6_45c4_8975),
            (&["grüße".as_bytes()], 0x5862_e9cb_86cd_3d18),
            (&[b"\0property:shale.dedup_id"], 0xa4b4_c436_7462_1ae9),
        ];
        for (parts, want) in cases {
            assert_eq!(fnv1a(parts), want, "{parts:?}");
            assert_eq!(gateway_fnv1a(parts), want, "{parts:?}");
        }
    }

    proptest! {
        #[test]
        fn matches_the_gateway_implementation(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5)
        ) {
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(fnv1a(&parts), gateway_fnv1a(&parts));
            prop_assert_eq!(fnv1a(&parts), fnv1a(&[parts.concat().as_slice()]));
        }
    }
}
