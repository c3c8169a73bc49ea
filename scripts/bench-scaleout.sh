#!/usr/bin/env bash
# Benchmark (not a test): scale-out on this machine, Tansu on loopback.
#  1. Throughput: CONTACTS simulated contacts (dated in the past) in a PARTITIONS-partition
#     topic; for 1, 2 and 3 `vigie serve` instances (partials on, fresh group and partials
#     topic each time), the time from start until every instance's /readyz is 200 (every
#     partition live in its merged view): events / that time.
#  2. Rebalance to a correct view: with 3 instances ready, SIGTERM one, then the time until
#     both survivors are ready again and show exactly the 24 h snapshot they showed before.
# Usage: scripts/bench-scaleout.sh [CONTACTS] [PARTITIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
contacts="${1:-300000}"
partitions="${2:-6}"
port=19093
broker="127.0.0.1:${port}"
scripts/setup.sh test
cargo build --release --locked -p vigie --bin vigie
bin="${CARGO_TARGET_DIR:-target}/release/vigie"
tansu="${HOME}/.cargo/tansu/bin/tansu"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$tansu" broker --storage-engine memory://tansu/ --listener-url "tcp://${broker}" \
  --advertised-listener-url "tcp://${broker}" > "$work/tansu.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && break; sleep 0.1; done

topic="bench-scale-$$"
python3 - "$broker" "$topic" "$partitions" <<'PY'
import sys
from kafka.admin import KafkaAdminClient, NewTopic
a = KafkaAdminClient(bootstrap_servers=sys.argv[1])
a.create_topics([NewTopic(sys.argv[2], int(sys.argv[3]), 1), NewTopic(sys.argv[2] + ".dlq", 1, 1)])
PY
rate=20
start=$(date -u -d "@$(( $(date +%s) - contacts / rate - 7200 ))" +%Y-%m-%dT%H:%M:%SZ)
echo "producing ${contacts} contacts (dated from ${start}) to ${topic} (${partitions} partitions)"
RUST_LOG=warn "$bin" simulate --brokers "$broker" --topic "$topic" --contacts "$contacts" \
  --rate "$rate" --start "$start" --format proto 2> "$work/simulate.log"
events=$(python3 - "$broker" "$topic" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=sys.argv[1])
tps = [TopicPartition(sys.argv[2], p) for p in c.partitions_for_topic(sys.argv[2])]
print(sum(c.end_offsets(tps).values()))
PY
)
echo "${events} events in the topic"

# start NAME RUN: one instance; prints its base URL.
start_instance() {
  local name="$1" run="$2"
  cat > "$work/$name.toml" <<TOML
[kafka]
brokers = "$broker"
topic = "$topic"
dlq_topic = "$topic.dlq"
group_id = "bench-$run"
switches_topic = "bench-switches-$run"
audit_topic = "bench-audit-$run"
partials = true
partials_topic = "bench-partials-$run"
instance_id = "$name"
[auth]
open = true
[kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
TOML
  RUST_LOG=warn "$bin" --config "$work/$name.toml" serve --listen 127.0.0.1:0 2> "$work/$name.log" &
  pids+=($!)
  echo $! > "$work/$name.pid"
  for _ in $(seq 1 200); do
    url=$(sed -n 's/^listening on //p' "$work/$name.log" | head -1)
    [ -n "$url" ] && { echo "$url" > "$work/$name.url"; return; }
    sleep 0.05
  done
  echo "instance $name did not start" >&2; exit 1
}
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/readyz")" = 200 ]; }
kpis() { curl -s "$1/api/v1/snapshot?window=24h" | python3 -c 'import json,sys; s=json.load(sys.stdin); s.pop("breakdown",None); print(json.dumps(s,sort_keys=True))'; }
now() { date +%s.%N; }

declare -A rates
for n in 1 2 3; do
  run="$n-$$"
  t0=$(now)
  urls=()
  for i in $(seq 1 "$n"); do start_instance "i$i-$run" "$run"; urls+=("$(cat "$work/i$i-$run.url")"); done
  while true; do
    all=1; for u in "${urls[@]}"; do ready "$u" || all=0; done
    [ $all = 1 ] && break; sleep 0.1
  done
  t=$(echo "$(now) - $t0" | bc -l)
  rate=$(echo "$events / $t" | bc -l)
  printf '%d instance(s): every merged view live after %.1f s: %.0f events/s\n' "$n" "$t" "$rate"
  rates[$n]=$rate
  if [ "$n" = 3 ]; then
    want=$(kpis "${urls[0]}")
    t0=$(now)
    kill -TERM "$(cat "$work/i3-$run.pid")"
    # First the survivors notice (a partition moves: not ready), at most 10 s...
    for _ in $(seq 1 200); do
      ready "${urls[0]}" && ready "${urls[1]}" || break; sleep 0.05
    done
    # ...then until both are ready again with exactly the view before.
    while true; do
      ok=1
      for u in "${urls[0]}" "${urls[1]}"; do
        ready "$u" && [ "$(kpis "$u")" = "$want" ] || ok=0
      done
      [ $ok = 1 ] && break; sleep 0.05
    done
    printf 'one of 3 stopped: both survivors show the same 24 h view after %.1f s\n' "$(echo "$(now) - $t0" | bc -l)"
  else
    for i in $(seq 1 "$n"); do kill -TERM "$(cat "$work/i$i-$run.pid")" 2>/dev/null || true; done
  fi
done
