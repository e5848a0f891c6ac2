//! Names and limits of the contract ("Names and limits" in API.md), as pure
//! functions: each returns `Err(BrokerError)` with a sentence naming the field.
//!
//! Invariant: everything a client sends passes through one of these checks
//! before anything is stored, so a request is either wholly valid or rejected
//! with nothing written.

use crate::error::BrokerError;

/// Largest message body (4 MiB).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Largest total of one produce request's messages, bodies and metadata (32 MiB).
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Largest HTTP request body accepted (48 MiB): 32 MiB of messages plus the
/// JSON and base64 overhead (base64 inflates bodies by 4/3, to 42.7 MiB).
pub const MAX_HTTP_BODY_BYTES: usize = 48 * 1024 * 1024;
const _: () = assert!(MAX_HTTP_BODY_BYTES > MAX_REQUEST_BYTES / 3 * 4 + 1024 * 1024);
/// Most messages in one produce request.
pub const MAX_MESSAGES_PER_REQUEST: usize = 1024;
/// Longest tag in bytes.
pub const MAX_TAG_BYTES: usize = 128;
/// Most keys per message.
pub const MAX_KEYS: usize = 32;
/// Longest key in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Most properties per message.
pub const MAX_PROPERTIES: usize = 64;
/// Longest property name.
pub const MAX_PROPERTY_NAME_BYTES: usize = 64;
/// Largest total of property names and values of one message (16 KiB).
pub const MAX_PROPERTIES_BYTES: usize = 16 * 1024;
/// Longest `message_group` in bytes.
pub const MAX_GROUP_BYTES: usize = 128;
/// Longest `dedup_id` in bytes.
pub const MAX_DEDUP_ID_BYTES: usize = 128;
/// Longest topic name.
pub const MAX_NAME_CHARS: usize = 127;
/// Prefix of property names reserved to Shale.
pub const RESERVED_PROPERTY_PREFIX: &str = "shale.";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// A topic name a user may create: `[A-Za-z0-9][A-Za-z0-9._-]{0,126}`.
pub fn user_topic_name(name: &str) -> Result<(), BrokerError> {
    if name.starts_with('%') {
        return Err(BrokerError::invalid(format!(
            "topic name {name:?} starts with '%': such names are reserved to the system (dead-letter topics)"
        )));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || name.len() > MAX_NAME_CHARS || !chars.all(is_name_char) {
        return Err(BrokerError::invalid(format!(
            "topic name {name:?} must be 1-127 characters of [A-Za-z0-9._-] starting with a letter or digit"
        )));
    }
    Ok(())
}

/// A consumer group name: the same rules as a user topic name.
pub fn group_name(name: &str) -> Result<(), BrokerError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || name.len() > MAX_NAME_CHARS || !chars.all(is_name_char) {
        return Err(BrokerError::invalid(format!(
            "group name {name:?} must be 1-127 characters of [A-Za-z0-9._-] starting with a letter or digit"
        )));
    }
    Ok(())
}

/// A name that may exist on the node: a user name or a system name
/// (`%` followed by name characters and `%`, e.g. `%DLQ%group`).
pub fn is_known_name_shape(name: &str) -> bool {
    if user_topic_name(name).is_ok() {
        return true;
    }
    name.starts_with('%')
        && name.len() <= MAX_NAME_CHARS + 6
        && name[1..].chars().all(|c| is_name_char(c) || c == '%')
}

/// `tag`: 1-128 bytes, no `|`, `*` or whitespace.
pub fn tag(tag: &str) -> Result<(), BrokerError> {
    if tag.is_empty() || tag.len() > MAX_TAG_BYTES {
        return Err(BrokerError::invalid(format!(
            "tag must be 1-{MAX_TAG_BYTES} bytes, got {}",
            tag.len()
        )));
    }
    if tag
        .chars()
        .any(|c| c == '|' || c == '*' || c.is_whitespace() || c.is_control())
    {
        return Err(BrokerError::invalid(format!(
            "tag {tag:?} must not contain '|', '*', whitespace or control characters"
        )));
    }
    Ok(())
}

/// `keys`: at most 32, each 1-128 bytes.
pub fn keys(keys: &[String]) -> Result<(), BrokerError> {
    if keys.len() > MAX_KEYS {
        return Err(BrokerError::invalid(format!(
            "at most {MAX_KEYS} keys per message, got {}",
            keys.len()
        )));
    }
    for k in keys {
        if k.is_empty() || k.len() > MAX_KEY_BYTES {
            return Err(BrokerError::invalid(format!(
                "each key must be 1-{MAX_KEY_BYTES} bytes, got {}",
                k.len()
            )));
        }
    }
    Ok(())
}

/// A user property name: `[A-Za-z0-9._-]{1,64}`, not starting `shale.`.
pub fn property_name(name: &str) -> Result<(), BrokerError> {
    if name.is_empty() || name.len() > MAX_PROPERTY_NAME_BYTES || !name.chars().all(is_name_char) {
        return Err(BrokerError::invalid(format!(
            "property name {name:?} must be 1-{MAX_PROPERTY_NAME_BYTES} characters of [A-Za-z0-9._-]"
        )));
    }
    if name.starts_with(RESERVED_PROPERTY_PREFIX) {
        return Err(BrokerError::invalid(format!(
            "property name {name:?} is reserved: names starting {RESERVED_PROPERTY_PREFIX:?} are set by Shale"
        )));
    }
    Ok(())
}

