#!/usr/bin/env bash
# Produce throughput of 1 node vs 3 nodes on this machine, and the cost of
# forwarding (docs/BENCHMARKS.md, "Cluster throughput"). Each configuration
# runs `shale bench` (SYNC and OBJECT, batches of 1 and 100, against its
# same-run raw fsync baseline) against real `shale serve` processes on one
# local-filesystem object store:
#
#   1 node                 clients on the node, the node picks the queue
#   3 nodes, spread        clients spread over the 3 nodes, each picks a queue it serves (no forward)
#   3 nodes, one entry     clients on node-0, every request names a queue (2/3 forwarded)
#   3 nodes, owners        clients spread over the 3 nodes, every request names a queue
#
#   scripts/bench-cluster.sh                 # RUNS=3 SECONDS_PER=3 CLIENTS=8
#
# SHALE_BIN: the binary (default: the release build, built if missing).
# Data under BENCH_DIR (default target/bench-cluster). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECONDS_PER=${SECONDS_PER:-3}
CLIENTS=${CLIENTS:-8}
target=${CARGO_TARGET_DIR:-target}
BIN=${SHALE_BIN:-$target/release/shale}
[ -x "$BIN" ] || cargo build --release -p shale-gateway --bin shale
base=${BENCH_DIR:-target/bench-cluster}
mkdir -p "$base"
work=$(mktemp -d "$base/run.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ports=()
start_cluster() {
  local n=$1 dir=$2
  pids=(); ports=()
  mkdir -p "$dir"
  for i in $(seq 0 $((n - 1))); do
    ports+=("$(free_port)")
    "$BIN" serve --listen "127.0.0.1:${ports[$i]}" --data-dir "$dir/node-$i" \
      --object-store "file://$dir/objects" --node-id "node-$i" \
      >"$dir/node-$i.out" 2>"$dir/node-$i.err" &
    pids+=($!)
  done
  for i in $(seq 0 $((n - 1))); do
    for _ in $(seq 1 300); do
      grep -q "shale listening" "$dir/node-$i.out" 2>/dev/null && break
      sleep 0.1
    done
  done
  # Every node sees every node live before the topics are placed.
  for _ in $(seq 1 300); do
    live=$(curl -sf "http://127.0.0.1:${ports[0]}/v1/cluster" | python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n["live"]))' 2>/dev/null || echo 0)
    [ "$live" = "$n" ] && break
    sleep 0.1
  done
}
stop_cluster() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
url() { echo "http://127.0.0.1:${ports[$1]}"; }
bench() {
  local name=$1; shift
  echo "### $name"
  "$BIN" bench --dir "$work" --runs "$RUNS" --seconds "$SECONDS_PER" --clients "$CLIENTS" \
    --queues 8 --durabilities SYNC,OBJECT "$@"
  echo
}
echo "nproc: $(nproc)"; grep -m1 'model name' /proc/cpuinfo || true; echo
start_cluster 1 "$work/one"
bench "1 node" --url "$(url 0)"
stop_cluster
start_cluster 3 "$work/three"
bench "3 nodes, spread" --url "$(url 0)" --also-url "$(url 1),$(url 2)"
bench "3 nodes, one entry node, pinned queues" --url "$(url 0)" --pin-queues
bench "3 nodes, spread, pinned queues" --url "$(url 0)" --also-url "$(url 1),$(url 2)" --pin-queues
stop_cluster
