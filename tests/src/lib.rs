//! Harness for the black-box tests: start and stop the real `shale` binary,
//! talk to it over HTTP, and look at (or damage) the files it keeps.
//!
//! - [`node`]: spawn `shale serve` on port 0, wait for its
//!   `shale listening on …` line, SIGTERM / kill -9 it; nothing leaks (Drop kills).
//! - [`api`]: thin HTTP helpers over the API.md contract and error-shape checks.
//! - [`cli`]: run `shale` as a client (`shale send …`) to completion, bounded.
//! - [`segments`]: the hot tier's on-disk layout and record framing
//!   (`hot/src/record.rs`), to cut or flip bytes in segment files.
//! - [`tmpfs`]: a small tmpfs mount (disk-full tests), unmounted on Drop.
//!
//! Every wait is bounded and polls a condition; no fixed ports, no sleeps for luck.

pub mod api;
pub mod cli;
pub mod node;
pub mod segments;
pub mod tmpfs;

pub use api::{Resp, expect_error};
pub use node::{Launch, Node, StartFailure, shale_bin};

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(
    timeout: std::time::Duration,
    what: &str,
    mut cond: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Polls `probe` every 10 ms until it yields a value or `timeout` passes.
pub async fn wait_for<T, F, Fut>(
    timeout: std::time::Duration,
    what: &str,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The arguments of node `i` of a test cluster on `store`: a fixed node id
/// and short cluster timings (heartbeat 200 ms, lease 2 s) that keep tests quick.
pub fn cluster_args(store: &str, i: usize) -> Vec<String> {
    [
        "--object-store",
        store,
        "--node-id",
        &format!("node-{i}"),
        "--cluster-heartbeat-ms",
        "200",
        "--cluster-lease-ms",
        "2000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Polls a fallible `check` every 50 ms until it holds, for at most 30 s.
pub async fn poll_until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if check().await? {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
