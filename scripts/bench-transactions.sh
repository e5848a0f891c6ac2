#!/usr/bin/env bash
# Transactions in process (docs/BENCHMARKS.md, "Transactions"):
# broker/benches/transactions.rs, release build. SYNC, 8 queues, 100-byte
# bodies, one message per transaction, the object store a local directory
# (the embedded default):
#   latency     sequential plain produce vs half + commit, same run
#   throughput  16 clients: plain produces/s vs half+commit pairs/s
#   pending     1M undecided transactions: RssAnon, restart until serving
# 3 runs each, medians printed. Extra arguments go to the bench, e.g.
#   scripts/bench-transactions.sh --scenarios pending --pending 200000 --runs 1
set -euo pipefail
cd "$(dirname "$0")/.."
printf '==> building (release) ...\n' >&2
cargo bench -p shale-broker --bench transactions --no-run
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "nproc: $(nproc)  $(lscpu | grep 'Model name' | tr -s ' ' || true)"
echo "kernel: $(uname -r)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench -p shale-broker --bench transactions -- --runs 3 "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
