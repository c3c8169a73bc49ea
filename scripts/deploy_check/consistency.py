"""2. Consistency, what no schema sees: probes, ports, labels, the ConfigMap key that
`--config` points at, writable paths, the image, the KRaft settings, which service reaches
which broker."""

from __future__ import annotations

from .common import *  # noqa: F401,F403 (the shared constants and readers)


# ---------------------------------------------------------------------------------------
# 2. Consistency
# ---------------------------------------------------------------------------------------


def check_image(checks: Checks, image: Image, routes: set[str], k8s_config_path: str | None):
    checks.section("Dockerfile: consistency")
    for path in (PROCESS_UP, READY, METRICS):
        checks.expect(path in routes, ROUTE_TABLE, f"`vigie serve` serves {path}",
                      f"no route {path} in `vigie routes`: the probes and healthchecks of deploy/ use it; "
                      f"update them and PROCESS_UP/READY/METRICS in scripts/deploy_check/common.py")
    checks.expect(image.entrypoint == ["vigie"], DOCKERFILE, "ENTRYPOINT is [\"vigie\"] (compose commands and "
                  "the Deployment's args start with a subcommand)",
                  f"ENTRYPOINT is {image.entrypoint}, the manifests pass a vigie subcommand as the command")
    cockpit = image.env.get("VIGIE__COCKPIT__DIR")
    files = image.files_from_repo()
    checks.expect(cockpit and files.get(cockpit.rstrip("/")) == ROOT / "frontend/dist"
                  and "frontend/dist" in COCKPIT_SCRIPT.read_text(), DOCKERFILE,
                  f"VIGIE__COCKPIT__DIR ({cockpit}) is where the cockpit bundle (frontend/dist, "
                  "scripts/build-cockpit.sh) is copied",
                  f"VIGIE__COCKPIT__DIR={cockpit} but frontend/dist is copied to "
                  f"{[d for d, s in files.items() if s == ROOT / 'frontend/dist']}")
    if k8s_config_path:
        checks.expect(option(image.cmd, "--config") == k8s_config_path, DOCKERFILE,
                      f"CMD's --config is where the Deployment mounts the ConfigMap ({k8s_config_path})",
                      f"CMD {image.cmd} reads {option(image.cmd, '--config')}, the Deployment mounts the "
                      f"config at {k8s_config_path}")
    if image.copies_whole_context:
        ignore = ROOT / ".dockerignore"
        patterns = ignore.read_text().split() if ignore.exists() else []
        checks.expect(any(p.strip("/") == "target" for p in patterns), ignore,
                      "the build context (the repository root) leaves out target/ (.dockerignore)",
                      "`COPY . .` sends target/ (tens of GB of build output) to the builder: "
                      "list target in the repository's .dockerignore")


def resolve_port(container: dict, port) -> int | None:
    for p in container.get("ports") or []:
        if port == p.get("name") or port == p.get("containerPort"):
            return p["containerPort"]
    return None


