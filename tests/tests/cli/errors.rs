//! `shale completions`, usage errors (exit 2) and an unreachable node (exit 1).

use shale_tests::cli::Cli;

#[test]
fn completions_and_usage_and_network_errors() {
    let bash = Cli::bare(&["completions", "bash"]).run();
    assert!(
        bash.ok().contains("_shale") && bash.stdout.contains("replay"),
        "{bash:?}"
    );
    assert!(
        Cli::bare(&["completions", "zsh"])
            .run()
            .ok()
            .starts_with("#compdef shale")
    );
    assert_eq!(Cli::bare(&["completions", "tcsh"]).run().code(), 2);
    assert_eq!(Cli::bare(&["send"]).run().code(), 2);
    assert_eq!(
        Cli::bare(&[
            "consume",
            "g",
            "t",
            "--wait",
            "60s",
            "--url",
            "http://127.0.0.1:1"
        ])
        .run()
        .code(),
        2
    );
    let bad_url = Cli::bare(&["topic", "list", "--url", "localhost:8080"]).run();
    assert_eq!(bad_url.code(), 2, "{bad_url:?}");
    // Nothing listens on this port (it was free a moment ago).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let down = Cli::bare(&["topic", "list"])
        .env("SHALE_URL", format!("http://127.0.0.1:{port}"))
        .run();
    assert_eq!(down.code(), 1, "{down:?}");
    assert!(
        down.stderr.starts_with("shale: GET /v1/topics: ") && down.stderr.contains("refused"),
        "{down:?}"
    );
    let missing_ca = Cli::bare(&["topic", "list", "--ca-cert", "/nonexistent.pem"]).run();
    assert_eq!(missing_ca.code(), 2, "{missing_ca:?}");
}
