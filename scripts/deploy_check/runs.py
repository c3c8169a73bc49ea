"""3. Runs: each Vigie container of the compose files and of the Deployment started as
`target/debug/vigie` on a local Tansu broker, probed as the manifests declare, stopped
with SIGTERM."""

from __future__ import annotations

from .common import *  # noqa: F401,F403 (the shared constants and readers)


# ---------------------------------------------------------------------------------------
# 3. Runs
# ---------------------------------------------------------------------------------------

PROCESSES: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, env, cwd, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    proc.log = log
    PROCESSES.append(proc)
    return proc


def stop_all():
    for proc in reversed(PROCESSES):  # the broker last
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    PROCESSES.clear()


def tail(proc, lines=12) -> str:
    try:
        text = proc.log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("          | " + re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text)


def poll(what: str, deadline: float, attempt, watch=(), where=None):
    """Calls attempt() every 100 ms until it returns True, or fails after `deadline` s (or
    as soon as a watched process exits). attempt() returns True or a description of now."""
    end = time.monotonic() + deadline
    last = None
    while True:
        result = attempt()
        if result is True:
            return
        last = result
        for proc in watch:
            if proc.poll() is not None:
                raise Failure(where, f"{proc.name} exited ({proc.returncode}) while waiting for {what}; "
                                     f"its log ({rel(proc.log)}):\n{tail(proc)}")
        if time.monotonic() > end:
            logs = "".join(f"\n        {p.name} ({rel(p.log)}):\n{tail(p)}" for p in watch)
            raise Failure(where, f"timed out after {deadline:.0f} s waiting for {what} (last: {last}){logs}")
        time.sleep(0.1)