def check_kubernetes(checks: Checks, image: Image, routes: set[str]) -> dict | None:
    """Static checks; returns what the run needs (or None if the manifests are unusable)."""
    checks.section("Kubernetes manifests: consistency")
    docs = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    deployments = [(p, d) for p, d in docs if d.get("kind") == "Deployment"]
    services = [(p, d) for p, d in docs if d.get("kind") == "Service"]
    configmaps = {d["metadata"]["name"]: (p, d) for p, d in docs if d.get("kind") == "ConfigMap"}
    if len(deployments) != 1:
        checks.fail(K8S_DIR, f"expected one Deployment, found {len(deployments)}")
        return None
    dpath, dep = deployments[0]
    spec = dep["spec"]
    template = spec["template"]
    labels = template.get("metadata", {}).get("labels") or {}
    pod = template["spec"]
    selector = spec.get("selector", {}).get("matchLabels") or {}
    checks.expect(selector and selector.items() <= labels.items(), dpath,
                  "the Deployment's selector matches its pod labels",
                  f"selector {selector} does not match the pod template's labels {labels}")
    container = next((c for c in pod["containers"] if str(c.get("image", "")).startswith("vigie")), None)
    if container is None:
        checks.fail(dpath, "no container runs the vigie image")
        return None
    cname = container["name"]
    argv = (container.get("command") or image.entrypoint)[1:] + (
        container.get("args") or ([] if container.get("command") else image.cmd))
    if container.get("command") and container["command"][0] != "vigie":
        checks.fail(dpath, f"container {cname}: command {container['command']} does not run vigie")
    checks.expect(argv[:1] == ["serve"], dpath, f"container {cname} runs `vigie serve`",
                  f"container {cname} runs `vigie {' '.join(argv)}`, expected the serve subcommand")
    env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
    listen = option(argv, "--listen") or SERVE_DEFAULT_LISTEN
    host, port = split_address(listen)
    checks.expect(not is_loopback(host), dpath, f"--listen {listen} reaches beyond the pod's loopback",
                  f"--listen {listen}: probes and the Service cannot reach a loopback address; "
                  "use 0.0.0.0:PORT")
    declared = [p["containerPort"] for p in container.get("ports") or []]
    checks.expect(declared == [port], dpath, f"containerPort {declared} is the port vigie listens on",
                  f"containerPort {declared} but vigie listens on {port} (--listen {listen})")

    probes = {"readinessProbe": READY, "livenessProbe": PROCESS_UP, "startupProbe": PROCESS_UP}
    why = {READY: "200 only when the merged view is whole",
           PROCESS_UP: "200 while the process is up, rebuilding or not; /readyz would restart a "
                       "rebuilding pod"}
    declared_probes = {}
    for kind, expected in probes.items():
        probe = container.get(kind)
        if probe is None:
            checks.fail(dpath, f"container {cname} has no {kind} (expected httpGet {expected})")
            continue
        get = probe.get("httpGet")
        if not get:
            checks.fail(dpath, f"{kind} is not an httpGet probe (expected httpGet {expected})")
            continue
        probe_port = resolve_port(container, get.get("port"))
        checks.expect(probe_port == port, dpath, f"{kind} port {get.get('port')!r} is {port}, where vigie listens",
                      f"{kind} port {get.get('port')!r} resolves to {probe_port}, vigie listens on {port}")
        path = get.get("path", "/")
        served = path in routes
        checks.expect(served and path == expected, dpath, f"{kind} path {path} ({why[expected]})",
                      f"{kind} path {path}: " + ("`vigie serve` has no such route (it answers any unknown "
                                                 "path with the cockpit page, 200: the probe would always "
                                                 f"pass); expected {expected}" if not served else
                                                 f"expected {expected} ({why[expected]})"))
        declared_probes[kind] = (path, probe_port)

    annotations = template.get("metadata", {}).get("annotations") or {}
    if annotations.get("prometheus.io/scrape") == "true":
        checks.expect(annotations.get("prometheus.io/port") == str(port)
                      and annotations.get("prometheus.io/path", METRICS) in routes, dpath,
                      f"prometheus.io annotations scrape {port}{annotations.get('prometheus.io/path', METRICS)}",
                      f"prometheus.io/port {annotations.get('prometheus.io/port')!r} and path "
                      f"{annotations.get('prometheus.io/path')!r}: vigie serves {METRICS} on {port}")

    for spath, svc in services:
        sel = svc["spec"].get("selector") or {}
        checks.expect(sel and sel.items() <= labels.items(), spath,
                      f"Service {svc['metadata']['name']} selects the Deployment's pods",
                      f"Service selector {sel} does not match the pod labels {labels}")
        for p in svc["spec"].get("ports") or []:
            target = p.get("targetPort", p.get("port"))
            checks.expect(resolve_port(container, target) == port, spath,
                          f"Service port {p.get('port')} targets container port {target!r} = {port}",
                          f"Service port {p.get('port')} targets {target!r}, which is not the container's "
                          f"port {port} (ports: {container.get('ports')})")

    # Mounts: where --config points, and what must be writable (the image runs as a
    # non-root user: only mounted volumes are writable).
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = container.get("volumeMounts") or []
    for m in mounts:
        if m["name"] not in volumes:
            checks.fail(dpath, f"volumeMount {m['name']} has no volume of that name")

    def mount_of(path):
        best = None
        for m in mounts:
            mp = m["mountPath"].rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                    best = m
        return best

    config_path = option(argv, "--config") or env.get("VIGIE_CONFIG")
    config_text = None
    if config_path is None:
        checks.fail(dpath, "neither --config nor VIGIE_CONFIG: the ConfigMap is not read")
    else:
        m = mount_of(config_path)
        volume = volumes.get(m["name"]) if m else None
        cm_name = (volume or {}).get("configMap", {}).get("name")
        if not cm_name:
            checks.fail(dpath, f"--config {config_path}: no ConfigMap volume is mounted there")
        elif cm_name not in configmaps:
            checks.fail(dpath, f"--config {config_path}: volume {m['name']} uses ConfigMap {cm_name}, "
                               f"which deploy/kubernetes does not define (it has {sorted(configmaps)})")
        else:
            cpath, cm = configmaps[cm_name]
            file_name = m.get("subPath") or config_path[len(m["mountPath"].rstrip("/")) + 1:]
            items = volume["configMap"].get("items")
            key = next((i["key"] for i in items if i["path"] == file_name), None) if items else file_name
            data = cm.get("data") or {}
            if checks.expect(key in data, cpath, f"--config {config_path} is ConfigMap {cm_name}'s key {key}",
                             f"the Deployment reads {config_path}, i.e. key {key!r} of ConfigMap {cm_name}, "
                             f"which has keys {sorted(data)}"):
                config_text = data[key]
    settings = {}
    if config_text is not None:
        try:
            settings = tomllib.loads(config_text)
            checks.ok(f"ConfigMap's {Path(config_path).name} is valid TOML")
        except tomllib.TOMLDecodeError as e:
            checks.fail(K8S_DIR / "configmap.yaml", f"{Path(config_path).name} is not valid TOML: {e}")
    state_dir = env.get("VIGIE__ALERTS__STATE_DIR") or settings.get("alerts", {}).get("state_dir")
    if state_dir:
        m = mount_of(state_dir)
        checks.expect(m and not m.get("readOnly"), dpath,
                      f"alerts state_dir {state_dir} is on a writable volume ({m and m['name']})",
                      f"alerts state_dir {state_dir} is not on a writable volume: the image's user "
                      "cannot write there")
    replicas = spec.get("replicas", 1)
    if replicas > 1 and config_text is not None:
        checks.expect(settings.get("kafka", {}).get("partials") is True, K8S_DIR / "configmap.yaml",
                      f"{replicas} replicas behind one Service merge their partials (kafka.partials = true)",
                      f"{replicas} replicas share the group but kafka.partials is not true: each replica "
                      "would serve only its own partitions' numbers")
    return {"path": dpath, "dep": dep, "container": container, "argv": argv, "env": env,
            "listen": (host, port), "probes": declared_probes, "volumes": volumes, "mounts": mounts,
            "configmaps": configmaps, "settings": settings, "replicas": replicas,
            "config_path": config_path,
            "grace": float(pod.get("terminationGracePeriodSeconds", K8S_STOP_GRACE))}


