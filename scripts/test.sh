#!/usr/bin/env bash
# Runs every check and test of the project, after the idempotent set-up.
# This is the one test command of the README, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh test

echo "== format"
cargo fmt --all -- --check

echo "== lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== wire types build for wasm32"
cargo build -p vigie-proto --target wasm32-unknown-unknown --locked

echo "== cockpit bundle (the browser tests load it)"
scripts/build-cockpit.sh

echo "== tests (unit, property, black-box; benches run once as a smoke test)"
cargo test --workspace --all-targets --locked

echo "== deploy files (schemas, consistency, each container's config run on a local broker)"
scripts/check-deploy.sh
