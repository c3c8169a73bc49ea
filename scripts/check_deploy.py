#!/usr/bin/env python3
"""Checks deploy/ as far as a machine without Docker or Kubernetes can.

Run by scripts/check-deploy.sh (which installs the pinned packages into a cached venv).

1. Schemas: every manifest of deploy/kubernetes against the Kubernetes OpenAPI schemas
   bundled by kubernetes-validate, strict (unknown fields are errors); both compose files,
   interpolated as `docker compose` would, against the Compose Specification schema (the
   compose-spec.json vendored by check-jsonschema); hadolint on the Dockerfile.
2. Consistency, what no schema sees: probes, ports, labels, the ConfigMap key that
   `--config` points at, writable paths, the image's entrypoint and files, the KRaft
   settings of the Kafka services, which service reaches which broker.
3. Runs: each Vigie container of each compose file and of the Deployment (every replica)
   is started as `target/debug/vigie` with its args, env (the image's ENV too) and mounted
   files, the brokers replaced by a local Tansu broker and the listen address by a free
   loopback port; the compose `topics` service's script runs unchanged against a stand-in
   kafka-topics.sh; the probes and healthchecks the manifests declare are polled until they
   answer as declared; the simulator must feed the instances; SIGTERM must end each one
   cleanly within its grace period. A stack whose instances' merged views do not all
   become whole is run once more (see once_more_if_not_converged).

Not checked here: building the image (no Docker engine), scheduling on a cluster, Apache
Kafka itself (Tansu speaks its protocol). Every failure names the file and the problem;
the exit code is non-zero if any check failed.

One module per job in scripts/deploy_check/ (common, schemas, consistency, runs); the API's
routes come from the binary itself (`vigie routes`, the table its router is built from).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from deploy_check.common import DOCKERFILE, LOGS, ROOT, Checks, Image, rel, server_routes
from deploy_check.consistency import check_compose, check_image, check_kubernetes
from deploy_check.runs import once_more_if_not_converged, run_compose, run_kubernetes, stop_all
from deploy_check.schemas import check_schemas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vigie", default=str(ROOT / "target/debug/vigie"))
    parser.add_argument("--tansu", default=os.environ.get("TANSU_BIN", str(Path.home() / ".cargo/tansu/bin/tansu")))
    args = parser.parse_args()
    args.vigie = str(Path(args.vigie).resolve())
    if not Path(args.tansu).is_file():
        print(f"check-deploy: Tansu is missing at {args.tansu}: run scripts/setup.sh test", file=sys.stderr)
        return 1
    # Stopped from outside (CI timeout, Ctrl-C): still stop every broker and instance started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    checks = Checks()
    venv_bin = Path(sys.executable).parent
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    try:
        image = Image(DOCKERFILE)
        routes = server_routes(args.vigie)
        composes = check_schemas(checks, venv_bin)
        k8s = check_kubernetes(checks, image, routes)
        check_image(checks, image, routes, k8s and k8s["config_path"])
        facts = {path: check_compose(checks, path, doc, image) for path, doc in composes.items()}
        for path, doc in composes.items():
            once_more_if_not_converged(checks, run_compose, path, doc, facts[path], image, args, LOGS)
        if k8s:
            once_more_if_not_converged(checks, run_kubernetes, k8s, image, args, LOGS)
    finally:
        stop_all()
    print(f"\n(logs of the runs: {rel(LOGS)}; {time.monotonic() - started:.0f} s)")
    if checks.failed:
        print(f"\n{len(checks.failed)} deploy check(s) failed:")
        for line in checks.failed:
            print(f"  {line.splitlines()[0]}")
    print(f"deploy-check: {checks.passed} passed, {len(checks.failed)} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())

