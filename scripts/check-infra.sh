#!/usr/bin/env bash
# Checks of the deployment files (Dockerfile, deploy/, infra/terraform) that
# need neither a container daemon nor an AWS account:
#
# 1. a virtualenv (${SHALE_INFRA_VENV:-.venv-infra}) with pinned checkov and
#    PyYAML, installed once and reused;
# 2. terraform: fmt -check, init -backend=false and validate of the module and
#    of examples/basic, and `terraform test` (offline plans against a mocked
#    AWS provider). Skipped, with a message, when terraform is not installed;
#    init uses the provider mirror ${SHALE_TF_PLUGIN_DIR:-/opt/tf-plugins}
#    when it exists, else the registry;
# 3. checkov on infra/terraform and on the Dockerfile: no failed check (the
#    skipped ones carry their reason next to the resource);
# 4. deploy/compose.yaml: its structure (scripts/lib/check-compose.py), and
#    `docker compose config` when the compose plugin is installed;
# 5. deploy/entrypoint.sh against a fake ECS task metadata endpoint
#    (python3 -m http.server on a free loopback port) and a fake `shale`;
# 6. the Dockerfile's RUST_VERSION is the channel of rust-toolchain.toml;
# 7. shellcheck and hadolint, when installed.
#
# Every check runs even when one fails; the exit status is non-zero if any did.
# Not run here: docker build, docker compose up, terraform plan/apply against
# AWS (docs/DEPLOY.md, "What was validated").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD

say() { printf '==> %s\n' "$*" >&2; }

checkov_version=3.3.30
pyyaml_version=6.0.2
venv=${SHALE_INFRA_VENV:-$root/.venv-infra}
plugin_dir=${SHALE_TF_PLUGIN_DIR:-/opt/tf-plugins}

failed=()
passed=0
check() {
  local name=$1
  shift
  say "$name"
  if "$@"; then
    passed=$((passed + 1))
  else
    printf 'check-infra: %s FAILED\n' "$name" >&2
    failed+=("$name")
  fi
}

# --- 1. virtualenv ---------------------------------------------------------------
requirements=("checkov==$checkov_version" "pyyaml==$pyyaml_version")
setup_venv() {
  local stamp="$venv/.shale-infra-requirements"
  if [ ! -x "$venv/bin/python" ]; then
    command -v python3 >/dev/null 2>&1 || { echo "python3 not found" >&2; return 1; }
    say "creating the virtualenv $venv"
    python3 -m venv "$venv" || { echo "python3 -m venv failed: install python3-venv" >&2; return 1; }
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
    say "installing ${requirements[*]} into $venv (once)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" || return 1
    printf '%s' "${requirements[*]}" >"$stamp"
  fi
}
venv_ok=0
check "virtualenv with checkov $checkov_version and pyyaml $pyyaml_version" setup_venv && venv_ok=1

# --- 2. terraform ----------------------------------------------------------------
# A TF_CLI_CONFIG_FILE naming a missing file only makes terraform warn.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -f "$TF_CLI_CONFIG_FILE" ]; then
  unset TF_CLI_CONFIG_FILE
fi
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
tf_init() {
  local dir=$1
  if [ -d "$plugin_dir" ]; then
    terraform -chdir="$dir" init -backend=false -input=false -no-color -plugin-dir="$plugin_dir" >/dev/null
  else
    terraform -chdir="$dir" init -backend=false -input=false -no-color >/dev/null
  fi
}
tf_validate() { tf_init "$1" && terraform -chdir="$1" validate -no-color; }
tf_test() { tf_init "$1" && terraform -chdir="$1" test -no-color; }
if command -v terraform >/dev/null 2>&1; then
  say "$(terraform version | head -n 1)"
  check "terraform fmt -check -recursive infra/terraform" terraform fmt -check -recursive -diff -no-color infra/terraform
  check "terraform validate infra/terraform" tf_validate infra/terraform
  check "terraform validate infra/terraform/examples/basic" tf_validate infra/terraform/examples/basic
  check "terraform test infra/terraform (mocked AWS provider)" tf_test infra/terraform
else
  say "SKIPPED terraform fmt/validate/test: terraform is not installed (https://developer.hashicorp.com/terraform/install)"
fi

