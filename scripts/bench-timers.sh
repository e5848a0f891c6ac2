#!/usr/bin/env bash
# Delay timers in process (docs/BENCHMARKS.md, "Delay timers"):
# broker/benches/timers.rs, release build. Scenarios, each run in a fresh
# temporary directory (under $TMPDIR, or --dir), SYNC, 8 queues, 100-byte
# bodies, batches of 100 from 8 producers, delays over [1 h, 365 d]:
#   produce      1M delay messages vs 1M NORMAL, same run
#   pending      10M pending timers, spilled: RssAnon, restart until the node
#                serves (warm and cold page cache), object-store requests per
#                hour at rest and while timers come due (120 s counted per run)
#   fire         lateness with the real clock: 10k/s for 10 s, a burst of 100k
#   fire-loaded  the same with 10M far-future timers pending meanwhile
# 3 runs each, medians printed; about 22 minutes on a 2-core VM once built,
# and ~5 GB of disk at the peak. The object store is a local directory
# (file://, as the node's embedded default); with S3=1 it is moto's S3 server
# started by scripts/lib/s3-env.sh (as scripts/bench.sh does). Extra
# arguments go to the bench, e.g.
#   scripts/bench-timers.sh
#   scripts/bench-timers.sh --scenarios pending --pending 2000000 --runs 5
#   scripts/bench-timers.sh --scenarios fire-loaded --runs 1 --timeline 1   # lateness vs run I/O over time
#   S3=1 scripts/bench-timers.sh --scenarios pending --runs 1
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/bench-timers.sh: %s\n' "$*" >&2; exit 1; }
say "building (release) ..."
cargo bench -p shale-broker --bench timers --no-run
store=()
if [ "${S3:-}" = 1 ]; then
  # shellcheck source=scripts/lib/s3-env.sh
  . "$root/scripts/lib/s3-env.sh"
  [ -n "${SHALE_TEST_S3_BUCKET:-}" ] || die "S3=1 needs moto (SHALE_SKIP_VENV must not be 1)"
  store=(--object-store "s3://$SHALE_TEST_S3_BUCKET/bench-timers")
fi
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "nproc: $(nproc)  $(lscpu | grep 'Model name' | tr -s ' ' || true)"
echo "kernel: $(uname -r)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench -p shale-broker --bench timers -- --runs 3 "${store[@]}" "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
