#!/usr/bin/env bash
# Benchmark (not a test): flip → cockpit latency across instances. Two `vigie serve`
# on a local Tansu broker; a switch flipped by REST on A, timed until B's websocket shows it.
# Usage: scripts/bench-flip.sh [FLIPS] [PAUSE_MS]   (default 200 flips, 100 ms apart)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
port=19093
scripts/setup.sh test
cargo build --release --locked -p vigie --bin vigie --example flip_latency
scripts/broker.sh up "$port"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait || true
  scripts/broker.sh down
}
trap cleanup EXIT

# Starts one instance on a free port (its address is printed in its log).
launch() {
  # No mutation limit for the benchmark's single caller ("local").
  VIGIE__AUTH__OPEN=true VIGIE__AUTH__MUTATIONS_PER_MINUTE=0 RUST_LOG=warn \
    "$target/release/vigie" serve --brokers "127.0.0.1:${port}" --listen 127.0.0.1:0 \
    > "$target/bench-flip-$1.log" 2>&1 &
  pids+=($!)
}
# Prints the base URL of instance $1 once it listens.
url_of() {
  local log="$target/bench-flip-$1.log"
  for _ in $(seq 1 300); do
    if url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1); then
      echo "${url#listening on }"; return 0
    fi
    sleep 0.1
  done
  echo "instance $1 did not start; see $log" >&2; return 1
}
launch a
a=$(url_of a)
launch b
b=$(url_of b)
"$target/release/examples/flip_latency" "$a" "$b" "${1:-200}" "${2:-100}"
