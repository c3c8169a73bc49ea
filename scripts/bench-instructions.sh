#!/usr/bin/env bash
# Benchmark (not a test): the instructions `vigie replay --window 1h` executes on the
# DuckDB benchmark's file, counted by valgrind's cachegrind, and the functions that
# execute most of them. Wall time on this shared 2-core VM swings by 2x within the hour;
# an instruction count is the same from run to run, so a change of a percent shows
# (it says nothing of cache misses: confirm with runs in turn). About 20 s a run.
# Usage: scripts/bench-instructions.sh [THREADS] [FILE]
#   (default 1 thread, target/bench/duckdb-420000.jsonl, made as bench-duckdb.sh makes it)
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-1}"
file="${2:-target/bench/duckdb-420000.jsonl}"
scripts/setup.sh build
if ! command -v valgrind >/dev/null; then
  echo "installing valgrind (Debian package)" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y -q valgrind >/dev/null
fi
cargo build --release --locked -p vigie --bin vigie
bin=./target/release/vigie
if [ ! -s "$file" ]; then
  mkdir -p "$(dirname "$file")"
  "$bin" simulate --contacts 420000 --seed 21 --rate 0.486 --no-agent-events --output "$file" 2>/dev/null
fi
out="target/bench/cachegrind-$threads.out"
valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out" \
  "$bin" replay --window 1h --threads "$threads" "$file" >/dev/null 2>"$out.log"
events=$(wc -l < "$file")
total=$(grep -o 'I *refs: *[0-9,]*' "$out.log" | grep -o '[0-9,]*$' | tr -d ,)
echo "$events events in $file, $threads thread(s)"
echo "instructions: $total ($((total / events)) per event)"
echo "most executed, per event (by function, inlined code counted where it lands):"
cg_annotate --auto=no "$out" 2>/dev/null | awk -v n="$events" '
  /^-+$/ { rule++ ; next }
  rule >= 4 && $1 ~ /^[0-9,]+$/ {
    ir = $1; gsub(",", "", ir)
    name = $0
    sub(/^ *[0-9,]+ +(\([^)]*\) +)?/, "", name)
    sub(/^[^:]*:/, "", name)
    sub(/ \[[^]]*\]$/, "", name)
    sum[name] += ir
  }
  END { for (f in sum) printf "%8.0f  %s\n", sum[f] / n, f }' | sort -rn | head -15
