#!/usr/bin/env bash
# Delay timers in process (docs/BENCHMARKS.md, "Delay timers"):
# broker/benches/timers.rs, release build. Scenarios, each run in a fresh
# temporary directory (under $TMPDIR, or --dir), SYNC, 8 queues, 100-byte
# bodies, batches of 100 from 8 producers:
#   produce      1M delay messages (delays over [1 h, 40 d]) vs 1M NORMAL
#   pending      10M pending timers: RssAnon, restart (warm and cold cache)
#   fire         lateness with the real clock: 10k/s for 10 s, a burst of 100k
#   fire-loaded  the same with 10M far-future timers pending meanwhile
# 3 runs each, medians printed; about 8 minutes on a 2-core VM once built,
# and ~2 GB of disk at the peak. Extra arguments go to the bench, e.g.
#   scripts/bench-timers.sh
#   scripts/bench-timers.sh --scenarios pending --pending 2000000 --runs 5
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*" >&2; }
say "building (release) ..."
cargo bench -p shale-broker --bench timers --no-run
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "nproc: $(nproc)  $(lscpu | grep 'Model name' | tr -s ' ' || true)"
echo "kernel: $(uname -r)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench -p shale-broker --bench timers -- --runs 3 "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