# --- 3. checkov --------------------------------------------------------------------
run_checkov() {
  # --skip-download: no Prisma Cloud API; the checks are those of the pinned version.
  "$venv/bin/checkov" --quiet --compact --skip-download "$@"
}
if [ "$venv_ok" = 1 ]; then
  check "checkov: infra/terraform" run_checkov -d infra/terraform --framework terraform
  check "checkov: Dockerfile" run_checkov -f Dockerfile --framework dockerfile
else
  failed+=("checkov (no virtualenv)")
fi

# --- 4. compose --------------------------------------------------------------------
if [ "$venv_ok" = 1 ]; then
  check "deploy/compose.yaml structure" "$venv/bin/python" scripts/lib/check-compose.py deploy/compose.yaml
else
  failed+=("compose structure (no virtualenv)")
fi
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  check "docker compose config" docker compose -f deploy/compose.yaml config --quiet
else
  say "SKIPPED docker compose config: the compose plugin is not installed"
fi

# --- 5. entrypoint -------------------------------------------------------------------
test_entrypoint() {
  local tmp port server status=0
  tmp=$(mktemp -d -t shale-entrypoint.XXXXXX)
  mkdir -p "$tmp/bin" "$tmp/www/v4/pretty" "$tmp/www/v4/compact" "$tmp/www/v4/noaddr"
  # A fake node: prints what it was started with.
  cat >"$tmp/bin/shale" <<'EOF'
#!/bin/sh
printf 'ADVERTISE=%s\n' "${SHALE_ADVERTISE_URL-<unset>}"
printf 'FROM_ECS=%s\n' "${SHALE_ADVERTISE_FROM_ECS-<unset>}"
for arg in "$@"; do printf 'ARG=%s\n' "$arg"; done
EOF
  chmod +x "$tmp/bin/shale"
  # Task metadata as ECS returns it (the fixture is pretty-printed; ECS sends it
  # on one line): the compact copy gives the sidecar another address, so taking
  # the first container's is checked.
  cp deploy/testdata/ecs-task-metadata.json "$tmp/www/v4/pretty/task"
  python3 - "$tmp/www/v4/compact/task" <<'EOF'
import json, sys
task = json.load(open("deploy/testdata/ecs-task-metadata.json"))
task["Containers"][1]["Networks"][0]["IPv4Addresses"] = ["10.0.99.99"]
open(sys.argv[1], "w").write(json.dumps(task, separators=(",", ":")))
EOF
  printf '{"Cluster":"c","Containers":[{"Name":"shale","Networks":[{"NetworkMode":"awsvpc"}]}]}' >"$tmp/www/v4/noaddr/task"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" "$port" >"$tmp/http.log" 2>&1 &
  server=$!
  for _ in $(seq 1 50); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/v4/pretty/task" && break
    sleep 0.1
  done
  local meta="http://127.0.0.1:$port/v4"
  # run NAME EXPECTED_STATUS EXPECTED_OUTPUT_LINES... -- ENV... -- ARGS...
  run() {
    local name=$1 want_status=$2 out got_status=0
    shift 2
    local want=()
    while [ "$1" != -- ]; do want+=("$1"); shift; done
    shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    out=$(env -i PATH="$tmp/bin:/usr/local/bin:/usr/bin:/bin" "${envs[@]}" sh deploy/entrypoint.sh "$@" 2>"$tmp/stderr") || got_status=$?
    local ok=1 line
    [ "$got_status" = "$want_status" ] || ok=0
    # A failed start must not have started the node.
    if [ "$want_status" != 0 ] && [ -n "$out" ]; then ok=0; fi
    for line in "${want[@]}"; do
      if [ "${line#stderr:}" != "$line" ]; then
        grep -qF -- "${line#stderr:}" "$tmp/stderr" || ok=0
      else
        grep -qxF -- "$line" <<<"$out" || ok=0
      fi
    done
    if [ "$ok" = 1 ]; then
      printf '  ok   %s\n' "$name" >&2
    else
      printf '  FAIL %s (status %s, wanted %s)\n--- stdout\n%s\n--- stderr\n%s\n' \
        "$name" "$got_status" "$want_status" "$out" "$(cat "$tmp/stderr")" >&2
      status=1
    fi
  }
  run "no ECS: shale serve with the arguments unchanged" 0 \
    "ADVERTISE=<unset>" "ARG=serve" "ARG=--node-id" "ARG=a b" "ARG=" -- \
    -- --node-id "a b" ""
  run "ECS: the task's IP from the metadata" 0 \
    "ADVERTISE=http://10.0.12.34:8080" "FROM_ECS=<unset>" "ARG=serve" "stderr:SHALE_ADVERTISE_URL=http://10.0.12.34:8080" -- \
    SHALE_ADVERTISE_FROM_ECS=1 ECS_CONTAINER_METADATA_URI_V4="$meta/pretty" -- \
    --print-config
  run "ECS: compact JSON, the first container's address, the port of SHALE_LISTEN" 0 \
    "ADVERTISE=http://10.0.12.34:9090" -- \
    SHALE_ADVERTISE_FROM_ECS=1 ECS_CONTAINER_METADATA_URI_V4="$meta/compact" SHALE_LISTEN="0.0.0.0:9090" -- \
    --print-config
  run "ECS: https with SHALE_TLS_CERT" 0 \
    "ADVERTISE=https://10.0.12.34:8080" -- \
    SHALE_ADVERTISE_FROM_ECS=1 ECS_CONTAINER_METADATA_URI_V4="$meta/pretty" SHALE_TLS_CERT=/etc/shale/cert.pem -- \
    --print-config
  run "ECS: a given SHALE_ADVERTISE_URL wins (no metadata read)" 0 \
    "ADVERTISE=http://given:1234" "FROM_ECS=<unset>" -- \
    SHALE_ADVERTISE_FROM_ECS=1 SHALE_ADVERTISE_URL=http://given:1234 -- \
    --print-config
  run "ECS: no address in the metadata -> exit 1, node not started" 1 \
    "stderr:no IPv4 address" -- \
    SHALE_ADVERTISE_FROM_ECS=1 ECS_CONTAINER_METADATA_URI_V4="$meta/noaddr" SHALE_ECS_METADATA_TRIES=2 -- \
    --print-config
  run "ECS: metadata endpoint down -> exit 1" 1 \
    "stderr:after 1 attempts" -- \
    SHALE_ADVERTISE_FROM_ECS=1 ECS_CONTAINER_METADATA_URI_V4="http://127.0.0.1:9/v4/x" SHALE_ECS_METADATA_TRIES=1 -- \
    --print-config
  run "ECS asked for outside ECS -> exit 1" 1 \
    "stderr:ECS_CONTAINER_METADATA_URI_V4 is not set" -- \
    SHALE_ADVERTISE_FROM_ECS=1 -- \
    --print-config
  kill "$server" 2>/dev/null
  wait "$server" 2>/dev/null
  rm -rf "$tmp"
  return "$status"
}
check "deploy/entrypoint.sh against a fake ECS metadata endpoint" test_entrypoint

