#!/usr/bin/env bash
# Benchmark (not a test): rebuild of a 7-day horizon for a 5,000-agent centre from a
# local Tansu broker: events/s from the broker into the engine, and the rebuild time.
# Usage: scripts/bench-kafka.sh [DAYS] [AGENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
days="${1:-7}"
agents="${2:-5000}"
port=19092
scripts/setup.sh test
cargo build --release --locked -p vigie --example kafka_rebuild
scripts/broker.sh up "$port"
trap 'scripts/broker.sh down' EXIT
RUST_LOG=warn ./target/release/examples/kafka_rebuild "127.0.0.1:${port}" "$days" "$agents"
