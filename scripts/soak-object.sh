#!/usr/bin/env bash
# Soak of OBJECT durability (docs/BENCHMARKS.md, "OBJECT durability"): runs
# the black-box test that kills one of three nodes with SIGKILL under produce
# and consume load on an OBJECT topic, ROUNDS times, and sums what each round
# reports: messages acknowledged, lost (any loss, duplicate offset, reorder
# or undelivered message fails the round), stored without an answer (sent
# while the node died: at-least-once), and the time until the survivors
# served every queue again.
#
#   scripts/soak-object.sh            # 20 rounds
#   ROUNDS=100 scripts/soak-object.sh
#
# Not part of CI (about 10 s per round).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shale-target}
cargo build -p shale-gateway --bin shale
test_name=a_node_killed_under_object_load_loses_no_acknowledged_message
log=$(mktemp)
trap 'rm -f "$log"' EXIT
acked=0 unanswered=0 failed=0 times=()
for r in $(seq 1 "$ROUNDS"); do
  if cargo test -q -p shale-tests --test cluster "$test_name" -- --exact --nocapture >"$log" 2>&1; then
    line=$(grep 'kill -9 under OBJECT load' "$log" | tail -1)
    a=$(sed -E 's/.*: ([0-9]+) acknowledged.*/\1/' <<<"$line")
    u=$(sed -E 's/.* ([0-9]+) stored without an answer.*/\1/' <<<"$line")
    t=$(sed -E 's/.*served again after ([0-9.]+)(m?s).*/\1 \2/' <<<"$line" | awk '{ print ($2 == "ms") ? $1 / 1000 : $1 }')
    acked=$((acked + a)); unanswered=$((unanswered + u)); times+=("$t")
    echo "round $r: $a acknowledged, 0 lost, $u stored without an answer, queues served again after ${t}s"
  else
    failed=$((failed + 1))
    echo "round $r: FAILED"; grep -E 'Error|panicked' "$log" | head -5
  fi
done
sorted=$(printf '%s\n' "${times[@]:-}" | sort -g)
n=${#times[@]}
median=$( [ "$n" -gt 0 ] && sed -n "$(( (n + 1) / 2 ))p" <<<"$sorted" || echo "-")
max=$( [ "$n" -gt 0 ] && tail -1 <<<"$sorted" || echo "-")
echo
echo "$ROUNDS rounds: $failed failed; $acked acknowledged in the passing rounds, 0 lost, 0 duplicate offsets;"
echo "$unanswered stored without an answer; takeover median ${median}s, max ${max}s (lease 2 s, heartbeat 200 ms)"
[ "$failed" -eq 0 ]