def http_get(port: int, path: str, token: str | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status, response.headers.get("content-type", ""), response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read().decode(errors="replace")
    except OSError as e:
        return None, "", str(e)


class Broker:
    """A Tansu broker (Kafka protocol, in memory) on a free loopback port."""

    def __init__(self, tansu: str, logs: Path):
        self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = spawn([tansu, "broker", "--storage-engine", "memory://tansu/", "--listener-url", url,
                           "--advertised-listener-url", url], {**os.environ, "RUST_LOG": "warn"}, None,
                          logs / "tansu.log")
        self.proc.name = "tansu"
        self.address = f"127.0.0.1:{self.port}"

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError as e:
                return str(e)

        poll(f"tansu on {self.address}", 30, listening, [self.proc], tansu)

    def admin(self):
        from kafka.admin import KafkaAdminClient
        return KafkaAdminClient(bootstrap_servers=self.address, client_id="deploy-check")


STUB_TOPICS = r'''#!{python}
"""Stand-in for Apache Kafka's kafka-topics.sh (deploy check): same options, creates the
topics on the local broker with replication 1, logs what was asked."""
import json, os, sys
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

valued = {{"--bootstrap-server", "--topic", "--partitions", "--replication-factor", "--config"}}
flags = {{"--create", "--if-not-exists", "--list"}}
opts, configs, seen = {{}}, {{}}, set()
args = sys.argv[1:]
i = 0
while i < len(args):
    if args[i] in valued and i + 1 < len(args):
        if args[i] == "--config":
            key, sep, value = args[i + 1].partition("=")
            if not sep:
                sys.exit(f"kafka-topics.sh: --config {{args[i + 1]!r}} is not key=value")
            configs[key] = value
        else:
            opts[args[i]] = args[i + 1]
        i += 2
    elif args[i] in flags:
        seen.add(args[i])
        i += 1
    else:
        sys.exit(f"kafka-topics.sh: unrecognized or incomplete option {{args[i]!r}}")
endpoints = os.environ["CHECK_ENDPOINTS"].split(",")
bootstrap = opts.get("--bootstrap-server", "")
if not bootstrap or any(b not in endpoints for b in bootstrap.split(",")):
    sys.exit(f"kafka-topics.sh: --bootstrap-server {{bootstrap!r}} is not a broker of this compose file "
             f"({{endpoints}})")
admin = KafkaAdminClient(bootstrap_servers=os.environ["CHECK_BROKER"], client_id="kafka-topics-stand-in")
if "--list" in seen:
    print("\n".join(sorted(admin.list_topics())))
    sys.exit(0)
if "--create" not in seen or "--topic" not in opts:
    sys.exit("kafka-topics.sh: only --create --topic T and --list are known to this stand-in")
topic = opts["--topic"]
partitions = int(opts.get("--partitions", "1"))
replication = int(opts.get("--replication-factor", "1"))
brokers = int(os.environ["CHECK_BROKER_COUNT"])
if replication > brokers:
    sys.exit(f"kafka-topics.sh: replication factor {{replication}} larger than available brokers: {{brokers}}")
known = set(os.environ["CHECK_TOPIC_CONFIGS"].split(","))
for key, value in configs.items():
    if key not in known:
        sys.exit(f"kafka-topics.sh: unknown topic config {{key}}")
    if key == "cleanup.policy" and not set(value.split(",")) <= {{"compact", "delete"}}:
        sys.exit(f"kafka-topics.sh: invalid cleanup.policy {{value}}")
try:
    admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
except TopicAlreadyExistsError:
    if "--if-not-exists" not in seen:
        sys.exit(f"kafka-topics.sh: topic {{topic}} already exists")
with open(os.environ["CHECK_TOPICS_LOG"], "a") as log:
    log.write(json.dumps({{"topic": topic, "partitions": partitions, "replication": replication,
                          "configs": configs}}) + "\n")
print(f"Created topic {{topic}}.")
'''


class Instance:
    """One vigie container run as a local process."""

    def __init__(self, name, argv, env, listen_port, work: Path, logs: Path, vigie: str):
        self.name = name
        self.container_port = listen_port
        self.args = argv
        self.vigie = vigie
        self.env = env
        self.work = work
        self.log = logs / f"{name}.log"
        self.proc = None
        self.listen_on(free_port())

    def listen_on(self, port: int):
        self.port = port
        argv = self.args
        argv = with_option(argv, "--listen", f"127.0.0.1:{port}") if argv[:1] == ["serve"] else argv
        self.argv = [self.vigie] + argv

    def start(self):
        """Starts it; `vigie serve` is retried on another port if its port was taken between
        choosing it and binding it (by anything else on the machine)."""
        self.work.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            self.proc = spawn(self.argv, self.env, self.work, self.log)
            self.proc.name = self.name
            if self.args[:1] != ["serve"]:
                return
            end = time.monotonic() + 60
            while time.monotonic() < end:
                text = self.log.read_text(errors="replace") if self.log.exists() else ""
                if "listening on http://" in text:
                    return
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            if self.proc.poll() is None or "Address already in use" not in self.log.read_text(errors="replace"):
                return  # still starting, or exited for another reason: the caller's checks say
            self.listen_on(free_port())

    def get(self, path, token=None):
        return http_get(self.port, path, token)

    def stop(self, grace: float, where):
        """SIGTERM, then a clean exit (0) within the grace period."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure(where, f"{self.name} still running {grace:.0f} s after SIGTERM (the grace period): "
                                 f"it would be killed\n{tail(self.proc)}")
        elapsed = time.monotonic() - started
        if code != 0:
            raise Failure(where, f"{self.name} exited with {code} after SIGTERM\n{tail(self.proc)}")
        return elapsed


def process_env(hostname: str, work: Path) -> dict[str, str]:
    """A container's base environment: nothing of the caller's (no stray VIGIE_* variable)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "HOSTNAME": hostname}


def image_env(image: Image, where) -> dict[str, str]:
    """The image's ENV with its paths mapped to the repository files they are copied from."""
    files = image.files_from_repo()
    env = {}
    for key, value in image.env.items():
        mapped = files.get(value.rstrip("/"))
        if mapped is not None:
            if mapped.name == "dist" and not (mapped / "index.html").is_file():
                raise Failure(where, f"{rel(mapped)} is not built (the image's {key} points at it): "
                                     "run scripts/build-cockpit.sh")
            value = str(mapped)
        env[key] = value
    return env


def metric_sum(instances, name: str) -> float:
    total = 0.0
    for instance in instances:
        status, _, body = instance.get(METRICS)
        if status == 200:
            for line in body.splitlines():
                if line.startswith(name) and not line.startswith("#"):
                    try:
                        total += float(line.split()[-1])
                    except ValueError:
                        pass
    return total


