#!/usr/bin/env bash
# The local stack: moto (DynamoDB, Scheduler, S3, SES), the project's local reader and chat
# endpoints, and `cargo lambda watch` serving every function; moto and cargo-lambda are installed
# into the project's .venv when missing.
#   scripts/stack.sh up     start both, create the resources, wait until the functions answer
#   scripts/stack.sh down   stop what `up` started
#   scripts/stack.sh env    print the environment that points clients at the stack
#   scripts/stack.sh install  only install the Python tools into .venv
# READER_DIALECT (mainflux, magistrala, connhex: the default) sets how the local reader and the
# functions speak; STACK_RUN_BUDGET_SECONDS (default 1) a run's budget before it continues,
# WATCH_CONCURRENCY (default 4) the instances of each function watch runs at once, and
# STACK_LAMBDA_ENDPOINT (default local-lambda) the functions' Invoke API, and STACK_ITEM_FAN_OUT
# (default 4) how many items of a job run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/.stack
VENV=$ROOT/.venv
MOTO_PORT=${MOTO_PORT:-5123}
WATCH_PORT=${WATCH_PORT:-9000}
READER_PORT=${READER_PORT:-9100}
CHAT_PORT=${CHAT_PORT:-9200}
LAMBDA_PORT=${LAMBDA_PORT:-9001}
MOTO=http://127.0.0.1:$MOTO_PORT
WATCH=http://127.0.0.1:$WATCH_PORT

