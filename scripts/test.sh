#!/usr/bin/env bash
# Runs every test: starts the local stack (moto, cargo lambda watch), runs the workspace's tests
# against it, and stops the stack again whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up
set -a; eval "$(scripts/stack.sh env)"; set +a
cargo test --workspace --all-targets
