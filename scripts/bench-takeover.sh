#!/usr/bin/env bash
# Takeover time after kill -9 (docs/BENCHMARKS.md, "Cluster"): three nodes on
# one local-filesystem object store, a topic with 8 queues; each round kills
# one node with SIGKILL and measures until a produce to *every* queue through
# a surviving node answers 200 again (the real availability, not a log line),
# then restarts the killed node (same id and disk) and waits until it serves
# queues again. Prints each round and the median and max.
#
#   scripts/bench-takeover.sh                      # defaults: 20 rounds, lease 10 s, heartbeat 2 s
#   ROUNDS=5 LEASE_MS=2000 HEARTBEAT_MS=200 scripts/bench-takeover.sh
#
# SHALE_BIN: the binary (default: the release build, built if missing).
# Not part of CI: it takes ROUNDS × (lease + a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-20}
LEASE_MS=${LEASE_MS:-10000}
HEARTBEAT_MS=${HEARTBEAT_MS:-2000}
target=${CARGO_TARGET_DIR:-target}
BIN=${SHALE_BIN:-$target/release/shale}
[ -x "$BIN" ] || cargo build --release -p shale-gateway --bin shale
work=$(mktemp -d)
pids=(0 0 0)
ports=()
cleanup() {
  for p in "${pids[@]}"; do [ "$p" != 0 ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
now_ms() { date +%s%3N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for i in 0 1 2; do ports+=("$(free_port)"); done
start() {
  local i=$1
  "$BIN" serve --listen "127.0.0.1:${ports[$i]}" --data-dir "$work/node-$i" \
    --object-store "file://$work/objects" --node-id "node-$i" \
    --cluster-lease-ms "$LEASE_MS" --cluster-heartbeat-ms "$HEARTBEAT_MS" \
    >"$work/node-$i.out" 2>"$work/node-$i.err" &
  pids[$i]=$!
  for _ in $(seq 1 300); do
    grep -q "shale listening" "$work/node-$i.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "node-$i did not start" >&2; cat "$work/node-$i.err" >&2; exit 1
}
url() { echo "http://127.0.0.1:${ports[$1]}"; }
owned() { curl -sf "$(url "$1")/v1/cluster" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(next(n["queues_owned"] for n in v["nodes"] if n["id"]==v["self"]))'; }
all_queues_answer() {
  local via=$1
  for q in 0 1 2 3 4 5 6 7; do
    code=$(curl -s -m 3 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
      -d "{\"messages\":[{\"body\":\"probe\",\"queue\":$q}]}" "$(url "$via")/v1/topics/bench/messages" || true)
    [ "$code" = 200 ] || return 1
  done
}
for i in 0 1 2; do start "$i"; done
curl -sf -H 'content-type: application/json' -d '{"name":"bench","queues":8}' "$(url 0)/v1/topics" >/dev/null
for _ in $(seq 1 600); do all_queues_answer 1 && all_queues_answer 2 && break; sleep 0.1; done
times=()
for r in $(seq 1 "$ROUNDS"); do
  victim=$(( r % 3 )); via=$(( (r + 1) % 3 ))
  kill -9 "${pids[$victim]}"; wait "${pids[$victim]}" 2>/dev/null || true; pids[$victim]=0
  t0=$(now_ms)
  until all_queues_answer "$via"; do sleep 0.05; done
  t=$(( $(now_ms) - t0 ))
  times+=("$t")
  printf 'round %2d: node-%d killed, every queue served again through node-%d after %d ms\n' "$r" "$victim" "$via" "$t"
  start "$victim"
  for _ in $(seq 1 600); do [ "$(owned "$victim" || echo 0)" -gt 0 ] && break; sleep 0.1; done
done
printf '%s\n' "${times[@]}" | sort -n | python3 -c '
import sys, statistics
t = [int(x) for x in sys.stdin.read().split()]
print(f"takeover after kill -9: median {statistics.median(t):.0f} ms, max {max(t)} ms over {len(t)} rounds")'
