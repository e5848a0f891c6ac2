//! `--token` / `SHALE_TOKEN` against a node with an auth file, and
//! `--ca-cert` against a node serving HTTPS with a certificate no system
//! root knows.

use shale_tests::Node;
use shale_tests::cli::Cli;

/// `shale token ARGS`: (token, auth-file lines).
fn make_token(args: &[&str]) -> (String, String) {
    let out = Cli::bare(&["token"]).args(args).run();
    let lines = out.ok().to_string();
    let token = out
        .stderr
        .lines()
        .find_map(|l| l.rsplit_once(": ").map(|(_, t)| t.trim().to_string()))
        .filter(|t| t.starts_with("shale_"))
        .unwrap_or_else(|| panic!("no token on stderr: {}", out.stderr));
    (token, lines)
}

#[test]
fn the_token_flag_and_variable_authenticate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, lines) = make_token(&[
        "--actions",
        "PUBLISH,SUBSCRIBE,ADMIN",
        "--topics",
        "*",
        "--groups",
        "*",
    ]);
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, lines).expect("write auth file");
    let auth = auth.to_string_lossy().into_owned();
    let node = Node::start(&dir.path().join("data"), &["--auth-file", &auth]).expect("node");

    let denied = Cli::new(&node.base, &["topic", "list"]).run();
    assert_eq!(denied.code(), 1, "{denied:?}");
    assert!(
        denied.stderr.starts_with("shale: UNAUTHENTICATED: "),
        "{denied:?}"
    );
    let wrong = Cli::new(&node.base, &["topic", "list", "--token", "shale_nope"]).run();
    assert!(
        wrong.stderr.starts_with("shale: UNAUTHENTICATED: "),
        "{wrong:?}"
    );
    Cli::new(&node.base, &["topic", "create", "t", "--token", &token])
        .run()
        .ok();
    let listed = Cli::new(&node.base, &["topic", "list", "--json"])
        .env("SHALE_TOKEN", &token)
        .run()
        .json();
    assert_eq!(listed[0]["name"], "t");
}

#[test]
fn the_ca_cert_flag_trusts_a_private_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let (cert_arg, key_arg) = (cert.to_string_lossy(), key.to_string_lossy());
    let node = Node::start(
        &dir.path().join("data"),
        &["--tls-cert", &cert_arg, "--tls-key", &key_arg],
    )
    .expect("node");
    assert!(node.base.starts_with("https://127.0.0.1:"), "{}", node.base);
    let url = node.base.replace("127.0.0.1", "localhost");

    let trusted = Cli::new(&url, &["topic", "list", "--json", "--ca-cert"])
        .arg(&cert)
        .run();
    assert_eq!(trusted.json(), serde_json::json!([]));
    let untrusted = Cli::new(&url, &["topic", "list"]).run();
    assert_eq!(untrusted.code(), 1, "{untrusted:?}");
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "the cause is named: {untrusted:?}"
    );
    let not_pem = Cli::new(&url, &["topic", "list", "--ca-cert"])
        .arg(&key)
        .run();
    assert_eq!(not_pem.code(), 2, "{not_pem:?}");
}
