"""1. Schemas: the Kubernetes manifests (strict), both compose files as `docker compose`
interpolates them, and hadolint on the Dockerfile."""

from __future__ import annotations

from .common import *  # noqa: F401,F403 (the shared constants and readers)


# ---------------------------------------------------------------------------------------
# 1. Schemas
# ---------------------------------------------------------------------------------------


def load_compose(checks: Checks, path: Path) -> dict | None:
    raw = yaml.safe_load(path.read_text())
    problems: list[str] = []
    doc = interpolate(raw, TEST_ENV, problems)
    checks.expect(not problems, path, f"{rel(path)}: variables interpolate (test values: "
                  + ", ".join(f"{k}=sha256({TEST_TOKEN!r})" for k in TEST_ENV) + ")",
                  "; ".join(problems))
    return doc


def check_schemas(checks: Checks, venv_bin: Path) -> dict[Path, dict]:
    checks.section(f"Kubernetes manifests: schema (kubernetes-validate {kubernetes_validate.__version__}, "
                   f"strict, Kubernetes {' and '.join(K8S_VERSIONS)})")
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            kind = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                    checks.ok(f"{rel(path)}: {kind} valid for Kubernetes {version}")
                except kubernetes_validate.ValidationError as e:
                    where = ".".join(str(p) for p in e.path) or "(top)"
                    checks.fail(path, f"{kind} invalid for Kubernetes {version} at {where}: {e.message}")
                except (kubernetes_validate.SchemaNotFoundError, KeyError) as e:
                    checks.fail(path, f"{kind}: no Kubernetes {version} schema for it: {e}")

    schema_file = next(f for f in importlib.metadata.files("check-jsonschema")
                       if f.name == "compose-spec.json")
    schema = json.loads(Path(schema_file.locate()).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    checks.section("Compose files: schema (the Compose Specification's compose-spec.json, as vendored "
                   f"by check-jsonschema {importlib.metadata.version('check-jsonschema')})")
    composes = {path: load_compose(checks, path) for path in COMPOSE_FILES}
    for path, doc in composes.items():
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
        checks.expect(not errors, path, f"{rel(path)} valid",
                      "; ".join(f"at {'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors[:5]))

    checks.section("Dockerfile: hadolint (DL3008, pinning Debian package versions, ignored: the "
                   "base image tags pin the release)")
    result = subprocess.run([str(venv_bin / "hadolint"), "--no-color", "--failure-threshold", "warning",
                             "--ignore", "DL3008", str(DOCKERFILE)], capture_output=True, text=True)
    findings = [line for line in result.stdout.splitlines() if line.strip()]
    for line in findings:
        print(f"        {line.replace(str(ROOT) + '/', '')}")
    checks.expect(result.returncode == 0, DOCKERFILE, f"{rel(DOCKERFILE)}: no hadolint warning or error",
                  "hadolint: " + ("; ".join(findings) or result.stderr.strip()))
    return composes
