//! When and how long the client waits before sending a request again.
//!
//! A 429 `THROTTLED` from Shale is answered by the auth layer before any work
//! is done, so it is always safe to send again. A 503 `UNAVAILABLE` usually
//! means the same (a queue moving between nodes, a node draining, the object
//! store down before anything was written), with one exception: a produce at
//! durability `OBJECT` whose messages reached the node's hot tier but not the
//! object store answers 503 too, and so may a produce forwarded to a queue's
//! owner when the forward failed after sending. Sending such a produce again
//! may store its messages twice, unless every message has a `dedup_id` (the
//! node then stores only what is missing). Hence the three
//! [`RetryClass`]es; see the crate documentation for which call has which.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bounds of the retries of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Sends of one request at most, the first included (1 = no retry).
    pub max_attempts: u32,
    /// No retry starts later than this after the first send.
    pub max_elapsed: Duration,
    /// Wait before the first retry; doubled after each one (plus jitter).
    pub initial_backoff: Duration,
    /// Ceiling of the doubling. A `Retry-After` longer than this is still
    /// honoured, within `max_elapsed`.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            max_elapsed: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `retry` (1 for the first), at least
    /// `retry_after`, with up to 50% of jitter taken off the doubling.
    pub(crate) fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.max_backoff);
        let jittered = doubled.mul_f64(0.5 + jitter() / 2.0);
        jittered.max(retry_after.unwrap_or_default())
    }
}

/// A number in [0, 1) that differs from call to call; good enough to spread
/// retries of several clients (no cryptographic need).
fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos.wrapping_mul(2_654_435_761) % 1_000_000) / 1_000_000.0
}

/// What may be retried for a request, by what sending it twice does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// Reads: retried on 429, 503 and any transport failure.
    Safe,
    /// Writes whose repetition has the effect of one (create with the same
    /// config, ack, commit, reset to a position, produce with dedup ids):
    /// retried on 429, 503 and failures to connect.
    Idempotent,
    /// Writes that a 503 may have half applied (produce without dedup ids):
    /// retried only on 429 and failures to connect, when nothing reached the node.
    Once,
}

impl RetryClass {
    /// Whether an answer with `status` may be retried.
    pub(crate) fn retries_status(self, status: u16) -> bool {
        match status {
            429 => true,
            503 => self != RetryClass::Once,
            _ => false,
        }
    }

    /// Whether a transport failure may be retried. A TLS failure (an
    /// untrusted certificate: rustls reports it as invalid data) never is.
    pub(crate) fn retries_transport(self, error: &reqwest::Error) -> bool {
        if is_invalid_data(error) {
            return false;
        }
        match self {
            RetryClass::Safe => !error.is_builder() && !error.is_decode(),
            RetryClass::Idempotent | RetryClass::Once => error.is_connect(),
        }
    }
}

/// Whether an `io::Error` of kind `InvalidData` is among the causes (also
/// inside another `io::Error`, whose `source` skips its own inner error).
fn is_invalid_data(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        let Some(io) = current.downcast_ref::<std::io::Error>() else {
            cause = current.source();
            continue;
        };
        if io.kind() == std::io::ErrorKind::InvalidData {
            return true;
        }
        cause = match io.get_ref() {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    false
}

/// `Retry-After` in seconds (the form Shale sends; HTTP dates are ignored).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling_and_honours_retry_after() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for (retry, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let wait = policy.backoff(retry, None);
            assert!(
                wait <= Duration::from_millis(full) && wait >= Duration::from_millis(full / 2),
                "retry {retry}: {wait:?}"
            );
        }
        let wait = policy.backoff(1, Some(Duration::from_secs(3)));
        assert_eq!(wait, Duration::from_secs(3));
    }

    #[test]
    fn which_statuses_are_retried() {
        for class in [RetryClass::Safe, RetryClass::Idempotent, RetryClass::Once] {
            assert!(class.retries_status(429), "{class:?}");
            for status in [400, 404, 409, 413, 416, 500, 507] {
                assert!(!class.retries_status(status), "{class:?} {status}");
            }
        }
        assert!(RetryClass::Safe.retries_status(503));
        assert!(RetryClass::Idempotent.retries_status(503));
        assert!(!RetryClass::Once.retries_status(503));
    }

    #[test]
    fn tls_failures_are_invalid_data_even_when_wrapped() {
        use std::io::{Error, ErrorKind};
        let tls = Error::new(ErrorKind::InvalidData, "invalid peer certificate");
        let wrapped = Error::other(tls);
        assert!(is_invalid_data(&wrapped));
        assert!(!is_invalid_data(&Error::new(
            ErrorKind::ConnectionRefused,
            "refused"
        )));
        assert!(!is_invalid_data(&Error::other(Error::new(
            ErrorKind::TimedOut,
            "slow"
        ))));
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
