#!/usr/bin/env bash
# Idempotent set-up of everything Vigie's build and tests need beyond the Rust toolchain.
# Skips whatever is already there; safe to run on every CI run.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

# WASM target: the shared wire-types crate (proto/) must build for the cockpit.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
else
  log "wasm32-unknown-unknown target present"
fi

# rustfmt and clippy run in the test script.
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    log "adding rustup component ${component}"
    rustup component add "${component}"
  fi
done
