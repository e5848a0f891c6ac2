//! `shale doctor` as a user runs it, and the same checks at node start.
//! The S3 cases use the moto server scripts/test.sh starts (skipped without it).

use std::process::{Command, Output, Stdio};

use shale_tests::{Node, shale_bin};

fn doctor(args: &[&str]) -> Output {
    Command::new(shale_bin())
        .arg("doctor")
        .args(args)
        .env_remove("SHALE_OBJECT_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("run shale doctor")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The moto bucket of scripts/test.sh, or `None` (skip) without one.
fn moto_bucket() -> Option<String> {
    match std::env::var("SHALE_TEST_S3_BUCKET") {
        Ok(bucket) => Some(bucket),
        Err(_) => {
            assert!(
                std::env::var("SHALE_REQUIRE_S3").is_err(),
                "SHALE_REQUIRE_S3 is set but SHALE_TEST_S3_BUCKET is not"
            );
            eprintln!("SKIPPED: no S3 server (run scripts/test.sh, which starts moto)");
            None
        }
    }
}

#[test]
fn a_local_directory_passes_and_is_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let out = doctor(&[
        "--object-store",
        &format!("file://{}", dir.path().display()),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("check"), "a table: {stdout}");
    for check in [
        "create",
        "create-conflict",
        "read-after-write",
        "list",
        "ranged-get",
        "delete",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{check} ")) && l.contains(" ok ")),
            "{check} passes: {stdout}"
        );
    }
    assert!(stdout.contains("every check passed"), "{stdout}");
    let left: Vec<_> = walk(dir.path());
    assert!(left.is_empty(), "scratch objects left: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the store directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn bad_arguments_exit_2() {
    let out = doctor(&["--object-store", "gs://bucket"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("invalid --object-store"));
    let out = doctor(&["--object-store", "memory://", "--create-bucket"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("needs an s3:// URL"));
}

#[test]
fn s3_through_moto_with_a_new_bucket() {
    let Some(_) = moto_bucket() else { return };
    let bucket = format!("shale-doctor-cli-{}", std::process::id());
    let out = doctor(&[
        "--object-store",
        &format!("s3://{bucket}/some/prefix"),
        "--create-bucket",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("created bucket {bucket}")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("cas-stale ") && l.contains(" ok ")),
        "S3 has conditional updates: {stdout}"
    );
}

#[test]
fn a_node_on_s3_checks_its_store_at_start() -> anyhow::Result<()> {
    let Some(bucket) = moto_bucket() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let store = format!("s3://{bucket}/start-check-{}", std::process::id());
    let mut node = Node::start(dir.path(), &["--object-store", &store])?;
    let stderr = node.stderr();
    assert!(stderr.contains("object store checks passed"), "{stderr}");
    node.stop_clean()?;
    Ok(())
}
