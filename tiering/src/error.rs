//! Errors of the tiering layer, in kinds that say what a caller may do:
//! - a *store failure* ([`TieringError::is_store_failure`]): the object store
//!   is down, slow or contended; the same call may succeed later;
//! - *fenced* ([`TieringError::is_fenced`]): another writer owns the queue
//!   now; retrying cannot help, this writer must stop (it is not an outage);
//! - *lost* ([`TieringError::is_lost`]): the message is gone for good;
//! - anything else is bad data or configuration.

/// Result alias of this crate.
pub type Result<T, E = TieringError> = std::result::Result<T, E>;

/// What can go wrong in the tiering layer.
#[derive(Debug, thiserror::Error)]
pub enum TieringError {
    /// A newer owner (higher epoch) has taken the queue; stop writing it.
    #[error("queue {queue} is owned by epoch {current}, this writer holds epoch {ours}")]
    Fenced {
        queue: String,
        ours: u64,
        current: u64,
    },
    /// The object store failed (after retries).
    #[error("object store error while {context}")]
    Store {
        context: String,
        #[source]
        source: object_store::Error,
    },
    /// An object exists but is not what we wrote (bad JSON, unknown format version).
    #[error("object {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
    /// A configuration value (object-store URL, ...) is wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An error shared by every caller that waited on the same cache fill.
    #[error(transparent)]
    Shared(std::sync::Arc<TieringError>),
    /// The message at `offset` was damaged on the node's disk before it was
    /// uploaded; its segment went up with a marker in its place.
    #[error("message {offset} of {queue} was lost to damage on local disk before upload: {reason}")]
    Lost {
        queue: String,
        offset: u64,
        reason: String,
    },
    /// This node has not taken the queue (or has let it go): it must not write it.
    #[error("this node does not own queue {queue}")]
    NotOwned { queue: String },
    /// A manifest change kept losing compare-and-swap races.
    #[error("gave up updating {path} after {attempts} compare-and-swap conflicts")]
    Contended { path: String, attempts: u32 },
}

impl TieringError {
    /// True when the object store itself failed (down, slow, refusing): a
    /// retry later may succeed. False for bad data or configuration, and for
    /// [`TieringError::Fenced`] (see [`TieringError::is_fenced`]).
    pub fn is_store_failure(&self) -> bool {
        match self {
            TieringError::Store { .. } | TieringError::Contended { .. } => true,
            TieringError::Shared(inner) => inner.is_store_failure(),
            TieringError::Fenced { .. }
            | TieringError::NotOwned { .. }
            | TieringError::Invalid { .. }
            | TieringError::Config(_)
            | TieringError::Lost { .. } => false,
        }
    }

    /// True when a newer owner has taken the queue (or the group's
    /// checkpoint): this writer must stop; no retry of the same call helps.
    pub fn is_fenced(&self) -> bool {
        match self {
            TieringError::Fenced { .. } | TieringError::NotOwned { .. } => true,
            TieringError::Shared(inner) => inner.is_fenced(),
            _ => false,
        }
    }

    /// True when the message asked for is gone for good (a `shale.lost`
    /// marker): no retry will return it.
    pub fn is_lost(&self) -> bool {
        match self {
            TieringError::Lost { .. } => true,
            TieringError::Shared(inner) => inner.is_lost(),
            _ => false,
        }
    }

    pub(crate) fn store(context: impl Into<String>, source: object_store::Error) -> Self {
        TieringError::Store {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn fenced() -> TieringError {
        TieringError::Fenced {
            queue: "t/0".into(),
            ours: 1,
            current: 2,
        }
    }

    fn store_failure() -> TieringError {
        TieringError::store(
            "putting",
            object_store::Error::Generic {
                store: "test",
                source: "down".into(),
            },
        )
    }

    #[test]
    fn fenced_is_its_own_kind_not_a_store_failure() {
        for e in [fenced(), TieringError::Shared(Arc::new(fenced()))] {
            assert!(e.is_fenced(), "{e:?}");
            assert!(!e.is_store_failure(), "{e:?}");
            assert!(!e.is_lost(), "{e:?}");
        }
    }

    #[test]
    fn store_failures_are_not_fenced() {
        let contended = TieringError::Contended {
            path: "m".into(),
            attempts: 3,
        };
        for e in [
            store_failure(),
            contended,
            TieringError::Shared(Arc::new(store_failure())),
        ] {
            assert!(e.is_store_failure(), "{e:?}");
            assert!(!e.is_fenced(), "{e:?}");
        }
        let invalid = TieringError::Invalid {
            path: "p".into(),
            reason: "r".into(),
        };
        assert!(!invalid.is_store_failure() && !invalid.is_fenced());
    }
}
