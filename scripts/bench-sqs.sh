#!/usr/bin/env bash
# The cost of the SQS compatibility layer (docs/BENCHMARKS.md): the same
# messages through SQS with boto3 and through /v1 with urllib3 (the HTTP
# library under boto3), side by side in one run against one release node;
# scripts/lib/bench_sqs.py says exactly what each phase does.
#
#   scripts/bench-sqs.sh                              # 10000 messages of 1 KiB, 5 rounds, 1 thread
#   scripts/bench-sqs.sh --messages 20000 --rounds 3 --threads 4
#
# Extra arguments go to bench_sqs.py (--messages, --rounds, --threads,
# --body-bytes). The node: a release build (`cargo build --release -p
# shale-gateway --bin shale`, into $CARGO_TARGET_DIR, default
# ~/.cache/shale-bench-target; SHALE_BIN to use another binary), on a free
# port, with its data dir and a local-directory object store (file://) under
# $BENCH_DIR (default target/bench-data: the checkout's disk, not /tmp, which
# may be a tmpfs), all removed at the end. boto3 comes from the virtualenv
# ${SHALE_VENV:-.venv} (created, or boto3 installed into it, when missing).
# Prints the machine, then Markdown: each round, the medians, the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/bench-sqs.sh: %s\n' "$*" >&2; exit 1; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shale-bench-target}
if [ -z "${SHALE_BIN:-}" ]; then
  say "building (release) into $CARGO_TARGET_DIR ..."
  cargo build --release -p shale-gateway --bin shale
fi
BIN=${SHALE_BIN:-$CARGO_TARGET_DIR/release/shale}
[ -x "$BIN" ] || die "no $BIN"

# shellcheck source=scripts/lib/sqs-node.sh
. "$root/scripts/lib/sqs-node.sh"
sqs_boto3_venv

BENCH_DIR=${BENCH_DIR:-target/bench-data}
mkdir -p "$BENCH_DIR"
work=$(cd "$(mktemp -d "$BENCH_DIR/sqs.XXXXXX")" && pwd)
sqs_work=$work

# The bench client, like the node, sees none of the caller's SHALE_* or AWS_* settings.
unset_env=()
while read -r name; do unset_env+=(-u "$name"); done < <(env | sed -n 's/^\(\(SHALE\|AWS\)_[A-Z0-9_]*\)=.*/\1/p')
sqs_start_node "$BIN" "$work"

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "nproc: $(nproc)  $(lscpu | grep 'Model name' | tr -s ' ' || true)"
echo "kernel: $(uname -r)  load: $(cut -d' ' -f1-3 /proc/loadavg)  node: $url ($BIN)"
status=0
env "${unset_env[@]}" timeout 3600 "$venv/bin/python" "$root/scripts/lib/bench_sqs.py" \
  --url "$url" --node-pid "$node_pid" "$@" || status=$?
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$status" -ne 0 ]; then
  say "the bench failed (exit $status); the node's log:"
  tail -n 40 "$work/node.err" >&2
fi
exit "$status"
