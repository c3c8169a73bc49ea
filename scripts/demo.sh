#!/usr/bin/env bash
# The main job, for now: simulate a day of a contact centre and replay it through
# the KPI engine, printing the snapshot of the last 15 minutes.
# Usage: scripts/demo.sh [CONTACTS] [WINDOW]
set -euo pipefail
cd "$(dirname "$0")/.."

contacts="${1:-50000}"
window="${2:-15m}"
scripts/setup.sh
cargo build --release --locked -p vigie
mkdir -p target/demo
./target/release/vigie simulate --contacts "$contacts" --seed 42 --output target/demo/stream.jsonl
./target/release/vigie replay --window "$window" --pretty target/demo/stream.jsonl
