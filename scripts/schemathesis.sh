#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a real node, as a new user would, and fails
# on any failure: the OpenAPI document the node serves must be exact.
#
#   scripts/schemathesis.sh            # build target/debug/shale first (scripts/test.sh does)
#
# 1. schemathesis (pinned below) in the virtualenv of scripts/lib/s3-env.sh
#    (${SHALE_VENV:-.venv}), installed once;
# 2. a node on a free port with the embedded defaults, a temporary data dir
#    and an auth file with one token that may do everything (the document
#    says every /v1 operation needs a bearer token: schemathesis checks that
#    one is refused without it);
# 3. `schemathesis run --checks all` over every phase (examples, coverage,
#    fuzzing, stateful: the OpenAPI links lead from a created topic and group
#    to produce, read, receive, ack...), at most SHALE_SCHEMATHESIS_EXAMPLES
#    cases per operation (default 25) and SHALE_SCHEMATHESIS_SECONDS of wall
#    clock (default 150; the run stops there with what it found), with the
#    settings of scripts/schemathesis.toml.
#
# Environment: SHALE_BIN (default $CARGO_TARGET_DIR/debug/shale), SHALE_VENV,
# SHALE_SCHEMATHESIS_EXAMPLES, SHALE_SCHEMATHESIS_SECONDS, SHALE_SCHEMATHESIS_SEED.
# Exit status: schemathesis's (non-zero on any failure), 1 if the node does
# not start.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/schemathesis.sh: %s\n' "$*" >&2; exit 1; }

schemathesis_requirement="schemathesis==4.32.5"
venv=${SHALE_VENV:-$root/.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "python3 -m venv failed"
stamp="$venv/.shale-schemathesis"
if [ "$(cat "$stamp" 2>/dev/null)" != "$schemathesis_requirement" ]; then
  say "installing $schemathesis_requirement into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$schemathesis_requirement"
  printf '%s' "$schemathesis_requirement" >"$stamp"
fi

shale=${SHALE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/shale}
[ -x "$shale" ] || die "no $shale: build it first (cargo build -p shale-gateway)"

work=$(mktemp -d -t shale-schemathesis.XXXXXX)
node_pid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [ -n "$node_pid" ]; then
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$shale" token --principal schemathesis --actions PUBLISH,SUBSCRIBE,ADMIN \
  --topics '*' --groups '*' --token-file "$work/token" >"$work/auth.toml"
# Only the settings given here: none of the caller's SHALE_* variables.
unset_shale=()
while read -r name; do unset_shale+=(-u "$name"); done < <(env | sed -n 's/^\(SHALE_[A-Z_]*\)=.*/\1/p')
: >"$work/node.out"
# A longer cluster lease than the default 10 s: the fuzzer creates topics of
# up to 1024 queues one after another, and a debug build taking over
# thousands of queues on a 2-core machine can fall behind its lease renewal
# (then it answers 503 "no fresh cluster lease", which not_a_server_error
# counts as a failure).
env "${unset_shale[@]}" "$shale" serve --listen 127.0.0.1:0 --data-dir "$work/data" --auth-file "$work/auth.toml" \
  --cluster-lease-ms 60s --cluster-heartbeat-ms 2s \
  >"$work/node.out" 2>"$work/node.err" &
node_pid=$!
url=
for _ in $(seq 1 200); do
  url=$(sed -n 's/^shale listening on //p' "$work/node.out")
  [ -n "$url" ] && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.err" >&2; die "the node did not start"; }
  sleep 0.05
done
[ -n "$url" ] || { cat "$work/node.err" >&2; die "the node did not print its address"; }
say "node on $url; schemathesis for at most ${SHALE_SCHEMATHESIS_SECONDS:-150} s"

status=0
(cd "$work" && SCHEMATHESIS_CONFIG="$root/scripts/schemathesis.toml" \
  "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "$url/openapi.json" \
    --header "Authorization: Bearer $(cat "$work/token")" \
    --checks all \
    --max-examples "${SHALE_SCHEMATHESIS_EXAMPLES:-25}" \
    --max-time "${SHALE_SCHEMATHESIS_SECONDS:-150}" \
    ${SHALE_SCHEMATHESIS_SEED:+--seed "$SHALE_SCHEMATHESIS_SEED"} \
    --generation-database none \
    --no-color) || status=$?
if [ "$status" -ne 0 ]; then
  say "schemathesis failed (exit $status); the node's log:"
  tail -n 50 "$work/node.err" >&2
fi
exit "$status"
