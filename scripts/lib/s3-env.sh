# Sourced by scripts/test.sh and scripts/bench.sh: a Python virtualenv with
# moto's S3 server (and pyarrow and DuckDB for the replay examples), and a moto server on a free port with the
# bucket `shale-test`, stopped when the sourcing script exits.
#
# Needs: `root` (the checkout), `say` and `die` defined by the caller.
# Honours SHALE_VENV (default: $root/.venv) and SHALE_SKIP_VENV=1 (do nothing).
# Exports: SHALE_TEST_PYTHON, PATH with the venv's bin first, AWS_ENDPOINT_URL
# & co., SHALE_TEST_S3_BUCKET=shale-test, SHALE_REQUIRE_S3=1.

# Python virtualenv
python_requirements=("moto[s3]==5.2.5" "flask" "flask-cors" "pyarrow" "duckdb==1.5.5" "duckdb-extension-httpfs==1.5.5" "duckdb-extensions==1.5.5")
if [ "${SHALE_SKIP_VENV:-}" != 1 ]; then
  venv=${SHALE_VENV:-$root/.venv}
  stamp="$venv/.shale-requirements"
  if [ ! -x "$venv/bin/python" ]; then
    command -v python3 >/dev/null 2>&1 || die "python3 not found: install python3 and python3-venv (or set SHALE_SKIP_VENV=1)"
    say "creating the Python virtualenv $venv"
    python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv (Debian/Ubuntu)"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "${python_requirements[*]}" ]; then
    say "installing ${python_requirements[*]} into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${python_requirements[@]}"
    printf '%s' "${python_requirements[*]}" >"$stamp"
  fi
  export SHALE_TEST_PYTHON="$venv/bin/python"
  export PATH="$venv/bin:$PATH"
fi

# An S3-compatible server (moto) for the object-store suites ---------------
# Started here, stopped on exit; the tests find it through the usual AWS
# variables plus SHALE_TEST_S3_BUCKET, and SHALE_REQUIRE_S3=1 makes a missing
# server a failure instead of a skip.
if [ "${SHALE_SKIP_VENV:-}" != 1 ]; then
  moto_port=$("$SHALE_TEST_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  moto_log=$(mktemp -t shale-moto.XXXXXX)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
  moto_pid=$!
  trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$moto_port/" && break
    kill -0 "$moto_pid" 2>/dev/null || { cat "$moto_log" >&2; die "moto_server did not start"; }
    sleep 0.1
  done
  curl -sf -X PUT "http://127.0.0.1:$moto_port/shale-test" >/dev/null || { cat "$moto_log" >&2; die "could not create the test bucket in moto"; }
  say "moto S3 server on 127.0.0.1:$moto_port (bucket shale-test)"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing SHALE_TEST_S3_BUCKET=shale-test SHALE_REQUIRE_S3=1
fi

