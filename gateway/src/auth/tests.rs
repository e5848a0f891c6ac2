#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use super::file::parse;
use super::policy::{Action, Caller, Pattern, sha256};
use super::rules::{Access, Lookup, Name, ROUTES, lookup};
use super::token::{TokenArgs, new_token, toml_lines};
use axum::http::Method;

fn hash(token: &str) -> String {
    hex::encode(sha256(token.as_bytes()))
}

fn file(body: &str) -> String {
    format!(
        "[[tokens]]\nprincipal = \"billing\"\nsha256 = \"{}\"\nrules = [{{actions = [\"SUBSCRIBE\"], topics = [\"orders*\"], groups = [\"billing*\"]}}]\n{body}",
        hash("billing-token")
    )
}

#[test]
fn patterns_match_globs() {
    let p = |s: &str| Pattern::parse(s).unwrap();
    assert!(p("orders*").matches("orders"));
    assert!(p("orders*").matches("orders-eu"));
    assert!(!p("orders*").matches("billing"));
    assert!(!p("orders*").matches("my-orders"));
    assert!(p("*-eu").matches("orders-eu"));
    assert!(!p("*-eu").matches("orders-us"));
    assert!(p("a*b*c").matches("a-x-b-y-c"));
    assert!(!p("a*b*c").matches("a-x-c-y-b"));
    assert!(p("*").matches("%DLQ%billing"));
    assert!(p("orders").matches("orders"));
    assert!(!p("orders").matches("orders-eu"));
    assert!(p("%DLQ%*").matches("%DLQ%billing"));
    // No exponential backtracking on adversarial input.
    let long = "a".repeat(5000);
    assert!(!p("*a*a*a*a*a*a*a*b").matches(&long));
    for bad in ["", "orders.+", "a b", "a/b", "ü"] {
        assert!(Pattern::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_valid_file_authenticates_by_hash() {
    let policy = parse(&file("")).unwrap();
    assert_eq!(policy.token_count(), 1);
    let Some(Caller::Client(grant)) = policy.authenticate("billing-token") else {
        panic!("the token should authenticate")
    };
    assert_eq!(grant.principal, "billing");
    assert!(policy.authenticate("billing-token ").is_none());
    assert!(policy.authenticate("").is_none());
    assert!(
        policy.authenticate(&hash("billing-token")).is_none(),
        "the hash is not the token"
    );
    assert!(!policy.metrics_require_auth);
}

#[test]
fn rules_need_one_rule_covering_every_named_resource() {
    let text = format!(
        "[[tokens]]\nprincipal = \"app\"\nsha256 = \"{}\"\nrules = [\n  {{actions = [\"PUBLISH\"], topics = [\"orders*\"]}},\n  {{actions = [\"SUBSCRIBE\"], topics = [\"orders*\"], groups = [\"billing*\"]}},\n  {{actions = [\"ADMIN\"]}},\n]\n",
        hash("t")
    );
    let caller = parse(&text).unwrap().authenticate("t").unwrap();
    let (p, s, a) = (
        &[Action::Publish][..],
        &[Action::Subscribe][..],
        &[Action::Admin][..],
    );
    assert!(caller.may(p, Some("orders-eu"), None));
    assert!(!caller.may(p, Some("billing"), None));
    assert!(caller.may(s, Some("orders"), Some("billing-1")));
    assert!(!caller.may(s, Some("orders"), Some("audit")));
    assert!(!caller.may(s, Some("billing"), Some("billing-1")));
    // A rule without topics matches requests naming none.
    assert!(caller.may(a, None, None));
    assert!(!caller.may(a, Some("orders"), None));
    assert!(caller.sees_topic("orders-x") && !caller.sees_topic("payments"));
    assert!(caller.sees_group("billing") && !caller.sees_group("audit"));
    assert!(!caller.is_node_or_open());
}

#[test]
fn the_node_caller_only_publishes() {
    let text = format!(
        "cluster_secret_sha256 = \"{}\"\n{}",
        hash("s3cret"),
        file("")
    );
    let policy = parse(&text).unwrap();
    let node = policy.authenticate("s3cret").unwrap();
    assert!(matches!(node, Caller::Node) && node.is_node_or_open());
    assert!(node.may(&[Action::Publish], Some("%DLQ%billing"), None));
    // A group's dead_letter_topic is a user topic.
    assert!(node.may(&[Action::Publish], Some("orders-dlq"), None));
    assert!(!node.may(&[Action::Publish], None, None));
    assert!(!node.may(&[Action::Subscribe], Some("%DLQ%billing"), Some("g")));
    assert!(!node.may(&[Action::Admin], None, None));
}

#[test]
fn bad_files_are_one_line_naming_the_problem() {
    let h = hash("x");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "no [[tokens]]"),
        ("tokens = 3".into(), "line 1"),
        (file("colour = \"red\"\n"), "unknown field `colour`"),
        (
            "[[tokens]]\nprincipal = \"a\"\nsha256 = \"abc\"\nrules = [{actions = [\"ADMIN\"]}]"
                .to_string(),
            "tokens[0] (principal `a`): sha256 must be 64 hex digits",
        ),
        (
            format!(
                "[[tokens]]\nprincipal = \"a\"\nsha256 = \"{}\"\nrules = [{{actions = [\"ADMIN\"]}}]",
                "z".repeat(64)
            ),
            "sha256 must be 64 hex digits",
        ),
        (
            format!("[[tokens]]\nprincipal = \"a\"\nsha256 = \"{h}\"\nrules = []"),
            "tokens[0] (principal `a`): no rules",
        ),
        (
            format!("[[tokens]]\nprincipal = \"a\"\nsha256 = \"{h}\"\nrules = [{{actions = []}}]"),
            "rules[0]: no actions",
        ),
        (
            format!(
                "[[tokens]]\nprincipal = \"a\"\nsha256 = \"{h}\"\nrules = [{{actions = [\"READ\"]}}]"
            ),
            "unknown variant `READ`",
        ),
        (
            format!(
                "[[tokens]]\nprincipal = \"a\"\nsha256 = \"{h}\"\nrules = [{{actions = [\"ADMIN\"], topics = [\"orders.+\"]}}]"
            ),
            "pattern `orders.+` has `+`",
        ),
        (
            format!(
                "[[tokens]]\nprincipal = \"a b\"\nsha256 = \"{h}\"\nrules = [{{actions = [\"ADMIN\"]}}]"
            ),
            "tokens[0]: principal `a b` must be",
        ),
        (
            format!(
                "[[tokens]]\nprincipal = \"a\"\nsha256 = \"{h}\"\nrules = [{{actions = [\"ADMIN\"]}}]\n[[tokens]]\nprincipal = \"b\"\nsha256 = \"{}\"\nrules = [{{actions = [\"ADMIN\"]}}]",
                h.to_uppercase()
            ),
            "tokens[1] (principal `b`): the same sha256 as tokens[0]",
        ),
        (
            format!(
                "[[tokens]]\nprincipal = \"a\"\nsha256 = \"{h}\"\nrules = [{{actions = [\"ADMIN\"]}}]\nburst = 5"
            ),
            "burst without rate_per_second",
        ),
        (
            format!(
                "[[tokens]]\nprincipal = \"a\"\nsha256 = \"{h}\"\nrules = [{{actions = [\"ADMIN\"]}}]\nrate_per_second = 0"
            ),
            "rate_per_second 0 is outside",
        ),
        (
            format!(
                "[[tokens]]\nprincipal = \"a\"\nsha256 = \"{h}\"\nrules = [{{actions = [\"ADMIN\"]}}]\nrate_per_second = 5\n[[tokens]]\nprincipal = \"a\"\nsha256 = \"{}\"\nrules = [{{actions = [\"ADMIN\"]}}]\nrate_per_second = 6",
                hash("y")
            ),
            "different rate_per_second/burst",
        ),
        (
            format!(
                "cluster_secret_sha256 = [\"{h}\"]\n[[tokens]]\nprincipal = \"a\"\nsha256 = \"{h}\"\nrules = [{{actions = [\"ADMIN\"]}}]"
            ),
            "the same sha256 as cluster_secret_sha256[0]",
        ),
    ];
    for (text, expected) in cases {
        let error = parse(&text).expect_err(&text);
        assert!(
            error.contains(expected),
            "{text}\n→ {error}\n(expected {expected:?})"
        );
        assert!(!error.contains('\n'), "one line: {error}");
    }
}

#[test]
fn a_sigv4_secret_is_the_principals_sqs_secret_access_key() {
    let text = format!(
        "{}[[tokens]]\nprincipal = \"billing\"\nsha256 = \"{}\"\nrules = [{{actions = [\"ADMIN\"]}}]\n[[tokens]]\nprincipal = \"audit\"\nsha256 = \"{}\"\nrules = [{{actions = [\"ADMIN\"]}}]\n",
        file("sigv4_secret = \"billing-token\"\n"),
        hash("second-billing-token"),
        hash("audit-token"),
    );
    let policy = parse(&text).unwrap();
    assert_eq!(policy.sigv4_secret("billing"), Some("billing-token"));
    assert_eq!(
        policy.sigv4_secret("audit"),
        None,
        "no sigv4_secret: no SQS access"
    );
    assert_eq!(policy.sigv4_secret("nobody"), None);
    // The secret is the token: it still authenticates as a Bearer token,
    // and as the entry that carries it.
    let Some(Caller::Client(grant)) = policy.authenticate("billing-token") else {
        panic!("the token should authenticate")
    };
    assert_eq!(grant.principal, "billing");
    assert!(
        grant.rules[0].actions == [Action::Subscribe],
        "the grant of the entry with the secret"
    );
    assert!(
        !format!("{policy:?}").contains("billing-token"),
        "Debug redacts"
    );
    assert!(format!("{policy:?}").contains("<redacted>"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.toml");
    std::fs::write(&path, &text).unwrap();
    let auth = super::Auth::load(&path, None).unwrap();
    assert_eq!(auth.policy().sigv4_secret("billing"), Some("billing-token"));
    assert!(!format!("{auth:?}").contains("billing-token"));
}

#[test]
fn a_sigv4_secret_must_be_the_entrys_token_and_one_per_principal() {
    let admin = |principal: &str, token: &str, secret: &str| {
        format!(
            "[[tokens]]\nprincipal = \"{principal}\"\nsha256 = \"{}\"\nrules = [{{actions = [\"ADMIN\"]}}]\nsigv4_secret = \"{secret}\"\n",
            hash(token)
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            admin("a", "the-token", "another-token"),
            "tokens[0] (principal `a`): the SHA-256 of sigv4_secret is not this entry's sha256: the SigV4 secret access key is the token itself",
        ),
        (
            admin("a", "two words", "two words"),
            "tokens[0] (principal `a`): sigv4_secret must be visible ASCII characters only",
        ),
        (admin("a", "", ""), "sigv4_secret must be visible ASCII"),
        (
            admin("a", "tökén", "tökén"),
            "sigv4_secret must be visible ASCII",
        ),
        (
            format!("{}{}", admin("a", "t1", "t1"), admin("a", "t2", "t2")),
            "tokens[1] (principal `a`): tokens[0] of this principal already has a sigv4_secret",
        ),
    ];
    for (text, expected) in cases {
        let error = parse(&text).expect_err(&text);
        assert!(
            error.contains(expected),
            "{text}\n→ {error}\n(expected {expected:?})"
        );
        assert!(!error.contains('\n'), "one line: {error}");
        for secret in ["another-token", "two words", "tökén", "t1", "t2"] {
            assert!(!error.contains(secret), "the error shows a secret: {error}");
        }
    }
    // One entry per principal with the secret, others of it without; other principals too.
    let text = format!(
        "{}{}{}",
        admin("a", "t1", "t1"),
        admin("b", "t3", "t3"),
        admin("a", "t2", "t2").replace("sigv4_secret = \"t2\"\n", "")
    );
    let policy = parse(&text).unwrap();
    assert_eq!(
        (policy.sigv4_secret("a"), policy.sigv4_secret("b")),
        (Some("t1"), Some("t3"))
    );
    assert!(policy.authenticate("t2").is_some());
}

#[test]
fn the_cluster_secret_file_must_be_accepted_by_the_auth_file() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.toml");
    let secret = dir.path().join("secret");
    let good = "a-cluster-secret-of-at-least-32-characters";
    std::fs::write(
        &auth,
        format!("cluster_secret_sha256 = \"{}\"\n{}", hash(good), file("")),
    )
    .unwrap();
    std::fs::write(&secret, format!("{good}\n")).unwrap();
    let loaded = super::file::load(&auth, Some(&secret)).unwrap();
    assert_eq!(loaded.node_secret.as_deref(), Some(good));
    std::fs::write(&secret, "another-secret-of-at-least-32-characters").unwrap();
    let error = super::file::load(&auth, Some(&secret)).unwrap_err();
    assert!(
        error.contains("not among the auth file's cluster_secret_sha256"),
        "{error}"
    );
    std::fs::write(&secret, "short").unwrap();
    let error = super::file::load(&auth, Some(&secret)).unwrap_err();
    assert!(error.contains("at least 32 characters"), "{error}");
    let auth_state = super::Auth::load(&auth, None).unwrap();
    assert!(auth_state.node_authorization().is_none());
}

#[test]
fn reload_keeps_the_old_rules_when_the_new_file_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.toml");
    std::fs::write(&path, file("")).unwrap();
    let auth = super::Auth::load(&path, None).unwrap();
    assert_eq!(auth.reload_if_changed(), Ok(super::Reloaded::Unchanged));
    std::fs::write(&path, "[[tokens]]\nprincipal = ").unwrap();
    assert!(auth.reload_if_changed().is_err());
    assert!(
        auth.policy().authenticate("billing-token").is_some(),
        "old rules stay"
    );
    let other = file("").replace(&hash("billing-token"), &hash("new-token"));
    std::fs::write(&path, other).unwrap();
    assert_eq!(auth.reload_if_changed(), Ok(super::Reloaded::Changed));
    assert!(auth.policy().authenticate("billing-token").is_none());
    assert!(auth.policy().authenticate("new-token").is_some());
    assert_eq!(
        auth.reload(),
        Ok(super::Reloaded::Changed),
        "SIGHUP reloads even unchanged"
    );
}

#[test]
fn rate_limits_throttle_per_principal() {
    let text = file("rate_per_second = 1\nburst = 2\n");
    let policy = parse(&text).unwrap();
    let limits = super::limit::Limits::default();
    limits.update(&policy);
    assert!(limits.check("billing").is_ok());
    assert!(limits.check("billing").is_ok());
    let wait = limits.check("billing").unwrap_err();
    assert!(wait <= std::time::Duration::from_secs(1));
    assert_eq!(super::limit::retry_after_seconds(wait), 1);
    assert!(limits.check("someone-else").is_ok(), "no limit set");
    // An unrelated reload keeps the spent budget.
    limits.update(&parse(&text).unwrap());
    assert!(limits.check("billing").is_err());
}

#[test]
fn shale_token_prints_a_hash_line_the_file_accepts() {
    let token = new_token().unwrap();
    assert!(token.starts_with("shale_") && token.len() == 49, "{token}");
    assert_ne!(token, new_token().unwrap());
    let args = TokenArgs {
        principal: "billing".into(),
        actions: vec!["subscribe".into()],
        topics: vec!["orders*".into()],
        groups: vec!["billing*".into()],
        token_file: None,
    };
    let lines = toml_lines(&token, &args).unwrap();
    assert!(!lines.contains(&token), "the token never goes to the file");
    let policy = parse(&lines).unwrap();
    let caller = policy.authenticate(&token).unwrap();
    assert!(caller.may(&[Action::Subscribe], Some("orders-eu"), Some("billing")));
    let bare = toml_lines(
        &token,
        &TokenArgs {
            actions: vec![],
            ..args.clone()
        },
    )
    .unwrap();
    assert!(bare.contains("# rules = ") && parse(&bare).is_err());
    let bad = TokenArgs {
        actions: vec!["READ".into()],
        ..args
    };
    assert!(toml_lines(&token, &bad).is_err());
}

/// Every `(method, path)` of `routes::router`, read from its source: the
/// router cannot list its routes, and this keeps a new route from going
/// without a rule.
fn router_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../routes/mod.rs");
    let mut routes = BTreeSet::new();
    for chunk in source.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).unwrap().to_string();
        // The method router: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = chunk
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .unwrap()
            .0;
        let methods = &chunk[..end];
        for m in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{m}(");
            let called = methods.match_indices(&call).any(|(at, _)| {
                let before = methods[..at].chars().next_back();
                before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
            });
            if called {
                routes.insert((m.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_route_of_the_router_has_exactly_one_rule() {
    let router = router_routes();
    assert!(router.len() >= 25, "parsed too few routes: {router:?}");
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(table.len(), ROUTES.len(), "a route is in the table twice");
    let missing: Vec<_> = router.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes without an auth rule: {missing:?}"
    );
    let stale: Vec<_> = table.difference(&router).collect();
    assert!(
        stale.is_empty(),
        "rules for routes that do not exist: {stale:?}"
    );
}

#[test]
fn every_operation_of_the_document_has_a_rule_and_states_it() {
    let doc = serde_json::to_value(crate::openapi::document()).unwrap();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let Lookup::Found(access) = lookup(&m, path) else {
                panic!("{method} {path} has no rule in auth::rules::ROUTES");
            };
            seen += 1;
            if path.starts_with("/v1") {
                assert!(matches!(access, Access::Need(_)), "{method} {path} is open");
                assert_eq!(
                    op["security"],
                    serde_json::json!([{"bearer": []}]),
                    "{method} {path}"
                );
                for status in ["401", "403", "429"] {
                    assert!(
                        op["responses"].get(status).is_some(),
                        "{method} {path} {status}"
                    );
                }
                assert!(
                    op["description"]
                        .as_str()
                        .unwrap()
                        .contains("Auth (with `--auth-file`)")
                );
            }
        }
    }
    assert_eq!(
        seen,
        ROUTES.len(),
        "the document and the table list the same routes"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
}

#[test]
fn body_and_query_names_are_where_the_handlers_read_them() {
    for r in ROUTES {
        let Access::Need(need) = r.access else {
            assert!(
                !r.path.starts_with("/v1"),
                "{} {} must need a token",
                r.method,
                r.path
            );
            continue;
        };
        for name in [need.topic, need.group] {
            match name {
                Name::Path(p) | Name::TxnPath(p) => assert!(
                    r.path.contains(&format!("{{{p}}}")),
                    "{} {}",
                    r.method,
                    r.path
                ),
                Name::Body(_) => assert!(matches!(r.method, "POST" | "PUT" | "PATCH")),
                Name::Query(_) => assert_eq!(r.method, "GET"),
                Name::None => {}
            }
        }
    }
}
