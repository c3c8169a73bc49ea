#!/usr/bin/env bash
# Benchmark (not a test): `vigie replay --window 1h` against DuckDB computing the same
# KPIs with SQL from the same JSONL file, in one run on this machine: both times, the
# ratio vigie / DuckDB, and both sets of numbers side by side (checked equal).
# The file: 10 days of a simulated centre (about 1.6 M events, 1 % redeliveries, events
# delayed up to a minute), contacts only.
# Usage: scripts/bench-duckdb.sh [CONTACTS] [THREADS]   (default 420,000 contacts, 2 threads)
set -euo pipefail
cd "$(dirname "$0")/.."
contacts="${1:-420000}"
threads="${2:-2}"
scripts/setup.sh build
python3 -c "import duckdb" 2>/dev/null || python3 -m pip install --quiet "duckdb>=1.1"
cargo build --release --locked -p vigie --bin vigie
bin=./target/release/vigie
dir=target/bench
mkdir -p "$dir"
file="$dir/duckdb-$contacts.jsonl"
if [ ! -s "$file" ]; then
  "$bin" simulate --contacts "$contacts" --seed 21 --rate 0.486 --no-agent-events --output "$file" 2>/dev/null
fi
echo "$(wc -l < "$file") events in $file"
# Best of three (the file is in the page cache after the first run), with one worker
# thread and then one per core (the default).
for threads in 1 "$(nproc)"; do
  best=""
  for run in 1 2 3; do
    s=$(date +%s.%N)
    "$bin" replay --window 1h --threads "$threads" "$file" > "$dir/duckdb-vigie.json" 2>/dev/null
    e=$(date +%s.%N)
    t=$(python3 -c "print(round($e - $s, 3))")
    best=$(python3 -c "print(min(x for x in [$t, ${best:-1e9}]))")
  done
  echo "vigie replay, $threads thread(s): ${best} s"
done
out=$(python3 scripts/bench_duckdb/kpis.py "$file" "$dir/duckdb-vigie.json" "$threads")
echo "$out" | grep -v DUCKDB_SECONDS
duck=$(echo "$out" | sed -n 's/^DUCKDB_SECONDS=//p')
python3 -c "print(f'ratio vigie / duckdb: {$best / $duck:.2f} (target ≤ 0.5)')"