stack_env() {
  cat <<ENV
AWS_ENDPOINT_URL=$MOTO
AWS_ENDPOINT_URL_LAMBDA=${STACK_LAMBDA_ENDPOINT:-http://127.0.0.1:$LAMBDA_PORT}
LOCAL_LAMBDA_ADDRESS=127.0.0.1:$LAMBDA_PORT
AWS_REGION=us-east-1
AWS_DEFAULT_REGION=us-east-1
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_EC2_METADATA_DISABLED=true
MOTO_ENDPOINT=$MOTO
STACK_DIR=$STATE
WATCH_ENDPOINT=$WATCH
TABLE_NAME=exports
SCHEDULE_GROUP=exports
RUN_EXPORT_ARN=arn:aws:lambda:us-east-1:123456789012:function:run-export
RUN_EXPORT_FUNCTION=run-export
SCHEDULER_ROLE_ARN=arn:aws:iam::123456789012:role/exports-scheduler
BUCKET_NAME=exports-local
S3_FORCE_PATH_STYLE=true
READER_URL=http://127.0.0.1:$READER_PORT
READER_TOKEN=local-reader-token
LOCAL_READER_ADDRESS=127.0.0.1:$READER_PORT
LOCAL_USER_TOKEN=local-user-token
LOCAL_TENANT_TOKEN=local-tenant-token
LOCAL_READER_GRANTS='local-user-token=*;local-tenant-token=7d2ae7a6-0ae9-4bba-8d5b-1a1e5cbd3a4e'
NOTIFY_FUNCTION=notify
EMAIL_FROM=exports@example.com
LOCAL_CHAT_ADDRESS=127.0.0.1:$CHAT_PORT
LOCAL_CHAT_URL=http://127.0.0.1:$CHAT_PORT
TELEGRAM_API_URL=http://127.0.0.1:$CHAT_PORT
TELEGRAM_BOT_TOKEN=123456:local-bot-token
TELEGRAM_ALLOWED_CHATS=-1001234567890
EMAIL_ALLOWED_RECIPIENTS=example.com
SLACK_ALLOWED_HOSTS=127.0.0.1
DISCORD_ALLOWED_HOSTS=127.0.0.1
LINK_SIGNING_KEYS=local:local-link-signing-key-0123456789abcdef
PUBLIC_API_URL=$WATCH/lambda-url/exports-api
LOCAL_IDENTITY=1
RUST_LOG=info
RUN_BUDGET_SECONDS=${STACK_RUN_BUDGET_SECONDS:-1}
ITEM_FAN_OUT=${STACK_ITEM_FAN_OUT:-4}
READER_DIALECT=${READER_DIALECT:-connhex}
LOCAL_READER_POLICY='demo-user=*;tenant-user=7d2ae7a6-0ae9-4bba-8d5b-1a1e5cbd3a4e'
LOCAL_DOMAIN=5b1e7f0a-3c2d-4e6f-8a9b-0c1d2e3f4a5b
ENV
  # A reader that narrows pages by device cannot answer for a channel: ask the policy endpoint
  # (the local reader's /access) with the service's token instead.
  if [[ ${READER_DIALECT:-connhex} == magistrala || ${READER_DIALECT:-} == supermq ]]; then
    cat <<ENV
CHANNEL_ACCESS=policy
ACCESS_POLICY_URL='http://127.0.0.1:$READER_PORT/access?subject={subject}&domain={domain}&channel={channel}&action={action}'
ACCESS_POLICY_TOKEN=local-reader-token
ENV
  fi
}

wait_for() { # url seconds what
  local deadline=$((SECONDS + $2))
  until curl -s -o /dev/null "$1"; do
    if ((SECONDS > deadline)); then
      echo "stack: $3 did not answer at $1 within $2 s; see $STATE/*.log" >&2
      return 1
    fi
    sleep 0.5
  done
}

install() {
  # cargo-lambda from 1.9: its watch runs several instances of a function (--concurrency).
  if [[ ! -x $VENV/bin/moto_server || ! -x $VENV/bin/cargo-lambda || ! -x $VENV/bin/cfn-lint \
        || ! -x $VENV/bin/schemathesis ]] \
      || ! "$VENV/bin/cargo-lambda" lambda watch --help 2>/dev/null | grep -q -- '--concurrency' \
      || ! "$VENV/bin/python3" -c 'import pandas, openpyxl, pyarrow, duckdb, samtranslator' 2>/dev/null; then
    echo "stack: installing moto[server], cargo-lambda, cfn-lint, aws-sam-translator, schemathesis, pandas, openpyxl, pyarrow and duckdb into .venv"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'moto[server]>=5.1,<6' 'cargo-lambda>=1.9,<2' 'cfn-lint>=1.20,<2' \
      'aws-sam-translator>=1.90,<2' 'schemathesis>=4.3,<5' 'pandas>=2.2,<3' 'openpyxl>=3.1,<4' \
      'pyarrow>=15,<30' 'duckdb>=1.1,<3'
  fi
}

up() {
  install
  mkdir -p "$STATE"
  set -a; eval "$(stack_env)"; set +a
  if curl -s -o /dev/null "$MOTO/moto-api/"; then
    echo "stack: something already listens on $MOTO; run 'scripts/stack.sh down' or set MOTO_PORT" >&2
    return 1
  fi
  # moto_server, serving one request at a time (atomic, as DynamoDB's requests are).
  "$VENV/bin/python3" "$ROOT/scripts/moto_server.py" 127.0.0.1 "$MOTO_PORT" >"$STATE/moto.log" 2>&1 &
  echo $! >"$STATE/moto.pid"
  wait_for "$MOTO/moto-api/" 60 moto
  # moto bug: /moto-api/data.json answers 500 after any multipart upload unless this is set.
  curl -s -X POST "$MOTO/moto-api/state-manager/set-transition" \
    -d '{"model_name":"s3::keyrestore","transition":{"progression":"manual","times":1000000}}' >/dev/null
  cargo build -q --workspace --bins
  cargo run -q -p integration-tests --bin local-setup
  "$ROOT/target/debug/local-reader" >"$STATE/reader.log" 2>&1 &
  echo $! >"$STATE/reader.pid"
  wait_for "$READER_URL/" 30 "the local reader (LOCAL_READER_DATA=${LOCAL_READER_DATA:-unset})"
  "$ROOT/target/debug/local-chat" >"$STATE/chat.log" 2>&1 &
  echo $! >"$STATE/chat.pid"
  # Lambda's Invoke API as Lambda answers it: an asynchronous invoke returns at once (watch
  # itself holds it until the invocation ends, so a run launching its items would wait on them).
  if curl -s -o /dev/null "http://127.0.0.1:$LAMBDA_PORT/"; then
    echo "stack: something already listens on port $LAMBDA_PORT; run 'scripts/stack.sh down' or set LAMBDA_PORT" >&2
    return 1
  fi
  "$ROOT/target/debug/local-lambda" >"$STATE/lambda.log" 2>&1 &
  echo $! >"$STATE/lambda.pid"
  wait_for "http://127.0.0.1:$LAMBDA_PORT/" 30 "the local Lambda Invoke API"
  # Functions inherit watch's environment (their Invoke API is local-lambda); PATH gets .venv for
  # zig and cargo-lambda's helpers; up to four instances of each run at once, as Lambda would.
  PATH=$VENV/bin:$PATH setsid "$VENV/bin/cargo-lambda" lambda watch -A 127.0.0.1 -P "$WATCH_PORT" \
    --concurrency "${WATCH_CONCURRENCY:-4}" --ignore-changes >"$STATE/watch.log" 2>&1 &
  echo $! >"$STATE/watch.pid"
  wait_for "$WATCH/" 120 "cargo lambda watch"
  # The first request compiles the function: warm both now, not inside a test's timeout.
  curl -s -o /dev/null --max-time 600 "$WATCH/lambda-url/exports-api/exports" || true
  curl -s -o /dev/null --max-time 600 -X POST "$WATCH/2015-03-31/functions/notify/invocations" \
    -d '{"exportId":"00000000-0000-4000-8000-000000000000","jobId":"warm-up"}' || true
  curl -s -o /dev/null --max-time 600 -X POST "$WATCH/2015-03-31/functions/run-export/invocations" \
    -d '{"exportId":"00000000-0000-4000-8000-000000000000","scheduledAt":"2026-01-01T00:00:00Z"}' || true
  echo "stack: moto at $MOTO, functions at $WATCH/lambda-url/<name>/"
}

down() {
  for name in watch lambda reader chat moto; do
    if [[ -f $STATE/$name.pid ]]; then
      pid=$(cat "$STATE/$name.pid")
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      rm -f "$STATE/$name.pid"
    fi
  done
  # watch spawns the functions as children of its own; make sure none is left behind.
  pkill -f "$ROOT/target/debug/(exports-api|run-export|notify|reconcile|authorize)" 2>/dev/null || true
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  env) stack_env ;;
  *) echo "usage: scripts/stack.sh up|down|env" >&2; exit 2 ;;
esac
