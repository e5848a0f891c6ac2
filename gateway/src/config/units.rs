//! Human-friendly sizes and durations in settings.
//!
//! Every size setting accepts a plain number of bytes (`67108864`) or a number
//! with a unit (`64MiB`, `64 MiB`, `64m`); every `_ms` setting accepts plain
//! milliseconds (`600000`) or a number with a unit (`10m`, `600s`, `250ms`).
//! Units are case-insensitive. `KB`/`MB`/`GB`/`TB` are decimal (powers of 1000),
//! `KiB`/`MiB`/`GiB`/`TiB` and the one-letter `k`/`m`/`g`/`t` are binary (as the
//! JVM's `-Xmx64m`). Fractions are refused rather than rounded.
//!
//! The `serde` helpers accept either form, so the same grammar holds in the
//! config file, in `SHALE_*` variables and on the command line; the parsed
//! value is always serialized back as a plain integer.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

const KIB: u64 = 1024;
const KB: u64 = 1000;

/// Parses `65536`, `64KiB`, `64 MiB`, `1g`, `10MB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text).ok_or_else(|| size_expected(text))?;
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => KIB.pow(2),
        "g" | "gib" => KIB.pow(3),
        "t" | "tib" => KIB.pow(4),
        "kb" => KB,
        "mb" => KB.pow(2),
        "gb" => KB.pow(3),
        "tb" => KB.pow(4),
        _ => return Err(size_expected(text)),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses `600000` (milliseconds), `250ms`, `30s`, `10m`, `10min`, `2h`, `1d`.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text).ok_or_else(|| duration_expected(text))?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(duration_expected(text)),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `"64 MiB"` → `(64, "MiB")`; `None` unless the text is digits then letters.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number = text[..digits_end].parse::<u64>().ok()?;
    let unit = text[digits_end..].trim_start();
    unit.chars()
        .all(|c| c.is_ascii_alphabetic())
        .then_some((number, unit))
}

fn size_expected(text: &str) -> String {
    format!("`{text}` is not a size (expected bytes like 65536 or 64KiB, 64MiB, 1GiB)")
}

fn duration_expected(text: &str) -> String {
    format!("`{text}` is not a duration (expected milliseconds like 600000 or 250ms, 30s, 10m, 1h)")
}

/// `#[serde(deserialize_with = "units::size")]` for `u64` byte counts.
pub fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(UnitVisitor {
        parse: parse_size,
        expecting: "a size like 65536 or \"64MiB\"",
    })
}

/// `#[serde(deserialize_with = "units::duration_ms")]` for `u64` milliseconds.
pub fn duration_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(UnitVisitor {
        parse: parse_duration_ms,
        expecting: "milliseconds like 600000 or a duration like \"10m\"",
    })
}

/// `#[serde(deserialize_with = "units::optional_size")]` for `Option<u64>` byte counts.
pub fn optional_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    deserializer.deserialize_option(OptionalSize)
}

struct UnitVisitor {
    parse: fn(&str) -> Result<u64, String>,
    expecting: &'static str,
}

impl Visitor<'_> for UnitVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::custom(format!("`{value}` is negative")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
        (self.parse)(value).map_err(E::custom)
    }
}

struct OptionalSize;

impl<'de> Visitor<'de> for OptionalSize {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size like 65536 or \"64MiB\"")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<u64>, D::Error> {
        size(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size(" 64m "), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2tb"), Ok(2_000_000_000_000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes() {
        for text in [
            "",
            "MiB",
            "1.5GiB",
            "-1",
            "64 parsecs",
            "64MiB extra",
            "0x10",
            "99999999999999999999T",
        ] {
            assert!(parse_size(text).is_err(), "{text:?} should be refused");
        }
        assert!(parse_size("20000000T").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("600000"), Ok(600_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("10m"), Ok(600_000));
        assert_eq!(parse_duration_ms("10 min"), Ok(600_000));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("1D"), Ok(86_400_000));
        for text in ["", "s", "1.5s", "10 minutes", "-5"] {
            assert!(
                parse_duration_ms(text).is_err(),
                "{text:?} should be refused"
            );
        }
    }
}
