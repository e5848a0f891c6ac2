//! What every operation of the document shares, stated once: the shapes of
//! the names in paths and the answers any `/v1` operation may give whatever
//! its handler (a malformed path or query, a body the node cannot take, an
//! unknown topic or group, a node that is draining or fails).
//!
//! The name rules come from `shale_broker::validate`, which the server
//! enforces; a test checks the patterns against those functions.

use serde_json::{Value, json};

/// A topic name in a path: a user name, or a system name (`%DLQ%group`),
/// which users may read and consume but not create.
pub const TOPIC_PATH_PATTERN: &str =
    "^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,126}|%[A-Za-z0-9._%-]{0,132})$";
/// A consumer group name.
pub const GROUP_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$";
/// A message id: 32 hex digits.
pub const MESSAGE_ID_PATTERN: &str = "^[0-9a-fA-F]{32}$";
/// A transaction id: its first message's id, a dot, its topic.
pub const TRANSACTION_ID_PATTERN: &str = "^[0-9a-fA-F]{32}\\.[A-Za-z0-9][A-Za-z0-9._-]{0,126}$";

/// Limits of schema parts utoipa's attributes cannot reach (array items,
/// map keys): (component, property, keywords merged into its schema).
fn component_limits() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "ProduceMessage",
            "keys",
            json!({"items": {"type": "string", "minLength": 1, "maxLength": 128}}),
        ),
        (
            "ProduceMessage",
            "properties",
            json!({"maxProperties": 64, "propertyNames": {"pattern": "^[A-Za-z0-9._-]{1,64}$"}}),
        ),
        (
            "ProduceMessage",
            "body_base64",
            json!({"pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"}),
        ),
        (
            "ResetBody",
            "to",
            json!({"enum": ["EARLIEST", "LATEST", null]}),
        ),
        (
            "ResetBody",
            "offsets",
            json!({"propertyNames": {"pattern": "^[0-9]{1,9}$"}}),
        ),
        (
            "GroupBody",
            "retry_backoff_ms",
            json!({"items": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 86_400_000}}),
        ),
    ]
}

/// Rules across the fields of one schema: (component, keywords merged into it).
fn component_rules() -> Vec<(&'static str, Value)> {
    vec![
        (
            // Exactly one of `body` (text) and `body_base64`.
            "ProduceMessage",
            json!({"oneOf": [
                {"required": ["body"], "properties": {"body": {"type": "string"}}},
                {"required": ["body_base64"], "properties": {"body_base64": {"type": "string"}}},
            ]}),
        ),
        (
            // Exactly one of `timestamp_ms`, `to` and `offsets`.
            "ResetBody",
            json!({"oneOf": [
                {"required": ["timestamp_ms"], "properties": {"timestamp_ms": {"type": "integer"}}},
                {"required": ["to"], "properties": {"to": {"type": "string"}}},
                {"required": ["offsets"], "properties": {"offsets": {"type": "object"}}},
            ]}),
        ),
    ]
}

/// Answers any operation may give, with the condition for each.
const COMMON: &[(&str, &str, Applies)] = &[
    (
        "400",
        "INVALID_ARGUMENT: a malformed path, query string or body, a name or limit not respected",
        Applies::V1,
    ),
    (
        "404",
        "TOPIC_NOT_FOUND, GROUP_NOT_FOUND, MESSAGE_NOT_FOUND or NOT_FOUND",
        Applies::NamesSomething,
    ),
    (
        "408",
        "REQUEST_TIMEOUT: the body did not arrive within the node's request_body_timeout_ms",
        Applies::WithBody,
    ),
    (
        "413",
        "PAYLOAD_TOO_LARGE: an HTTP body over 48 MiB",
        Applies::WithBody,
    ),
    (
        "415",
        "UNSUPPORTED_MEDIA_TYPE: the body is not `application/json`",
        Applies::WithJsonBody,
    ),
    (
        "500",
        "INTERNAL: the node failed (logged; nothing half-written)",
        Applies::V1,
    ),
    (
        "503",
        "UNAVAILABLE, with Retry-After: the node is draining, the queue is moving between nodes, \
         or the object store is needed and unreachable",
        Applies::V1,
    ),
];

#[derive(Debug, Clone, Copy)]
enum Applies {
    V1,
    NamesSomething,
    WithBody,
    WithJsonBody,
}

/// Adds the name shapes to path parameters and the common answers to
/// every operation of `doc` (the document as JSON).
pub fn apply(doc: &mut Value) {
    for (component, rules) in component_rules() {
        let schema = &mut doc["components"]["schemas"][component];
        if let (Some(schema), Value::Object(rules)) = (schema.as_object_mut(), rules) {
            schema.extend(rules);
        }
    }
    for (component, property, limits) in component_limits() {
        let schema = &mut doc["components"]["schemas"][component]["properties"][property];
        if let (Some(schema), Value::Object(limits)) = (schema.as_object_mut(), limits) {
            schema.extend(limits);
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_method, operation) in item.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            shape_parameters(path, operation);
            add_common_answers(path, operation);
        }
    }
}

