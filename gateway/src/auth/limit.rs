//! Per-principal request-rate limits (optional, off unless a token entry
//! sets `rate_per_second`).
//!
//! One governor keyed limiter (GCRA, no background task) per distinct
//! quota, keyed by principal, so all tokens of a principal share one budget.
//! A reload keeps the limiters of quotas that did not change (a principal
//! mid-burst is not handed a fresh budget by an unrelated edit). Limits are
//! per node: behind a load balancer over N nodes a principal may reach N
//! times its rate, and a request forwarded to its queue's node is counted
//! by both nodes.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use parking_lot::RwLock;

use super::policy::{Policy, RateLimit};

type Limiter = DefaultKeyedRateLimiter<String>;

/// The limiters of the current policy.
#[derive(Debug, Default)]
pub struct Limits {
    by_quota: RwLock<HashMap<RateLimit, Arc<Limiter>>>,
    by_principal: RwLock<HashMap<String, Arc<Limiter>>>,
}

impl Limits {
    /// Takes the limits of `policy`, keeping the state of unchanged quotas.
    pub fn update(&self, policy: &Policy) {
        let mut by_quota = self.by_quota.write();
        let old = std::mem::take(&mut *by_quota);
        let mut by_principal = HashMap::new();
        for (principal, limit) in &policy.limits {
            let limiter = by_quota
                .entry(*limit)
                .or_insert_with(|| {
                    old.get(limit)
                        .cloned()
                        .unwrap_or_else(|| new_limiter(*limit))
                })
                .clone();
            by_principal.insert(principal.clone(), limiter);
        }
        *self.by_principal.write() = by_principal;
    }

    /// `Err(wait)` when `principal` is over its rate: how long until one
    /// more request would be allowed.
    pub fn check(&self, principal: &str) -> Result<(), Duration> {
        let Some(limiter) = self.by_principal.read().get(principal).cloned() else {
            return Ok(());
        };
        let key = principal.to_string();
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }
}

fn new_limiter(limit: RateLimit) -> Arc<Limiter> {
    let one = NonZeroU32::MIN;
    let quota = Quota::per_second(NonZeroU32::new(limit.per_second).unwrap_or(one))
        .allow_burst(NonZeroU32::new(limit.burst).unwrap_or(one));
    Arc::new(Limiter::keyed(quota))
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}
