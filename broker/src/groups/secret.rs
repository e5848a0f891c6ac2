//! The receipt-handle key: 32 random bytes in the object store
//! (`Layout::receipt_handle_key`), created once with a conditional write so
//! every node — and a restarted one — signs and verifies handles alike.
//!
//! Invariant: a node uses exactly one key per run (cached after the first
//! read), and it is the one in the bucket: when two nodes race to create it,
//! the loser reads the winner's.

use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult};

/// Length of the key, in bytes.
pub const KEY_BYTES: usize = 32;
/// Reads or creations tried before giving up (a create that loses a race is
/// followed by a read of the winner's key).
const ATTEMPTS: usize = 3;

/// The receipt-handle key: read from the object store, created there once.
pub async fn secret(state: &Broker) -> BrokerResult<&[u8]> {
    let key = state
        .groups
        .secret
        .get_or_try_init(|| load_or_create(state))
        .await?;
    Ok(key.as_slice())
}

async fn load_or_create(state: &Broker) -> BrokerResult<Vec<u8>> {
    let store = state.tier.store();
    let path = state.tier.layout().receipt_handle_key();
    for _ in 0..ATTEMPTS {
        match store.get(&path).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(store_err)?;
                if bytes.len() != KEY_BYTES {
                    return Err(BrokerError::internal(
                        "reading the receipt-handle key",
                        format!("it is {} bytes, not {KEY_BYTES}", bytes.len()),
                    ));
                }
                return Ok(bytes.to_vec());
            }
            Err(object_store::Error::NotFound { .. }) => {
                let key: [u8; KEY_BYTES] = rand::random();
                let opts = object_store::PutOptions {
                    mode: object_store::PutMode::Create,
                    ..Default::default()
                };
                match store.put_opts(&path, key.to_vec().into(), opts).await {
                    Ok(_) => return Ok(key.to_vec()),
                    // Another node (or an earlier try) created it: read theirs.
                    Err(object_store::Error::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(store_err(e)),
                }
            }
            Err(e) => return Err(store_err(e)),
        }
    }
    Err(BrokerError::unavailable(
        "could not read or create the receipt-handle key",
    ))
}

/// An object-store failure, as the retryable error a client sees.
pub fn store_err(e: object_store::Error) -> BrokerError {
    BrokerError::unavailable("the object store is unavailable; retry later").with_source(e)
}
