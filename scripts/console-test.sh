#!/usr/bin/env bash
# The web console in a real headless browser: scripts/lib/console_test.py
# (selenium, pinned, in the virtualenv ${SHALE_VENV:-.venv}) starts a node,
# fills it through the API, loads every page in headless Chromium, checks
# what it shows, recalls a timer and sends a dead letter back through the
# UI, fails on any browser console error, and writes a screenshot of each
# page; then the same with auth on (the console asks for the token).
#
#   scripts/console-test.sh            # build target/debug/shale first (scripts/test.sh does)
#
# Chromium and its driver come from Debian (`chromium`, `chromium-driver`),
# installed with apt-get when missing and running as root; where they cannot
# be had the test is skipped with a message (exit 0).
#
# Environment: SHALE_BIN (default $CARGO_TARGET_DIR/debug/shale), SHALE_VENV,
# SHALE_CONSOLE_SCREENSHOTS (default $CARGO_TARGET_DIR/console-screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/console-test.sh: %s\n' "$*" >&2; exit 1; }
skip() { printf 'scripts/console-test.sh: SKIPPED: %s\n' "$*" >&2; exit 0; }

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium and chromium-driver (Debian packages)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 ||
      skip "apt-get could not install chromium and chromium-driver"
  else
    skip "no chromium/chromedriver, and cannot install them (needs root and apt-get)"
  fi
fi

selenium_requirement="selenium==4.50.0"
venv=${SHALE_VENV:-$root/.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "python3 -m venv failed"
stamp="$venv/.shale-selenium"
if [ "$(cat "$stamp" 2>/dev/null)" != "$selenium_requirement" ]; then
  say "installing $selenium_requirement into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$selenium_requirement"
  printf '%s' "$selenium_requirement" >"$stamp"
fi

target=${CARGO_TARGET_DIR:-$root/target}
shale=${SHALE_BIN:-$target/debug/shale}
[ -x "$shale" ] || die "no $shale: build it first (cargo build -p shale-gateway)"
shots=${SHALE_CONSOLE_SCREENSHOTS:-$target/console-screenshots}

# Each run starts its own node and stops it, also on failure (the driver's
# finally); `timeout` bounds a run that hangs anyway.
say "console in headless Chromium, without auth"
timeout 600 "$venv/bin/python" "$root/scripts/lib/console_test.py" "$shale" "$shots"
say "console in headless Chromium, with auth"
timeout 600 "$venv/bin/python" "$root/scripts/lib/console_test.py" "$shale" "$shots" --auth
say "screenshots in $shots"
