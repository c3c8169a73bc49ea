"""What every part of the deploy check shares: paths and constants, how a check passes
or fails (Checks), and reading the deploy files (the image, compose interpolation,
addresses, probes) and the binary (its route table)."""

from __future__ import annotations


import argparse
import base64
import binascii
import hashlib
import importlib.metadata
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml


ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILES = [DEPLOY / "compose.yaml", DEPLOY / "compose.scaleout.yaml"]
K8S_DIR = DEPLOY / "kubernetes"
COCKPIT_SCRIPT = ROOT / "scripts/build-cockpit.sh"
ROUTE_TABLE = ROOT / "backend/src/server/routes.rs"  # what `vigie routes` prints
LOGS = ROOT / "target/deploy-check"
K8S_VERSIONS = ["1.30", "1.37"]

# What `vigie serve` answers. Any other path gets the cockpit's index.html with 200, so a
# probe on a mistyped path would pass: hence the routes are read from the binary's own
# route table (`vigie routes`) and the probes must use these.
PROCESS_UP = "/healthz"  # 200 as soon as the HTTP API is up, rebuilding or not
READY = "/readyz"  # 503 while rebuilding or while a partition is missing, then 200
METRICS = "/metrics"
SERVE_DEFAULT_LISTEN = "127.0.0.1:8080"  # `vigie serve --listen` default
SNAPSHOT = "/api/v1/snapshot"  # needs a bearer token once tokens are configured

TEST_TOKEN = "deploy-check-token"
# Test values of the variables the compose files require (`${VAR:?...}`).
TEST_ENV = {"VIGIE_TOKEN_SHA256": hashlib.sha256(TEST_TOKEN.encode()).hexdigest()}

# Debian's essential packages (bash, dash, coreutils, grep...) are in debian-slim; anything
# else a healthcheck runs must be installed by the Dockerfile's last stage.
IMAGE_BASE_TOOLS = {"bash", "sh", "test", "[", "true", "false", "exit", "exec", "set", "cat", "head",
                    "grep", "timeout", "printf", "echo", "vigie"}

STARTUP_DEADLINE = 60.0
READY_DEADLINE = 90.0
COMPOSE_STOP_GRACE = 10.0  # docker compose's default stop_grace_period
K8S_STOP_GRACE = 30.0  # Kubernetes' default terminationGracePeriodSeconds

# Topic-level configs of Apache Kafka 3.9 (kafka-topics.sh --config refuses others).
KAFKA_TOPIC_CONFIGS = {
    "cleanup.policy", "compression.type", "compression.gzip.level", "compression.lz4.level",
    "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages",
    "flush.ms", "follower.replication.throttled.replicas", "index.interval.bytes",
    "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
    "max.compaction.lag.ms", "max.message.bytes", "message.downconversion.enable",
    "message.format.version", "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.difference.max.ms",
    "message.timestamp.type", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
    "min.insync.replicas", "preallocate", "remote.log.copy.disable",
    "remote.log.delete.on.disable", "remote.storage.enable", "retention.bytes", "retention.ms",
    "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
    "unclean.leader.election.enable",
}


def rel(path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


class Failure(Exception):
    """A failed check: where (a file) and what."""

    def __init__(self, where, problem):
        super().__init__(problem)
        self.where = where
        self.problem = problem


class NotConverged(Failure):
    """Several instances whose merged views did not all become whole in time."""


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed: list[str] = []

    def section(self, title):
        print(f"\n== {title}", flush=True)

    def ok(self, what):
        self.passed += 1
        print(f"  ok    {what}", flush=True)

    def note(self, what):
        print(f"  note  {what}", flush=True)

    def fail(self, where, problem):
        line = f"{rel(where)}: {problem}"
        self.failed.append(line)
        print(f"  FAIL  {line}", flush=True)

    def expect(self, condition, where, what, problem) -> bool:
        if condition:
            self.ok(what)
        else:
            self.fail(where, problem)
        return bool(condition)


# ---------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------


class Image:
    """What the Dockerfile's last stage makes of the runtime image."""

    def __init__(self, path: Path):
        self.path = path
        self.entrypoint: list[str] = []
        self.cmd: list[str] = []
        self.env: dict[str, str] = {}
        self.copies: list[tuple[str | None, list[str], str]] = []  # (from, sources, dest)
        self.packages: set[str] = set()
        self.copies_whole_context = False
        instructions = []
        pending, start = "", 0
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("#") or (not pending and not stripped):
                continue
            if not pending:
                start = number
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            pending += stripped
            keyword, _, rest = pending.partition(" ")
            instructions.append((start, keyword.upper(), rest.strip()))
            pending = ""
        stages: list[list] = []
        for instruction in instructions:
            if instruction[1] == "FROM":
                stages.append([])
            if stages:
                stages[-1].append(instruction)
            if instruction[1] == "COPY" and shlex.split(instruction[2])[:2] == [".", "."]:
                self.copies_whole_context = True
        self.stages = stages
        for _, keyword, rest in stages[-1] if stages else []:
            if keyword == "ENTRYPOINT":
                self.entrypoint = exec_form(rest)
            elif keyword == "CMD":
                self.cmd = exec_form(rest)
            elif keyword == "ENV":
                words = shlex.split(rest)
                if words and "=" not in words[0]:
                    self.env[words[0]] = " ".join(words[1:])
                else:
                    self.env.update(w.split("=", 1) for w in words)
            elif keyword == "COPY":
                words = shlex.split(rest)
                source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
                paths = [w for w in words if not w.startswith("--")]
                self.copies.append((source_stage, paths[:-1], paths[-1]))
            elif keyword == "RUN":
                for match in re.finditer(r"apt-get install ([^&;|]*)", rest):
                    self.packages.update(w for w in match.group(1).split() if not w.startswith("-"))

    def files_from_repo(self) -> dict[str, Path]:
        """Image paths filled from the build stage's /src (the repository root) → repo paths."""
        mapped = {}
        for _, sources, dest in self.copies:
            for source in sources:
                if source.startswith("/src/"):
                    mapped[dest.rstrip("/")] = ROOT / source[len("/src/"):]
        return mapped


def exec_form(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return ["/bin/sh", "-c", text]


def server_routes(vigie: str) -> set[str]:
    """The paths `vigie serve` routes GET on, from the binary's route table: the same table
    the router is built from, so a route moved into a nested router cannot be missed."""
    table = subprocess.run([vigie, "routes"], check=True, capture_output=True, text=True).stdout
    return {path for method, path in (line.split(" ", 1) for line in table.splitlines()) if method == "GET"}


INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)|(?P<invalid>))"
)


