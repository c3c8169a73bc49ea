#!/usr/bin/env bash
# Starts or stops a local Tansu broker (Kafka protocol, in-memory storage) for manual use.
# Usage: scripts/broker.sh up [PORT]   |   scripts/broker.sh down
set -euo pipefail
cd "$(dirname "$0")/.."
pidfile=target/tansu.pid
case "${1:-up}" in
  up)
    port="${2:-9092}"
    scripts/setup.sh test
    mkdir -p target
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "tansu already running (pid $(cat "$pidfile"))"; exit 0
    fi
    "${HOME}/.cargo/tansu/bin/tansu" broker --storage-engine memory://tansu/ \
      --listener-url "tcp://127.0.0.1:${port}" --advertised-listener-url "tcp://127.0.0.1:${port}" \
      > target/tansu.log 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && { echo "tansu listening on 127.0.0.1:${port}"; exit 0; }
      sleep 0.1
    done
    echo "tansu did not start; see target/tansu.log" >&2; exit 1 ;;
  down)
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
    echo "tansu stopped" ;;
  *) echo "usage: $0 up [PORT] | down" >&2; exit 2 ;;
esac
