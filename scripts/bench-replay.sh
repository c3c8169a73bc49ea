#!/usr/bin/env bash
# End-to-end benchmark of `vigie replay` on a ≥ 5 M-event recording, JSONL and protobuf,
# plus the engine's memory per tracked customer at 10 M customers; then the cost of
# agents: the same JSONL stream with 5,000 agents changing state 50 times a day mixed
# in, and the memory per agent.
# Not a test: prints numbers for the README's performance section.
# Usage: scripts/bench-replay.sh [CONTACTS]   (default 1,500,000 contacts ≈ 5.3 M events)
set -euo pipefail
cd "$(dirname "$0")/.."

contacts="${1:-1500000}"
scripts/setup.sh build
cargo build --release --locked -p vigie --bin vigie --example customer_memory --example agent_load
bin=./target/release/vigie
dir=target/bench
mkdir -p "$dir"

for format in jsonl proto; do
  file="$dir/stream-$contacts.$format"
  if [ ! -s "$file" ]; then
    echo "simulating $contacts contacts into $file"
    # Contacts only: the agents' cost is measured apart, below.
    "$bin" simulate --contacts "$contacts" --seed 9 --rate 20 --no-agent-events --format "$format" --output "$file"
  fi
done

agents=5000
changes=50
mixed="$dir/stream-$contacts-agents-$agents.jsonl"
if [ ! -s "$mixed" ]; then
  echo "mixing $agents agents × $changes changes a day into $mixed"
  ./target/release/examples/agent_load merge "$agents" "$changes" <"$dir/stream-$contacts.jsonl" >"$mixed"
fi

# Best of three runs of `vigie replay` (the file is in the page cache after the first),
# with THREADS worker threads (default: one per core): sets records and best (seconds).
replay() {
  local format=$1 file=$2 threads=${3:-$(nproc)} line
  best=""
  for run in 1 2 3; do
    line=$(RUST_LOG=info "$bin" replay --format "$format" --window 24h --threads "$threads" "$file" 2>&1 >/dev/null | grep 'replay done')
    records=$(sed -E 's/.*records[^0-9]*([0-9]+).*/\1/' <<<"$(sed 's/\x1b\[[0-9;]*m//g' <<<"$line")")
    seconds=$(sed -E 's/.*seconds[^0-9]*([0-9.]+).*/\1/' <<<"$(sed 's/\x1b\[[0-9;]*m//g' <<<"$line")")
    if [ -z "$best" ] || awk "BEGIN{exit !($seconds < $best)}"; then best=$seconds; fi
  done
}

for format in jsonl proto; do
  file="$dir/stream-$contacts.$format"
  size=$(du -h "$file" | cut -f1)
  for threads in 1 "$(nproc)"; do
    replay "$format" "$file" "$threads"
    rate=$(awk "BEGIN{printf \"%.0f\", $records / $best}")
    printf 'replay %-5s %s records (%s) in %.2f s: %s events/s (%s thread(s))\n' "$format" "$records" "$size" "$best" "$rate" "$threads"
  done
  if [ "$format" = jsonl ]; then contacts_only=$best; fi
done
replay jsonl "$mixed"
awk -v b="$contacts_only" -v m="$best" -v r="$records" -v a="$agents" -v c="$changes" 'BEGIN{
  printf "replay jsonl with %d agents × %d changes a day mixed in: %d records in %.2f s, +%.1f %% time\n", a, c, r, m, (m-b)/b*100 }'
./target/release/examples/agent_load memory "$agents" "$changes" | awk -F': ' '/bytes per agent/{printf "memory: %s bytes per agent (%s changes a day each, a day held)\n", $2, '"$changes"'}'

# Memory per tracked customer: identified minus anonymous run, same contacts.
customers=10000000
with=$(./target/release/examples/customer_memory "$customers" | awk -F': ' '/resident growth bytes/{print $2}')
without=$(./target/release/examples/customer_memory "$customers" anonymous | awk -F': ' '/resident growth bytes/{print $2}')
awk -v w="$with" -v wo="$without" -v n="$customers" 'BEGIN{
  printf "memory: %.0f MiB with %d tracked customers, %.0f MiB without; %.1f bytes per tracked customer\n", w/1048576, n, wo/1048576, (w-wo)/n }'
