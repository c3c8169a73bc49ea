#!/usr/bin/env bash
# Idempotent set-up of everything Vigie's build and tests need beyond the Rust toolchain.
# Skips whatever is already there; safe to run on every CI run.
# Usage: scripts/setup.sh [build|test]   (build: what `vigie` needs; test: also the broker
# and clients the integration tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"

log() { printf '[setup] %s\n' "$*" >&2; }

# WASM target: the shared wire-types crate (proto/) must build for the cockpit.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# rustfmt and clippy run in the test script.
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    log "adding rustup component ${component}"
    rustup component add "${component}"
  fi
done

# C libraries librdkafka builds against (TLS for managed clusters, zlib), and the tools to build it.
missing=()
for pkg in build-essential pkg-config libssl-dev zlib1g-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# wasm-bindgen CLI at exactly the version in Cargo.lock, for the cockpit bundle; built
# from crates.io once per version and cached (about 3 minutes on 2 cores).
WASM_BINDGEN_VERSION="$(scripts/wasm-bindgen-version.sh)"
WASM_BINDGEN_ROOT="${HOME}/.cargo/wasm-bindgen-${WASM_BINDGEN_VERSION}"
if ! "${WASM_BINDGEN_ROOT}/bin/wasm-bindgen" --version 2>/dev/null | grep -q "${WASM_BINDGEN_VERSION}"; then
  log "building wasm-bindgen-cli ${WASM_BINDGEN_VERSION} into ${WASM_BINDGEN_ROOT} (cached for next runs)"
  # Its own lock file first; if the registry lacks one of its locked versions, the
  # newest compatible ones (the CLI itself stays at the pinned version).
  cargo install wasm-bindgen-cli --version "${WASM_BINDGEN_VERSION}" --locked --root "${WASM_BINDGEN_ROOT}" \
    || cargo install wasm-bindgen-cli --version "${WASM_BINDGEN_VERSION}" --root "${WASM_BINDGEN_ROOT}"
fi

[ "$mode" = "test" ] || exit 0

# Headless Chromium and its WebDriver, for the cockpit's end-to-end tests.
browser_missing=()
for pkg in chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || browser_missing+=("$pkg")
done
if [ ${#browser_missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${browser_missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${browser_missing[@]}"
fi

# Tansu, a Kafka-protocol broker, for the integration tests (built once, cached:
# a cold build takes about 15 minutes on 2 cores).
TANSU_VERSION=0.6.0
TANSU_ROOT="${HOME}/.cargo/tansu"
if ! "${TANSU_ROOT}/bin/tansu" --version 2>/dev/null | grep -q "${TANSU_VERSION}"; then
  log "building tansu ${TANSU_VERSION} into ${TANSU_ROOT} (cached for next runs)"
  cargo install tansu --version "${TANSU_VERSION}" --features dynostore --locked --root "${TANSU_ROOT}"
fi

# Python 3 and pip: the tests' independent helpers (kafka-python producer, exact Erlang C).
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
  log "installing Debian packages: python3 python3-pip"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-pip
fi

# kafka-python: an independent Kafka client for the tests.
if ! python3 -c 'import kafka' 2>/dev/null; then
  log "installing kafka-python"
  python3 -m pip install --quiet --user 'kafka-python==3.0.12' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'kafka-python==3.0.12'
fi
