#!/usr/bin/env bash
# The whole benchmark set of docs/BENCHMARKS.md, on this machine.
#
#   scripts/bench.sh                 # throughput (5 runs), restart with 5 GiB, RssAnon after 1M messages
#   RUNS=3 SECONDS_PER=2 scripts/bench.sh
#   SKIP_RESTART=1 SKIP_MEMORY=1 scripts/bench.sh     # (also SKIP_THROUGHPUT=1, SKIP_COLD=1)
#
# The cold-tier measurements run against a local directory and against the
# moto S3 server that scripts/lib/s3-env.sh starts (as scripts/test.sh does);
# SHALE_SKIP_VENV=1 leaves S3 out.
#
# Data goes under $BENCH_DIR (default: ./target/bench-data, i.e. the disk of the
# checkout — not /tmp, which may be a tmpfs). Needs ~6 GB free for the restart
# measurement. Results: Markdown on stdout and in $OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/bench.sh: %s\n' "$*" >&2; exit 1; }

RUNS="${RUNS:-5}"
SECONDS_PER="${SECONDS_PER:-3}"
CLIENTS="${CLIENTS:-4}"
RESTART_GB="${RESTART_GB:-5}"
MEMORY_MESSAGES="${MEMORY_MESSAGES:-1000000}"
BENCH_DIR="${BENCH_DIR:-target/bench-data}"
OUT_DIR="${OUT_DIR:-target/bench-results}"
mkdir -p "$BENCH_DIR" "$OUT_DIR"

cargo build --release -p shale-gateway --bin shale
BIN="$PWD/target/release/shale"

echo "# machine"
echo "nproc: $(nproc)"
grep -m1 'model name' /proc/cpuinfo || true
df -h "$BENCH_DIR" | tail -1
echo

if [ -z "${SKIP_THROUGHPUT:-}" ]; then
  echo "# throughput (loopback HTTP, in-process node) vs raw fsync writer"
  "$BIN" bench --dir "$BENCH_DIR" --runs "$RUNS" --seconds "$SECONDS_PER" --clients "$CLIENTS" \
    | tee "$OUT_DIR/throughput.md"
  echo
fi

if [ -z "${SKIP_RESTART:-}" ]; then
  echo "# restart with ${RESTART_GB} GiB of hot data"
  "$BIN" bench --dir "$BENCH_DIR" --no-throughput --runs "$RUNS" --restart-gb "$RESTART_GB" --bin "$BIN" \
    | tee "$OUT_DIR/restart.md"
  echo
fi

if [ -z "${SKIP_MEMORY:-}" ]; then
  echo "# anonymous memory after ${MEMORY_MESSAGES} messages"
  "$BIN" bench --dir "$BENCH_DIR" --no-throughput --runs 1 --memory-messages "$MEMORY_MESSAGES" --bin "$BIN" \
    | tee "$OUT_DIR/memory.md"
fi

if [ -z "${SKIP_COLD:-}" ]; then
  # shellcheck source=scripts/lib/s3-env.sh
  . "$root/scripts/lib/s3-env.sh"
  echo "# cold tier, in-process reader (criterion-free bench binary), local dir and S3"
  COLD_RUNS="$RUNS" cargo bench -p shale-tiering --bench cold | tee "$OUT_DIR/cold.md"
  echo
  echo "# cold NDJSON replay over HTTP from a fresh node, local-directory object store"
  "$BIN" bench --cold --runs "$RUNS" --dir "$BENCH_DIR" | tee "$OUT_DIR/cold-http-file.md"
  echo
  if [ -n "${SHALE_TEST_S3_BUCKET:-}" ]; then
    echo "# cold NDJSON replay over HTTP from a fresh node, S3 (moto)"
    "$BIN" bench --cold --runs "$RUNS" --dir "$BENCH_DIR" --cold-object-store "s3://$SHALE_TEST_S3_BUCKET/bench" \
      | tee "$OUT_DIR/cold-http-s3.md"
    echo
  fi
fi
