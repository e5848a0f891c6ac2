//! Recent consume (ack) rates of each cursor, for the catch-up estimate of
//! a group's offsets (`consume_rate_per_s`, `catch_up_ms`).
//!
//! Each cursor key has twelve 5-second buckets of successful acks, kept in
//! memory on the node that serves the queue (acks are applied there), so a
//! rate is that node's view: it starts empty after a restart or a move.
//!
//! Definition: the rate is the acks counted in the buckets of the last
//! minute (the current, partial bucket and the eleven before it: 55-60 s),
//! divided by the time they cover — that span, or the time since the first
//! ack this node recorded for the cursor when that is shorter (at least one
//! second, so a burst just now does not read as a huge rate). No ack in the
//! last minute: no rate (`None`), never a made-up 0.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::CursorKey;

/// Width of one bucket.
pub const BUCKET_MS: i64 = 5_000;
/// Buckets kept (the window is `BUCKETS * BUCKET_MS`).
pub const BUCKETS: usize = 12;
/// Shortest span a rate is computed over.
const MIN_SPAN_MS: i64 = 1_000;

/// Ack counts of one cursor: `(bucket start, acks)` in a ring.
#[derive(Debug, Clone)]
struct Window {
    first_ms: i64,
    buckets: [(i64, u64); BUCKETS],
}

impl Window {
    fn new(now: i64) -> Self {
        Window {
            first_ms: now,
            buckets: [(i64::MIN, 0); BUCKETS],
        }
    }

    fn slot(now: i64) -> (usize, i64) {
        let start = now - now.rem_euclid(BUCKET_MS);
        let index =
            usize::try_from(start.div_euclid(BUCKET_MS).rem_euclid(BUCKETS as i64)).unwrap_or(0);
        (index, start)
    }

    fn add(&mut self, now: i64, n: u64) {
        let (i, start) = Self::slot(now);
        if self.buckets[i].0 != start {
            self.buckets[i] = (start, 0);
        }
        self.buckets[i].1 += n;
    }

    fn rate(&self, now: i64) -> Option<f64> {
        let (_, current) = Self::slot(now);
        let oldest = current - BUCKET_MS * (BUCKETS as i64 - 1);
        let acks: u64 = self
            .buckets
            .iter()
            .filter(|(start, _)| *start >= oldest && *start <= current)
            .map(|(_, n)| n)
            .sum();
        if acks == 0 {
            return None;
        }
        let span = (now - oldest).min(now - self.first_ms).max(MIN_SPAN_MS);
        Some(acks as f64 * 1000.0 / span as f64)
    }
}

/// The ack windows of every cursor this node applied acks for.
#[derive(Debug, Default)]
pub struct AckRates {
    windows: Mutex<HashMap<CursorKey, Window>>,
}

impl AckRates {
    /// Counts `n` successful acks of `key` at `now`.
    pub fn record(&self, key: &CursorKey, n: u64, now: i64) {
        if n == 0 {
            return;
        }
        let mut windows = self.windows.lock();
        windows
            .entry(key.clone())
            .or_insert_with(|| Window::new(now))
            .add(now, n);
    }

    /// Acks per second of `key` over the last minute; `None` without any.
    pub fn rate(&self, key: &CursorKey, now: i64) -> Option<f64> {
        self.windows.lock().get(key)?.rate(now)
    }

    /// Forgets the windows of `topic` (deleted).
    pub fn forget_topic(&self, topic: &str) {
        self.windows.lock().retain(|k, _| k.topic != topic);
    }
}

/// How long `lag` messages take at `rate_per_s` acks a second, in ms
/// (rounded up): 0 with no lag, `None` with lag but no rate. New messages
/// arriving meanwhile are not counted: it is the time to drain what is
/// there now at the recent pace.
pub fn catch_up_ms(lag: u64, rate_per_s: Option<f64>) -> Option<u64> {
    if lag == 0 {
        return Some(0);
    }
    let rate = rate_per_s.filter(|r| *r > 0.0)?;
    let ms = (lag as f64 * 1000.0 / rate).ceil();
    Some(if ms >= u64::MAX as f64 {
        u64::MAX
    } else {
        ms as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::new("g", "t", 0, "")
    }

    #[test]
    fn no_acks_no_rate() {
        let r = AckRates::default();
        assert_eq!(r.rate(&key(), 1_000_000), None);
        r.record(&key(), 0, 1_000_000);
        assert_eq!(r.rate(&key(), 1_000_000), None);
    }

    #[test]
    fn a_steady_pace_reads_as_itself() {
        let r = AckRates::default();
        // 10 acks a second for two minutes.
        let start = 1_000_000;
        for s in 0..120 {
            r.record(&key(), 10, start + s * 1000);
        }
        let rate = r.rate(&key(), start + 119_500).unwrap();
        assert!((rate - 10.0).abs() < 0.5, "{rate}");
    }

    #[test]
    fn a_young_window_is_divided_by_its_age_not_the_minute() {
        let r = AckRates::default();
        r.record(&key(), 20, 1_000_000);
        r.record(&key(), 20, 1_004_000);
        // 40 acks over 4 s, not over 60 s.
        let rate = r.rate(&key(), 1_004_000).unwrap();
        assert!((rate - 10.0).abs() < 1e-9, "{rate}");
        // A burst right now is spread over at least a second.
        let fresh = AckRates::default();
        fresh.record(&key(), 5, 2_000_000);
        assert_eq!(fresh.rate(&key(), 2_000_000), Some(5.0));
    }

    #[test]
    fn acks_older_than_the_window_are_forgotten() {
        let r = AckRates::default();
        r.record(&key(), 100, 1_000_000);
        assert!(r.rate(&key(), 1_030_000).is_some());
        assert_eq!(r.rate(&key(), 1_000_000 + 61_000), None);
        // A bucket slot reused a lap later starts from zero.
        r.record(&key(), 1, 1_000_000 + 60_000);
        let rate = r.rate(&key(), 1_000_000 + 60_000).unwrap();
        assert!(rate < 0.1, "{rate}");
    }

    #[test]
    fn rates_are_per_cursor_and_forgotten_with_their_topic() {
        let r = AckRates::default();
        let other = CursorKey::new("g", "u", 0, "");
        r.record(&key(), 10, 1_000_000);
        assert_eq!(r.rate(&other, 1_000_000), None);
        r.forget_topic("t");
        assert_eq!(r.rate(&key(), 1_000_000), None);
    }

    #[test]
    fn catch_up_is_lag_over_rate() {
        assert_eq!(catch_up_ms(0, None), Some(0));
        assert_eq!(catch_up_ms(5, None), None);
        assert_eq!(catch_up_ms(5, Some(0.0)), None);
        assert_eq!(catch_up_ms(100, Some(10.0)), Some(10_000));
        assert_eq!(catch_up_ms(1, Some(3.0)), Some(334));
    }
}
