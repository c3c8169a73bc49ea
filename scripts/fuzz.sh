#!/usr/bin/env bash
# Fuzzing (not in CI: a bounded run on demand). Each target of backend/fuzz gets
# SECONDS_PER_TARGET seconds of libFuzzer (default 60): the JSON and protobuf decoders
# (each decoded record then applied to an engine) and the websocket client message parser
# (each valid subscription then answered). Seeds: simulated events in both formats and
# sample subscriptions; the corpus grows in backend/fuzz/corpus (kept between runs).
# A crash leaves its input in backend/fuzz/artifacts/<target>/ and fails the script: turn
# it into a regression test next to the code it broke.
# Installs cargo-fuzz once (crates.io). Works on stable Rust: no sanitizer (-s none),
# libFuzzer's coverage instrumentation, with debug assertions (overflow checks) on.
# Usage: scripts/fuzz.sh [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${SECONDS_PER_TARGET:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_json decode_proto ws_message)

if ! cargo fuzz --version 2>/dev/null | grep -q "0.13"; then
  echo "[fuzz] installing cargo-fuzz 0.13.2 (once)" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

corpus=backend/fuzz/corpus
mkdir -p "$corpus"/{decode_json,decode_proto,ws_message}
if [ -z "$(ls -A "$corpus/decode_json")" ]; then
  echo "[fuzz] seeding the corpus from simulated traffic" >&2
  cargo build -q -p vigie --release
  bin=target/release/vigie
  "$bin" simulate --contacts 40 --seed 7 --format jsonl --output - 2>/dev/null \
    | split -l 1 - "$corpus/decode_json/sim-"
  # Protobuf: length-delimited messages, one seed file each.
  "$bin" simulate --contacts 40 --seed 7 --format proto --output - 2>/dev/null \
    | python3 -c '
import sys
data, i, n = sys.stdin.buffer.read(), 0, 0
while i < len(data):
    length = shift = 0
    while True:
        b = data[i]; i += 1
        length |= (b & 0x7F) << shift; shift += 7
        if b < 0x80: break
    open(f"{sys.argv[1]}/sim-{n:03}", "wb").write(data[i:i + length]); i += length; n += 1
' "$corpus/decode_proto"
  n=0
  for sub in \
    '{"type":"subscribe","window":"15m"}' \
    '{"type":"subscribe","window":"24h","by":["queue","reason"],"channel":"phone"}' \
    '{"type":"subscribe","window":"today","by":["site"],"rows":5}' \
    '{"type":"subscribe","window":"86401s","queue":"billing","segment":"gold"}'; do
    printf '%s' "$sub" > "$corpus/ws_message/seed-$((n++))"
  done
fi

status=0
for target in "${targets[@]}"; do
  echo "[fuzz] ${target}: ${seconds}s" >&2
  cargo fuzz run --fuzz-dir backend/fuzz -s none --debug-assertions "$target" "$corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 || status=1
done
[ "$status" -eq 0 ] && echo "[fuzz] no crash" >&2
exit "$status"
