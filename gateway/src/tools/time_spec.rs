//! The time syntax of the subcommands.
//!
//! A point in time is one of:
//! - RFC 3339: `2026-11-30T12:00:00Z`, `2026-11-30T12:00:00.250Z`,
//!   `2026-11-30T13:00:00+01:00`;
//! - relative to now: `-1h`, `-30m`, `-1h30m`, `-2days` (past), `+10m` (future);
//! - Unix epoch milliseconds: `1790000000000`;
//! - where positions are allowed (`group reset --to`, `replay --from-time`):
//!   `EARLIEST` or `LATEST` (any case).
//!
//! Durations (`--delay`, `--wait`) are humantime's: `5s`, `250ms`, `1h 30m`;
//! a bare number is milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point of a queue to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// The oldest message still retained.
    Earliest,
    /// The end: only messages stored from now on.
    Latest,
    /// Unix epoch milliseconds.
    At(i64),
}

/// Now, in Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses a point in time or `EARLIEST` / `LATEST` (a clap value parser).
pub fn parse_spec(text: &str) -> Result<TimeSpec, String> {
    spec_at(text, now_ms())
}

/// Parses a point in time; positions are refused (a clap value parser).
pub fn parse_time(text: &str) -> Result<i64, String> {
    match spec_at(text, now_ms())? {
        TimeSpec::At(ms) => Ok(ms),
        _ => Err(format!("{text:?}: a time is needed here, not a position")),
    }
}

/// Parses a duration into milliseconds (a clap value parser).
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|e| format!("{text:?}: {e}"));
    }
    humantime::parse_duration(text)
        .map(|d| d.as_millis() as u64)
        .map_err(|e| format!("{text:?} is not a duration like 5s, 250ms or 1h30m: {e}"))
}

fn spec_at(text: &str, now: i64) -> Result<TimeSpec, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("EARLIEST") {
        return Ok(TimeSpec::Earliest);
    }
    if text.eq_ignore_ascii_case("LATEST") {
        return Ok(TimeSpec::Latest);
    }
    if let Some(sign @ ('-' | '+')) = text.chars().next() {
        let ms = relative(&text[1..]).map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(TimeSpec::At(if sign == '-' { now - ms } else { now + ms }));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(TimeSpec::At)
            .map_err(|e| format!("{text:?}: {e}"));
    }
    rfc3339(text).map(TimeSpec::At).map_err(|e| {
        format!(
            "{text:?} is not a time: expected RFC 3339 (2026-11-30T12:00:00Z), \
             relative (-1h, -30m, +10m), epoch milliseconds, EARLIEST or LATEST ({e})"
        )
    })
}

fn relative(text: &str) -> Result<i64, String> {
    humantime::parse_duration(text)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| e.to_string())
}

/// RFC 3339 with `Z` or a numeric offset (humantime reads only UTC).
fn rfc3339(text: &str) -> Result<i64, String> {
    let (utc, offset_ms) = split_offset(text)?;
    let at = humantime::parse_rfc3339(&utc).map_err(|e| e.to_string())?;
    let ms = match at.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    };
    Ok(ms - offset_ms)
}

/// `…T13:00:00+01:00` → (`…T13:00:00Z`, +3600000).
fn split_offset(text: &str) -> Result<(String, i64), String> {
    if text.ends_with('Z') || text.ends_with('z') {
        return Ok((format!("{}Z", &text[..text.len() - 1]), 0));
    }
    let Some(t) = text.find(['T', 't', ' ']) else {
        return Err("no time part".into());
    };
    let Some(sign_at) = text[t..].rfind(['+', '-']).map(|i| t + i) else {
        return Err("no Z or offset".into());
    };
    let offset = &text[sign_at + 1..];
    let (hours, minutes) = offset
        .split_once(':')
        .ok_or_else(|| format!("offset {offset:?} is not HH:MM"))?;
    let hours: i64 = hours
        .parse()
        .map_err(|_| format!("bad offset {offset:?}"))?;
    let minutes: i64 = minutes
        .parse()
        .map_err(|_| format!("bad offset {offset:?}"))?;
    if hours > 23 || minutes > 59 {
        return Err(format!("bad offset {offset:?}"));
    }
    let sign = if &text[sign_at..=sign_at] == "-" {
        -1
    } else {
        1
    };
    let offset_ms = sign * (hours * 3_600_000 + minutes * 60_000);
    Ok((format!("{}Z", &text[..sign_at]), offset_ms))
}

/// Milliseconds from now until `at` (0 when past).
pub fn until(at_ms: i64) -> Duration {
    Duration::from_millis((at_ms - now_ms()).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    #[test]
    fn absolute_times() {
        assert_eq!(
            spec_at("2026-11-30T12:00:00Z", NOW),
            Ok(TimeSpec::At(1_796_040_000_000))
        );
        assert_eq!(
            spec_at("2026-11-30T12:00:00.250Z", NOW),
            Ok(TimeSpec::At(1_796_040_000_250))
        );
        assert_eq!(
            spec_at("2026-11-30T13:00:00+01:00", NOW),
            Ok(TimeSpec::At(1_796_040_000_000))
        );
        assert_eq!(
            spec_at("2026-11-30T10:30:00-01:30", NOW),
            Ok(TimeSpec::At(1_796_040_000_000))
        );
        assert_eq!(spec_at("1790000000000", NOW), Ok(TimeSpec::At(NOW)));
    }

    #[test]
    fn relative_times_and_positions() {
        assert_eq!(spec_at("-1h", NOW), Ok(TimeSpec::At(NOW - 3_600_000)));
        assert_eq!(spec_at("-30m", NOW), Ok(TimeSpec::At(NOW - 1_800_000)));
        assert_eq!(spec_at("-1h30m", NOW), Ok(TimeSpec::At(NOW - 5_400_000)));
        assert_eq!(spec_at("+10s", NOW), Ok(TimeSpec::At(NOW + 10_000)));
        assert_eq!(spec_at("earliest", NOW), Ok(TimeSpec::Earliest));
        assert_eq!(spec_at("LATEST", NOW), Ok(TimeSpec::Latest));
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            "yesterday",
            "-",
            "-1 fortnight",
            "2026-11-30",
            "2026-11-30T12:00:00+25:00",
        ] {
            assert!(spec_at(bad, NOW).is_err(), "{bad:?} accepted");
        }
        assert!(parse_time("EARLIEST").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5s"), Ok(5000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("1h 30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1500"), Ok(1500));
        assert!(parse_duration_ms("soon").is_err());
    }
}
