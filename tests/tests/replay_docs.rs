//! The examples of `docs/REPLAY.md`, run as written against a real node and a
//! real S3-compatible bucket (the moto server `scripts/test.sh` starts).
//!
//! A node fills the topic `orders` (two queues, three phases of messages a
//! few milliseconds apart) and stops cleanly, which seals and uploads every
//! segment; a second node on the same bucket then adds a hot tail to queue 0.
//! Every fenced block of the document tagged `replay-test=NAME` is extracted
//! and run (Python with the test virtualenv's interpreter, shell with bash),
//! and its output is compared with what the messages the test stored imply.
//! A Python or shell block without a tag fails the test: nothing on the page
//! goes untested.
//!
//! Skipped without moto or without DuckDB in the virtualenv, unless
//! `SHALE_REQUIRE_S3` is set (as `scripts/test.sh` does), which makes a
//! missing piece a failure.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use shale_tests::Node;

const TOPIC: &str = "orders";
const PER_PHASE: usize = 600;
const PHASES: usize = 3;
const TAIL: usize = 50;

/// One fenced example of the page.
#[derive(Debug)]
struct Example {
    name: String,
    lang: String,
    code: String,
}

/// Fenced blocks in `python` or `sh`, each of which must carry `replay-test=NAME`.
fn examples(markdown: &str) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let lang = words.next().unwrap_or("").to_string();
        let name = words.find_map(|w| w.strip_prefix("replay-test="));
        let mut code = String::new();
        for body in lines.by_ref() {
            if body.starts_with("```") {
                break;
            }
            code.push_str(body);
            code.push('\n');
        }
        match (lang.as_str(), name) {
            ("python" | "sh", Some(name)) => out.push(Example {
                name: name.to_string(),
                lang,
                code,
            }),
            ("python" | "sh", None) => {
                bail!("an untested {lang} example in docs/REPLAY.md:\n{code}")
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What the test stored: per queue, (offset, store_ms, tag, body) in offset order.
type Stored = BTreeMap<u32, Vec<(u64, i64, Option<String>, String)>>;

fn body_of(i: usize) -> String {
    // ~500 bytes, so 64 KiB segments hold ~120 messages: several objects per phase.
    format!("order {i} {}", "x".repeat(480))
}

fn tag_of(i: usize) -> Option<&'static str> {
    match i % 3 {
        0 => Some("paid"),
        1 => Some("created"),
        _ => None,
    }
}

async fn produce_range(
    node: &Node,
    range: std::ops::Range<usize>,
    queue_of: impl Fn(usize) -> u32,
) -> anyhow::Result<()> {
    let all: Vec<usize> = range.collect();
    for chunk in all.chunks(100) {
        let messages: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                let mut m = json!({"body": body_of(i), "keys": [format!("order-{i}")], "queue": queue_of(i)});
                if let Some(tag) = tag_of(i) {
                    m["tag"] = json!(tag);
                }
                m
            })
            .collect();
        node.produce_ok(TOPIC, Value::Array(messages)).await?;
    }
    Ok(())
}