def check_compose(checks: Checks, path: Path, doc: dict, image: Image) -> dict:
    checks.section(f"{rel(path)}: consistency")
    services = doc.get("services") or {}
    kafka = kafka_services(doc)
    vigie = vigie_services(doc, path.parent)

    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        for target, condition in (depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)):
            if target not in services:
                checks.fail(path, f"service {name} depends on {target}, which does not exist")
            elif (condition or {}).get("condition") == "service_healthy":
                test = (services[target].get("healthcheck") or {}).get("test")
                checks.expect(healthcheck_argv(test) is not None, path,
                              f"{name} waits for {target} to be healthy: {target} has a healthcheck",
                              f"{name} waits for {target} to be healthy, but {target} has no healthcheck")

    # Kafka in KRaft mode: listeners, node ids, voters, cluster id, replication factors.
    endpoints, node_ids = set(), {}
    controller_ports = {}
    for name, svc in kafka.items():
        env = env_dict(svc.get("environment"))
        lst = listeners(env.get("KAFKA_LISTENERS", ""))
        adv = listeners(env.get("KAFKA_ADVERTISED_LISTENERS", ""))
        controller_names = set(env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(","))
        protocols = dict(p.split(":", 1) for p in env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",") if ":" in p)
        for listener in lst:
            if listener not in protocols:
                checks.fail(path, f"{name}: listener {listener} has no KAFKA_LISTENER_SECURITY_PROTOCOL_MAP entry")
        for listener, (_, lport) in lst.items():
            if listener in controller_names:
                controller_ports[name] = lport
                continue
            ahost, aport = adv.get(listener, (None, None))
            if checks.expect((ahost, aport) == (name, lport), path,
                             f"{name}: {listener} listener :{lport} advertised as {name}:{lport}",
                             f"{name}: listener {listener} on :{lport} is advertised as {ahost}:{aport}; "
                             f"clients are sent there, expected {name}:{lport}"):
                endpoints.add(f"{name}:{lport}")
        node_id = env.get("KAFKA_NODE_ID")
        if node_id in node_ids:
            checks.fail(path, f"{name} and {node_ids[node_id]} have the same KAFKA_NODE_ID {node_id}")
        node_ids[node_id] = name
        cluster_id = env.get("CLUSTER_ID")
        if cluster_id is not None:
            try:
                valid = len(base64.urlsafe_b64decode(cluster_id + "==")) == 16 and len(cluster_id) == 22
            except (binascii.Error, ValueError):
                valid = False
            checks.expect(valid, path, f"{name}: CLUSTER_ID {cluster_id} is a base64 UUID",
                          f"{name}: CLUSTER_ID {cluster_id!r} is not a base64-encoded UUID (22 characters, "
                          "as `kafka-storage.sh random-uuid` prints), which KRaft expects (Kafka's storage "
                          "tool refused other strings in 3.3 to 3.8)")
    for name, svc in kafka.items():
        env = env_dict(svc.get("environment"))
        voters = {}
        for voter in filter(None, env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(",")):
            vid, _, address = voter.partition("@")
            voters[vid] = split_address(address)
        expected = {node_ids_id: (svc_name, controller_ports.get(svc_name)) for node_ids_id, svc_name in node_ids.items()
                    if "controller" in env_dict(kafka[svc_name].get("environment")).get("KAFKA_PROCESS_ROLES", "")}
        checks.expect(voters == expected, path, f"{name}: controller quorum voters are the controllers "
                      f"({', '.join(f'{i}@{h}:{p}' for i, (h, p) in sorted(voters.items()))})",
                      f"{name}: KAFKA_CONTROLLER_QUORUM_VOTERS {voters} but the controllers are {expected}")
        for key, bound in (("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", len(kafka)),
                           ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", len(kafka)),
                           ("KAFKA_DEFAULT_REPLICATION_FACTOR", len(kafka)),
                           ("KAFKA_MIN_INSYNC_REPLICAS", int(env.get("KAFKA_DEFAULT_REPLICATION_FACTOR", 1))),
                           ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
                            int(env.get("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", 3)))):
            if key in env and int(env[key]) > bound:
                checks.fail(path, f"{name}: {key}={env[key]} is more than {bound} (brokers or replication)")

    # Vigie containers.
    host_ports = {}
    group_members = []
    for name, svc in vigie.items():
        if svc.get("entrypoint") is not None:
            checks.fail(path, f"{name} overrides the image's entrypoint; the check does not follow that")
            continue
        argv = compose_argv(svc, image)
        env = env_dict(svc.get("environment"))
        sub = argv[0] if argv else None
        brokers = option(argv, "--brokers") or env.get("VIGIE__KAFKA__BROKERS")
        unknown = [b for b in (brokers or "").split(",") if b and b not in endpoints]
        checks.expect(brokers and not unknown, path,
                      f"{name} (vigie {sub}) reaches the brokers {brokers}",
                      f"{name}: brokers {brokers!r}: " + (f"{unknown} are not Kafka services' advertised "
                                                           f"listeners ({sorted(endpoints)})" if brokers else
                                                           "none set, vigie would use 127.0.0.1:9092 inside "
                                                           "its container"))
        if sub != "serve":
            continue
        group_members.append(name)
        listen = option(argv, "--listen") or SERVE_DEFAULT_LISTEN
        lhost, lport = split_address(listen)
        checks.expect(not is_loopback(lhost), path, f"{name} listens on {listen}, reachable from outside "
                      "its container",
                      f"{name} listens on {listen} inside its container: neither the host nor other "
                      "containers can reach it (use --listen 0.0.0.0:PORT)")
        ports = published_ports(svc.get("ports"))
        checks.expect(ports and all(target == lport for _, _, target in ports), path,
                      f"{name} publishes {[f'{h}->{t}' for _, h, t in ports]} to its listen port {lport}",
                      f"{name} publishes {[f'{h}->{t}' for _, h, t in ports] or 'no port'}; vigie listens "
                      f"on {lport}: the cockpit is unreachable from the host")
        for _, hport, _ in ports:
            if hport in host_ports:
                checks.fail(path, f"{name} and {host_ports[hport]} both publish host port {hport}")
            host_ports[hport] = name
        test = (svc.get("healthcheck") or {}).get("test")
        hc = healthcheck_argv(test)
        if not checks.expect(hc is not None, path, f"{name} has a healthcheck",
                             f"{name} has no healthcheck: nothing tells when it is ready"):
            continue
        tool = Path(hc[0]).name
        shell_text = hc[2] if hc[:2] == ["/bin/sh", "-c"] else None
        if shell_text is not None:
            tool = shell_text.split()[0] if shell_text.split() else "sh"
        checks.expect(tool in IMAGE_BASE_TOOLS | image.packages, path,
                      f"{name}'s healthcheck runs {tool}, which the image has",
                      f"{name}'s healthcheck runs {tool}, which the image (debian-slim, apt packages "
                      f"{sorted(image.packages)}) does not have")
        if shell_text is not None and "/dev/tcp" in shell_text:
            checks.fail(path, f"{name}'s healthcheck uses /dev/tcp under CMD-SHELL: /bin/sh is dash in "
                              "Debian, which has no /dev/tcp; use [\"CMD\", \"bash\", \"-c\", ...]")
        text = " ".join(hc)
        checks.expect(READY in text and re.search(rf"(127\.0\.0\.1|localhost)[:/]{lport}\b", text), path,
                      f"{name}'s healthcheck asks {READY} on port {lport}",
                      f"{name}'s healthcheck {test!r} does not ask {READY} on 127.0.0.1:{lport}")
    if len(group_members) > 1:
        partials = [env_dict(vigie[n].get("environment")).get("VIGIE__KAFKA__PARTIALS") for n in group_members]
        ids = [env_dict(vigie[n].get("environment")).get("VIGIE__KAFKA__INSTANCE_ID") for n in group_members]
        checks.expect(all(p == "true" for p in partials), path,
                      f"{len(group_members)} instances in one group merge their partials",
                      f"{group_members} share a consumer group but VIGIE__KAFKA__PARTIALS is {partials}: "
                      "each would show only its own partitions")
        checks.expect(len(set(ids)) == len(ids), path, "instance ids are distinct",
                      f"instance ids {ids} are not distinct: partials of one would fence the other's")
    return {"kafka": kafka, "endpoints": endpoints, "vigie": vigie}
