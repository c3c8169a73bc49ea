#!/usr/bin/env bash
# Benchmark (not a test): `vigie replay --window 1h` against DuckDB computing the same
# KPIs with SQL from the same JSONL file, in one run on this machine: both times, the
# ratio vigie / DuckDB, and both sets of numbers side by side (checked equal).
# The file: 10 days of a simulated centre (about 1.6 M events, 1 % redeliveries, events
# delayed up to a minute), contacts only.
# The ratio is the median of ROUNDS pairs, each a Vigie run then a DuckDB run at once
# (see bench_duckdb/kpis.py: this machine's speed swings within the hour).
# Usage: scripts/bench-duckdb.sh [CONTACTS] [THREADS] [ROUNDS]
#   (default 420,000 contacts, 2 threads, 7 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
contacts="${1:-420000}"
threads="${2:-2}"
rounds="${3:-7}"
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
# The scaling: one worker thread, best of three (the file is in the page cache after
# the first run).
best=""
for run in 1 2 3; do
  s=$(date +%s.%N)
  "$bin" replay --window 1h --threads 1 "$file" >/dev/null 2>&1
  e=$(date +%s.%N)
  t=$(python3 -c "print(round($e - $s, 3))")
  best=$(python3 -c "print(min(x for x in [$t, ${best:-1e9}]))")
done
echo "vigie replay, 1 thread(s): best ${best} s"
# Then the pairs, Vigie with one worker thread per core (its default).
python3 scripts/bench_duckdb/kpis.py "$file" "$threads" "$rounds" \
  "$bin" replay --window 1h --threads "$(nproc)" "$file"