def merged_views(instances, ready_path) -> str:
    """Each instance's partitions and fenced partials, for a failure message."""
    lines = []
    for instance in instances:
        _, _, body = instance.get(ready_path)
        try:
            parts = json.loads(body).get("partitions")
        except ValueError:
            parts = body[:80]
        fenced = metric_sum([instance], "vigie_partials_fenced_total")
        lines.append(f"\n        {instance.name}: partitions {parts}, vigie_partials_fenced_total {fenced:.0f}")
    return "".join(lines)


def await_probes(checks, where, instances, up_probes, ready_path, token_for_api, listen_beyond_loopback,
                 topic_partitions):
    """Polls each instance's probes until they answer as declared: first `up_probes` ((label,
    path): success from the health endpoint, not the cockpit page), then readiness (200);
    with several instances, until each one's merged view holds every partition; then the
    API's authentication and the metrics."""
    watch = [i.proc for i in instances]

    def not_the_cockpit(what, status, ctype):
        if status is not None and 200 <= status < 400 and "html" in ctype:
            raise Failure(where, f"{what} answers the cockpit page (text/html), not a health endpoint: "
                                 "`vigie serve` has no such route")

    for instance in instances:
        for kind, path in up_probes:

            def up(instance=instance, kind=kind, path=path):
                status, ctype, body = instance.get(path)
                not_the_cockpit(f"{instance.name} {kind} GET {path}", status, ctype)
                return (status is not None and 200 <= status < 400) or f"{status} {body[:80]!r}"

            poll(f"{instance.name} {kind} GET {path}", STARTUP_DEADLINE, up, watch, where)
            checks.ok(f"{instance.name}: {kind} GET {path} answers 200")
    first_ready = {}
    for instance in instances:

        def ready(instance=instance):
            status, ctype, body = instance.get(ready_path)
            not_the_cockpit(f"{instance.name} readiness GET {ready_path}", status, ctype)
            if status == 200:
                first_ready[instance.name] = json.loads(body)
                return True
            return f"{status} {body[:160]!r}"

        try:
            poll(f"{instance.name} readiness GET {ready_path} = 200", READY_DEADLINE, ready, watch, where)
        except Failure as failure:
            # Alive, answering, but some partition never live in its merged view.
            if len(instances) > 1 and all(i.proc.poll() is None for i in instances) \
                    and '"partitions"' in failure.problem:
                raise NotConverged(where, failure.problem + merged_views(instances, ready_path)) from None
            raise
        checks.ok(f"{instance.name}: readiness GET {ready_path} answers 200 once rebuilt")
    if len(instances) > 1:
        for name, body in first_ready.items():
            parts = body.get("partitions")
            if parts is None:
                raise Failure(where, f"{name} is ready without a merged view (no partitions in {ready_path}): "
                                     "several instances share the group, kafka.partials must be true")
            if parts.get("total") != topic_partitions:
                checks.note(f"{name} first answered 200 with partitions {parts}, before it knew the "
                            f"topic's {topic_partitions} (a readiness race of `vigie serve`, not of deploy/)")

        def whole():
            views = {}
            for instance in instances:
                status, _, body = instance.get(ready_path)
                try:
                    views[instance.name] = (status, json.loads(body).get("partitions"))
                except ValueError:
                    views[instance.name] = (status, body[:80])
            done = all(status == 200 and isinstance(parts, dict)
                       and parts.get("total") == parts.get("live") == topic_partitions
                       for status, parts in views.values())
            return done or str(views)

        try:
            poll(f"every instance ready with all {topic_partitions} partitions live in its merged view",
                 READY_DEADLINE, whole, watch, where)
        except Failure as failure:
            raise NotConverged(failure.where, failure.problem + merged_views(instances, ready_path)) from None
        checks.ok(f"every instance is ready with all {topic_partitions} partitions of the topic live in "
                  "its merged view")
    for instance in instances:
        poll(f"{instance.name} GET {METRICS} with vigie_ready 1", 30,
             lambda: "vigie_ready 1" in instance.get(METRICS)[2] or "vigie_ready is not 1", watch, where)
        checks.ok(f"{instance.name}: GET {METRICS} answers Prometheus text (vigie_ready 1)")
        if listen_beyond_loopback:
            status, _, _ = instance.get(SNAPSHOT)
            checks.expect(status == 401, where, f"{instance.name}: the API demands a token (bound beyond "
                          "loopback in the manifest)", f"{instance.name}: GET {SNAPSHOT} without a token → "
                          f"{status}, expected 401: the manifest binds beyond loopback, tokens must be on")
        if token_for_api:
            status, _, body = instance.get(SNAPSHOT, token_for_api)
            checks.expect(status == 200, where, f"{instance.name}: the API answers the test token "
                          "(VIGIE__AUTH__TOKENS parsed)", f"{instance.name}: GET {SNAPSHOT} with the "
                          f"token whose SHA-256 is the test VIGIE_TOKEN_SHA256 → {status} {body[:120]!r}")


