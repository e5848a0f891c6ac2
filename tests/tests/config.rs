//! The command-line contract of API.md "Running a node", observed from
//! outside: flags > `SHALE_*` environment > config file > defaults; port 0;
//! exactly one `shale listening on` line; SIGTERM exits 0; a bad setting
//! stops the node with a non-zero status and a message naming the setting.

use std::path::Path;

use serde_json::json;
use shale_tests::segments::{queue_dir, sealed_segments};
use shale_tests::{Launch, Node};

fn write_config(dir: &Path, text: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("shale.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn host(node: &Node) -> String {
    node.addr
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn listen_flag_beats_env_beats_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let cfg = write_config(dir.path(), "listen = \"127.0.0.3:0\"\n")?;
    let base = || {
        Launch::new()
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(&data)
            .cwd(dir.path())
    };

    let mut file_only = base().start()?;
    assert_eq!(
        host(&file_only),
        "127.0.0.3",
        "file sets listen: {}",
        file_only.base
    );
    assert!(
        !file_only.addr.ends_with(":0"),
        "port 0 is replaced by the bound port: {}",
        file_only.addr
    );
    assert_eq!(file_only.get("/healthz").await?.status, 200);
    file_only.stop_clean()?;

    let mut env_over_file = base().env("SHALE_LISTEN", "127.0.0.2:0").start()?;
    assert_eq!(
        host(&env_over_file),
        "127.0.0.2",
        "env beats file: {}",
        env_over_file.base
    );
    env_over_file.stop_clean()?;

    let mut flag_over_env = base()
        .env("SHALE_LISTEN", "127.0.0.2:0")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .start()?;
    assert_eq!(
        host(&flag_over_env),
        "127.0.0.1",
        "flag beats env: {}",
        flag_over_env.base
    );
    assert_eq!(flag_over_env.get("/healthz").await?.status, 200);
    flag_over_env.stop_clean()?;

    // SHALE_CONFIG names the file as well as --config does.
    let mut via_env = Launch::new()
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .cwd(dir.path())
        .env("SHALE_CONFIG", &cfg)
        .start()?;
    assert_eq!(
        host(&via_env),
        "127.0.0.3",
        "SHALE_CONFIG: {}",
        via_env.base
    );
    via_env.stop_clean()?;
    Ok(())
}

#[tokio::test]
async fn storage_settings_from_env_and_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env_data = dir.path().join("env-data");
    let file_data = dir.path().join("file-data");
    // The file asks for big segments and one data dir; the environment wins on both.
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir = {:?}\nsegment_bytes = \"64MiB\"\nlisten = \"127.0.0.1:0\"\n",
            file_data.display().to_string()
        ),
    )?;
    let mut node = Launch::new()
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .env("SHALE_DATA_DIR", &env_data)
        .env("SHALE_SEGMENT_BYTES", "64KiB")
        .cwd(dir.path())
        .start()?;
    node.create_topic("cfg", 1, "NORMAL", "ASYNC").await?;
    for i in 0..10 {
        let batch: Vec<_> = (0..10)
            .map(|j| json!({"body": format!("{i}-{j}-{}", "z".repeat(2000))}))
            .collect();
        node.produce_ok("cfg", json!(batch)).await?;
    }
    node.stop_clean()?;
    let qdir = queue_dir(&env_data, "cfg", 0);
    assert!(
        qdir.exists(),
        "SHALE_DATA_DIR beats the file's data_dir: no {}",
        qdir.display()
    );
    assert!(
        !queue_dir(&file_data, "cfg", 0).exists(),
        "the file's data_dir was used"
    );
    let sealed = sealed_segments(&qdir)?;
    assert!(
        sealed.len() >= 2,
        "SHALE_SEGMENT_BYTES=64KiB beats the file's 64MiB: sealed {sealed:?}"
    );

    // The file alone sets data_dir when nothing overrides it.
    let mut node = Launch::new()
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .cwd(dir.path())
        .start()?;
    node.create_topic("from-file", 1, "NORMAL", "ASYNC").await?;
    node.stop_clean()?;
    assert!(
        queue_dir(&file_data, "from-file", 0).exists() || file_data.join("hot").exists(),
        "the file's data_dir is used"
    );
    let mut node = Launch::new()
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .cwd(dir.path())
        .start()?;
    assert_eq!(
        node.topic_names().await?,
        vec!["from-file".to_string()],
        "metadata kept in the file's data_dir"
    );
    node.stop_clean()?;
    Ok(())
}

