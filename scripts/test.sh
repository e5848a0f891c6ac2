#!/usr/bin/env bash
# Runs every test of the workspace, on a fresh machine or an old checkout:
#
#   scripts/test.sh                    # everything
#   scripts/test.sh config             # extra arguments go to the test runner (a name filter here)
#
# 1. Rust: the toolchain of rust-toolchain.toml, through rustup (installed if missing).
# 2. Python: a virtualenv in .venv with what the S3 tests run (moto's S3 server,
#    pyarrow to read the Parquet segments); installed once, reused after.
# 3. A moto S3 server on a free port with a bucket, stopped when the script ends.
# 4. `cargo build --workspace --all-targets`, so the black-box tests find
#    `$CARGO_TARGET_DIR/debug/shale` (default target dir: ./target).
# 5. The tests: cargo-nextest when installed (one process per test, faster),
#    else `cargo test`; doc tests either way.
# 6. With no test filter given: scripts/schemathesis.sh, schemathesis (installed
#    into the same virtualenv) against a running node, bounded to ~150 s.
# 7. With no test filter given: scripts/console-test.sh, the web console in
#    headless Chromium (skipped with a message where Chromium cannot be had).
# 8. With no test filter given: scripts/sqs-test.sh, the SQS endpoint with real
#    AWS clients (boto3; the JavaScript SDK v3 through npm ci where node is
#    installed; the AWS CLI where `aws` is on PATH).
# Exit status non-zero on any failure.
#
# Environment:
#   CARGO_TARGET_DIR   where builds go (honoured as cargo does)
#   SHALE_VENV         the virtualenv to use or create (default: .venv)
#   SHALE_SKIP_VENV=1  no virtualenv and no moto: the S3 and pyarrow tests skip,
#                      and schemathesis, the console test and the SQS test do not run
#   SHALE_NO_NEXTEST=1 use `cargo test` even when cargo-nextest is installed
# Exported to the tests: SHALE_TEST_PYTHON (the venv's python), PATH with the venv's bin
# first, and for S3: AWS_ENDPOINT_URL & co., SHALE_TEST_S3_BUCKET, SHALE_REQUIRE_S3=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

# --- 1. Rust -----------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v rustup >/dev/null 2>&1 && ! command -v cargo >/dev/null 2>&1; then
  command -v curl >/dev/null 2>&1 || die "neither cargo nor curl found: install curl (or Rust from https://rustup.rs)"
  say "installing rustup (the toolchain itself comes from rust-toolchain.toml)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain none
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if command -v rustup >/dev/null 2>&1 && ! cargo --version >/dev/null 2>&1; then
  say "installing the toolchain named in rust-toolchain.toml"
  # rustup >= 1.28 installs the file's toolchain with no argument; older ones do it on `rustup show`.
  rustup toolchain install 2>/dev/null || rustup show >/dev/null
fi
cargo --version >/dev/null 2>&1 || die "cargo does not run; see https://rustup.rs"
command -v cc >/dev/null 2>&1 || die "no C compiler (cc) for the ring crate: install build-essential (Debian/Ubuntu) or gcc"

# --- 2 and 3. Python virtualenv and a moto S3 server -----------------------------
# shellcheck source=scripts/lib/s3-env.sh
. "$root/scripts/lib/s3-env.sh"

# --- 4. Build (the black-box tests run the real binary) -------------------------
say "building (target dir: ${CARGO_TARGET_DIR:-$root/target})"
cargo build --workspace --all-targets --locked

# --- 5. Tests --------------------------------------------------------------------
if [ "${SHALE_NO_NEXTEST:-}" != 1 ] && cargo nextest --version >/dev/null 2>&1; then
  say "running the tests with cargo-nextest"
  status=0
  cargo nextest run --workspace --locked --no-fail-fast "$@" || status=$?
  # nextest does not run doc tests.
  if [ $# -eq 0 ]; then
    cargo test --workspace --locked --doc || status=$?
  fi
else
  say "running the tests with cargo test"
  status=0
  cargo test --workspace --locked --no-fail-fast "$@" || status=$?
fi

# --- 6. The OpenAPI document against a running node (schemathesis, ~3 min) ------
if [ $# -eq 0 ] && [ "${SHALE_SKIP_VENV:-}" != 1 ]; then
  say "checking the OpenAPI document with schemathesis (scripts/schemathesis.sh)"
  scripts/schemathesis.sh || status=$?
fi

# --- 7. The web console in headless Chromium (skipped where Chromium cannot be had)
if [ $# -eq 0 ] && [ "${SHALE_SKIP_VENV:-}" != 1 ]; then
  say "checking the web console in headless Chromium (scripts/console-test.sh)"
  scripts/console-test.sh || status=$?
fi

# --- 8. The SQS endpoint with real AWS clients (boto3, JS SDK v3, AWS CLI) -------
if [ $# -eq 0 ] && [ "${SHALE_SKIP_VENV:-}" != 1 ]; then
  say "checking the SQS endpoint with AWS clients (scripts/sqs-test.sh)"
  scripts/sqs-test.sh || status=$?
fi
exit "$status"
