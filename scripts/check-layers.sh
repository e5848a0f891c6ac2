#!/usr/bin/env bash
# The dependency rule of docs/ARCHITECTURE.md: gateway → broker → tiering → hot,
# and no HTTP in the broker. Fails when
# - shale-broker depends directly on axum, tower, hyper, http or utoipa, or
#   axum or utoipa appear anywhere in its tree (object_store's own HTTP client
#   underneath is fine);
# - a lower crate depends on a higher one;
# - shale-client depends on any other shale crate (it speaks only the HTTP
#   contract, so users and the CLI get it without the node's code).
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
direct=$(cargo tree -p shale-broker -e normal --depth 1 --prefix none --locked | sed 1d)
if grep -E '^(axum|axum-[a-z-]+|tower|tower-[a-z-]+|hyper|http|utoipa)( |$)' <<<"$direct"; then
  echo "check-layers: shale-broker must not depend on these directly" >&2
  fail=1
fi
if cargo tree -p shale-broker -e normal --prefix none --locked | grep -E '^(axum|utoipa)'; then
  echo "check-layers: axum or utoipa in the tree of shale-broker" >&2
  fail=1
fi
for pair in "shale-hot shale-tiering" "shale-hot shale-broker" "shale-hot shale-gateway" \
            "shale-tiering shale-broker" "shale-tiering shale-gateway" "shale-broker shale-gateway"; do
  set -- $pair
  if cargo tree -p "$1" -e normal --prefix none --locked | grep -q "^$2 "; then
    echo "check-layers: $1 depends on $2 (dependencies flow gateway → broker → tiering → hot)" >&2
    fail=1
  fi
done
client_deps=$(cargo tree -p shale-client -e normal --prefix none --locked | sed 1d)
if grep -E '^shale-' <<<"$client_deps"; then
  echo "check-layers: shale-client must not depend on another shale crate" >&2
  fail=1
fi
[ "$fail" = 0 ] && echo "check-layers: ok" >&2
exit "$fail"
