#!/usr/bin/env bash
# The main job: `vigie demo`, the whole path on a fresh machine with nothing else to
# install: an in-process Kafka cluster, the simulator producing live traffic into it,
# the real consumer and the engine, the cockpit on http://127.0.0.1:8080 (wall and
# switchboard), and the KPIs printed every few seconds (Ctrl-C stops).
# Extra arguments go to `vigie demo` (e.g. --rate 50 --window 1h --duration 2m).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/build-cockpit.sh
cargo build --release --locked -p vigie --bin vigie
exec ./target/release/vigie demo "$@"
