//! The MD5 digests an SQS answer carries: `MD5OfMessageBody`/`MD5OfBody`,
//! `MD5OfMessageAttributes` and `MD5OfMessageSystemAttributes`.
//!
//! SDKs recompute them and fail the call on a difference (the Java SDK
//! checks attributes too), so they follow AWS's algorithm to the byte:
//!
//! - a body: the MD5 of its UTF-8 bytes, as 32 lowercase hex digits;
//! - attributes, in ascending byte order of name: 4-byte big-endian length
//!   and UTF-8 name, length and `DataType`, one transport byte (1 for the
//!   `String` and `Number` types and their custom `.suffix` forms, 2 for
//!   `Binary`), then length and value (the string's UTF-8, or the raw bytes).
//!   The list values SQS reserves are never part of it.
//!
//! Invariant: the attributes were validated as SQS does before any digest
//! (a type of `String`, `Number` or `Binary`, with an optional `.suffix`,
//! carrying exactly the non-empty value its type names). For such input the
//! digest by type equals the SDKs' digest by which value is present.
//!
//! [`MessageAttributeValue`] is also the JSON shape of an attribute in the
//! AWS JSON 1.0 protocol: `BinaryValue` is base64 there.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// One message (or message system) attribute, as SQS's JSON carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageAttributeValue {
    /// `String`, `Number` or `Binary`, optionally with a `.custom` suffix.
    pub data_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub string_value: Option<String>,
    /// Base64 on the wire.
    #[serde(skip_serializing_if = "Option::is_none", default, with = "base64_opt")]
    pub binary_value: Option<Vec<u8>>,
    /// Reserved by SQS; never part of a digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub string_list_values: Vec<String>,
    /// Reserved by SQS; never part of a digest. Base64 on the wire.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "base64_list")]
    pub binary_list_values: Vec<Vec<u8>>,
}

/// The MD5 of `bytes` as 32 lowercase hex digits (`MD5OfMessageBody` of a
/// body is this of its UTF-8 bytes).
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// `MD5OfMessageAttributes` (or `MD5OfMessageSystemAttributes`) of `attrs`;
/// `None` when there are none (SQS then leaves the field out). A `BTreeMap`
/// of `String` iterates in byte order of the names, the order AWS sorts in.
pub fn md5_of_attributes(attrs: &BTreeMap<String, MessageAttributeValue>) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    let mut md5 = Md5::new();
    for (name, value) in attrs {
        length_and_bytes(&mut md5, name.as_bytes());
        length_and_bytes(&mut md5, value.data_type.as_bytes());
        if value.data_type.starts_with("Binary") {
            md5.update([BINARY_TRANSPORT]);
            length_and_bytes(&mut md5, value.binary_value.as_deref().unwrap_or_default());
        } else {
            md5.update([STRING_TRANSPORT]);
            let text = value.string_value.as_deref().unwrap_or_default();
            length_and_bytes(&mut md5, text.as_bytes());
        }
    }
    Some(hex::encode(md5.finalize()))
}

/// The transport byte of `String` and `Number` values.
const STRING_TRANSPORT: u8 = 1;
/// The transport byte of `Binary` values.
const BINARY_TRANSPORT: u8 = 2;

/// A 4-byte big-endian length, then the bytes. Values are bounded by the
/// message size limit, far below `u32::MAX`; were one longer, the length
/// would saturate rather than wrap.
fn length_and_bytes(md5: &mut Md5, bytes: &[u8]) {
    let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    md5.update(length.to_be_bytes());
    md5.update(bytes);
}

/// `Option<Vec<u8>>` as an optional base64 string.
mod base64_opt {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => STANDARD
                .decode(text)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("BinaryValue is not base64: {e}"))),
            None => Ok(None),
        }
    }
}

/// `Vec<Vec<u8>>` as a list of base64 strings.
mod base64_list {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|bytes| STANDARD.encode(bytes)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|text| {
                STANDARD.decode(text).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "BinaryListValues holds a non-base64 value: {e}"
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(data_type: &str, value: &str) -> MessageAttributeValue {
        MessageAttributeValue {
            data_type: data_type.into(),
            string_value: Some(value.into()),
            binary_value: None,
            string_list_values: Vec::new(),
            binary_list_values: Vec::new(),
        }
    }

    fn binary(data_type: &str, value: &[u8]) -> MessageAttributeValue {
        MessageAttributeValue {
            data_type: data_type.into(),
            string_value: None,
            binary_value: Some(value.to_vec()),
            string_list_values: Vec::new(),
            binary_list_values: Vec::new(),
        }
    }

    fn digest(attrs: &[(&str, MessageAttributeValue)]) -> String {
        let map: BTreeMap<String, MessageAttributeValue> = attrs
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        md5_of_attributes(&map).unwrap()
    }

