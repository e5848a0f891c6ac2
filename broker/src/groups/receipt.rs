//! Receipt handles: opaque, tamper-proof names of one delivery.
//!
//! `base64url(payload) "." base64url(HMAC-SHA256(secret, payload)[..16])`,
//! payload = `v1 \n group \n topic \n queue \n offset \n attempt \n nonce \n consumer`.
//! The secret (32 random bytes) lives in the object store
//! (`{prefix}/secrets/receipt-handle-key`), created once with a conditional
//! write, so every node — and a restarted one — verifies handles the same way.
//! A handle that fails its MAC, does not parse, or names another group or
//! topic is INVALID_RECEIPT_HANDLE; one whose delivery is over is
//! RECEIPT_HANDLE_EXPIRED (decided by the cursor).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the HMAC-SHA256 tag a handle keeps (truncated: 128 bits).
const MAC_BYTES: usize = 16;
/// Longest handle accepted, in bytes: far above any real one (names are
/// bounded), low enough that a forged one costs nothing to refuse.
const MAX_HANDLE_BYTES: usize = 2048;

/// What a handle names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub group: String,
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
    pub attempt: u32,
    pub nonce: u64,
    pub consumer: String,
}

fn mac(secret: &[u8], payload: &[u8]) -> [u8; MAC_BYTES] {
    // HMAC accepts keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(payload);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(&full[..MAC_BYTES]);
    out
}

impl Receipt {
    /// The handle of this delivery.
    pub fn encode(&self, secret: &[u8]) -> String {
        let payload = format!(
            "v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.group,
            self.topic,
            self.queue,
            self.offset,
            self.attempt,
            self.nonce,
            self.consumer
        );
        let tag = mac(secret, payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Checks the MAC and parses a handle; `None` for anything forged or malformed.
    pub fn decode(handle: &str, secret: &[u8]) -> Option<Receipt> {
        if handle.len() > MAX_HANDLE_BYTES {
            return None;
        }
        let (payload_b64, tag_b64) = handle.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag_b64).ok()?;
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
        m.update(&payload);
        // Constant-time comparison of the truncated tag.
        m.verify_truncated_left(&tag).ok()?;
        if tag.len() != MAC_BYTES {
            return None;
        }
        let text = String::from_utf8(payload).ok()?;
        let mut parts = text.split('\n');
        if parts.next()? != "v1" {
            return None;
        }
        let r = Receipt {
            group: parts.next()?.to_string(),
            topic: parts.next()?.to_string(),
            queue: parts.next()?.parse().ok()?,
            offset: parts.next()?.parse().ok()?,
            attempt: parts.next()?.parse().ok()?,
            nonce: parts.next()?.parse().ok()?,
            consumer: parts.next()?.to_string(),
        };
        parts.next().is_none().then_some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn receipt() -> Receipt {
        Receipt {
            group: "g".into(),
            topic: "%DLQ%x".into(),
            queue: 3,
            offset: 99,
            attempt: 2,
            nonce: 7,
            consumer: "c1".into(),
        }
    }

    #[test]
    fn round_trips_and_rejects_other_secrets() {
        let h = receipt().encode(b"secret-1");
        assert_eq!(Receipt::decode(&h, b"secret-1"), Some(receipt()));
        assert_eq!(Receipt::decode(&h, b"secret-2"), None);
        assert_eq!(Receipt::decode("garbage", b"secret-1"), None);
        assert_eq!(Receipt::decode("", b"secret-1"), None);
    }

    proptest! {
        #[test]
        fn any_change_to_a_handle_is_detected(pos in any::<prop::sample::Index>(), c in any::<char>()) {
            let h = receipt().encode(b"k");
            let mut chars: Vec<char> = h.chars().collect();
            let i = pos.index(chars.len());
            prop_assume!(chars[i] != c);
            chars[i] = c;
            let forged: String = chars.into_iter().collect();
            // Base64 has a few spare bits: a change may decode to the same bytes, which is the same handle.
            if let Some(r) = Receipt::decode(&forged, b"k") {
                prop_assert_eq!(r, receipt());
            }
        }
    }
}