async fn stored(node: &Node) -> anyhow::Result<Stored> {
    let mut out = Stored::new();
    for queue in 0..2 {
        let rows = node
            .read_all(TOPIC, queue)
            .await?
            .iter()
            .map(|m| {
                (
                    m["offset"].as_u64().unwrap_or(u64::MAX),
                    m["store_ms"].as_i64().unwrap_or(-1),
                    m["tag"].as_str().map(str::to_string),
                    m["body"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        out.insert(queue, rows);
    }
    Ok(out)
}

/// `PATH` with the directory of the `shale` binary under test first.
fn path_with_shale() -> anyhow::Result<String> {
    let bin = shale_tests::shale_bin();
    let dir = bin.parent().context("the shale binary has a directory")?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let joined = std::env::join_paths(
        std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&path)),
    )?;
    joined
        .into_string()
        .map_err(|_| anyhow::anyhow!("PATH is not UTF-8"))
}

fn run(
    example: &Example,
    python: &str,
    env: &[(&str, String)],
    dir: &Path,
) -> anyhow::Result<String> {
    let script = dir.join(format!(
        "{}.{}",
        example.name,
        if example.lang == "python" { "py" } else { "sh" }
    ));
    std::fs::write(&script, &example.code)?;
    let mut command = if example.lang == "python" {
        Command::new(python)
    } else {
        let mut c = Command::new("bash");
        c.args(["-euo", "pipefail"]);
        c
    };
    let output = command
        .arg(&script)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .with_context(|| format!("run {}", example.name))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "example {} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        example.name,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

/// The lines `expected` must all appear in `stdout`, in order.
fn check_lines(name: &str, stdout: &str, expected: &[String]) {
    let got: Vec<&str> = stdout.lines().collect();
    let mut at = 0;
    for line in expected {
        match got[at..].iter().position(|g| g == line) {
            Some(p) => at += p + 1,
            None => panic!("example {name}: missing line {line:?} (in order) in:\n{stdout}"),
        }
    }
}

#[tokio::test]
async fn the_replay_examples_run_against_a_real_bucket() -> anyhow::Result<()> {
    let require = std::env::var_os("SHALE_REQUIRE_S3").is_some();
    let (Ok(bucket), Ok(python)) = (
        std::env::var("SHALE_TEST_S3_BUCKET"),
        std::env::var("SHALE_TEST_PYTHON"),
    ) else {
        assert!(
            !require,
            "SHALE_REQUIRE_S3 is set but SHALE_TEST_S3_BUCKET or SHALE_TEST_PYTHON is not"
        );
        eprintln!("SKIPPED: no S3 server or Python (run scripts/test.sh, which starts moto)");
        return Ok(());
    };
    let home = tempfile::tempdir()?;
    // DuckDB's httpfs from PyPI into a private extension directory (HOME), so
    // the page's `install_extension("httpfs")` needs no download.
    let duckdb = Command::new(&python)
        .args([
            "-c",
            "from duckdb_extensions import import_extension; import_extension('httpfs')",
        ])
        .env("HOME", home.path())
        .output()?;
    if !duckdb.status.success() {
        assert!(
            !require,
            "DuckDB's httpfs cannot be set up: {}",
            String::from_utf8_lossy(&duckdb.stderr)
        );
        eprintln!("SKIPPED: DuckDB with httpfs is not in the virtualenv");
        return Ok(());
    }

    let markdown =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/REPLAY.md"))?;
    let examples = examples(&markdown)?;
    ensure!(examples.len() >= 6, "examples found: {examples:?}");

    let prefix = format!(
        "replay-docs-{}-{}",
        std::process::id(),
        shale_tests::now_ms()
    );
    let store = format!("s3://{bucket}/{prefix}");
    let args = ["--segment-bytes", "65536", "--object-store", &store];

    // Three phases, each a few ms after the last (the ranges below are computed
    // from the stored store_ms, the pause only makes them distinct).
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut a = Node::start(dir_a.path(), &args)?;
    a.create_topic(TOPIC, 2, "NORMAL", "SYNC").await?;
    for phase in 0..PHASES {
        produce_range(&a, phase * PER_PHASE..(phase + 1) * PER_PHASE, |i| {
            (i % 2) as u32
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sealed = stored(&a).await?;
    a.stop_clean()?; // seals and uploads every segment

    let mut b = Node::start(dir_b.path(), &args)?;
    let total = PHASES * PER_PHASE;
    produce_range(&b, total..total + TAIL, |_| 0).await?;
    let all = stored(&b).await?;
    ensure!(
        all[&0].len() == total / 2 + TAIL,
        "queue 0 holds {}",
        all[&0].len()
    );

    // The time range: phase 1 exactly.
    let phase_ms = |q: u32, i: usize| sealed[&q][i / 2].1;
    let begin = phase_ms(0, PER_PHASE).min(phase_ms(1, PER_PHASE + 1));
    let end = phase_ms(0, 2 * PER_PHASE - 2).max(phase_ms(1, 2 * PER_PHASE - 1)) + 1;
    let in_range = |ms: i64| ms >= begin && ms < end;

    let env = vec![
        ("SHALE_URL", b.url("")),
        ("SHALE_BUCKET", bucket.clone()),
        ("SHALE_PREFIX", prefix.clone()),
        ("BEGIN_MS", begin.to_string()),
        ("END_MS", end.to_string()),
        ("HOME", home.path().display().to_string()),
        ("PATH", path_with_shale()?),
    ];
    let work = tempfile::tempdir()?;
    for example in &examples {
        let stdout = run(example, &python, &env, work.path())?;
        let expected: Vec<String> = match example.name.as_str() {
            "pyarrow-topic" => {
                let mut lines: Vec<String> = (0..2)
                    .map(|q| {
                        format!(
                            "queue {q}: offsets 0..{}, {} messages",
                            total / 2 - 1,
                            total / 2
                        )
                    })
                    .collect();
                let paid = sealed
                    .values()
                    .flatten()
                    .filter(|r| r.2.as_deref() == Some("paid"))
                    .count();
                lines.push(format!("tag paid: {paid}"));
                lines
            }
            "pyarrow-time-range" => {
                let n = sealed.values().flatten().filter(|r| in_range(r.1)).count();
                let read = stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("row groups read: "))
                    .with_context(|| format!("no row-group count in {stdout}"))?;
                let (kept, of) = read.split_once(" of ").context("kept of total")?;
                let (kept, of): (usize, usize) = (kept.parse()?, of.parse()?);
                assert!(kept >= 1 && kept < of, "statistics skipped nothing: {read}");
                vec![format!("messages in range: {n}")]
            }
            "duckdb-sql" => {
                let mut groups: BTreeMap<(u32, String), (usize, u64, u64)> = BTreeMap::new();
                for (&q, rows) in &sealed {
                    for (offset, _, tag, _) in rows.iter().filter(|r| in_range(r.1)) {
                        let e = groups
                            .entry((q, tag.clone().unwrap_or_else(|| "-".into())))
                            .or_insert((0, u64::MAX, 0));
                        e.0 += 1;
                        e.1 = e.1.min(*offset);
                        e.2 = e.2.max(*offset);
                    }
                }
                let mut lines: Vec<String> = groups
                    .iter()
                    .map(|((q, tag), (n, first, last))| {
                        format!("queue {q} tag {tag}: {n} messages, offsets {first}..{last}")
                    })
                    .collect();
                // order-42: queue 0 (42 is even), offset 21, in the sealed part.
                lines.push(format!("order-42: queue 0 offset 21 body {}", body_of(42)));
                lines
            }
            "curl-ndjson" => {
                let q0 = &all[&0];
                let from = q0
                    .iter()
                    .position(|r| r.1 >= begin)
                    .context("no message after BEGIN_MS")?;
                vec![
                    format!("from offset {from}: {} messages", q0.len() - from),
                    format!("first: {from} {}", q0[from].3),
                ]
            }
            "cli" => {
                let n = sealed.values().flatten().filter(|r| in_range(r.1)).count();
                vec![
                    format!("messages in range: {n}"),
                    format!("parquet rows: {n}"),
                ]
            }
            "bulk-then-tail" => vec![format!(
                "queue 0: {} messages from Parquet, then {TAIL} from the node",
                total / 2
            )],
            other => bail!("docs/REPLAY.md has an example {other:?} this test does not check"),
        };
        check_lines(&example.name, &stdout, &expected);
    }
    b.stop_clean()?;
    Ok(())
}

#[test]
fn every_code_example_of_the_page_is_tagged() -> anyhow::Result<()> {
    let markdown =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/REPLAY.md"))?;
    let names: Vec<String> = examples(&markdown)?.into_iter().map(|e| e.name).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate example names: {names:?}"
    );
    Ok(())
}
