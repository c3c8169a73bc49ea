#!/usr/bin/env bash
# Benchmark (not a test): what a hostile viewer does to everyone else. The server holds
# two hours of demo traffic (20 contacts/s) and takes CLIENTS websocket clients and
# 1,000 events/s; it is measured alone, then while FLOODERS clients each send 250
# `subscribe` messages a second with ever new 24 h windows broken down by queue and
# reason. Each run prints the clients' frame latency and GET /healthz's latency.
# Usage: scripts/bench-flood.sh [CLIENTS] [FLOODERS] [SECONDS]   (default 50 4 20)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
cargo build --release --locked -p vigie --example ws_latency
clients="${1:-50}" flooders="${2:-4}" seconds="${3:-20}"
echo "== without flood"
./target/release/examples/ws_latency "$clients" 1000 "$seconds" 0 120
echo "== with ${flooders} flooding clients"
./target/release/examples/ws_latency "$clients" 1000 "$seconds" "$flooders" 120
