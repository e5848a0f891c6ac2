//! Codec tests: round trips, every flipped bit detected, truncation detected,
//! and a snapshot of the bytes of one record so the format cannot drift silently.

use super::*;
use proptest::prelude::*;

fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9._-]{{0,{max}}}")).expect("regex")
}

fn request() -> impl Strategy<Value = AppendRequest> {
    (
        any::<i64>(),
        proptest::option::of(any::<i64>()),
        proptest::option::of(ascii(20)),
        proptest::collection::vec(ascii(16), 0..4),
        proptest::collection::vec((ascii(10), any::<String>()), 0..4),
        proptest::option::of(any::<String>()),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(born_ms, deliver_at_ms, tag, keys, properties, message_group, body)| AppendRequest {
                born_ms,
                deliver_at_ms,
                tag,
                keys,
                properties,
                message_group,
                body: Bytes::from(body),
            },
        )
}

proptest! {
    #[test]
    fn round_trips(req in request(), offset: u64, store_ms: i64, id: [u8; 16]) {
        let bytes = encode(&req, offset, store_ms, MessageId(id));
        prop_assert_eq!(bytes.len(), encoded_len(&req));
        let rec = decode(&bytes).unwrap();
        prop_assert_eq!(rec.offset, offset);
        prop_assert_eq!(rec.store_ms, store_ms);
        prop_assert_eq!(rec.born_ms, req.born_ms);
        prop_assert_eq!(rec.deliver_at_ms, req.deliver_at_ms);
        prop_assert_eq!(rec.message_id, MessageId(id));
        prop_assert_eq!(&rec.tag, &req.tag);
        prop_assert_eq!(&rec.keys, &req.keys);
        prop_assert_eq!(&rec.properties, &req.properties);
        prop_assert_eq!(&rec.message_group, &req.message_group);
        prop_assert_eq!(&rec.body, &req.body);
        prop_assert_eq!(rec.encoded_len(), bytes.len());
    }

    #[test]
    fn any_flipped_bit_is_detected(req in request(), bit in any::<prop::sample::Index>()) {
        let mut bytes = encode(&req, 7, 1_700_000_000_000, MessageId([3; 16]));
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        prop_assert!(decode(&bytes).is_err(), "flip of bit {} went unnoticed", i);
    }

    #[test]
    fn any_truncation_is_detected(req in request(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&req, 7, 1, MessageId([3; 16]));
        let cut = cut.index(bytes.len());
        let err = decode(&bytes[..cut]).unwrap_err();
        prop_assert!(matches!(err, DecodeError::Truncated { .. } | DecodeError::End), "{:?}", err);
    }

    #[test]
    fn records_follow_each_other(reqs in proptest::collection::vec(request(), 1..8)) {
        let mut log = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            log.extend(encode(r, i as u64, 5, MessageId([0; 16])));
        }
        log.extend([0u8; 64]);
        let mut pos = 0;
        for (i, r) in reqs.iter().enumerate() {
            let rec = decode(&log[pos..]).unwrap();
            prop_assert_eq!(rec.offset, i as u64);
            prop_assert_eq!(&rec.body, &r.body);
            pos += rec.encoded_len();
        }
        prop_assert_eq!(decode(&log[pos..]).unwrap_err(), DecodeError::End);
    }
}

#[test]
fn record_bytes_snapshot() {
    let req = AppendRequest {
        born_ms: 1_700_000_000_000,
        deliver_at_ms: Some(1_700_000_005_000),
        tag: Some("created".into()),
        keys: vec!["order-42".into()],
        properties: vec![("region".into(), "eu".into())],
        message_group: Some("g".into()),
        body: Bytes::from_static(b"hello"),
    };
    let bytes = encode(&req, 17, 1_700_000_000_001, MessageId([0xab; 16]));
    insta_like_snapshot(
        &hex::encode(&bytes),
        "534801076d000000107305f311000000000000000168e5cf8b0100000068e5cf8b010000887be5cf8b010000abababababababababababababababab070063726561746564010067010008006f726465722d343201000600726567696f6e0200000065750500000068656c6c6f",
    );
}

/// Compares against a recorded hex image and prints the actual one on mismatch.
fn insta_like_snapshot(actual: &str, expected: &str) {
    assert_eq!(
        actual, expected,
        "record format changed; if intended, bump RECORD_VERSION and update the snapshot"
    );
}

#[test]
fn check_encodable_rejects_oversized_records() {
    let req = AppendRequest {
        body: Bytes::from(vec![0u8; MAX_RECORD_BYTES]),
        ..Default::default()
    };
    let err = check_encodable(&req).unwrap_err();
    assert!(err.contains("exceeds"), "{err}");
    let ok = AppendRequest {
        body: Bytes::from(vec![0u8; 4 * 1024 * 1024]),
        ..Default::default()
    };
    assert!(check_encodable(&ok).is_ok());
}
