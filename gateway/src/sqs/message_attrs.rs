//! Message attributes: validated as AWS does, kept in the Shale message's
//! properties, and chosen for a receive.
//!
//! Where they live in the topic (so `/v1` readers and replay jobs see them):
//! - `sqs.attributes`: the message attributes, as the JSON object SQS
//!   itself writes (`{"name": {"DataType": "Number", "StringValue": "3"}}`,
//!   `BinaryValue` in base64) — the types and values come back exactly;
//! - `sqs.trace_header`: the `AWSTraceHeader` system attribute;
//! - `sqs.dedup_id`: the deduplication id (given, or the body's SHA-256);
//! - `sqs.group_id`: `MessageGroupId` of a standard queue (a FIFO queue's
//!   is the message's `message_group`);
//! - `sqs.sender_id`: the access key that sent it (`SenderId`).
//!
//! Shale's properties hold at most 16 KiB in all, so the attributes of one
//! message do too (AWS counts them in the message size only); more is
//! InvalidParameterValue.

use std::collections::BTreeMap;

use super::md5::MessageAttributeValue;
use super::protocol::SqsError;

pub const PROP_ATTRIBUTES: &str = "sqs.attributes";
pub const PROP_TRACE_HEADER: &str = "sqs.trace_header";
pub const PROP_DEDUP_ID: &str = "sqs.dedup_id";
pub const PROP_GROUP_ID: &str = "sqs.group_id";
pub const PROP_SENDER_ID: &str = "sqs.sender_id";

/// Most message attributes on one message (AWS's limit).
pub const MAX_ATTRIBUTES: usize = 10;
/// Longest `sqs.attributes` property (Shale's properties are 16 KiB in all;
/// the rest is left for the other `sqs.*` ones).
pub const MAX_ATTRIBUTES_JSON: usize = 15 * 1024;

pub type Attributes = BTreeMap<String, MessageAttributeValue>;

/// Whether `c` may appear in a message body or string attribute (XML 1.0's
/// characters, as AWS allows: tab, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD,
/// U+10000-U+10FFFF).
pub fn allowed_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn check_name(name: &str) -> Result<(), SqsError> {
    let lower = name.to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.");
    if ok {
        Ok(())
    } else {
        Err(SqsError::invalid_parameter(format!(
            "Message (user) attribute name '{name}' is invalid: 1-256 of [A-Za-z0-9_.-], no leading, trailing or double '.', not starting with AWS. or Amazon."
        )))
    }
}

/// The base type of a DataType (`String`, `Number`, `Binary`), custom suffix aside.
fn base_type(data_type: &str) -> Option<&'static str> {
    let (base, custom) = match data_type.split_once('.') {
        Some((b, c)) => (b, Some(c)),
        None => (data_type, None),
    };
    if custom.is_some_and(|c| c.is_empty()) || data_type.len() > 256 {
        return None;
    }
    ["String", "Number", "Binary"]
        .into_iter()
        .find(|t| *t == base)
}

fn is_number(s: &str) -> bool {
    let s = s.trim();
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (digits, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mantissa_ok = !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && int.len() + frac.len() <= 38;
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.len() <= 3 && e.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

/// Checks message attributes as AWS does; returns their size as AWS counts
/// it in the message size (name + type + value bytes).
pub fn check(attrs: &Attributes) -> Result<usize, SqsError> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(SqsError::invalid_parameter(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            attrs.len()
        )));
    }
    let mut size = 0;
    for (name, value) in attrs {
        check_name(name)?;
        let Some(base) = base_type(&value.data_type) else {
            return Err(SqsError::invalid_parameter(format!(
                "The type of message (user) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
            )));
        };
        if !value.string_list_values.is_empty() || !value.binary_list_values.is_empty() {
            return Err(SqsError::invalid_parameter(format!(
                "Message attribute '{name}': StringListValues and BinaryListValues are reserved by AWS and not supported."
            )));
        }
        let empty = || {
            SqsError::invalid_parameter(format!(
                "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{base}'."
            ))
        };
        let value_len = match base {
            "Binary" => {
                if value.string_value.is_some() {
                    return Err(SqsError::invalid_parameter(format!(
                        "The message attribute '{name}' with type 'Binary' must use field 'Binary'."
                    )));
                }
                value
                    .binary_value
                    .as_ref()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(empty)?
                    .len()
            }
            _ => {
                if value.binary_value.is_some() {
                    return Err(SqsError::invalid_parameter(format!(
                        "The message attribute '{name}' with type '{base}' must use field 'String'."
                    )));
                }
                let s = value
                    .string_value
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(empty)?;
                if let Some(bad) = s.chars().find(|c| !allowed_char(*c)) {
                    return Err(SqsError::invalid_contents(format!(
                        "Message attribute '{name}' holds a character SQS does not allow: U+{:04X}",
                        bad as u32
                    )));
                }
                if base == "Number" && !is_number(s) {
                    return Err(SqsError::invalid_parameter(format!(
                        "Can't cast the value of message (user) attribute '{name}' to a number."
                    )));
                }
                s.len()
            }
        };
        size += name.len() + value.data_type.len() + value_len;
    }
    Ok(size)
}

