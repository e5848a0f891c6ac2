//! Spawning the real `shale` binary.
//!
//! [`Launch`] builds the command line (`shale serve --listen 127.0.0.1:0
//! --data-dir D …` for [`Launch::serve`]), starts it with a clean `SHALE_*`
//! environment, and waits — bounded — for the one stdout line
//! `shale listening on http://ADDR` that the contract (API.md "Running a
//! node") promises once the node is ready. stdout and stderr are drained by
//! threads for the whole life of the process so it can never block on a full
//! pipe, and both are kept for failure messages.
//!
//! A [`Node`] is killed (SIGKILL) and reaped on Drop, so a failing test never
//! leaks a process.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a node may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SIGTERM may take to drain and exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

const LISTENING_PREFIX: &str = "shale listening on ";

/// The `shale` binary: `$SHALE_BIN`, else `<target>/debug/shale` next to the
/// test executable (which runs from `<target>/debug/deps/`).
pub fn shale_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SHALE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // <target>/debug/deps/<test-binary> -> <target>/debug/shale
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let bin = profile_dir.join(format!("shale{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "the shale binary is missing at {}: run `cargo build -p shale-gateway --bin shale` first \
         (scripts/test.sh does), or set SHALE_BIN",
        bin.display()
    );
    bin
}

/// Why a node did not come up.
#[derive(Debug)]
pub struct StartFailure {
    pub reason: String,
    /// The exit status when the process exited by itself.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "shale did not start: {} (status {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.reason, self.status, self.stdout, self.stderr
        )
    }
}

impl std::error::Error for StartFailure {}

/// A command line for the `shale` binary.
#[derive(Debug, Clone)]
pub struct Launch {
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl Default for Launch {
    fn default() -> Self {
        Self::new()
    }
}

impl Launch {
    /// `shale` with no arguments yet.
    pub fn new() -> Self {
        Launch {
            args: Vec::new(),
            envs: Vec::new(),
            cwd: None,
            timeout: START_TIMEOUT,
        }
    }

    /// `shale serve --listen 127.0.0.1:0 --data-dir DIR`, run from DIR (so
    /// relative defaults such as `./shale-data/objects` stay inside it).
    pub fn serve(data_dir: &Path) -> Self {
        Launch::new()
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .cwd(data_dir)
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(shale_bin());
        cmd.args(&self.args);
        // The node must see only the settings this test gives it.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SHALE_") {
                cmd.env_remove(&k);
            }
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            std::fs::create_dir_all(dir).expect("create the node's working directory");
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts the node and waits for its listening line; panics-free: the
    /// error carries the node's stdout and stderr.
    pub fn start(self) -> anyhow::Result<Node> {
        Ok(self.try_start()?)
    }

    /// Starts the node and waits for its listening line.
    pub fn try_start(self) -> Result<Node, StartFailure> {
        let fail = |reason: String| StartFailure {
            reason,
            status: None,
            stdout: String::new(),
            stderr: String::new(),
        };
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| fail(format!("spawn {}: {e}", shale_bin().display())))?;
        let started = Instant::now();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let out_buf = Arc::new(Mutex::new(Vec::<String>::new()));
        let err_buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let (line_tx, line_rx) = mpsc::channel::<String>();
        {
            let out_buf = out_buf.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lock(&out_buf).push(line.clone());
                    let _ = line_tx.send(line);
                }
            });
        }
        {
            let err_buf = err_buf.clone();
            std::thread::spawn(move || {
                let mut stderr = stderr;
                let mut chunk = [0u8; 8192];
                loop {
                    match stderr.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => lock(&err_buf).extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
        let deadline = started + self.timeout;
        let failure = |child: &mut Child, reason: String| {
            let status = reap_within(child, Duration::from_secs(5));
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            // Give the drain threads a moment to collect the last output.
            std::thread::sleep(Duration::from_millis(50));
            StartFailure {
                reason,
                status,
                stdout: lock(&out_buf).join("\n"),
                stderr: String::from_utf8_lossy(&lock(&err_buf)).into_owned(),
            }
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match line_rx.recv_timeout(left) {
                Ok(line) => {
                    let Some(url) = line.strip_prefix(LISTENING_PREFIX) else {
                        continue;
                    };
                    let base = url.trim().trim_end_matches('/').to_string();
                    let addr = base.split("://").nth(1).unwrap_or(&base).to_string();
                    let client = reqwest::Client::builder()
                        .timeout(Duration::from_secs(60))
                        .build()
                        .map_err(|e| failure(&mut child, format!("build reqwest client: {e}")))?;
                    return Ok(Node {
                        child,
                        base,
                        addr,
                        client,
                        startup: started.elapsed(),
                        stdout: out_buf,
                        stderr: err_buf,
                        _lines: line_rx,
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(failure(
                        &mut child,
                        "stdout closed before the listening line".into(),
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(failure(
                        &mut child,
                        format!("no listening line within {:?}", self.timeout),
                    ));
                }
            }
        }
    }

    /// Runs the command to completion (bounded) and returns its status,
    /// stdout and stderr — for invocations that must fail.
    pub fn run_to_exit(self) -> anyhow::Result<(ExitStatus, String, String)> {
        match self.clone().try_start() {
            Ok(mut node) => {
                let stderr = node.stderr();
                node.kill9()?;
                anyhow::bail!(
                    "shale started and listened on {} but was expected to exit; stderr:\n{stderr}",
                    node.base
                )
            }
            Err(f) => match f.status {
                Some(status) => Ok((status, f.stdout, f.stderr)),
                None => anyhow::bail!("{f}"),
            },
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn reap_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `shale serve`.
#[derive(Debug)]
pub struct Node {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub client: reqwest::Client,
    /// Time from spawn to the listening line.
    pub startup: Duration,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    _lines: mpsc::Receiver<String>,
}

impl Node {
    /// `shale serve --listen 127.0.0.1:0 --data-dir DIR EXTRA…`
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<Node> {
        Launch::serve(data_dir).args(extra_args).start()
    }

    /// `base` + `path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the node wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }

    /// Every stdout line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    /// SIGTERM, then wait (bounded) for the drain to finish.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            anyhow::bail!(
                "node had already exited with {status}; stderr:\n{}",
                self.stderr()
            );
        }
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        anyhow::ensure!(
            rc == 0,
            "kill(SIGTERM): {}",
            std::io::Error::last_os_error()
        );
        match reap_within(&mut self.child, STOP_TIMEOUT) {
            Some(status) => Ok(status),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                anyhow::bail!(
                    "node did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.stderr()
                )
            }
        }
    }

    /// SIGTERM and require a clean exit (status 0).
    pub fn stop_clean(&mut self) -> anyhow::Result<()> {
        let status = self.stop()?;
        anyhow::ensure!(
            status.success(),
            "SIGTERM exit status {status}; stderr:\n{}",
            self.stderr()
        );
        Ok(())
    }

    /// SIGKILL (kill -9) and reap.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(_)) = self.child.try_wait() {
            return Ok(());
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