# --- 6. toolchain of the image -----------------------------------------------------------
same_rust_version() {
  local channel image
  channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  image=$(sed -n 's/^ARG RUST_VERSION=\(.*\)/\1/p' Dockerfile)
  if [ -n "$channel" ] && [ "$channel" = "$image" ]; then
    echo "Dockerfile builds with Rust $image, as rust-toolchain.toml says" >&2
  else
    echo "Dockerfile ARG RUST_VERSION=$image but rust-toolchain.toml says channel $channel" >&2
    return 1
  fi
}
check "Dockerfile RUST_VERSION = rust-toolchain.toml" same_rust_version

# --- 7. linters, when installed -------------------------------------------------------------
if command -v shellcheck >/dev/null 2>&1; then
  check "shellcheck" shellcheck -s sh deploy/entrypoint.sh
  check "shellcheck scripts/check-infra.sh" shellcheck scripts/check-infra.sh
else
  say "SKIPPED shellcheck: not installed (apt-get install shellcheck)"
fi
if command -v hadolint >/dev/null 2>&1; then
  check "hadolint Dockerfile" hadolint Dockerfile
else
  say "SKIPPED hadolint: not installed"
fi

say "not run here: docker build, docker compose up, terraform plan/apply against AWS (no container daemon, no AWS account)"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'check-infra: %d checks ok, FAILED: %s\n' "$passed" "$(IFS=,; echo "${failed[*]}")" >&2
  exit 1
fi
printf 'check-infra: all %d checks ok\n' "$passed" >&2
