# shellcheck shell=bash
# Sourced by scripts/sqs-test.sh and scripts/bench-sqs.sh: boto3 in the
# virtualenv, and one `shale` node on a free port with a local-directory
# object store, stopped (and its directory removed) when the script exits.
#
# Needs: `root` (the checkout), `say` and `die` defined by the caller.
#   sqs_boto3_venv            sets `venv` (SHALE_VENV, default $root/.venv), boto3 pinned in it
#   sqs_start_node BIN WORK   starts BIN serve under WORK with none of the caller's
#                             SHALE_* settings (nor AWS_*, which the callers have
#                             cleared or unset); sets `node_pid` and `url`

sqs_boto3_requirement="boto3==1.44.18"

sqs_boto3_venv() {
  venv=${SHALE_VENV:-$root/.venv}
  if [ ! -x "$venv/bin/python" ]; then
    command -v python3 >/dev/null 2>&1 || die "python3 not found: install python3 and python3-venv"
    say "creating the Python virtualenv $venv"
    python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv (Debian/Ubuntu)"
  fi
  local stamp="$venv/.shale-sqs"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sqs_boto3_requirement" ]; then
    say "installing $sqs_boto3_requirement into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$sqs_boto3_requirement"
    printf '%s' "$sqs_boto3_requirement" >"$stamp"
  fi
}

node_pid=
sqs_work=
# shellcheck disable=SC2317 # called by the EXIT trap
sqs_cleanup() {
  if [ -n "$node_pid" ]; then
    kill "$node_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  [ -z "$sqs_work" ] || rm -rf "$sqs_work"
}
trap sqs_cleanup EXIT

sqs_start_node() {
  local bin=$1 work=$2
  sqs_work=$work
  local unset_env=()
  while read -r name; do unset_env+=(-u "$name"); done < <(env | sed -n 's/^\(\(SHALE\|AWS\)_[A-Z0-9_]*\)=.*/\1/p')
  mkdir -p "$work/objects"
  : >"$work/node.out"
  env "${unset_env[@]}" "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" \
    --object-store "file://$work/objects" >"$work/node.out" 2>"$work/node.err" &
  node_pid=$!
  url=
  for _ in $(seq 1 600); do
    url=$(sed -n 's/^shale listening on //p' "$work/node.out")
    [ -n "$url" ] && break
    kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.err" >&2; die "the node did not start"; }
    sleep 0.05
  done
  [ -n "$url" ] || { tail -n 50 "$work/node.err" >&2; die "the node did not print its address within 30 s"; }
}
