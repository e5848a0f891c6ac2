#!/usr/bin/env bash
# OBJECT produce latency against the object store's own PUT latency, in the
# same run (docs/BENCHMARKS.md, "OBJECT durability"): an in-memory store with
# 20 ms injected on every call, and the moto S3 server scripts/lib/s3-env.sh
# starts (SHALE_SKIP_VENV=1 leaves S3 out). Extra arguments go to the bench
# (`--runs 5 --seconds 3 --clients 16 --latency-ms 20 --interval-ms 10`).
#
#   scripts/bench-object.sh
#   scripts/bench-object.sh --interval-ms 50
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/bench-object.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib/s3-env.sh
. "$root/scripts/lib/s3-env.sh"
if [ -n "${SHALE_TEST_S3_BUCKET:-}" ]; then
  export SHALE_BENCH_S3="s3://$SHALE_TEST_S3_BUCKET/bench-object"
fi
echo "nproc: $(nproc)"; grep -m1 'model name' /proc/cpuinfo || true
cargo bench -p shale-broker --bench object_commit -- "$@"
