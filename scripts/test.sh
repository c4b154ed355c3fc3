#!/usr/bin/env bash
# Runs every test: starts the local stack (moto, cargo lambda watch), runs the workspace's tests
# against it, stops the stack again whatever happens, and closes with the totals on one line.
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
cargo test --workspace --all-targets 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
