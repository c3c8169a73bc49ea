#!/usr/bin/env bash
# Builds the WASM cockpit into frontend/dist, reproducibly, on a fresh machine:
# the release bundle optimised for size (profile wasm-release), wasm-bindgen at exactly
# the version in Cargo.lock (built from crates.io once and cached), gzip copies served
# to browsers that accept them. `vigie` serves frontend/dist (see cockpit.dir).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build

version="$(scripts/wasm-bindgen-version.sh)"
bindgen="${HOME}/.cargo/wasm-bindgen-${version}/bin/wasm-bindgen"

echo "[cockpit] building the WASM bundle (wasm-bindgen ${version})" >&2
cargo build -p vigie-cockpit --target wasm32-unknown-unknown --profile wasm-release --locked

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
"$bindgen" --target web --no-typescript --out-dir "$staging" \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/wasm-release/vigie_cockpit.wasm"
cp frontend/static/* "$staging"/
for file in "$staging"/*; do
  gzip -9 -n -k -f "$file"   # -n: no name or time stamp, so the output is reproducible
done
rm -rf frontend/dist
mkdir -p frontend/dist
cp "$staging"/* frontend/dist/
size="$(stat -c %s frontend/dist/vigie_cockpit_bg.wasm.gz)"
echo "[cockpit] frontend/dist ready ($(( size / 1024 )) KiB of gzipped wasm)" >&2
