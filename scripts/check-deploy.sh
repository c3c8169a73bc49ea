#!/usr/bin/env bash
# Checks the deployment files (deploy/) as far as a machine without Docker or Kubernetes
# can: schemas (Kubernetes, strict; the Compose Specification), hadolint on the
# Dockerfile, consistency across files, and every Vigie container of the compose files and
# the Kubernetes Deployment run for real with its args, env and mounted config against a
# local Tansu broker, probed as the manifests declare. See scripts/check_deploy.py.
# Builds nothing: needs target/debug/vigie (under $CARGO_TARGET_DIR if set, or $VIGIE_BIN), frontend/dist and Tansu
# (scripts/test.sh builds them first). Python packages: a cached venv, pinned versions.
# Usage: scripts/check-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=scripts/check_deploy.requirements.txt
cache="${XDG_CACHE_HOME:-${HOME}/.cache}/vigie-deploy-check"
# One venv per Python version and requirements file: a change of either makes a new one.
key="$( (python3 --version; cat "$requirements") | sha256sum | cut -c1-16)"
venv="${cache}/venv-${key}"
if [ ! -f "${venv}/.complete" ]; then
  echo "[check-deploy] installing its Python packages into ${venv} (cached for next runs)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "${venv}/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
  touch "${venv}/.complete"
fi

vigie="${VIGIE_BIN:-${CARGO_TARGET_DIR:-target}/debug/vigie}"
if [ ! -x "$vigie" ]; then
  echo "check-deploy: ${vigie} is missing: build it first (cargo build -p vigie, or scripts/test.sh)" >&2
  exit 1
fi
exec "${venv}/bin/python" scripts/check_deploy.py --vigie "$vigie" "$@"