/// User properties: at most 64, valid names, 16 KiB of names and values in total.
pub fn properties(props: &[(String, String)]) -> Result<(), BrokerError> {
    properties_as(props, false)
}

/// [`properties`]; with `reserved_ok` names starting `shale.` pass too (a
/// node writing a dead-letter copy to the node that serves its `%DLQ%` queue).
pub fn properties_as(props: &[(String, String)], reserved_ok: bool) -> Result<(), BrokerError> {
    if props.len() > MAX_PROPERTIES {
        return Err(BrokerError::invalid(format!(
            "at most {MAX_PROPERTIES} properties per message, got {}",
            props.len()
        )));
    }
    let mut total = 0;
    for (name, value) in props {
        match name.strip_prefix(RESERVED_PROPERTY_PREFIX) {
            Some(rest) if reserved_ok => property_name(rest)?,
            _ => property_name(name)?,
        }
        total += name.len() + value.len();
    }
    if total > MAX_PROPERTIES_BYTES {
        return Err(BrokerError::invalid(format!(
            "properties total {total} bytes, more than the limit of {MAX_PROPERTIES_BYTES}"
        )));
    }
    Ok(())
}

/// `message_group`: 1-128 bytes.
pub fn message_group(group: &str) -> Result<(), BrokerError> {
    if group.is_empty() || group.len() > MAX_GROUP_BYTES {
        return Err(BrokerError::invalid(format!(
            "message_group must be 1-{MAX_GROUP_BYTES} bytes, got {}",
            group.len()
        )));
    }
    Ok(())
}

/// `dedup_id`: 1-128 bytes.
pub fn dedup_id(id: &str) -> Result<(), BrokerError> {
    if id.is_empty() || id.len() > MAX_DEDUP_ID_BYTES {
        return Err(BrokerError::invalid(format!(
            "dedup_id must be 1-{MAX_DEDUP_ID_BYTES} bytes, got {}",
            id.len()
        )));
    }
    Ok(())
}

/// A message body: at most 4 MiB (413 beyond).
pub fn body_len(len: usize) -> Result<(), BrokerError> {
    if len > MAX_BODY_BYTES {
        return Err(BrokerError::too_large(format!(
            "message body of {len} bytes exceeds the limit of {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topic_names() {
        assert!(user_topic_name("orders").is_ok());
        assert!(user_topic_name("a.b_c-9").is_ok());
        assert!(user_topic_name(&"a".repeat(127)).is_ok());
        assert!(crate::error::is_invalid(&user_topic_name(&"a".repeat(128))));
        assert!(crate::error::is_invalid(&user_topic_name("")));
        assert!(crate::error::is_invalid(&user_topic_name(".hidden")));
        assert!(crate::error::is_invalid(&user_topic_name("-x")));
        assert!(crate::error::is_invalid(&user_topic_name("a/b")));
        assert!(crate::error::is_invalid(&user_topic_name("%DLQ%g")));
        assert!(is_known_name_shape("%DLQ%g"));
        assert!(!is_known_name_shape("../etc"));
    }

    #[test]
    fn tags_and_properties() {
        assert!(tag("created").is_ok());
        assert!(crate::error::is_invalid(&tag("")));
        assert!(crate::error::is_invalid(&tag("a|b")));
        assert!(crate::error::is_invalid(&tag("a*")));
        assert!(crate::error::is_invalid(&tag("a b")));
        assert!(crate::error::is_invalid(&tag(&"t".repeat(129))));
        assert!(property_name("region").is_ok());
        assert!(crate::error::is_invalid(&property_name("shale.dedup_id")));
        assert!(crate::error::is_invalid(&property_name("a b")));
        let big = vec![("k".to_string(), "v".repeat(16 * 1024))];
        assert!(crate::error::is_invalid(&properties(&big)));
    }

    proptest! {
        #[test]
        fn valid_names_are_accepted(name in "[A-Za-z0-9][A-Za-z0-9._-]{0,126}") {
            prop_assert!(user_topic_name(&name).is_ok());
            prop_assert!(is_known_name_shape(&name));
        }

        #[test]
        fn names_with_other_chars_are_rejected(
            prefix in "[A-Za-z0-9]{1,10}",
            bad in "[^A-Za-z0-9._-]",
            suffix in "[a-z]{0,10}",
        ) {
            let name = format!("{prefix}{bad}{suffix}");
            prop_assert!(crate::error::is_invalid(&user_topic_name(&name)));
        }

        #[test]
        fn valid_tags_are_accepted(t in "[A-Za-z0-9._:/#@!-]{1,128}") {
            prop_assert!(tag(&t).is_ok());
        }

        #[test]
        fn tags_with_separators_are_rejected(a in "[a-z]{0,20}", sep in "[|* \t\n]", b in "[a-z]{0,20}") {
            let t = format!("{a}{sep}{b}");
            prop_assert!(crate::error::is_invalid(&tag(&t)));
        }

        #[test]
        fn property_names(name in "[A-Za-z0-9._-]{1,64}") {
            prop_assert_eq!(property_name(&name).is_ok(), !name.starts_with("shale."));
        }
    }
}