def run_compose(checks: Checks, path: Path, doc: dict, facts: dict, image: Image, args, logs_root: Path):
    checks.section(f"{rel(path)}: run (a local Tansu broker for the Kafka services)")
    stack = path.stem
    logs = logs_root / stack
    services = doc["services"]
    with tempfile.TemporaryDirectory(prefix=f"deploy-check-{stack}-") as tmp:
        tmp = Path(tmp)
        try:
            broker = Broker(args.tansu, logs)
            # One-shot services on the Kafka image that others wait for: the topics.
            topics_log = tmp / "topics.jsonl"
            topics_log.touch()
            stubs = tmp / "kafka-bin"
            stubs.mkdir()
            stub = stubs / "kafka-topics.sh"
            stub.write_text(STUB_TOPICS.format(python=sys.executable))
            stub.chmod(0o755)
            one_shots = {t for svc in services.values() for t, c in (
                svc.get("depends_on").items() if isinstance(svc.get("depends_on"), dict) else [])
                if (c or {}).get("condition") == "service_completed_successfully"
                and str(services.get(t, {}).get("image", "")).startswith("apache/kafka")}
            for name in sorted(one_shots):
                svc = services[name]
                argv = (svc.get("entrypoint") or []) + (svc.get("command") or [])
                argv = [a.replace("/opt/kafka/bin/", f"{stubs}/") for a in argv]
                env = {**process_env(name, tmp), "CHECK_BROKER": broker.address,
                       "CHECK_ENDPOINTS": ",".join(sorted(facts["endpoints"])),
                       "CHECK_BROKER_COUNT": str(len(facts["kafka"])), "CHECK_TOPICS_LOG": str(topics_log),
                       "CHECK_TOPIC_CONFIGS": ",".join(sorted(KAFKA_TOPIC_CONFIGS))}
                result = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
                (logs / f"{name}.log").write_text(result.stdout + result.stderr)
                if result.returncode != 0:
                    raise Failure(path, f"service {name} fails ({result.returncode}): "
                                        f"{(result.stderr or result.stdout).strip()[-600:]}")
                checks.ok(f"{name}: its script runs (kafka-topics.sh stand-in on the local broker)")
            created = [json.loads(line) for line in topics_log.read_text().splitlines()]
            consumed = {env_dict(svc.get("environment")).get("VIGIE__KAFKA__TOPIC", "vigie.interactions")
                        for svc in facts["vigie"].values()}
            main_topic = next((t for t in created if t["topic"] in consumed), None)
            if one_shots:
                checks.expect(main_topic, path, f"the topics service creates {', '.join(sorted(consumed))}",
                              f"no service creates {sorted(consumed)}, the topic vigie consumes "
                              f"(created: {[t['topic'] for t in created]})")

            instances, simulators = [], []
            for name, svc in facts["vigie"].items():
                argv = compose_argv(svc, image)
                env = {**process_env(name, tmp), **image_env(image, path), **env_dict(svc.get("environment")),
                       "VIGIE__KAFKA__BROKERS": broker.address}
                if option(argv, "--brokers"):
                    argv = with_option(argv, "--brokers", broker.address)
                if option(argv, "--config"):
                    raise Failure(path, f"{name}: --config without a mounted file is not emulated")
                listen = option(argv, "--listen") or SERVE_DEFAULT_LISTEN
                instance = Instance(name, argv, env, split_address(listen)[1], tmp / name, logs, args.vigie)
                instance.healthcheck = healthcheck_argv((svc.get("healthcheck") or {}).get("test"))
                instance.listen_host = split_address(listen)[0]
                (instances if argv[:1] == ["serve"] else simulators).append(instance)
            if not instances:
                checks.fail(path, "no `vigie serve` service")
                return

            def healthcheck(instance):
                argv = [re.sub(rf"(127\.0\.0\.1|localhost)([:/]){instance.container_port}\b",
                               rf"127.0.0.1\g<2>{instance.port}", a) for a in instance.healthcheck]
                try:
                    return subprocess.run(argv, cwd=tmp, capture_output=True, timeout=10).returncode
                except subprocess.TimeoutExpired:
                    return "timeout"

            for instance in instances:
                if instance.healthcheck:
                    code = healthcheck(instance)
                    checks.expect(code != 0, path, f"{instance.name}: its healthcheck fails while nothing "
                                  "listens", f"{instance.name}: its healthcheck passes while nothing "
                                  "listens on its port: it checks nothing")
            for instance in instances:
                instance.start()
            await_probes(checks, path, instances, [("process up", PROCESS_UP)], READY,
                         TEST_TOKEN if any("VIGIE__AUTH__TOKENS" in i.env for i in instances) else None,
                         any(not is_loopback(i.listen_host) for i in instances),
                         main_topic["partitions"] if main_topic else None)
            for instance in instances:
                if instance.healthcheck:
                    try:
                        poll(f"{instance.name}'s healthcheck to pass (/readyz answers 200)", 15,
                             lambda: healthcheck(instance) == 0 or "fails", [i.proc for i in instances], path)
                        checks.ok(f"{instance.name}: its healthcheck passes once ready")
                    except Failure as failure:
                        checks.fail(path, f"{instance.name}: its healthcheck {instance.healthcheck}: "
                                          f"{failure.problem}")
            if main_topic:
                checks.expect(main_topic["partitions"] >= len(instances), path,
                              f"{main_topic['topic']} has {main_topic['partitions']} partitions for "
                              f"{len(instances)} instance(s)", f"{main_topic['topic']} has "
                              f"{main_topic['partitions']} partitions: fewer than the {len(instances)} "
                              "instances, some would stay idle")

            for simulator in simulators:
                before = metric_sum(instances, "vigie_events_consumed_total")
                simulator.start()
                # The simulated centre logs its agents in first, all at once: as many as
                # its rate and the hour of the day need (at 200 contacts/s, 8,000 at 02:00
                # UTC and 108,000 at 09:00), which a local broker on a small machine takes
                # a while to pass on.
                poll(f"events from {simulator.name} consumed by {', '.join(i.name for i in instances)}", 120,
                     lambda: metric_sum(instances, "vigie_events_consumed_total") > before or "none yet",
                     [simulator.proc] + [i.proc for i in instances], path)
                checks.ok(f"{simulator.name}: `vigie {' '.join(simulator.argv[1:])}` feeds the instances "
                          f"({metric_sum(instances, 'vigie_events_consumed_total'):.0f} events consumed)")
                simulator.stop(COMPOSE_STOP_GRACE, path)
                checks.ok(f"{simulator.name}: stops cleanly on SIGTERM")
            for instance in instances:
                grace = duration(services[instance.name].get("stop_grace_period"), COMPOSE_STOP_GRACE)
                elapsed = instance.stop(grace, path)
                checks.ok(f"{instance.name}: SIGTERM → exit 0 in {elapsed:.1f} s (grace {grace:.0f} s)")

            replicated = [t["topic"] for t in created if t["replication"] > 1]
            if replicated:
                admin = broker.admin()
                extra = sorted(t for t in admin.list_topics() if not t.startswith("__")
                               and t not in {c["topic"] for c in created})
                admin.close()
                checks.expect(not extra, path, "every topic vigie uses is created by the topics service "
                              "(replicated)", f"vigie created {extra} itself, with replication 1: create "
                              "them in the topics service like the others")
        except NotConverged:
            raise
        except Failure as failure:
            checks.fail(failure.where or path, failure.problem)
        finally:
            stop_all()