/// The `sqs.attributes` property's value, `None` without attributes.
pub fn encode(attrs: &Attributes) -> Result<Option<String>, SqsError> {
    if attrs.is_empty() {
        return Ok(None);
    }
    let json = serde_json::to_string(attrs).map_err(|e| SqsError::internal(e.to_string()))?;
    if json.len() > MAX_ATTRIBUTES_JSON {
        return Err(SqsError::invalid_parameter(format!(
            "Shale keeps a message's attributes in at most {MAX_ATTRIBUTES_JSON} bytes of JSON (binary values in base64); these take {}",
            json.len()
        )));
    }
    Ok(Some(json))
}

/// The attributes kept in a message's `sqs.attributes` property (none when
/// it is absent or, written by someone else, does not parse).
pub fn decode(property: Option<&str>) -> Attributes {
    property
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default()
}

/// The attributes a receive asked for with `MessageAttributeNames`: `All`
/// or `.*` for every one, `prefix.*` for those under a prefix, else names.
pub fn select(attrs: Attributes, wanted: &[String]) -> Attributes {
    if wanted.iter().any(|w| w == "All" || w == ".*") {
        return attrs;
    }
    attrs
        .into_iter()
        .filter(|(name, _)| {
            wanted.iter().any(|w| match w.strip_suffix(".*") {
                Some(prefix) => name.starts_with(&format!("{prefix}.")),
                None => w == name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(data_type: &str, v: &str) -> MessageAttributeValue {
        MessageAttributeValue {
            data_type: data_type.into(),
            string_value: Some(v.into()),
            binary_value: None,
            string_list_values: vec![],
            binary_list_values: vec![],
        }
    }

    #[test]
    fn attributes_are_checked_as_aws_does() {
        let mut a = Attributes::new();
        a.insert("n".into(), s("Number", "-12.5e3"));
        a.insert("c".into(), s("String.custom", "x"));
        assert_eq!(check(&a).unwrap(), 1 + 6 + 7 + 1 + 13 + 1);
        for (name, v) in [
            ("AWS.x", s("String", "v")),
            ("a..b", s("String", "v")),
            ("ok", s("Number", "abc")),
            ("ok", s("Text", "v")),
            ("ok", s("String", "")),
            ("ok", s("String", "\u{1}")),
        ] {
            let one: Attributes = [(name.to_string(), v)].into();
            assert!(check(&one).is_err(), "{name}");
        }
        let many: Attributes = (0..11)
            .map(|i| (format!("a{i}"), s("String", "v")))
            .collect();
        assert!(check(&many).is_err());
    }

    #[test]
    fn attributes_round_trip_through_the_property() {
        let mut a = Attributes::new();
        a.insert("s".into(), s("String", "é"));
        a.insert(
            "b".into(),
            MessageAttributeValue {
                data_type: "Binary".into(),
                string_value: None,
                binary_value: Some(vec![0, 255]),
                string_list_values: vec![],
                binary_list_values: vec![],
            },
        );
        let p = encode(&a).unwrap().unwrap();
        assert_eq!(decode(Some(&p)), a);
        assert!(decode(Some("not json")).is_empty());
        assert!(encode(&Attributes::new()).unwrap().is_none());
    }

    #[test]
    fn receives_choose_attributes_by_name_and_prefix() {
        let a: Attributes = ["x.a", "x.b", "y", "xa"]
            .iter()
            .map(|n| (n.to_string(), s("String", "v")))
            .collect();
        let names = |got: Attributes| got.into_keys().collect::<Vec<_>>();
        assert_eq!(names(select(a.clone(), &["All".into()])).len(), 4);
        assert_eq!(
            names(select(a.clone(), &["x.*".into()])),
            vec!["x.a", "x.b"]
        );
        assert_eq!(
            names(select(a.clone(), &["y".into(), "z".into()])),
            vec!["y"]
        );
        assert!(select(a, &[]).is_empty());
    }
}
