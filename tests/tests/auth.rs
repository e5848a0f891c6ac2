//! Auth from outside: tokens made with `shale token`, a node started with
//! `--auth-file`, 401/403/200, a reload by rewriting the file, a bad file
//! that keeps the old rules, SIGHUP, and a bad file at start (exit 2).
//! Every wait is bounded; nothing sleeps for luck.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use shale_tests::{Launch, Node, wait_until};

/// Bound of the reload waits (the node checks the file every second).
const RELOAD_WAIT: Duration = Duration::from_secs(15);

/// `shale token ARGS`: (token, TOML lines).
fn make_token(args: &[&str]) -> anyhow::Result<(String, String)> {
    let (status, out, err) = Launch::new().arg("token").args(args).run_to_exit()?;
    anyhow::ensure!(status.success(), "shale token failed: {err}");
    let token = err
        .lines()
        .find_map(|l| l.rsplit_once(": ").map(|(_, t)| t.trim().to_string()))
        .filter(|t| t.starts_with("shale_"))
        .ok_or_else(|| anyhow::anyhow!("no token on stderr: {err}"))?;
    anyhow::ensure!(
        !out.contains(&token),
        "the TOML lines must not hold the token"
    );
    Ok((token, out))
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn status(node: &Node, token: Option<&str>, path: &str) -> anyhow::Result<u16> {
    let mut req = node.client.get(node.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Ok(req.send().await?.status().as_u16())
}

#[tokio::test]
async fn a_node_with_an_auth_file_checks_tokens_and_reloads_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (root, root_lines) = make_token(&[
        "--principal",
        "ops",
        "--actions",
        "PUBLISH,SUBSCRIBE,ADMIN",
        "--topics",
        "*",
        "--groups",
        "*",
    ])?;
    let (billing, billing_lines) = make_token(&[
        "--principal",
        "billing",
        "--actions",
        "SUBSCRIBE",
        "--topics",
        "orders*",
        "--groups",
        "billing*",
    ])?;
    let auth_file = dir.path().join("auth.toml");
    write_atomically(&auth_file, &format!("{root_lines}\n{billing_lines}"))?;
    let data = dir.path().join("data");
    let auth_arg = auth_file.to_string_lossy().into_owned();
    let mut node = Node::start(&data, &["--auth-file", &auth_arg])?;

    // 401 without or with a wrong token; open operational routes.
    assert_eq!(status(&node, None, "/v1/topics").await?, 401);
    assert_eq!(
        status(&node, Some("shale_not-a-token"), "/v1/topics").await?,
        401
    );
    assert_eq!(status(&node, None, "/healthz").await?, 200);
    assert_eq!(status(&node, None, "/readyz").await?, 200);
    let no_token = node.client.get(node.url("/v1/topics")).send().await?;
    assert!(no_token.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = no_token.json().await?;
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");

    // 200 with the action, 403 without.
    for topic in ["orders-eu", "payments"] {
        let created = node
            .client
            .post(node.url("/v1/topics"))
            .bearer_auth(&root)
            .json(&json!({"name": topic, "queues": 1}))
            .send()
            .await?;
        assert_eq!(created.status().as_u16(), 201);
    }
    let read = "/v1/topics/orders-eu/queues/0/messages?offset=0";
    assert_eq!(status(&node, Some(&billing), read).await?, 200);
    let other = "/v1/topics/payments/queues/0/messages?offset=0";
    assert_eq!(status(&node, Some(&billing), other).await?, 403);
    let produce = node
        .client
        .post(node.url("/v1/topics/orders-eu/messages"))
        .bearer_auth(&billing)
        .json(&json!({"messages": [{"body": "x"}]}))
        .send()
        .await?;
    assert_eq!(produce.status().as_u16(), 403);
    let body: serde_json::Value = produce.json().await?;
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");

    // Reload on change: billing may now read payments too.
    let wider = billing_lines.replace("\"orders*\"", "\"orders*\", \"payments\"");
    assert_ne!(wider, billing_lines);
    write_atomically(&auth_file, &format!("{root_lines}\n{wider}"))?;
    wait_until(RELOAD_WAIT, "the changed file to take effect", || async {
        status(&node, Some(&billing), other).await.ok() == Some(200)
    })
    .await?;

    // A bad file is logged and the rules in force stay.
    write_atomically(&auth_file, "[[tokens]]\nprincipal = \"half")?;
    wait_until(RELOAD_WAIT, "the bad file to be reported", || async {
        node.stderr().contains("auth file not reloaded")
    })
    .await?;
    assert_eq!(status(&node, Some(&billing), other).await?, 200);
    assert_eq!(status(&node, Some(&root), "/v1/cluster").await?, 200);

    // SIGHUP reloads (and does not end the process).
    write_atomically(&auth_file, &format!("{root_lines}\n{billing_lines}"))?;
    // SAFETY: kill(2) on the child's pid, which this test owns.
    let sent = unsafe { libc::kill(node.pid() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(sent, 0);
    wait_until(RELOAD_WAIT, "the SIGHUP reload", || async {
        node.stderr().contains("SIGHUP: reloading the auth file")
            && status(&node, Some(&billing), other).await.ok() == Some(403)
    })
    .await?;
    assert_eq!(status(&node, Some(&billing), read).await?, 200);

    // Tokens never reach the logs.
    let logs = node.stderr();
    assert!(
        !logs.contains(&root) && !logs.contains(&billing),
        "a token was logged"
    );
    node.stop_clean()?;
    Ok(())
}

#[tokio::test]
async fn a_bad_auth_file_stops_the_node_before_it_starts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let auth_file = dir.path().join("auth.toml");
    std::fs::write(
        &auth_file,
        "[[tokens]]\nprincipal = \"a\"\nsha256 = \"not-hex\"\nrules = [{actions = [\"ADMIN\"]}]\n",
    )?;
    let data = dir.path().join("data");
    let (status, out, err) = Launch::serve(&data)
        .arg("--auth-file")
        .arg(&auth_file)
        .run_to_exit()?;
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(out.is_empty(), "never listening: {out}");
    let line = err
        .lines()
        .find(|l| l.starts_with("shale: "))
        .unwrap_or_default();
    assert!(
        line.contains("invalid auth_file (from --auth-file)")
            && line.contains("tokens[0] (principal `a`): sha256 must be 64 hex digits"),
        "{err}"
    );
    Ok(())
}

async fn send(
    node: &Node,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut req = node
        .client
        .request(method, node.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(json!(text))))
}

/// Two nodes with one auth file and a cluster secret: forwarded produces
/// and gathered receives carry the caller's token (checked again where they
/// land), and dead-letter copies between nodes use the cluster secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_with_auth_forwards_with_the_callers_token_and_copies_dead_letters_with_its_secret()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (root, root_lines) = make_token(&[
        "--principal",
        "ops",
        "--actions",
        "PUBLISH,SUBSCRIBE,ADMIN",
        "--topics",
        "*",
        "--groups",
        "*",
    ])?;
    let (reader, reader_lines) = make_token(&[
        "--principal",
        "reader",
        "--actions",
        "SUBSCRIBE",
        "--topics",
        "*",
        "--groups",
        "*",
    ])?;
    let secret_file = dir.path().join("cluster-secret");
    let (status, secret_lines, err) = Launch::new()
        .arg("token")
        .arg("--principal")
        .arg("cluster")
        .arg("--token-file")
        .arg(&secret_file)
        .run_to_exit()?;
    anyhow::ensure!(status.success(), "{err}");
    let secret_hash = secret_lines
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = "))
        .ok_or_else(|| anyhow::anyhow!("no sha256 line: {secret_lines}"))?;
    let auth_file = dir.path().join("auth.toml");
    write_atomically(
        &auth_file,
        &format!("cluster_secret_sha256 = [{secret_hash}]\n{root_lines}\n{reader_lines}"),
    )?;
    let store = format!("file://{}", dir.path().join("objects").display());
    let mut nodes = Vec::new();
    for i in 0..2 {
        let data = dir.path().join(format!("node-{i}"));
        let args = [
            "--object-store".to_string(),
            store.clone(),
            "--node-id".into(),
            format!("node-{i}"),
            "--cluster-heartbeat-ms".into(),
            "200".into(),
            "--cluster-lease-ms".into(),
            "2000".into(),
            "--auth-file".into(),
            auth_file.display().to_string(),
            "--cluster-secret-file".into(),
            secret_file.display().to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Node::start(&data, &args)?);
    }
    let (n0, n1) = (&nodes[0], &nodes[1]);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let created = send(
        n0,
        &root,
        post.clone(),
        "/v1/topics",
        Some(&json!({"name": "orders", "queues": 8})),
    )
    .await?;
    anyhow::ensure!(created.0 == 201, "{created:?}");
    // Both nodes know the topic and serve some of its queues.
    let owners = std::cell::RefCell::new(Vec::new());
    wait_until(
        Duration::from_secs(30),
        "both nodes serve queues of orders",
        || async {
            let Ok((200, t)) = send(n1, &root, get.clone(), "/v1/topics/orders", None).await else {
                return false;
            };
            let mut seen: Vec<String> = t["queues"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|q| q["owner"].as_str().map(str::to_string))
                .collect();
            seen.sort();
            seen.dedup();
            *owners.borrow_mut() = seen.clone();
            seen == ["node-0", "node-1"]
        },
    )
    .await?;

    // Produce to every queue through node 0: half of them are forwarded to
    // node 1 with the caller's token. A SUBSCRIBE token is refused on both.
    let mut sent = 0;
    for q in 0..8u32 {
        let body = json!({"messages": [{"body": format!("m-{q}"), "queue": q}]});
        let path = "/v1/topics/orders/messages";
        let denied = send(n0, &reader, post.clone(), path, Some(&body)).await?;
        anyhow::ensure!(denied.0 == 403, "queue {q}: {denied:?}");
        let mut ok = false;
        for _ in 0..50 {
            let (status, answer) = send(n0, &root, post.clone(), path, Some(&body)).await?;
            anyhow::ensure!(
                status != 401 && status != 403,
                "queue {q}: {status} {answer}"
            );
            if status == 200 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // 503 while a queue moves
        }
        anyhow::ensure!(ok, "queue {q} never accepted the produce");
        sent += 1;
    }

    // A group that dead-letters at once; receives through node 0 gather from
    // both nodes with the caller's token; the copies to %DLQ%dl (one queue, on
    // one node) cross nodes with the cluster secret.
    let put = send(
        n0,
        &root,
        reqwest::Method::PUT,
        "/v1/groups/dl",
        Some(&json!({"consume_from": "EARLIEST", "max_delivery_attempts": 1, "retry_backoff_ms": [0]})),
    )
    .await?;
    anyhow::ensure!(put.0 == 201 || put.0 == 200, "{put:?}");
    let receive =
        json!({"topic": "orders", "max_messages": 16, "invisible_ms": 1000, "wait_ms": 200});
    wait_until(
        Duration::from_secs(60),
        "every message is dead-lettered",
        || async {
            let _ = send(
                n0,
                &reader,
                post.clone(),
                "/v1/groups/dl/receive",
                Some(&receive),
            )
            .await;
            let path = "/v1/topics/%25DLQ%25dl/queues/0/messages?max_messages=100";
            match send(n1, &reader, get.clone(), path, None).await {
                Ok((200, v)) => v["messages"].as_array().map_or(0, Vec::len) >= sent,
                _ => false,
            }
        },
    )
    .await?;
    for n in &nodes {
        anyhow::ensure!(!n.stderr().contains(&root), "a token was logged");
    }
    for mut n in nodes {
        n.stop_clean()?;
    }
    Ok(())
}
