#!/usr/bin/env bash
# Runs every test: cfn-lint on the template; starts the local stack (moto, the local reader and
# chat endpoints, cargo lambda watch); runs the workspace's tests, the fault soak (printing its
# figures) and schemathesis (with the OpenAPI description) against it; stops the stack whatever
# happens; closes with the totals.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
scripts/stack.sh install
.venv/bin/cfn-lint infra/template.yaml && echo "cfn-lint: infra/template.yaml passes"
trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up
set -a; eval "$(scripts/stack.sh env)"; set +a
log=$(mktemp)
status=0
cargo test --workspace --all-targets -- --skip fault_soak 2>&1 | tee "$log" || status=$?
# The fault soak prints what it injected and checked.
cargo test -p integration-tests --test integration -- fault_soak --nocapture 2>&1 | tee -a "$log" | grep -E '^soak:|^test result|panicked' || status=$?
# The OpenAPI description against the running API: no 5xx, every response as documented. On
# the stack as it was before asynchronous invokes (runs invoked through watch itself, one instance
# a function, no continuation): with the fuzzer's hundreds of exports running beside its requests,
# watch answers about one request in a thousand with its own 500 page (never the API's answer);
# the asynchronous stack is exercised by the integration tests above.
scripts/stack.sh down
export STACK_LAMBDA_ENDPOINT=http://127.0.0.1:9000 WATCH_CONCURRENCY=1 STACK_RUN_BUDGET_SECONDS=600
scripts/stack.sh up
set -a; eval "$(scripts/stack.sh env)"; set +a
identity='{"sub":"schemathesis","email":"st@example.com","scope":"exporter:exports:create exporter:exports:list exporter:exports:get exporter:exports:download exporter:exports:delete"}'
st_status=0
run_schemathesis() {
  SCHEMATHESIS_HOOKS=scripts.schemathesis_hooks .venv/bin/schemathesis run docs/openapi.yaml \
    --url "$WATCH_ENDPOINT/lambda-url/exports-api" -H "x-local-identity: $identity" \
    -H "authorization: Bearer $LOCAL_USER_TOKEN" \
    -c not_a_server_error,response_schema_conformance,status_code_conformance \
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