#[tokio::test]
async fn one_stdout_line_port_zero_and_clean_sigterm() -> anyhow::Result<()> {
    let a_dir = tempfile::tempdir()?;
    let b_dir = tempfile::tempdir()?;
    let mut a = Node::start(a_dir.path(), &[])?;
    let mut b = Node::start(b_dir.path(), &[])?;
    assert_ne!(a.addr, b.addr, "two nodes on port 0 get two ports");
    assert!(a.base.starts_with("http://127.0.0.1:"), "{}", a.base);
    a.create_topic("t", 1, "NORMAL", "SYNC").await?;
    a.produce_ok("t", json!([{"body": "x"}])).await?;
    let status = a.stop()?;
    assert!(
        status.success(),
        "SIGTERM exits 0, got {status}; stderr:\n{}",
        a.stderr()
    );
    assert_eq!(
        a.stdout_lines().len(),
        1,
        "exactly one stdout line: {:?}",
        a.stdout_lines()
    );
    assert!(a.stdout_lines()[0].starts_with("shale listening on http://127.0.0.1:"));
    assert!(b.is_running(), "stopping one node does not touch the other");

    // A node cannot take an address already in use: it must exit non-zero, not hang.
    let taken = b.addr.clone();
    let (status, _out, err) = Launch::new()
        .arg("serve")
        .arg("--listen")
        .arg(&taken)
        .arg("--data-dir")
        .arg(a_dir.path())
        .cwd(a_dir.path())
        .run_to_exit()?;
    assert!(
        !status.success(),
        "listen on a taken address exits non-zero"
    );
    assert!(!err.trim().is_empty(), "and says why");
    b.stop_clean()?;
    Ok(())
}

#[tokio::test]
async fn bad_settings_exit_non_zero_with_a_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let serve = || {
        Launch::new()
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data)
            .cwd(dir.path())
    };

    let cases: Vec<(&str, Launch, &[&str])> = vec![
        (
            "flag --segment-bytes abc",
            serve().arg("--segment-bytes").arg("abc"),
            &["segment"],
        ),
        (
            "env SHALE_SEGMENT_BYTES=abc",
            serve().env("SHALE_SEGMENT_BYTES", "abc"),
            &["segment"],
        ),
        (
            "segment bytes below the minimum",
            serve().arg("--segment-bytes").arg("1"),
            &["segment"],
        ),
        (
            "listen not an address",
            Launch::new()
                .arg("serve")
                .arg("--listen")
                .arg("not-an-address")
                .arg("--data-dir")
                .arg(&data)
                .cwd(dir.path()),
            &["listen", "not-an-address"],
        ),
        (
            "missing config file",
            serve().arg("--config").arg(dir.path().join("nope.toml")),
            &["nope.toml"],
        ),
        (
            "unknown flag",
            serve().arg("--no-such-flag"),
            &["no-such-flag"],
        ),
    ];
    for (what, launch, needles) in cases {
        let (status, _out, err) = launch.run_to_exit()?;
        assert!(!status.success(), "{what}: exit status {status}");
        let lower = err.to_lowercase();
        assert!(
            needles.iter().any(|n| lower.contains(&n.to_lowercase())),
            "{what}: stderr should name the setting ({needles:?}):\n{err}"
        );
    }

    let bad_file = write_config(dir.path(), "bogus_key = 1\n")?;
    let (status, _, err) = serve().arg("--config").arg(&bad_file).run_to_exit()?;
    assert!(
        !status.success(),
        "unknown key in the config file: {status}"
    );
    assert!(
        err.contains("bogus_key"),
        "stderr names the unknown key:\n{err}"
    );
    let bad_toml = dir.path().join("broken.toml");
    std::fs::write(&bad_toml, "listen = \n")?;
    let (status, _, err) = serve().arg("--config").arg(&bad_toml).run_to_exit()?;
    assert!(!status.success(), "broken TOML: {status}");
    assert!(!err.trim().is_empty());
    Ok(())
}
