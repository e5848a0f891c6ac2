#!/bin/sh
# Entrypoint of the Shale image: runs `shale serve "$@"`, arguments unchanged.
#
# One thing is done first, only when asked. On ECS (Fargate, awsvpc network
# mode) the address the other nodes of the cluster reach this one at is the
# task's private IP, which is known only once the task runs. With
# SHALE_ADVERTISE_FROM_ECS=1 and SHALE_ADVERTISE_URL unset, it is read from the
# task metadata endpoint ($ECS_CONTAINER_METADATA_URI_V4/task, the field
# Containers[0].Networks[0].IPv4Addresses[0]; in awsvpc mode every container of
# the task shares one network interface, so the first address listed is the
# task's) and exported as SHALE_ADVERTISE_URL=http://IP:PORT, PORT being the
# port of SHALE_LISTEN (default 8080) and https when SHALE_TLS_CERT is set.
# When the metadata cannot be read the container exits 1 instead of starting a
# node that advertises an address nobody can reach.
#
# POSIX sh; uses curl, tr, grep, sed, head (all in the runtime image), no jq.
# Messages go to stderr: stdout carries only the node's `shale listening on` line.
#
# Environment read here:
#   SHALE_ADVERTISE_FROM_ECS=1       derive SHALE_ADVERTISE_URL from the ECS task metadata
#   SHALE_ADVERTISE_URL              when set, always used as is
#   ECS_CONTAINER_METADATA_URI_V4    set by the ECS agent in every container
#   SHALE_LISTEN, SHALE_TLS_CERT     for the advertised port and scheme
#   SHALE_ECS_METADATA_TRIES         attempts at 1 s intervals (default 10)
#
# Other subcommands (`shale bench`, ...): `docker run --entrypoint shale IMAGE bench ...`.
set -eu

say() { printf 'entrypoint: %s\n' "$*" >&2; }

if [ -z "${SHALE_ADVERTISE_URL:-}" ] && [ "${SHALE_ADVERTISE_FROM_ECS:-}" = 1 ]; then
  metadata=${ECS_CONTAINER_METADATA_URI_V4:-}
  if [ -z "$metadata" ]; then
    say "SHALE_ADVERTISE_FROM_ECS=1 but ECS_CONTAINER_METADATA_URI_V4 is not set (not running on ECS?); set SHALE_ADVERTISE_URL instead"
    exit 1
  fi
  tries=${SHALE_ECS_METADATA_TRIES:-10}
  ip=
  n=0
  while [ -z "$ip" ] && [ "$n" -lt "$tries" ]; do
    n=$((n + 1))
    # Whitespace removed, the first "IPv4Addresses":["a.b.c.d" in document
    # order is Containers[0].Networks[0].IPv4Addresses[0].
    ip=$(curl -fsS --max-time 2 "$metadata/task" 2>/dev/null |
      tr -d ' \t\r\n' |
      grep -o '"IPv4Addresses":\["[0-9.]*"' |
      head -n 1 |
      sed 's/.*\["//; s/"$//') || ip=
    case $ip in
      *[!0-9.]* | *..* | .* | *.) ip= ;;
    esac
    if [ -z "$ip" ] && [ "$n" -lt "$tries" ]; then
      sleep 1
    fi
  done
  if [ -z "$ip" ]; then
    say "no IPv4 address in $metadata/task after $tries attempts; set SHALE_ADVERTISE_URL instead"
    exit 1
  fi
  listen=${SHALE_LISTEN:-0.0.0.0:8080}
  port=${listen##*:}
  scheme=http
  if [ -n "${SHALE_TLS_CERT:-}" ]; then
    scheme=https
  fi
  SHALE_ADVERTISE_URL="$scheme://$ip:$port"
  export SHALE_ADVERTISE_URL
  say "SHALE_ADVERTISE_URL=$SHALE_ADVERTISE_URL (from the ECS task metadata)"
fi

# These two are the entrypoint's own: unset, so that the node does not warn
# about SHALE_* variables that are not its settings.
unset SHALE_ADVERTISE_FROM_ECS SHALE_ECS_METADATA_TRIES
exec shale serve "$@"