def run_kubernetes(checks: Checks, k8s: dict, image: Image, args, logs_root: Path):
    where = k8s["path"]
    replicas = k8s["replicas"]
    checks.section(f"deploy/kubernetes: run ({replicas} replicas of the Deployment, its volumes "
                   "emulated, a local Tansu broker)")
    logs = logs_root / "kubernetes"
    kafka = k8s["settings"].get("kafka", {})
    topic = kafka.get("topic", "vigie.interactions")
    partitions = max(12, replicas)
    with tempfile.TemporaryDirectory(prefix="deploy-check-k8s-") as tmp:
        tmp = Path(tmp)
        try:
            broker = Broker(args.tansu, logs)
            from kafka.admin import NewTopic
            admin = broker.admin()
            admin.create_topics([NewTopic(topic, partitions, 1),
                                 NewTopic(kafka.get("dlq_topic", "vigie.interactions.dlq"), 1, 1)])
            admin.close()
            checks.ok(f"topic {topic} created with {partitions} partitions (a cluster's topics exist "
                      "before the Deployment)")
            instances = []
            for index in range(replicas):
                pod = f"vigie-{index}"
                root = tmp / pod
                mapping = {}
                for m in k8s["mounts"]:
                    volume = k8s["volumes"][m["name"]]
                    host = root / "volumes" / m["name"]
                    host.mkdir(parents=True, exist_ok=True)
                    if "configMap" in volume:
                        _, cm = k8s["configmaps"][volume["configMap"]["name"]]
                        items = volume["configMap"].get("items")
                        for key, value in (cm.get("data") or {}).items():
                            target = next((i["path"] for i in items if i["key"] == key), None) if items else key
                            if target:
                                (host / target).write_text(value)
                    elif "emptyDir" not in volume:
                        raise Failure(where, f"volume {m['name']}: only configMap and emptyDir are emulated")
                    mapping[m["mountPath"].rstrip("/")] = host / m["subPath"] if m.get("subPath") else host

                def mapped(value: str) -> str:
                    for mount in sorted(mapping, key=len, reverse=True):
                        if value == mount or value.startswith(mount + "/"):
                            return str(mapping[mount]) + value[len(mount):]
                    return value

                argv = [mapped(a) for a in k8s["argv"]]
                env = {**process_env(pod, root), **image_env(image, where),
                       **{k: mapped(v) for k, v in k8s["env"].items()}, "VIGIE__KAFKA__BROKERS": broker.address}
                if option(argv, "--brokers"):
                    argv = with_option(argv, "--brokers", broker.address)
                instance = Instance(pod, argv, env, k8s["listen"][1], root / "work", logs, args.vigie)
                instances.append(instance)
            for instance in instances:
                instance.start()
            probes = k8s["probes"]
            await_probes(checks, where, instances,
                         [(k, probes[k][0]) for k in ("startupProbe", "livenessProbe") if k in probes],
                         probes.get("readinessProbe", (READY,))[0], None,
                         not is_loopback(k8s["listen"][0]), partitions)
            for instance in instances:
                elapsed = instance.stop(k8s["grace"], where)
                checks.ok(f"{instance.name}: SIGTERM → exit 0 in {elapsed:.1f} s "
                          f"(terminationGracePeriodSeconds {k8s['grace']:.0f})")
        except NotConverged:
            raise
        except Failure as failure:
            checks.fail(failure.where or where, failure.problem)
        finally:
            stop_all()


def once_more_if_not_converged(checks: Checks, run, *args):
    """Runs a stack; if the instances' merged views did not all become whole, runs it once
    more. Seen about once in 50 runs, with every setting right: one partition stays
    missing in some views (an intermittent issue of `vigie serve` partials on Tansu, not
    of deploy/). Twice in a row is a failure."""
    passed = checks.passed
    try:
        run(checks, *args)
    except NotConverged as first:
        checks.passed = passed
        kept = ROOT / "target/deploy-check-not-converged" / time.strftime("%Y%m%dT%H%M%S")
        shutil.copytree(LOGS, kept, dirs_exist_ok=True)
        checks.note(f"{first.problem.splitlines()[0]}; once more (an intermittent issue of vigie's "
                    f"partials, not of deploy/; logs kept in {kept.relative_to(ROOT)})")
        try:
            run(checks, *args)
        except NotConverged as second:
            checks.fail(second.where, second.problem)
