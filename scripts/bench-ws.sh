#!/usr/bin/env bash
# Benchmark (not a test): event-applied → websocket-frame latency with many clients.
# Usage: scripts/bench-ws.sh [CLIENTS] [EVENTS_PER_S] [SECONDS]   (default 500 10000 20)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
cargo build --release --locked -p vigie --example ws_latency
./target/release/examples/ws_latency "${1:-500}" "${2:-10000}" "${3:-20}"