def interpolate(node, env: dict, problems: list[str]):
    """Compose's variable interpolation over every string value, with `env` as the shell."""
    if isinstance(node, dict):
        return {k: interpolate(v, env, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, problems) for v in node]
    if not isinstance(node, str):
        return node

    def substitute(m):
        if m["escaped"]:
            return "$"
        if m["invalid"] is not None:
            problems.append(f"invalid interpolation in {node!r} (write $$ for a literal $)")
            return ""
        name = m["braced"] or m["named"]
        op, arg = m["op"], m["arg"] or ""
        value = env.get(name)
        empty = value is None or (value == "" and op and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if empty else value
        if op in ("+", ":+"):
            return "" if empty else arg
        if op in ("?", ":?"):
            if empty:
                problems.append(f"requires {name} ({arg}): the check has no test value for it; "
                                f"add one to TEST_ENV in scripts/deploy_check/common.py")
                return ""
            return value
        if value is None:
            problems.append(f"{name} is not set: compose would substitute an empty string")
            return ""
        return value

    return INTERPOLATION.sub(substitute, node)


def env_dict(environment) -> dict[str, str]:
    if not environment:
        return {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {k: "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in environment.items()}


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def with_option(argv: list[str], name: str, value: str) -> list[str]:
    out, i, found = [], 0, False
    while i < len(argv):
        if argv[i] == name and i + 1 < len(argv):
            out += [name, value]
            i, found = i + 2, True
            continue
        if argv[i].startswith(name + "="):
            out.append(f"{name}={value}")
            found = True
        else:
            out.append(argv[i])
        i += 1
    return out if found else out + [name, value]


def published_ports(ports) -> list[tuple[str, int | None, int]]:
    """(host ip, host port, container port) of compose `ports`, short or long syntax."""
    out = []
    for entry in ports or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append((entry.get("host_ip", ""), int(published) if published else None, int(entry["target"])))
            continue
        spec = str(entry).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            out.append(("", None, int(parts[0])))
        elif len(parts) == 2:
            out.append(("", int(parts[0]) if parts[0] else None, int(parts[1])))
        else:
            out.append((parts[0], int(parts[1]) if parts[1] else None, int(parts[2])))
    return out


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """KAFKA_LISTENERS / KAFKA_ADVERTISED_LISTENERS → {name: (host, port)}."""
    out = {}
    for item in filter(None, (v.strip() for v in value.split(","))):
        name, _, address = item.partition("://")
        host, port = split_address(address)
        out[name] = (host, port)
    return out


def duration(value, default: float) -> float:
    """A compose duration (`10s`, `1m30s`, `500ms`) in seconds."""
    if value is None:
        return default
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(value)))


def healthcheck_argv(test) -> list[str] | None:
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return list(test[1:])
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return list(test)


def vigie_services(doc: dict, compose_dir: Path) -> dict[str, dict]:
    """The services built from deploy/Dockerfile."""
    out = {}
    for name, svc in (doc.get("services") or {}).items():
        build = svc.get("build")
        if build is None:
            continue
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        if ((compose_dir / context) / dockerfile).resolve() == DOCKERFILE.resolve():
            out[name] = svc
    return out


def kafka_services(doc: dict) -> dict[str, dict]:
    return {name: svc for name, svc in (doc.get("services") or {}).items()
            if str(svc.get("image", "")).startswith("apache/kafka")
            and "KAFKA_PROCESS_ROLES" in env_dict(svc.get("environment"))}


def compose_argv(svc: dict, image: Image) -> list[str]:
    """The container's command line after the image's entrypoint."""
    command = svc.get("command")
    if command is None:
        return list(image.cmd)
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]

