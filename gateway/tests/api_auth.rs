//! Auth over the real router (`--auth-file`): every route without a token,
//! with a wrong one, without and with the action; patterns; names in the
//! body and the query; open routes; lists; the cluster secret; reloads; rate
//! limits. The table under test is `shale_gateway::auth::rules::ROUTES`.
#![allow(clippy::unwrap_used)]

mod api_support;

use std::path::{Path, PathBuf};

use api_support::{Answer, Node};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use shale_gateway::auth::Action;
use shale_gateway::auth::rules::{Access, Name, ROUTES};
use shale_gateway::config::NodeConfig;

fn sha256_hex(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// One `[[tokens]]` entry: `token` with `rules` (TOML inline tables) and extra lines.
fn entry(principal: &str, token: &str, rules: &str, extra: &str) -> String {
    format!(
        "[[tokens]]\nprincipal = \"{principal}\"\nsha256 = \"{}\"\nrules = [{rules}]\n{extra}\n",
        sha256_hex(token)
    )
}

const ALL: &str =
    r#"{actions = ["PUBLISH", "SUBSCRIBE", "ADMIN"], topics = ["*"], groups = ["*"]}"#;
const CLUSTER_SECRET: &str = "cluster-secret-cluster-secret-cluster-secret";

fn base_file() -> String {
    let mut text = format!(
        "cluster_secret_sha256 = [\"{}\"]\n",
        sha256_hex(CLUSTER_SECRET)
    );
    text.push_str(&entry("root", "root-token", ALL, ""));
    for action in ["PUBLISH", "SUBSCRIBE", "ADMIN"] {
        let only = format!(r#"{{actions = ["{action}"], topics = ["*"], groups = ["*"]}}"#);
        text.push_str(&entry(
            &action.to_lowercase(),
            &format!("{action}-token"),
            &only,
            "",
        ));
    }
    let others = r#"{actions = ["PUBLISH", "SUBSCRIBE", "ADMIN"], topics = ["nothing*"], groups = ["nothing*"]}"#;
    text.push_str(&entry("elsewhere", "elsewhere-token", others, ""));
    let billing = r#"{actions = ["SUBSCRIBE"], topics = ["orders*"], groups = ["billing*"]}"#;
    text.push_str(&entry("billing", "billing-token", billing, ""));
    text
}

struct AuthNode {
    node: Node,
    auth_file: PathBuf,
}

impl AuthNode {
    fn new(file: &str) -> AuthNode {
        let dir = tempfile::tempdir().unwrap();
        let auth_file = dir.path().join("auth.toml");
        std::fs::write(&auth_file, file).unwrap();
        let data = dir.path().join("data");
        let config = NodeConfig {
            data_dir: data.clone(),
            object_store: shale_gateway::config::default_object_store(&data),
            node_id: Some("node-test".into()),
            auth_file: Some(auth_file.clone()),
            ..Default::default()
        };
        let node = Node::with_config(dir, &config);
        AuthNode { node, auth_file }
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&v).unwrap())
            }
            None => Body::empty(),
        };
        self.node.send(req.body(body).unwrap()).await
    }

    async fn get(&self, token: Option<&str>, uri: &str) -> Answer {
        self.call(token, Method::GET, uri, None).await
    }

    async fn post(&self, token: &str, uri: &str, body: Value) -> Answer {
        self.call(Some(token), Method::POST, uri, Some(body)).await
    }

    fn rewrite(&self, file: &str) {
        write_atomically(&self.auth_file, file);
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A concrete request for a table entry: path parameters filled in, and a
/// body naming the topic where the rule reads it there.
fn request_for(
    method: &str,
    path: &str,
    topic: &str,
    group: &str,
) -> (Method, String, Option<Value>) {
    let uri = path
        .replace("{topic}", topic)
        .replace("{group}", group)
        .replace("{producer_group}", group)
        .replace(
            "{transaction_id}",
            &format!("0190c7f0000000000000000000800000.{topic}"),
        )
        .replace("{queue}", "0")
        .replace("{message_id}", "0190c7f0000000000000000000000000");
    let route = ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .unwrap();
    let mut body = None;
    let mut uri = uri;
    if let Access::Need(need) = route.access {
        for name in [need.topic, need.group] {
            match name {
                Name::Body(field) => body = Some(json!({ field: topic })),
                Name::Query(param) => uri.push_str(&format!("?{param}={topic}")),
                _ => {}
            }
        }
    }
    if body.is_none() && matches!(method, "POST" | "PUT" | "PATCH") {
        body = Some(json!({}));
    }
    (Method::from_bytes(method.as_bytes()).unwrap(), uri, body)
}

fn is_auth_error(a: &Answer) -> bool {
    matches!(a.status.as_u16(), 401 | 403)
}

/// In a module so that `scripts/test.sh auth` selects them by name.
mod auth {
    use super::*;

    #[tokio::test]
    async fn every_route_needs_a_valid_token_and_its_action() {
        let n = AuthNode::new(&base_file());
        n.post(
            "root-token",
            "/v1/topics",
            json!({"name": "orders-eu", "queues": 1}),
        )
        .await
        .assert_ok();
        for route in ROUTES {
            let (method, uri, body) =
                request_for(route.method, route.path, "orders-eu", "billing-1");
            let what = format!("{} {}", route.method, route.path);
            let Access::Need(need) = route.access else {
                let a = n.call(None, method, &uri, body).await;
                assert!(!is_auth_error(&a), "{what} is open: {}", a.body);
                continue;
            };
            let a = n.call(None, method.clone(), &uri, body.clone()).await;
            a.assert_error(401, "UNAUTHENTICATED");
            assert!(
                a.headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{what}"
            );
            let a = n
                .call(Some("wrong-token"), method.clone(), &uri, body.clone())
                .await;
            a.assert_error(401, "UNAUTHENTICATED");
            // A token holding every action but the route's (or, for routes that
            // take any action, all actions on other names) is refused.
            let others: Vec<Action> = [Action::Publish, Action::Subscribe, Action::Admin]
                .into_iter()
                .filter(|a| !need.actions.contains(a))
                .collect();
            let names_something = need.topic != Name::None || need.group != Name::None;
            let denied_token = match others.as_slice() {
                [] if names_something => Some("elsewhere-token".to_string()),
                [] => None,
                [one] => Some(format!("{}-token", one.as_str())),
                _ => Some(if need.actions == [Action::Admin] {
                    // PUBLISH and SUBSCRIBE tokens both lack ADMIN.
                    "PUBLISH-token".to_string()
                } else {
                    format!("{}-token", others[0].as_str())
                }),
            };
            if let Some(token) = denied_token {
                let a = n
                    .call(Some(&token), method.clone(), &uri, body.clone())
                    .await;
                assert_eq!(
                    a.status,
                    StatusCode::FORBIDDEN,
                    "{what} with {token}: {}",
                    a.body
                );
                a.assert_error(403, "PERMISSION_DENIED");
            }
            // Each accepted action alone is enough.
            for action in need.actions {
                let token = format!("{}-token", action.as_str());
                let a = n
                    .call(Some(&token), method.clone(), &uri, body.clone())
                    .await;
                assert!(
                    !is_auth_error(&a),
                    "{what} with {token}: {} {}",
                    a.status,
                    a.body
                );
            }
        }
    }

    #[tokio::test]
    async fn patterns_allow_matching_names_only() {
        let n = AuthNode::new(&base_file());
        for topic in ["orders-eu", "billing"] {
            n.post(
                "root-token",
                "/v1/topics",
                json!({"name": topic, "queues": 1}),
            )
            .await
            .assert_ok();
        }
        let receive = |group: &str, topic: &str| {
            (
                format!("/v1/groups/{group}/receive"),
                json!({"topic": topic, "max_messages": 1}),
            )
        };
        let (uri, body) = receive("billing-1", "orders-eu");
        n.post("billing-token", &uri, body).await.assert_ok();
        let (uri, body) = receive("billing-1", "billing");
        n.post("billing-token", &uri, body)
            .await
            .assert_error(403, "PERMISSION_DENIED");
        let (uri, body) = receive("audit", "orders-eu");
        n.post("billing-token", &uri, body)
            .await
            .assert_error(403, "PERMISSION_DENIED");
        // Replay: SUBSCRIBE on the topic, no group.
        n.get(
            Some("billing-token"),
            "/v1/topics/orders-eu/queues/0/messages?offset=0",
        )
        .await
        .assert_ok();
        n.get(
            Some("billing-token"),
            "/v1/topics/billing/queues/0/messages?offset=0",
        )
        .await
        .assert_error(403, "PERMISSION_DENIED");
        // SUBSCRIBE does not publish.
        n.post(
            "billing-token",
            "/v1/topics/orders-eu/messages",
            json!({"messages": [{"body": "x"}]}),
        )
        .await
        .assert_error(403, "PERMISSION_DENIED");
        // Percent-encoded names are checked as the handlers decode them.
        n.get(
            Some("billing-token"),
            "/v1/topics/%62illing/queues/0/messages?offset=0",
        )
        .await
        .assert_error(403, "PERMISSION_DENIED");
    }

    #[tokio::test]
    async fn names_in_the_body_and_the_query_are_checked() {
        let n = AuthNode::new(&base_file());
        n.post(
            "root-token",
            "/v1/topics",
            json!({"name": "orders-eu", "queues": 1}),
        )
        .await
        .assert_ok();
        // The body's topic, not only the path's group.
        let a = n
            .post(
                "billing-token",
                "/v1/groups/billing-1/ack",
                json!({"topic": "payments", "receipt_handles": []}),
            )
            .await;
        a.assert_error(403, "PERMISSION_DENIED");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("payments"),
            "{}",
            a.body
        );
        // A body that does not name it is refused, never let through unchecked.
        n.post(
            "billing-token",
            "/v1/groups/billing-1/receive",
            json!({"max_messages": 1}),
        )
        .await
        .assert_error(400, "INVALID_ARGUMENT");
        let raw = Request::post("/v1/groups/billing-1/receive")
            .header("authorization", "Bearer billing-token")
            .header("content-type", "application/json")
            .body(Body::from("{\"topic\": \"orders-eu\""))
            .unwrap();
        n.node.send(raw).await.assert_error(400, "INVALID_ARGUMENT");
        // Duplicate keys: the handler refuses them too, so neither copy slips by.
        let dup = Request::post("/v1/groups/billing-1/receive")
            .header("authorization", "Bearer billing-token")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"topic": "payments", "topic": "orders-eu"}"#))
            .unwrap();
        assert!(!n.node.send(dup).await.status.is_success());
        // Create names its topic in the body.
        n.post("ADMIN-token", "/v1/topics", json!({"name": "nothing-here"}))
            .await
            .assert_ok();
        n.post(
            "elsewhere-token",
            "/v1/topics",
            json!({"name": "orders-us"}),
        )
        .await
        .assert_error(403, "PERMISSION_DENIED");
        n.post(
            "elsewhere-token",
            "/v1/topics",
            json!({"name": "nothing-else"}),
        )
        .await
        .assert_ok();
        // The query's topic.
        n.get(
            Some("billing-token"),
            "/v1/groups/billing-1/offsets?topic=payments",
        )
        .await
        .assert_error(403, "PERMISSION_DENIED");
        n.get(
            Some("billing-token"),
            "/v1/groups/billing-1/offsets?topic=orders-eu&topic=payments",
        )
        .await
        .assert_error(400, "INVALID_ARGUMENT");
        let a = n
            .get(
                Some("billing-token"),
                "/v1/groups/billing-1/offsets?topic=orders-eu",
            )
            .await;
        assert!(!is_auth_error(&a), "{}", a.body);
    }

    #[tokio::test]
    async fn open_routes_unknown_routes_and_metrics() {
        let n = AuthNode::new(&base_file());
        for open in ["/healthz", "/readyz", "/openapi.json", "/metrics"] {
            n.get(None, open).await.assert_ok();
        }
        n.get(None, "/v1/nope")
            .await
            .assert_error(401, "UNAUTHENTICATED");
        n.get(Some("billing-token"), "/v1/nope")
            .await
            .assert_error(404, "NOT_FOUND");
        n.call(None, Method::PUT, "/v1/topics", None)
            .await
            .assert_error(401, "UNAUTHENTICATED");
        n.call(Some("billing-token"), Method::PUT, "/v1/topics", None)
            .await
            .assert_error(405, "METHOD_NOT_ALLOWED");
        n.get(None, "/nope").await.assert_error(404, "NOT_FOUND");
        // HEAD follows GET's rule.
        let head = n
            .call(Some("ADMIN-token"), Method::HEAD, "/v1/cluster", None)
            .await;
        assert_eq!(head.status, StatusCode::OK);
        let head = n.call(None, Method::HEAD, "/v1/cluster", None).await;
        assert_eq!(head.status, StatusCode::UNAUTHORIZED);
        // Bearer scheme only, case-insensitive; one header.
        let basic = Request::get("/v1/topics")
            .header("authorization", "Basic cm9vdDpyb290")
            .body(Body::empty())
            .unwrap();
        n.node
            .send(basic)
            .await
            .assert_error(401, "UNAUTHENTICATED");
        let lower = Request::get("/v1/topics")
            .header("authorization", "bearer root-token")
            .body(Body::empty())
            .unwrap();
        n.node.send(lower).await.assert_ok();
        let two = Request::get("/v1/topics")
            .header("authorization", "Bearer root-token")
            .header("authorization", "Bearer root-token")
            .body(Body::empty())
            .unwrap();
        n.node.send(two).await.assert_error(401, "UNAUTHENTICATED");
        // /metrics behind ADMIN when the file says so.
        n.rewrite(&format!("metrics_require_auth = true\n{}", base_file()));
        n.node
            .state
            .auth
            .as_ref()
            .unwrap()
            .reload_if_changed()
            .unwrap();
        n.get(None, "/metrics")
            .await
            .assert_error(401, "UNAUTHENTICATED");
        n.get(Some("billing-token"), "/metrics")
            .await
            .assert_error(403, "PERMISSION_DENIED");
        let m = n.get(Some("ADMIN-token"), "/metrics").await;
        assert_eq!(m.status, StatusCode::OK);
        assert!(
            m.body
                .as_str()
                .unwrap()
                .contains("shale_auth_reloads_total"),
            "the reload is counted"
        );
        n.get(None, "/healthz").await.assert_ok();
    }

    #[tokio::test]
    async fn lists_show_what_the_token_may_see() {
        let n = AuthNode::new(&base_file());
        for topic in ["orders-eu", "payments"] {
            n.post("root-token", "/v1/topics", json!({"name": topic}))
                .await
                .assert_ok();
        }
        for group in ["billing-1", "audit"] {
            n.call(
                Some("root-token"),
                Method::PUT,
                &format!("/v1/groups/{group}"),
                Some(json!({})),
            )
            .await
            .assert_ok();
        }
        let names = |a: Answer, key: &str| -> Vec<String> {
            a.assert_ok()[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names(n.get(Some("billing-token"), "/v1/topics").await, "topics"),
            ["orders-eu"]
        );
        assert_eq!(
            names(n.get(Some("root-token"), "/v1/topics").await, "topics").len(),
            2
        );
        assert_eq!(
            names(n.get(Some("billing-token"), "/v1/groups").await, "groups"),
            ["billing-1"]
        );
        n.get(Some("PUBLISH-token"), "/v1/groups")
            .await
            .assert_error(403, "PERMISSION_DENIED");
    }

    #[tokio::test]
    async fn the_cluster_secret_only_publishes_and_forwarding_grants_nothing() {
        let n = AuthNode::new(&base_file());
        n.post("root-token", "/v1/topics", json!({"name": "orders-eu"}))
            .await
            .assert_ok();
        let produce = json!({"messages": [{"body": "x"}]});
        let a = n
            .post(
                CLUSTER_SECRET,
                "/v1/topics/%25DLQ%25billing/messages",
                produce.clone(),
            )
            .await;
        assert!(!is_auth_error(&a), "{}", a.body);
        // Dead letters may go to a group's dead_letter_topic, a user topic.
        n.post(
            CLUSTER_SECRET,
            "/v1/topics/orders-eu/messages",
            produce.clone(),
        )
        .await
        .assert_ok();
        n.get(Some(CLUSTER_SECRET), "/v1/topics")
            .await
            .assert_error(403, "PERMISSION_DENIED");
        // The forwarded header is no credential.
        let forged = Request::post("/v1/topics/orders-eu/messages")
            .header("shale-forwarded", "node-x")
            .header("content-type", "application/json")
            .body(Body::from(produce.to_string()))
            .unwrap();
        n.node
            .send(forged)
            .await
            .assert_error(401, "UNAUTHENTICATED");
        // A client's forwarded produce cannot write Shale's own properties.
        let with_system =
            json!({"messages": [{"body": "x", "properties": {"shale.origin_topic": "x"}}]});
        let forged = Request::post("/v1/topics/orders-eu/messages")
            .header("shale-forwarded", "node-x")
            .header("authorization", "Bearer root-token")
            .header("content-type", "application/json")
            .body(Body::from(with_system.to_string()))
            .unwrap();
        n.node
            .send(forged)
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }

    #[tokio::test]
    async fn a_changed_file_is_reloaded_and_a_bad_one_keeps_the_old_rules() {
        let n = AuthNode::new(&base_file());
        let auth = n.node.state.auth.clone().unwrap();
        n.get(Some("billing-token"), "/v1/topics").await.assert_ok();
        n.get(Some("new-token"), "/v1/topics")
            .await
            .assert_error(401, "UNAUTHENTICATED");
        // A bad file: logged, counted, the rules in force stay.
        n.rewrite("[[tokens]]\nprincipal = \"half-written");
        assert!(auth.reload_if_changed().is_err());
        n.get(Some("billing-token"), "/v1/topics").await.assert_ok();
        // A good one replaces them (the billing token is gone).
        let next = entry("new", "new-token", ALL, "");
        n.rewrite(&next);
        assert_eq!(
            auth.reload_if_changed(),
            Ok(shale_gateway::auth::Reloaded::Changed)
        );
        n.get(Some("new-token"), "/v1/topics").await.assert_ok();
        n.get(Some("billing-token"), "/v1/topics")
            .await
            .assert_error(401, "UNAUTHENTICATED");
    }

    #[tokio::test]
    async fn a_principal_over_its_rate_is_throttled_with_retry_after() {
        let limited = entry("slow", "slow-token", ALL, "rate_per_second = 1\nburst = 2");
        let n = AuthNode::new(&format!("{}{limited}", base_file()));
        // 2 at once, then 1 a second: within 20 back-to-back requests (far
        // quicker than 18 s) one is refused.
        let mut throttled = None;
        for _ in 0..20 {
            let a = n.get(Some("slow-token"), "/v1/topics").await;
            if a.status == StatusCode::TOO_MANY_REQUESTS {
                throttled = Some(a);
                break;
            }
            a.assert_ok();
        }
        let a = throttled.expect("the limit applies");
        a.assert_error(429, "THROTTLED");
        let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=1).contains(&retry), "{retry}");
        // Other principals are not limited by it.
        for _ in 0..5 {
            n.get(Some("root-token"), "/v1/topics").await.assert_ok();
        }
    }
}
