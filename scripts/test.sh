#!/usr/bin/env bash
# Runs every test: cfn-lint on the template; starts the local stack (moto, the local reader and
# chat endpoints, cargo lambda watch); runs the workspace's tests, the fault soak (printing its
# figures) and schemathesis (with the OpenAPI description) against it; stops the stack whatever
# happens; closes with the totals.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
scripts/stack.sh install
scripts/setup-tools.sh
.venv/bin/cfn-lint infra/template.yaml && echo "cfn-lint: infra/template.yaml passes"
trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up
set -a; eval "$(scripts/stack.sh env)"; set +a
log=$(mktemp)
status=0
cargo test --workspace --all-targets -- --skip fault_soak 2>&1 | tee "$log" || status=$?
# The fault soak prints what it injected and checked.
cargo test -p integration-tests --test integration -- fault_soak --nocapture 2>&1 | tee -a "$log" | grep -E -A2 '^soak:|^test result|panicked' || status=$?
# The OpenAPI description against the running API: no 5xx, every response as documented. On
# the stack as it was before asynchronous invokes (runs invoked through watch itself, one instance
# a function, no continuation): with the fuzzer's hundreds of exports running beside its requests,
# watch answers about one request in a thousand with its own 500 page (never the API's answer);
# the asynchronous stack is exercised by the integration tests above.
scripts/stack.sh down
# Items of a job one after another: with one instance a function, a job spread over item runs
# would wait for invocations watch cannot start.
export STACK_LAMBDA_ENDPOINT=http://127.0.0.1:9000 WATCH_CONCURRENCY=1 STACK_RUN_BUDGET_SECONDS=600 STACK_ITEM_FAN_OUT=1
scripts/stack.sh up
set -a; eval "$(scripts/stack.sh env)"; set +a
identity='{"sub":"schemathesis","email":"st@example.com","scope":"exporter:exports:create exporter:exports:list exporter:exports:get exporter:exports:download exporter:exports:delete exporter:exports:update exporter:exports:run"}'
st_status=0
# Every check (`-c all`) but those about authentication and authorization, which API Gateway's
# authorizer does in production (the functions here take the caller from the local identity
# header, and the bearer token only reaches the platform's channel check):
#   ignored_auth                 requests without credentials must be refused: the authorizer's
#                                job (locally the identity header is always sent);
#   missing_required_header      its only case here is a missing Authorization header, which
#                                the authorizer answers 401;
#   object_level_authorization   needs two configured users; one user's exports are invisible
#                                to another (404), checked by the integration tests;
# and `--generation-with-security-parameters false`, so no negative case is made by dropping the
# Authorization header (again the authorizer's concern). Locally a one-time export's create
# waits for its run (watch holds the invocation), so responses may take tens of seconds:
# `--max-response-time` and `--request-timeout` allow for that. `filter_too_much` is suppressed:
# the description's patterns (SenML names, durations, wide targets) and the hook's filter of
# non-UTF-8 bodies reject many drawn bodies, which only slows generation.
# scripts/schemathesis_hooks.py supplies the stack's recipient allow-lists and keeps the two
# cross-field rules JSON Schema cannot state (from < to, as many labels as names).
export ST_IDENTITY=$identity
run_schemathesis() {
  SCHEMATHESIS_HOOKS=scripts.schemathesis_hooks .venv/bin/schemathesis --config-file scripts/schemathesis.toml run docs/openapi.yaml \
    --url "$WATCH_ENDPOINT/lambda-url/exports-api" -H "x-local-identity: $identity" \
    -H "authorization: Bearer $LOCAL_USER_TOKEN" \
    -c all --exclude-checks ignored_auth,missing_required_header,object_level_authorization \
    --generation-with-security-parameters false --suppress-health-check filter_too_much \
    --request-timeout 300 --max-response-time 300 \
    --max-examples 25 --workers 1 --seed 20261127 --no-color 2>&1 | tee "$log.st"
}
run_schemathesis || st_status=$?
# `cargo lambda watch` now and then answers a request with its own error page (a problem
# document of type httpstatuses.com/500, 7 ms, no log line from the function); the API never
# answers with one. Such a run is repeated once with the same seed: a fault of the API's
# reproduces and still fails.
if [[ $st_status -ne 0 ]] && grep -q 'httpstatuses.com/500' "$log.st"; then
  echo "schemathesis: cargo lambda watch answered with its own 500 page; running the same cases once more"
  st_status=0
  run_schemathesis || st_status=$?
fi
[[ $st_status -eq 0 ]] || status=$st_status
if grep -qE '^Test cases:' -A1 "$log.st"; then
  grep -A1 '^Test cases:' "$log.st" | tail -n 1 | sed 's/^ */schemathesis: /'
fi
rm -f "$log.st"
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
