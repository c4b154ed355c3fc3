#!/usr/bin/env bash
# The pipeline benchmark: reader-format JSON pages to CSV, raw rows and 15-minute avg/stddev
# buckets in Europe/Rome, for each size (default 1M and 10M points), by the service's own code
# and by DuckDB over the same pages; prints points per second, peak RSS and the ratio; and
# times 1M raw rows to XLSX. Figures only: nothing here passes or fails on speed.
#   scripts/bench.sh [SIZE ...]        (E2E_ONLY=1: only the end-to-end part; PIPELINE_ONLY=1:
#                                       only the pipeline and DuckDB part)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(1000000 10000000)
VENV=.venv
[[ -x $VENV/bin/python3 ]] || python3 -m venv "$VENV"
"$VENV/bin/python3" -c 'import duckdb' 2>/dev/null || "$VENV/bin/pip" install -q 'duckdb>=1.1,<2'
CARGO_PROFILE_RELEASE_STRIP=false cargo build -q --release -p pipeline-bench
bench=target/release/pipeline-bench
work=target/bench
mkdir -p "$work"

rate() { sed -E 's/.* = ([0-9]+) points\/s.*/\1/' <<<"$1"; }

[[ -n ${E2E_ONLY:-} ]] && sizes=()
for n in "${sizes[@]}"; do
  pages=$work/pages-$n
  if [[ ! -f $pages/.complete ]]; then
    rm -rf "$pages"
    "$bench" generate "$n" "$pages"
    touch "$pages/.complete"
  fi
  echo "== $n points ($(du -sh "$pages" | cut -f1) of reader pages)"
  # Both sides read the pages from the page cache: the first run must not pay for the disk.
  cat "$pages"/* >/dev/null
  for mode in raw buckets; do
    # Each run starts with no output file and nothing left to write back from the run before.
    rm -f "$work"/ours-"$n"-* "$work"/duckdb-"$n"-*
    sync
    ours=$("$bench" csv "$pages" "$mode" "$work/ours-$n-$mode.csv")
    sync
    theirs=$("$VENV/bin/python3" scripts/bench_duckdb.py "$pages" "$mode" "$work/duckdb-$n-$mode.csv")
    echo "  $ours"
    echo "  $theirs"
    awk -v a="$(rate "$ours")" -v b="$(rate "$theirs")" -v m="$mode" \
      'BEGIN { printf "  %-8s ratio: %.1fx DuckDB'"'"'s throughput\n", m, a / b }'
  done
  if [[ $n -le 1000000 ]]; then
    echo "  $("$bench" xlsx "$pages" "$work/ours-$n.xlsx")"
    # The typed formats and the report, each in a process of its own (its own peak RSS).
    for extension in json ndjson parquet pdf; do
      echo "  $("$bench" format "$pages" "$extension" "$work/ours-$n.$extension")"
    done
  fi
done

[[ -n ${PIPELINE_ONLY:-} ]] && exit 0

# End to end through run-export: its handler in a release build, on the local stack (moto), from
# a local reader in a process of its own that takes E2E_LATENCY_MS an answer.
e2e_sizes=(${E2E_SIZES:-1000000 10000000})
e2e_continue=(${E2E_CONTINUE:-100000000 60})
latency=${E2E_LATENCY_MS:-20}
port=${E2E_READER_PORT:-9210}
echo "== end to end through run-export (release) on the local stack"
cargo build -q --release -p integration-tests --bin e2e-bench --bin local-reader --bin sweep-bench
scripts/stack.sh up >/dev/null
reader_pid=
cleanup() {
  [[ -n $reader_pid ]] && kill "$reader_pid" 2>/dev/null || true
  scripts/stack.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT
LOCAL_READER_ADDRESS=127.0.0.1:$port LOCAL_READER_STEP_SECONDS=1 LOCAL_READER_LATENCY_MS=$latency \
  READER_TOKEN=bench-token target/release/local-reader >"$work/e2e-reader.log" 2>&1 &
reader_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
(
  set -a
  eval "$(scripts/stack.sh env)"
  set +a
  # As the template sets it for run-export: large buffers mapped and given back when freed.
  export MALLOC_MMAP_THRESHOLD_=1048576
  READER_URL=http://127.0.0.1:$port READER_TOKEN=bench-token READER_LATENCY_MS=$latency WORK_DIR=$work \
    RUST_LOG=warn target/release/e2e-bench "${e2e_sizes[@]}" --continue "${e2e_continue[@]}"
)
# The reconciler's sweep against the history kept (SWEEP_SIZES: items of history).
(
  set -a
  eval "$(scripts/stack.sh env)"
  set +a
  RUST_LOG=error target/release/sweep-bench ${SWEEP_SIZES:-0 2000 10000}
)
