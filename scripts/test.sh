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
#    else `cargo test`; doc tests either way. Exit status non-zero on any failure.
#
# Environment:
#   CARGO_TARGET_DIR   where builds go (honoured as cargo does)
#   SHALE_VENV         the virtualenv to use or create (default: .venv)
#   SHALE_SKIP_VENV=1  no virtualenv and no moto: the S3 and pyarrow tests skip
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

# --- 2. Python virtualenv for the S3 tests -------------------------------------
python_requirements=("moto[s3]==5.2.5" "flask" "flask-cors" "pyarrow")
if [ "${SHALE_SKIP_VENV:-}" != 1 ]; then
  venv=${SHALE_VENV:-$root/.venv}
  stamp="$venv/.shale-requirements"
  if [ ! -x "$venv/bin/python" ]; then
    command -v python3 >/dev/null 2>&1 || die "python3 not found: install python3 and python3-venv (or set SHALE_SKIP_VENV=1)"
    say "creating the Python virtualenv $venv"
    python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv (Debian/Ubuntu)"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "${python_requirements[*]}" ]; then
    say "installing ${python_requirements[*]} into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${python_requirements[@]}"
    printf '%s' "${python_requirements[*]}" >"$stamp"
  fi
  export SHALE_TEST_PYTHON="$venv/bin/python"
  export PATH="$venv/bin:$PATH"
fi

# --- 3. An S3-compatible server (moto) for the object-store suites ---------------
# Started here, stopped on exit; the tests find it through the usual AWS
# variables plus SHALE_TEST_S3_BUCKET, and SHALE_REQUIRE_S3=1 makes a missing
# server a failure instead of a skip.
if [ "${SHALE_SKIP_VENV:-}" != 1 ]; then
  moto_port=$("$SHALE_TEST_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  moto_log=$(mktemp -t shale-moto.XXXXXX)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
  moto_pid=$!
  trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$moto_port/" && break
    kill -0 "$moto_pid" 2>/dev/null || { cat "$moto_log" >&2; die "moto_server did not start"; }
    sleep 0.1
  done
  curl -sf -X PUT "http://127.0.0.1:$moto_port/shale-test" >/dev/null || { cat "$moto_log" >&2; die "could not create the test bucket in moto"; }
  say "moto S3 server on 127.0.0.1:$moto_port (bucket shale-test)"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing SHALE_TEST_S3_BUCKET=shale-test SHALE_REQUIRE_S3=1
fi

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
  exit "$status"
else
  say "running the tests with cargo test"
  cargo test --workspace --locked --no-fail-fast "$@"
fi
