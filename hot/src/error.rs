//! Errors of the hot tier. Each variant says whether the caller may retry and
//! keeps its source; the gateway maps them to the API's error codes in one place.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = HotError> = std::result::Result<T, E>;

/// What can go wrong in the hot tier.
#[derive(Debug, thiserror::Error)]
pub enum HotError {
    /// The local disk is full (ENOSPC/EDQUOT/EFBIG). Nothing of the failed
    /// append was stored; the queue stays writable once space returns.
    #[error("local disk full while {context}")]
    InsufficientStorage {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O failure.
    #[error("I/O error while {context} ({path})")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes failed their checksum or framing check. Never returned as data.
    #[error("corrupt record in {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The offset is outside `[min_offset, max_offset]` of the queue.
    #[error("offset {offset} is out of range [{min}, {max}]")]
    OffsetOutOfRange { offset: u64, min: u64, max: u64 },
    /// A record larger than the codec allows.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge { size: usize, limit: usize },
    /// A field does not fit the record format (too many keys, too long a tag...).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The queue was removed (its topic deleted) while in use.
    #[error("queue {0} was removed")]
    Removed(String),
}

impl HotError {
    /// Builds an I/O error, classifying "disk full" errors as [`HotError::InsufficientStorage`].
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        let path = path.into();
        if is_disk_full(&source) {
            return HotError::InsufficientStorage {
                context: format!("{context} ({})", path.display()),
                source,
            };
        }
        HotError::Io {
            context,
            path,
            source,
        }
    }

    /// True when retrying later (after space is freed) may succeed.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, HotError::InsufficientStorage { .. })
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
    ) || e.kind() == std::io::ErrorKind::StorageFull
}