    /// `hashlib.md5(body.encode()).hexdigest()`; "test" is also the Go
    /// SDK's own checksum test vector, "foobar2" one answered by real SQS.
    #[test]
    fn bodies() {
        assert_eq!(md5_hex(b"test"), "098f6bcd4621d373cade4e832627b4f6");
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"foobar2"), "cbac77acf401ef89c3297bd9fc41ec0b");
        assert_eq!(
            md5_hex("héllo 世界 🦀".as_bytes()),
            "7ea890e42b0588a8f9dc4c00fbf21e6f"
        );
    }

    /// Expected digests computed in a one-off Python script, twice: by hand
    /// with `hashlib.md5` and `struct.pack(">I", len)` as the module doc
    /// describes, and with moto 5.2.5's `Message.attribute_md5` (an
    /// independent implementation); both agreed on every vector except the
    /// non-ASCII names, which moto refuses (as SQS does), so those are
    /// hashlib's alone. `AtTimestamp` is a digest real SQS answered (quoted
    /// in a public Go test suite together with the attribute).
    #[test]
    fn attribute_vectors() {
        let cases: Vec<(Vec<(&str, MessageAttributeValue)>, &str)> = vec![
            (
                vec![("City", string("String", "Any City"))],
                "0c32cb5c844c01fbd5b6b434b52cf670",
            ),
            (
                vec![("Population", string("Number", "1250800"))],
                "67e879f1a3f28c982ea4ab7152aadf8d",
            ),
            (
                vec![("Count", string("Number.int", "-42"))],
                "963ebe7f568844b68434d65d52f51859",
            ),
            (
                vec![("Greeting", binary("Binary", &[0, 1, 2, 0xfe, 0xff]))],
                "3889cbe026d5f5c9c359be7d2456df5e",
            ),
            (
                vec![("Kind", string("String.custom", "x"))],
                "ce644a56d6bde50ba6710e4ed3395235",
            ),
            (
                vec![("Img", binary("Binary.png", b"\x89PNG"))],
                "5be958315b6cb55a1ea420debde524c2",
            ),
            (
                vec![("greeting", string("String", "héllo 世界 🦀"))],
                "bd13c6cf04baf1ea5dc0ec1509cd0fe6",
            ),
            (
                vec![
                    ("名前", string("String", "値")),
                    ("Zeta", string("String", "z")),
                ],
                "7d68248435b843c376d1c5b13fe440d3",
            ),
            (
                vec![("AtTimestamp", string("String", "2021-02-15T12:00:33+09:00"))],
                "9fd5e217089075be61cd1d67e35e5117",
            ),
        ];
        for (attrs, expected) in cases {
            assert_eq!(digest(&attrs), expected, "{attrs:?}");
        }
    }

    /// Out of order in, sorted by name in the digest (hashlib and moto agree).
    #[test]
    fn several_attributes_are_hashed_in_name_order() {
        let expected = "28eb0e573cf8e8a77e349a2f968eac4a";
        let population = ("Population", string("Number", "1250800"));
        let city = ("City", string("String", "Any City"));
        let greeting = ("Greeting", binary("Binary", b"Hello, World!"));
        assert_eq!(
            digest(&[population.clone(), city.clone(), greeting.clone()]),
            expected
        );
        assert_eq!(digest(&[greeting, population, city]), expected);
    }

    /// `MD5OfMessageSystemAttributes`: the X-Ray header is a String attribute.
    #[test]
    fn system_attributes() {
        let trace = string(
            "String",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        );
        assert_eq!(
            digest(&[("AWSTraceHeader", trace)]),
            "5ae4d5d7636402d80f4eb6d213245a88"
        );
    }

    #[test]
    fn no_attributes_no_digest_and_lists_are_ignored() {
        assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
        let mut listed = string("String", "Any City");
        listed.string_list_values = vec!["a".into()];
        listed.binary_list_values = vec![vec![1]];
        assert_eq!(
            digest(&[("City", listed)]),
            "0c32cb5c844c01fbd5b6b434b52cf670"
        );
    }

    #[test]
    fn json_shape_is_aws_json_with_base64_binaries() {
        let value: MessageAttributeValue =
            serde_json::from_str(r#"{"DataType":"Binary","BinaryValue":"AAEC/v8="}"#).unwrap();
        assert_eq!(value, binary("Binary", &[0, 1, 2, 0xfe, 0xff]));
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"DataType":"Binary","BinaryValue":"AAEC/v8="}"#
        );
        let text = string("Number", "7");
        assert_eq!(
            serde_json::to_string(&text).unwrap(),
            r#"{"DataType":"Number","StringValue":"7"}"#
        );
        let lists: MessageAttributeValue = serde_json::from_str(
            r#"{"DataType":"String","StringListValues":["a"],"BinaryListValues":["AQ=="]}"#,
        )
        .unwrap();
        assert_eq!(lists.binary_list_values, vec![vec![1]]);
        assert_eq!(
            serde_json::to_string(&lists).unwrap(),
            r#"{"DataType":"String","StringListValues":["a"],"BinaryListValues":["AQ=="]}"#
        );
        let bad = serde_json::from_str::<MessageAttributeValue>(
            r#"{"DataType":"Binary","BinaryValue":"not base64!"}"#,
        );
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("BinaryValue is not base64")
        );
    }
}
