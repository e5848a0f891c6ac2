#!/usr/bin/env bash
# The SQS-compatible endpoint (`POST /`, AWS JSON 1.0) with real AWS clients,
# against a real node, as an application written for SQS would use it:
#
#   scripts/sqs-test.sh                # build target/debug/shale first (scripts/test.sh does)
#   scripts/sqs-test.sh -k fifo        # extra arguments go to the boto3 suite (a name filter here)
#
# 1. A node on a free port: a temporary data dir, a local-directory object
#    store (file://) in it, no auth file (any credentials are accepted).
# 2. boto3 (pinned below, in the virtualenv ${SHALE_VENV:-.venv}, created as
#    scripts/lib/s3-env.sh does when run alone): scripts/lib/sqs_test.py, every
#    operation, standard and FIFO queues, delays, visibility, redrive, batch
#    errors, long polling, MD5s, the /v1 view of SQS queues; its auth test
#    starts a second node with an auth file (SigV4 secrets) of its own.
# 3. The AWS SDK for JavaScript v3 (@aws-sdk/client-sqs, pinned in
#    scripts/lib/sqs-sdk/package.json and its lock file, installed with
#    `npm ci` into scripts/lib/sqs-sdk/node_modules): scripts/lib/sqs_sdk_test.mjs,
#    with the SDK's own MD5 checks on. Skipped with a message without node/npm.
# 4. The AWS CLI, when `aws` is on PATH: a smoke test (create-queue,
#    send-message, receive-message, delete-message, get-queue-attributes);
#    skipped with a message otherwise.
# Every suite runs even when one before it failed; exit status non-zero if any
# failed (the node's log tail is printed then).
#
# Environment: SHALE_BIN (default $CARGO_TARGET_DIR/debug/shale), SHALE_VENV.
# The caller's AWS_* settings (scripts/test.sh points them at moto) are not
# used: the clients get the node's URL and credentials explicitly, and an
# empty AWS config.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/sqs-test.sh: %s\n' "$*" >&2; exit 1; }
skipped() { printf 'scripts/sqs-test.sh: SKIPPED: %s\n' "$*" >&2; }

# --- the virtualenv with boto3 ----------------------------------------------------
# boto3 is also what moto (scripts/lib/s3-env.sh) brings; pinned here so a run of
# this script alone gets the same one.
# shellcheck source=scripts/lib/sqs-node.sh
. "$root/scripts/lib/sqs-node.sh"
sqs_boto3_venv

shale=${SHALE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/shale}
[ -x "$shale" ] || die "no $shale: build it first (cargo build -p shale-gateway --bin shale)"

work=$(mktemp -d -t shale-sqs-test.XXXXXX)
sqs_work=$work

# The clients see only what is given to them here.
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(AWS_[A-Z0-9_]*\)=.*/\1/p')
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials" \
  AWS_EC2_METADATA_DISABLED=true
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"

# --- 1. the node -------------------------------------------------------------------
sqs_start_node "$shale" "$work"
say "node on $url"

status=0
failed=()

# --- 2. boto3 ----------------------------------------------------------------------
say "SQS with boto3 (scripts/lib/sqs_test.py)"
if ! timeout 900 "$venv/bin/python" "$root/scripts/lib/sqs_test.py" --url "$url" --shale "$shale" "$@"; then
  status=1
  failed+=(boto3)
fi

