# The project's verbs. Each one is a single obvious command; the scripts say what they do.
.PHONY: demo test soak lint build bench package stack-up stack-down infra-check

## Run the main job locally end to end: stack up, an export created, what it stored, stack down.
demo:
	scripts/demo.sh

## Every test: formatting, lints, unit and property tests, and the tests against the local stack.
test: lint infra-check
	scripts/test.sh

## The fault soak alone, longer: a simulated day (72 steps of 20 minutes) on the local stack.
## SOAK_SEED=<n> picks another seed, SOAK_STEPS=<n> another length.
soak:
	scripts/stack.sh up
	set -a; eval "$$(scripts/stack.sh env)"; set +a; \
	  SOAK_STEPS=$${SOAK_STEPS:-72} cargo test -p integration-tests --test integration -- fault_soak --nocapture; \
	  status=$$?; scripts/stack.sh down; exit $$status

## The template as CloudFormation receives it: translated as `sam deploy` does, then linted.
infra-check:
	scripts/stack.sh install
	.venv/bin/python scripts/infra_check.py

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

build:
	cargo build --workspace --all-targets

stack-up:
	scripts/stack.sh up

stack-down:
	scripts/stack.sh down

## Figures of the export pipeline against DuckDB (1M and 10M points by default).
bench:
	scripts/bench.sh

## Release build of every function for Lambda (arm64), once: target/lambda/<function>/bootstrap.
package:
	scripts/stack.sh install
	PATH="$(CURDIR)/.venv/bin:$$PATH" cargo lambda build --release --arm64 -p exports-api -p run-export -p notify -p reconcile -p authorize
