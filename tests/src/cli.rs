//! Running the `shale` binary as a client (`shale topic …`, `shale send …`):
//! to completion, bounded, with stdin given and stdout/stderr captured.
//!
//! [`Cli`] builds the command line (`--url` of a node, a clean `SHALE_*`
//! environment); [`Cli::run`] feeds stdin, waits at most [`CLI_TIMEOUT`] (then
//! kills) and returns a [`CliOutput`]. [`Cli::spawn`] starts a long-running
//! one (`shale tail`) whose stdout lines arrive on a channel.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::node::shale_bin;

/// How long one CLI invocation may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// A `shale` client command line.
#[derive(Debug, Clone)]
pub struct Cli {
    args: Vec<OsString>,
    url: Option<String>,
    envs: Vec<(OsString, OsString)>,
    stdin: Vec<u8>,
}

/// What a finished invocation printed and how it ended.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// The exit code (panics on a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {self:?}"))
    }

    /// Requires exit 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code(), 0, "shale failed: {self:#?}");
        &self.stdout
    }

    /// stdout as one JSON value (after exit 0).
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out}"))
    }

    /// stdout as NDJSON lines (after exit 0).
    pub fn ndjson(&self) -> Vec<serde_json::Value> {
        self.ok()
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line ({e}): {l}"))
            })
            .collect()
    }
}

impl Cli {
    /// `shale ARGS… --url BASE` (`--url` goes last, after any later `arg`).
    pub fn new(base: &str, args: &[&str]) -> Self {
        Cli {
            url: Some(base.to_string()),
            ..Cli::bare(args)
        }
    }

    /// `shale ARGS…` with no `--url`.
    pub fn bare(args: &[&str]) -> Self {
        Cli {
            args: args.iter().map(OsString::from).collect(),
            url: None,
            envs: Vec::new(),
            stdin: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args(mut self, extra: &[&str]) -> Self {
        self.args.extend(extra.iter().map(OsString::from));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(shale_bin());
        cmd.args(&self.args);
        if let Some(url) = &self.url {
            cmd.arg("--url").arg(url);
        }
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SHALE_") {
                cmd.env_remove(&k);
            }
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs to completion (killed after [`CLI_TIMEOUT`], which fails the test).
    pub fn run(&self) -> CliOutput {
        let mut child = self.command().spawn().expect("spawn shale");
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = drain(child.stderr.take().expect("stderr"));
        let mut stdin = child.stdin.take().expect("stdin");
        let input = self.stdin.clone();
        let writer = std::thread::spawn(move || {
            // The command may exit without reading it all.
            let _ = stdin.write_all(&input);
        });
        let status = wait_bounded(&mut child, CLI_TIMEOUT)
            .unwrap_or_else(|| panic!("shale {:?} did not exit within {CLI_TIMEOUT:?}", self.args));
        let _ = writer.join();
        CliOutput {
            status,
            stdout: stdout.join().expect("stdout thread"),
            stderr: stderr.join().expect("stderr thread"),
        }
    }

    /// Runs to completion with stdin on a pseudo-terminal (so the command
    /// sees a terminal there, as at an interactive prompt), typing `typed`.
    pub fn run_on_terminal(&self, typed: &[u8]) -> CliOutput {
        let (master, slave) = pseudo_terminal();
        let mut cmd = self.command();
        cmd.stdin(Stdio::from(slave));
        let mut child = cmd.spawn().expect("spawn shale");
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = drain(child.stderr.take().expect("stderr"));
        let mut master = master;
        master.write_all(typed).expect("type on the terminal");
        let status = wait_bounded(&mut child, CLI_TIMEOUT)
            .unwrap_or_else(|| panic!("shale {:?} did not exit within {CLI_TIMEOUT:?}", self.args));
        CliOutput {
            status,
            stdout: stdout.join().expect("stdout thread"),
            stderr: stderr.join().expect("stderr thread"),
        }
    }

    /// Starts it and returns the process and its stdout lines (stdin closed).
    pub fn spawn(&self) -> (Running, mpsc::Receiver<String>) {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn shale");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = drain(child.stderr.take().expect("stderr"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (
            Running {
                child,
                stderr: Some(stderr),
            },
            rx,
        )
    }
}

/// A running `shale` client, killed on Drop.
#[derive(Debug)]
pub struct Running {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Waits (bounded) for it to exit; its status and stderr.
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let status = wait_bounded(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("shale did not exit within {timeout:?}"));
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().expect("stderr thread"))
            .unwrap_or_default();
        (status, stderr)
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A new pseudo-terminal: (master, slave).
fn pseudo_terminal() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls on a descriptor this function owns; the
    // master is wrapped in a File (closed on drop) only once it is valid.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    assert!(
        master >= 0,
        "posix_openpt: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `master` is a valid descriptor nobody else owns.
    let master_file = unsafe { std::fs::File::from_raw_fd(master) };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is a writable buffer of the length given.
    let ok = unsafe {
        libc::grantpt(master) == 0
            && libc::unlockpt(master) == 0
            && libc::ptsname_r(master, name.as_mut_ptr(), name.len()) == 0
    };
    assert!(ok, "pty setup: {}", std::io::Error::last_os_error());
    // SAFETY: ptsname_r wrote a NUL-terminated path into `name`.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    (master_file, slave)
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