# The rest only without a name filter (it is for the boto3 suite).
if [ $# -eq 0 ]; then
  # --- 3. the JavaScript SDK v3 -----------------------------------------------------
  sdk="$root/scripts/lib/sqs-sdk"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    skipped "the JavaScript SDK suite needs node (>= 20) and npm"
  elif [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    skipped "the JavaScript SDK suite needs node >= 20 (this is $(node --version))"
  else
    lock_sum=$(sha256sum "$sdk/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$sdk/node_modules/.shale-lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
      say "installing the JavaScript SDK (npm ci in scripts/lib/sqs-sdk)"
      (cd "$sdk" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in $sdk"
      printf '%s' "$lock_sum" >"$sdk/node_modules/.shale-lock-sha256"
    fi
    say "SQS with the AWS SDK for JavaScript v3 (scripts/lib/sqs_sdk_test.mjs)"
    if ! timeout 300 node "$root/scripts/lib/sqs_sdk_test.mjs" "$url"; then
      status=1
      failed+=(javascript-sdk)
    fi
  fi

  # --- 4. the AWS CLI ----------------------------------------------------------------
  cli_fail() { printf 'aws-cli: FAIL %s\n' "$*" >&2; return 1; }
  awsq() {
    AWS_ACCESS_KEY_ID=AKIDCLITEST AWS_SECRET_ACCESS_KEY=cli-secret \
      timeout 60 aws --endpoint-url "$url" --region us-east-1 --output json "$@"
  }
  cli_smoke() {
    local name qurl body sent got handle receipt attrs n
    name="cli-smoke-$$"
    body="hello from the AWS CLI ✓"
    qurl=$(awsq sqs create-queue --queue-name "$name" --query QueueUrl --output text) || cli_fail "create-queue" || return 1
    [ "$qurl" = "$url/000000000000/$name" ] || cli_fail "create-queue answered the URL $qurl" || return 1
    sent=$(awsq sqs send-message --queue-url "$qurl" --message-body "$body" \
      --message-attributes '{"colour": {"DataType": "String", "StringValue": "blue"}}') || cli_fail "send-message" || return 1
    "$venv/bin/python" - "$body" "$sent" <<'EOF' || cli_fail "send-message answer: $sent" || return 1
import hashlib, json, sys
body, sent = sys.argv[1], json.loads(sys.argv[2])
assert sent["MessageId"], sent
assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest(), sent
EOF
    got=
    for _ in $(seq 1 10); do
      got=$(awsq sqs receive-message --queue-url "$qurl" --wait-time-seconds 1 --visibility-timeout 30 \
        --attribute-names All --message-attribute-names All) || cli_fail "receive-message" || return 1
      [ -n "$got" ] && [ "$got" != "{}" ] && break
    done
    [ -n "$got" ] && [ "$got" != "{}" ] || cli_fail "receive-message: nothing within 10 s" || return 1
    handle=$("$venv/bin/python" - "$body" "$got" <<'EOF'
import hashlib, json, sys
body, got = sys.argv[1], json.loads(sys.argv[2])
[m] = got["Messages"]
assert m["Body"] == body, m
assert m["MD5OfBody"] == hashlib.md5(body.encode()).hexdigest(), m
assert m["MessageAttributes"]["colour"]["StringValue"] == "blue", m
assert m["Attributes"]["ApproximateReceiveCount"] == "1", m
print(m["ReceiptHandle"])
EOF
    ) || cli_fail "receive-message answer: $got" || return 1
    awsq sqs delete-message --queue-url "$qurl" --receipt-handle "$handle" || cli_fail "delete-message" || return 1
    for n in $(seq 1 50); do
      attrs=$(awsq sqs get-queue-attributes --queue-url "$qurl" --attribute-names All) || cli_fail "get-queue-attributes" || return 1
      receipt=$("$venv/bin/python" -c 'import json,sys; a=json.loads(sys.argv[1])["Attributes"]; print(a["QueueArn"], a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"])' "$attrs") ||
        cli_fail "get-queue-attributes answer: $attrs" || return 1
      [ "$receipt" = "arn:aws:sqs:us-east-1:000000000000:$name 0 0" ] && break
      [ "$n" -lt 50 ] || cli_fail "get-queue-attributes after the delete: $receipt" || return 1
      sleep 0.2
    done
    printf 'aws-cli: ok create-queue, send-message, receive-message, delete-message, get-queue-attributes\n' >&2
  }
  if command -v aws >/dev/null 2>&1 && aws --version >/dev/null 2>&1; then
    say "SQS with the AWS CLI ($(aws --version 2>&1 | cut -d' ' -f1))"
    if ! cli_smoke; then
      status=1
      failed+=(aws-cli)
    fi
  else
    skipped "the AWS CLI smoke test: no aws on PATH"
  fi
fi

if [ "$status" -ne 0 ]; then
  say "failed: ${failed[*]}; the node's log (last 40 lines):"
  tail -n 40 "$work/node.err" >&2
fi
exit "$status"