/// Query parameters the handlers require although their Rust type is an
/// `Option` (the broker names the missing one in its 400), and the shapes of
/// parameters beyond utoipa's defaults: (name, where, schema).
fn parameter_shapes() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        // Offsets are u64: past int64 they are still offsets (416 if beyond the queue).
        (
            "offset",
            "query",
            json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
        ),
        (
            "Shale-Durability",
            "header",
            json!({"type": "string", "enum": ["ASYNC", "SYNC", "OBJECT"]}),
        ),
    ]
}

/// (path, query parameter) pairs that are required.
const REQUIRED_QUERY: &[(&str, &str)] = &[
    ("/v1/groups/{group}/offsets", "topic"),
    ("/v1/topics/{topic}/messages", "key"),
    ("/v1/topics/{topic}/queues/{queue}/offset", "timestamp_ms"),
];

fn shape_parameters(path: &str, operation: &mut Value) {
    let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for parameter in parameters {
        let name = parameter["name"].as_str().unwrap_or_default().to_string();
        if parameter["in"] == "query" && REQUIRED_QUERY.contains(&(path, name.as_str())) {
            parameter["required"] = json!(true);
        }
        for (shaped, place, schema) in parameter_shapes() {
            if name == shaped && parameter["in"] == place {
                parameter["schema"] = schema;
            }
        }
        if parameter["in"] != "path" {
            continue;
        }
        let shape = match parameter["name"].as_str() {
            Some("topic") => json!({"type": "string", "pattern": TOPIC_PATH_PATTERN}),
            Some("group" | "producer_group") => {
                json!({"type": "string", "pattern": GROUP_PATTERN})
            }
            Some("transaction_id") => json!({"type": "string", "pattern": TRANSACTION_ID_PATTERN}),
            Some("message_id") => json!({"type": "string", "pattern": MESSAGE_ID_PATTERN}),
            Some("queue") => {
                json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 1023})
            }
            _ => continue,
        };
        parameter["schema"] = shape;
    }
}

fn add_common_answers(path: &str, operation: &mut Value) {
    let body = operation.get("requestBody").is_some();
    let json_only = operation["requestBody"]["content"]
        .as_object()
        .is_some_and(|content| content.keys().all(|k| k == "application/json"));
    let names_something = path.contains('{') || body;
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, text, applies) in COMMON {
        let applies = match applies {
            Applies::V1 => true,
            Applies::NamesSomething => names_something,
            Applies::WithBody => body,
            Applies::WithJsonBody => body && json_only,
        };
        if applies && !responses.contains_key(*status) {
            responses.insert(
                (*status).to_string(),
                json!({
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shale_broker::validate;

    #[test]
    fn the_served_document_carries_the_shapes_and_common_answers() {
        let doc = crate::openapi::document();
        let ack = &doc["paths"]["/v1/groups/{group}/ack"]["post"];
        for status in ["400", "404", "408", "413", "415", "500", "503"] {
            assert!(ack["responses"][status].is_object(), "ack lacks {status}");
        }
        let group = ack["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "group"))
            .expect("a group parameter");
        assert_eq!(group["schema"]["pattern"], GROUP_PATTERN);
        let offsets = &doc["paths"]["/v1/groups/{group}/offsets"]["get"]["parameters"];
        let topic = offsets
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "topic"))
            .expect("a topic parameter");
        assert_eq!(topic["required"], true);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["ProduceMessage"]["oneOf"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            schemas["ProduceMessage"]["properties"]["keys"]["items"]["maxLength"],
            128
        );
        assert_eq!(
            schemas["GroupBody"]["properties"]["retry_backoff_ms"]["items"]["maximum"],
            86_400_000
        );
        // Operations outside /v1 keep only what they state.
        assert!(doc["paths"]["/healthz"]["get"]["responses"]["400"].is_null());
    }

    #[test]
    fn the_name_patterns_follow_the_validation() {
        // The patterns spell out validate's rules: 1 + 126 name characters,
        // the first a letter or digit; system names `%` and name characters.
        assert_eq!(GROUP_PATTERN, "^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$");
        assert!(TOPIC_PATH_PATTERN.contains("[A-Za-z0-9][A-Za-z0-9._-]{0,126}|%"));
        let longest = "a".repeat(127);
        for (name, valid) in [
            ("orders", true),
            ("0.a_b-c", true),
            (longest.as_str(), true),
            (".hidden", false),
            ("-x", false),
            ("a/b", false),
            ("", false),
        ] {
            assert_eq!(validate::user_topic_name(name).is_ok(), valid, "{name}");
            assert_eq!(validate::group_name(name).is_ok(), valid, "{name}");
        }
        assert!(validate::user_topic_name(&format!("{longest}a")).is_err());
        assert!(validate::is_known_name_shape("%DLQ%billing"));
    }
}
