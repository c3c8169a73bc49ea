#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document (not in CI: a bounded run on demand).
# Starts `vigie demo` (in-process Kafka, open on loopback: every route reachable, switches
# and alerting included), then Schemathesis generates requests from /api/v1/openapi.json,
# valid and invalid, and checks: no 5xx, every documented response matches its schema, and
# every error is Vigie's JSON error ({"status", "code", "message"}, status matching).
# Schemathesis is installed once into a virtualenv under ~/.cache/vigie (PyPI).
# Usage: scripts/fuzz-api.sh   (MAX_EXAMPLES per operation, default 50; MAX_TIME, default 600 s)
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${MAX_EXAMPLES:-50}"
venv="${HOME}/.cache/vigie/schemathesis-4.32.5"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "4.32.5"; then
  echo "[fuzz-api] installing Schemathesis 4.32.5 into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi
cargo build -q -p vigie --release
work="$(mktemp -d)"
trap 'kill "$demo" 2>/dev/null || true; rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# No mutation limit: the fuzzer's flips and acknowledgements reach their handlers.
VIGIE__AUTH__MUTATIONS_PER_MINUTE=0 RUST_LOG=warn target/release/vigie demo --rate 20 --history 30m --every 3600 \
  --listen "127.0.0.1:${port}" > "$work/demo.log" 2>&1 &
demo=$!
base="http://127.0.0.1:${port}"
for _ in $(seq 1 120); do
  curl -fsS "$base/readyz" > /dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "$base/readyz" > /dev/null || { cat "$work/demo.log"; exit 1; }
echo "[fuzz-api] $base: ${examples} examples per operation" >&2
# Run from the work directory: Schemathesis writes its cache there.
hooks="$(pwd)/scripts/fuzz_api"
(cd "$work" && PYTHONPATH="$hooks" SCHEMATHESIS_HOOKS=error_shape "$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
  --checks not_a_server_error,response_schema_conformance,error_is_vigie_json \
  --exclude-path /api/v1/ws --exclude-path /metrics \
  --max-examples "$examples" --max-time "${MAX_TIME:-600}" --workers 1 \
  ) || { echo "[fuzz-api] failures above (demo log: $work/demo.log)" >&2; exit 1; }
