"""The deployment files (deploy/Dockerfile, deploy/k8s/*.yaml), parsed and cross-checked.

No container engine or cluster runs here, so nothing is built or applied: these tests catch
what a reviewer would — a probe on a path the app does not serve, a Service that selects no
pod, a secret written inline, a --role that disagrees with the pod's label, a torch pin that
drifted from pyproject.toml. Each checker returns a list of problems (empty when clean), and
``test_checker_reports_broken_input`` feeds each one a deliberately broken input.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
KUSTOMIZATION = "kustomization.yaml"

NAMESPACE = "tuijian"
ROLE_LABEL = "app.kubernetes.io/component"  # the pod label that names the role
ROLES = frozenset({"api", "recall", "rank"})
GRPC_ROLES = frozenset({"recall", "rank"})  # slow to load models: a startupProbe is required
PROBE_PATHS = frozenset({"/healthz", "/readyz"})  # what the API serves for probes
SECRET_ENV = frozenset({"TUIJIAN_SECRET", "TUIJIAN_ADMIN_KEY", "TUIJIAN_INGEST_KEY",
                        "TUIJIAN_READ_KEY", "TUIJIAN_METADATA_URL"})
EXPOSED_PORTS = frozenset({8000, 50051, 50052})

Doc = dict[str, Any]


# ---------------------------------------------------------------- Kubernetes quantities

_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))"
                       r"(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?$")
_SUFFIX: dict[str, Fraction] = {
    "m": Fraction(1, 1000), "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
    "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30),
    "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}


def parse_quantity(q: object) -> Fraction:
    """A Kubernetes resource quantity (500m, 1, 1.5, 2Gi, 512Mi, 1e3, 128k) as an exact number."""
    if isinstance(q, bool) or not isinstance(q, str | int | float):
        raise ValueError(f"not a Kubernetes quantity: {q!r}")
    m = _QUANTITY.match(str(q).strip())
    if m is None:
        raise ValueError(f"not a Kubernetes quantity: {q!r}")
    number, exponent, suffix = m.groups()
    try:
        value = Fraction(Decimal(number))
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"not a Kubernetes quantity: {q!r}") from None
    if exponent:
        value *= Fraction(10) ** int(exponent[1:])
    if suffix:
        value *= _SUFFIX[suffix]
    return value


# ---------------------------------------------------------------- loading and helpers

def manifest_files(directory: Path = K8S) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix in (".yaml", ".yml") and p.name != KUSTOMIZATION)


def load_manifests(directory: Path = K8S) -> list[Doc]:
    docs: list[Doc] = []
    for path in manifest_files(directory):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
                docs.append(doc)
    return docs


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def ref(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_spec(dep: Doc) -> Doc:
    return dep.get("spec", {}).get("template", {}).get("spec", {}) or {}


def pod_labels(dep: Doc) -> dict[str, str]:
    return dep.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {}


def containers(dep: Doc) -> list[Doc]:
    return pod_spec(dep).get("containers", []) or []


def where(dep: Doc, c: Doc) -> str:
    return f"{ref(dep)} container {c.get('name')!r}"


def container_ports(c: Doc) -> dict[str | int, int]:
    """Each declared containerPort, by number and by name."""
    ports: dict[str | int, int] = {}
    for p in c.get("ports", []) or []:
        number = p.get("containerPort")
        if isinstance(number, int):
            ports[number] = number
            if p.get("name"):
                ports[p["name"]] = number
    return ports


def resolve_port(c: Doc, port: object) -> int | None:
    """The containerPort a probe or Service port refers to (number or name), or None."""
    if isinstance(port, bool) or not isinstance(port, str | int):
        return None
    return container_ports(c).get(port)


def option(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def effective_argv(c: Doc, entrypoint: list[str], cmd: list[str]) -> list[str]:
    """What the container runs: Kubernetes' command replaces ENTRYPOINT (and drops CMD), its
    args replace CMD."""
    command = c.get("command")
    args = c.get("args")
    if command:
        return [str(a) for a in [*command, *(args or [])]]
    return [str(a) for a in [*entrypoint, *(cmd if args is None else args)]]


def effective_env(c: Doc, docs: list[Doc]) -> dict[str, Any]:
    """The container's environment: envFrom ConfigMaps first, then env entries override. A
    literal is a value; a valueFrom is kept as its mapping."""
    config_maps = {cm["metadata"]["name"]: cm.get("data", {}) or {}
                   for cm in of_kind(docs, "ConfigMap")}
    env: dict[str, Any] = {}
    for source in c.get("envFrom", []) or []:
        cm_ref = source.get("configMapRef")
        if cm_ref:
            prefix = source.get("prefix", "")
            for key, value in config_maps.get(cm_ref.get("name"), {}).items():
                env[prefix + key] = value
    for entry in c.get("env", []) or []:
        env[entry["name"]] = entry["value"] if "value" in entry else entry.get("valueFrom")
    return env


# ---------------------------------------------------------------- Kubernetes checkers

def check_resources(docs: list[Doc]) -> list[str]:
    problems = []
    for dep in of_kind(docs, "Deployment"):
        for c in containers(dep):
            res = c.get("resources") or {}
            for resource in ("cpu", "memory"):
                parsed: dict[str, Fraction] = {}
                for bound in ("requests", "limits"):
                    raw = (res.get(bound) or {}).get(resource)
                    if raw is None:
                        problems.append(f"{where(dep, c)}: no resources.{bound}.{resource}")
                        continue
                    try:
                        parsed[bound] = parse_quantity(raw)
                    except ValueError as exc:
                        problems.append(f"{where(dep, c)}: {bound}.{resource}: {exc}")
                if len(parsed) == 2 and parsed["requests"] > parsed["limits"]:
                    problems.append(f"{where(dep, c)}: requests.{resource} "
                                    f"{res['requests'][resource]} exceeds limits.{resource} "
                                    f"{res['limits'][resource]}")
    return problems


def check_probes(docs: list[Doc], allowed_paths: frozenset[str] | set[str]) -> list[str]:
    problems = []
    for dep in of_kind(docs, "Deployment"):
        role = pod_labels(dep).get(ROLE_LABEL)
        required = ["readinessProbe", "livenessProbe"]
        if role in GRPC_ROLES:
            required.append("startupProbe")
        for c in containers(dep):
            at = where(dep, c)
            problems += [f"{at}: no {name}" for name in required if not c.get(name)]
            for name in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = c.get(name)
                if not probe:
                    continue
                if "httpGet" in probe:
                    path = probe["httpGet"].get("path", "/")
                    if path not in allowed_paths:
                        problems.append(f"{at}: {name} GET {path} is not a path the app serves "
                                        f"for probes ({sorted(allowed_paths)})")
                    if resolve_port(c, probe["httpGet"].get("port")) is None:
                        problems.append(f"{at}: {name} httpGet port "
                                        f"{probe['httpGet'].get('port')!r} is no containerPort")
                elif "grpc" in probe:
                    port = probe["grpc"].get("port")
                    # a gRPC probe's port must be a number: Kubernetes takes no port name here
                    numbers = sorted(set(container_ports(c).values()))
                    if not isinstance(port, int) or port not in numbers:
                        problems.append(f"{at}: {name} grpc port {port!r} is not a numeric "
                                        f"containerPort ({numbers})")
                elif "tcpSocket" in probe:
                    if resolve_port(c, probe["tcpSocket"].get("port")) is None:
                        problems.append(f"{at}: {name} tcpSocket port is no containerPort")
                elif "exec" not in probe:
                    problems.append(f"{at}: {name} has no handler (httpGet, grpc, tcpSocket, exec)")
    return problems


def check_services(docs: list[Doc]) -> list[str]:
    problems = []
    deployments = of_kind(docs, "Deployment")
    for svc in of_kind(docs, "Service"):
        spec = svc.get("spec", {})
        if spec.get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"{ref(svc)}: type {spec.get('type')}, expected ClusterIP")
        selector = spec.get("selector") or {}
        if not selector:
            problems.append(f"{ref(svc)}: no selector")
            continue
        matched = [d for d in deployments if selector.items() <= pod_labels(d).items()]
        if not matched:
            problems.append(f"{ref(svc)}: selector {selector} matches no Deployment's pod labels")
            continue
        for port in spec.get("ports", []) or []:
            target = port.get("targetPort", port.get("port"))
            if not any(resolve_port(c, target) is not None
                       for d in matched for c in containers(d)):
                problems.append(f"{ref(svc)}: targetPort {target!r} is not a containerPort "
                                f"(number or name) of {[ref(d) for d in matched]}")
    return problems


def check_secret_env(docs: list[Doc]) -> list[str]:
    problems = []
    secrets = {s["metadata"]["name"]: set(s.get("data") or {}) | set(s.get("stringData") or {})
               for s in of_kind(docs, "Secret")}
    for cm in of_kind(docs, "ConfigMap"):
        for key in sorted(SECRET_ENV & set(cm.get("data") or {})):
            problems.append(f"{ref(cm)}: {key} is a secret and must not be in a ConfigMap")
    for dep in of_kind(docs, "Deployment"):
        for c in containers(dep):
            at = where(dep, c)
            seen = set()
            for entry in c.get("env", []) or []:
                name = entry.get("name")
                if name not in SECRET_ENV:
                    continue
                seen.add(name)
                if "value" in entry:
                    problems.append(f"{at}: {name} has a literal value; use secretKeyRef")
                key_ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if not key_ref:
                    problems.append(f"{at}: {name} does not come from a secretKeyRef")
                    continue
                if key_ref.get("name") not in secrets:
                    problems.append(f"{at}: {name} refers to Secret {key_ref.get('name')!r}, "
                                    f"not among the manifests ({sorted(secrets)})")
                elif key_ref.get("key") not in (keys := secrets[key_ref["name"]]):
                    problems.append(f"{at}: {name} refers to key {key_ref.get('key')!r}, not in "
                                    f"Secret {key_ref['name']} ({sorted(keys)})")
                if key_ref.get("optional"):
                    problems.append(f"{at}: {name} secretKeyRef is optional; it must be required")
            # every role loads the same Settings, so every role gets every secret
            for name in sorted(SECRET_ENV - seen):
                problems.append(f"{at}: {name} is not set (expected from a secretKeyRef)")
    return problems


def check_config_refs(docs: list[Doc]) -> list[str]:
    """ConfigMap values are strings (the API server rejects YAML bools and numbers) and every
    envFrom names a ConfigMap that exists."""
    problems = []
    names = set()
    for cm in of_kind(docs, "ConfigMap"):
        names.add(cm["metadata"]["name"])
        for key, value in (cm.get("data") or {}).items():
            if not isinstance(value, str):
                problems.append(f"{ref(cm)}: {key} is {value!r} ({type(value).__name__}); "
                                f"ConfigMap values must be quoted strings")
    for dep in of_kind(docs, "Deployment"):
        for c in containers(dep):
            for source in c.get("envFrom", []) or []:
                cm_ref = source.get("configMapRef")
                if cm_ref and cm_ref.get("name") not in names:
                    problems.append(f"{where(dep, c)}: envFrom ConfigMap "
                                    f"{cm_ref.get('name')!r} is not among the manifests")
    return problems


def check_dev_mode(docs: list[Doc]) -> list[str]:
    problems = []
    for dep in of_kind(docs, "Deployment"):
        for c in containers(dep):
            value = effective_env(c, docs).get("TUIJIAN_DEV_MODE")
            if value != "false":
                problems.append(f"{where(dep, c)}: TUIJIAN_DEV_MODE is {value!r}, expected the "
                                f"string 'false' (from the ConfigMap or env)")
    return problems


def check_command_role(docs: list[Doc], entrypoint: list[str], cmd: list[str]) -> list[str]:
    problems = []
    for dep in of_kind(docs, "Deployment"):
        role = pod_labels(dep).get(ROLE_LABEL)
        if role not in ROLES:
            problems.append(f"{ref(dep)}: pod label {ROLE_LABEL}={role!r}, expected one of "
                            f"{sorted(ROLES)}")
        mounts = {m.get("mountPath") for c in containers(dep) for m in c.get("volumeMounts", [])}
        for c in containers(dep):
            at = where(dep, c)
            argv = effective_argv(c, entrypoint, cmd)
            if len(argv) < 2 or Path(argv[0]).name != "tuijian" or argv[1] != "serve":
                problems.append(f"{at}: runs {argv}, expected `tuijian serve ...`")
                continue
            if option(argv, "--role") != role:
                problems.append(f"{at}: --role {option(argv, '--role')!r} but the pod label "
                                f"{ROLE_LABEL} is {role!r}")
            port = option(argv, "--port")
            if port is None or not port.isdigit() or int(port) not in container_ports(c).values():
                problems.append(f"{at}: --port {port!r} is not a containerPort")
            if option(argv, "--host") != "0.0.0.0":
                problems.append(f"{at}: --host {option(argv, '--host')!r}; only 0.0.0.0 is "
                                f"reachable through the pod IP")
            data = option(argv, "--data")
            if data not in mounts:
                problems.append(f"{at}: --data {data!r} is not a volumeMount ({sorted(mounts)})")
    return problems


def check_pod_security(docs: list[Doc]) -> list[str]:
    problems = []
    for dep in of_kind(docs, "Deployment"):
        spec = pod_spec(dep)
        pod_ctx = spec.get("securityContext") or {}
        if not isinstance(spec.get("terminationGracePeriodSeconds"), int):
            problems.append(f"{ref(dep)}: no terminationGracePeriodSeconds")
        for c in containers(dep):
            at = where(dep, c)
            ctx = c.get("securityContext") or {}
            if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
                problems.append(f"{at}: runAsNonRoot is not true")
            if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
                problems.append(f"{at}: runAsUser 0")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation is not false")
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: readOnlyRootFilesystem is not true")
            elif "/tmp" not in {m.get("mountPath") for m in c.get("volumeMounts", []) or []}:
                problems.append(f"{at}: read-only root but no writable /tmp volume")
    return problems


def check_volumes(docs: list[Doc]) -> list[str]:
    """/data: an emptyDir on the stateless api, a PersistentVolumeClaim (that exists) on
    recall and rank; every volumeMount names a declared volume."""
    problems = []
    claims = {p["metadata"]["name"] for p in of_kind(docs, "PersistentVolumeClaim")}
    for dep in of_kind(docs, "Deployment"):
        role = pod_labels(dep).get(ROLE_LABEL)
        volumes = {v.get("name"): v for v in pod_spec(dep).get("volumes", []) or []}
        for c in containers(dep):
            for mount in c.get("volumeMounts", []) or []:
                volume = volumes.get(mount.get("name"))
                if volume is None:
                    problems.append(f"{where(dep, c)}: volumeMount {mount.get('name')!r} "
                                    f"names no volume")
                    continue
                if mount.get("mountPath") != "/data":
                    continue
                if role == "api" and "emptyDir" not in volume:
                    problems.append(f"{ref(dep)}: /data must be an emptyDir (api is stateless)")
                if role in GRPC_ROLES:
                    claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                    if claim is None:
                        problems.append(f"{ref(dep)}: /data must be a PersistentVolumeClaim")
                    elif claim not in claims:
                        problems.append(f"{ref(dep)}: PVC {claim!r} is not among the manifests")
    return problems


def check_namespaces(docs: list[Doc]) -> list[str]:
    problems = []
    if not any(d["metadata"]["name"] == NAMESPACE for d in of_kind(docs, "Namespace")):
        problems.append(f"no Namespace {NAMESPACE!r}")
    for doc in docs:
        for field in ("apiVersion", "kind"):
            if not doc.get(field):
                problems.append(f"{ref(doc)}: no {field}")
        if doc.get("kind") != "Namespace" and doc.get("metadata", {}).get("namespace") != NAMESPACE:
            problems.append(f"{ref(doc)}: metadata.namespace is not {NAMESPACE!r}")
    return problems


def check_kustomization(kustomization: Doc, files: list[str]) -> list[str]:
    listed = kustomization.get("resources") or []
    problems = [f"kustomization lists {name} twice" for name in sorted(set(listed))
                if listed.count(name) > 1]
    for name in sorted(set(files) - set(listed)):
        problems.append(f"{name} is in deploy/k8s but not listed in {KUSTOMIZATION}")
    for name in sorted(set(listed) - set(files)):
        problems.append(f"{KUSTOMIZATION} lists {name}, which is not in deploy/k8s")
    return problems


# ---------------------------------------------------------------- Dockerfile

def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with `\\` continuations joined and comments dropped
    (including comment lines inside a continuation, as Docker does)."""
    instructions: list[tuple[str, str]] = []
    parts: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # Docker skips both, even inside a continuation
            continue
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        joined = " ".join(p for p in parts if p)
        parts = []
        if joined:
            keyword, _, rest = joined.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    if parts:
        raise ValueError("Dockerfile ends inside a `\\` continuation")
    return instructions


def exec_form(args: str) -> list[str] | None:
    """The argv of an exec-form (JSON array) ENTRYPOINT/CMD, or None for the shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and value and all(isinstance(a, str) for a in value):
        return value
    return None


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    return instructions[starts[-1]:] if starts else instructions


def image_command(instructions: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The final stage's (ENTRYPOINT, CMD), each [] if absent or not exec form."""
    stage = final_stage(instructions)
    entry = [a for kw, a in stage if kw == "ENTRYPOINT"]
    cmd = [a for kw, a in stage if kw == "CMD"]
    return ((exec_form(entry[-1]) or []) if entry else [],
            (exec_form(cmd[-1]) or []) if cmd else [])


def image_user(instructions: list[tuple[str, str]]) -> str | None:
    users = [a.split(":")[0].strip() for kw, a in final_stage(instructions) if kw == "USER"]
    return users[-1] if users else None


def check_dockerfile(instructions: list[tuple[str, str]], torch_pin: str) -> list[str]:
    problems = []
    froms = [[t for t in a.split() if not t.startswith("--")] for kw, a in instructions
             if kw == "FROM"]
    stages = {f[2].lower() for f in froms if len(f) >= 3 and f[1].lower() == "as"}
    images = [f[0] for f in froms if f and f[0].lower() not in stages]
    if len(froms) < 2:
        problems.append(f"{len(froms)} FROM: expected a multi-stage build (builder + runtime)")
    if not images or not all(i.startswith("python:3.11") for i in images):
        problems.append(f"base images {images}: expected FROM python:3.11…")
    if froms and not (froms[-1] and froms[-1][0].startswith("python:3.11")
                      and "slim" in froms[-1][0]):
        problems.append(f"runtime stage FROM {froms[-1][:1]}: expected python:3.11-slim")

    user = image_user(instructions)
    if user is None:
        problems.append("no USER in the runtime stage: the image would run as root")
    elif user in ("root", "0"):
        problems.append(f"USER {user}: the image must not run as root")

    exposed = set()
    for kw, args in instructions:
        if kw == "EXPOSE":
            exposed |= {int(p.split("/")[0]) for p in args.split() if p.split("/")[0].isdigit()}
    problems += [f"EXPOSE lacks {port}" for port in sorted(EXPOSED_PORTS - exposed)]

    stage = final_stage(instructions)
    entries = [a for kw, a in stage if kw == "ENTRYPOINT"]
    if not entries:
        problems.append("no ENTRYPOINT")
    elif (argv := exec_form(entries[-1])) is None:
        problems.append(f"ENTRYPOINT {entries[-1]} is not exec form (a JSON array of strings)")
    elif argv[:2] != ["tuijian", "serve"]:
        problems.append(f"ENTRYPOINT {entries[-1]}: expected [\"tuijian\", \"serve\"]")
    cmds = [a for kw, a in stage if kw == "CMD"]
    if cmds and exec_form(cmds[-1]) is None:
        problems.append(f"CMD {cmds[-1]} is not exec form (a JSON array of strings)")

    checks = [a for kw, a in stage if kw == "HEALTHCHECK"]
    if not checks or "/healthz" not in checks[-1]:
        problems.append("no HEALTHCHECK on /healthz in the runtime stage")
    elif re.search(r"\b(curl|wget)\b", checks[-1]):
        problems.append("HEALTHCHECK uses curl/wget, which python:3.11-slim does not ship")

    runs = [(i, a) for i, (kw, a) in enumerate(instructions) if kw == "RUN"]
    # the RUNs that pip-install torch (not the ones that merely import it)
    torch_runs = [(i, a) for i, a in runs if re.search(r"\bpip install\b[^&;|]*\btorch\b", a)]
    if not torch_runs:
        problems.append("torch is not installed by any RUN (pip install . would pull CUDA)")
    for i, args in torch_runs:
        pins = re.findall(r"\btorch==([\w.+-]+)", args)
        if not pins:
            problems.append(f"RUN {args!r}: torch is not pinned with ==")
        problems += [f"torch=={pin} in the Dockerfile but pyproject.toml pins "
                     f"torch=={torch_pin}" for pin in pins if pin != torch_pin]
        if "download.pytorch.org/whl/cpu" not in args:
            problems.append(f"RUN {args!r}: torch not from the CPU index "
                            f"(https://download.pytorch.org/whl/cpu)")
        project = [j for j, a in runs if re.search(r"\bpip install\b[^&;|]*\s\.(\s|$)", a)]
        if project and i > project[0]:
            problems.append("torch is installed after `pip install .`, which resolves it first")
    return problems


def pyproject_torch_pin() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m.group(1) for d in deps if (m := re.fullmatch(r"torch\s*==\s*(\S+)", d.strip()))]
    assert len(pins) == 1, f"pyproject.toml should pin torch exactly once with ==, got {deps}"
    return pins[0]


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return load_manifests()


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def served_probe_paths() -> frozenset[str]:
    """The probe paths, narrowed to the API module's PROBE_PATHS when it declares them. The
    import proves the module loads; no app or service is started."""
    api = importlib.import_module("tuijian.serving.api")
    declared = getattr(api, "PROBE_PATHS", None)
    return PROBE_PATHS if declared is None else PROBE_PATHS & frozenset(declared)


def _assert_clean(problems: list[str]) -> None:
    assert not problems, "\n".join(["", *problems])


# ---------------------------------------------------------------- tests on the real files

def test_manifests_parse_and_cover_the_expected_objects(docs: list[Doc]) -> None:
    kinds = {(d.get("kind"), d.get("metadata", {}).get("name")) for d in docs}
    expected = {("Namespace", "tuijian"), ("ConfigMap", "tuijian-config"),
                ("Secret", "tuijian-secrets"), ("Deployment", "tuijian-api"),
                ("Deployment", "tuijian-recall"), ("Deployment", "tuijian-rank"),
                ("Service", "api"), ("Service", "recall"), ("Service", "rank"),
                ("HorizontalPodAutoscaler", "tuijian-api"),
                ("PodDisruptionBudget", "tuijian-api")}
    assert expected <= kinds, f"missing: {sorted(expected - kinds)}"


def test_every_object_is_in_the_namespace(docs: list[Doc]) -> None:
    _assert_clean(check_namespaces(docs))


def test_resources_have_requests_and_limits_with_requests_at_most_limits(
        docs: list[Doc]) -> None:
    _assert_clean(check_resources(docs))


def test_probes_present_and_on_served_paths_and_ports(
        docs: list[Doc], served_probe_paths: frozenset[str]) -> None:
    assert {"/healthz", "/readyz"} <= served_probe_paths, (
        f"tuijian.serving.api.PROBE_PATHS lacks a probe path: {sorted(served_probe_paths)}")
    _assert_clean(check_probes(docs, served_probe_paths))


def test_services_select_a_deployment_and_target_a_declared_port(docs: list[Doc]) -> None:
    _assert_clean(check_services(docs))


def test_service_names_match_the_urls_the_api_dials(docs: list[Doc]) -> None:
    """TUIJIAN_RECALL_URL=recall:50051 must be a Service `recall`, port 50051, over the recall
    pods; and the api Service maps 80 to the api container's 8000."""
    config = {k: v for cm in of_kind(docs, "ConfigMap") for k, v in (cm.get("data") or {}).items()}
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    for role, var in (("recall", "TUIJIAN_RECALL_URL"), ("rank", "TUIJIAN_RANK_URL")):
        host, _, port = str(config.get(var, "")).partition(":")
        assert host in services, f"{var}={config.get(var)!r}: no Service named {host!r}"
        svc = services[host]
        assert svc["spec"]["selector"].get(ROLE_LABEL) == role, (
            f"Service {host} selects {svc['spec']['selector']}, not the {role} pods")
        assert int(port) in [p["port"] for p in svc["spec"]["ports"]], (
            f"{var}: Service {host} does not expose port {port}")
    api_dep = next(d for d in of_kind(docs, "Deployment") if pod_labels(d).get(ROLE_LABEL) == "api")
    api_svc = next(s for s in services.values() if s["spec"]["selector"].get(ROLE_LABEL) == "api")
    (port,) = api_svc["spec"]["ports"]
    assert port["port"] == 80, f"api Service port {port['port']}, expected 80"
    assert resolve_port(containers(api_dep)[0], port["targetPort"]) == 8000, (
        f"api Service targetPort {port['targetPort']!r} does not reach container port 8000")


def test_secret_env_vars_come_from_the_secret(docs: list[Doc]) -> None:
    _assert_clean(check_secret_env(docs))


def test_secret_manifest_is_a_template_of_placeholders(docs: list[Doc]) -> None:
    (secret,) = of_kind(docs, "Secret")
    assert not secret.get("data"), "the Secret template must not carry base64 data: values"
    values = secret.get("stringData") or {}
    real = {k: v for k, v in values.items() if v != "REPLACE_ME"}
    assert not real, f"Secret template holds non-placeholder values: {sorted(real)}"
    text = (K8S / "secret.yaml").read_text()
    assert re.search(r"refuse", text, re.I) and "dev mode" in text.lower(), (
        "secret.yaml must document that the service refuses placeholders outside dev mode")


def test_secret_template_placeholder_is_refused_outside_dev_mode(docs: list[Doc]) -> None:
    """The point of the placeholder: an unedited template must stop the service, not run it."""
    from tuijian.config import Settings

    (secret,) = of_kind(docs, "Secret")
    values = set((secret.get("stringData") or {}).values())
    assert values
    for value in values:
        with pytest.raises(ValueError, match="placeholder"):
            Settings(dev_mode=False, secret=value, admin_key=value, ingest_key=value,
                     read_key=value)


def test_config_map_values_are_strings_and_referenced_config_exists(docs: list[Doc]) -> None:
    _assert_clean(check_config_refs(docs))


def test_dev_mode_is_off(docs: list[Doc]) -> None:
    _assert_clean(check_dev_mode(docs))


def test_containers_serve_the_role_of_their_label(
        docs: list[Doc], dockerfile: list[tuple[str, str]]) -> None:
    entrypoint, cmd = image_command(dockerfile)
    _assert_clean(check_command_role(docs, entrypoint, cmd))


def test_pods_run_non_root_with_read_only_root(docs: list[Doc]) -> None:
    _assert_clean(check_pod_security(docs))


def test_pod_uid_matches_the_image_user(
        docs: list[Doc], dockerfile: list[tuple[str, str]]) -> None:
    """runAsNonRoot can only verify a numeric USER; a pod runAsUser should agree with it."""
    user = image_user(dockerfile)
    assert user is not None and user.isdigit(), (
        f"Dockerfile USER {user!r}: use a numeric uid so runAsNonRoot can verify it")
    for dep in of_kind(docs, "Deployment"):
        uid = (pod_spec(dep).get("securityContext") or {}).get("runAsUser")
        assert uid in (None, int(user)), f"{ref(dep)}: runAsUser {uid} but the image USER {user}"


def test_data_volumes(docs: list[Doc]) -> None:
    _assert_clean(check_volumes(docs))


def test_rollout_autoscaling_and_disruption_budget(docs: list[Doc]) -> None:
    deps = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    expected_replicas = {"tuijian-api": 3, "tuijian-recall": 2, "tuijian-rank": 2}
    for name, replicas in expected_replicas.items():
        assert deps[name]["spec"].get("replicas") == replicas, f"{name}: replicas"
    api = deps["tuijian-api"]["spec"]
    assert api["strategy"]["type"] == "RollingUpdate", "tuijian-api: strategy"
    assert api["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, (
        "tuijian-api: rollingUpdate.maxUnavailable must be 0")

    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2", f"HPA apiVersion {hpa['apiVersion']}"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "tuijian-api"), (
        f"HPA targets {target}")
    cpu = [m["resource"]["target"] for m in hpa["spec"]["metrics"]
           if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu == [{"type": "Utilization", "averageUtilization": 70}], f"HPA cpu target {cpu}"

    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1", f"PDB apiVersion {pdb['apiVersion']}"
    assert pdb["spec"]["minAvailable"] == 2, "PDB minAvailable"
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels(deps["tuijian-api"]).items(), (
        f"PDB selector {selector} does not select the api pods")
    floor = min(hpa["spec"].get("minReplicas", 1), api["replicas"])
    assert pdb["spec"]["minAvailable"] < floor, (
        f"PDB minAvailable {pdb['spec']['minAvailable']} >= {floor} replicas: no node could "
        f"ever be drained")


def test_kustomization_lists_exactly_the_manifests() -> None:
    kustomization = yaml.safe_load((K8S / KUSTOMIZATION).read_text())
    _assert_clean(check_kustomization(kustomization, [p.name for p in manifest_files()]))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds(docs: list[Doc]) -> None:
    """`kubectl kustomize` runs offline: the overlay renders every object once."""
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, f"kubectl kustomize failed:\n{out.stderr}"
    built = sorted(ref(d) for d in yaml.safe_load_all(out.stdout) if d)
    assert built == sorted(ref(d) for d in docs), "kustomize output differs from the files"


def test_dockerfile(dockerfile: list[tuple[str, str]]) -> None:
    _assert_clean(check_dockerfile(dockerfile, pyproject_torch_pin()))


def test_dockerignore_keeps_the_context_small() -> None:
    lines = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    wanted = {".venv", "data", ".git", "__pycache__", "*.egg-info", ".pytest_cache",
              ".mypy_cache", ".ruff_cache"}
    assert wanted <= lines, f".dockerignore lacks {sorted(wanted - lines)}"


# ---------------------------------------------------------------- the checkers can fail

@pytest.mark.parametrize(("text", "expected"), [
    ("500m", Fraction(1, 2)), ("1", Fraction(1)), (2, Fraction(2)), ("1.5", Fraction(3, 2)),
    ("2Gi", Fraction(2 * 2**30)), ("512Mi", Fraction(512 * 2**20)), ("1k", Fraction(1000)),
    ("1M", Fraction(10**6)), ("1e3", Fraction(1000)), ("1E", Fraction(10**18)),
    ("0.5", Fraction(1, 2)), (".5", Fraction(1, 2)),
])
def test_parse_quantity(text: object, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "1GB", "2 Gi", "1.2.3", "Mi", True, None])
def test_parse_quantity_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def _minimal_manifests() -> list[Doc]:
    """A small, valid set: an api and a recall Deployment with their Services, Secret,
    ConfigMap, PVC and Namespace. Each broken case below mutates a copy."""
    secret_env = [{"name": n, "valueFrom": {"secretKeyRef": {"name": "s", "key": n.lower()}}}
                  for n in sorted(SECRET_ENV)]
    security = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}

    def deployment(role: str, port: int, port_name: str, probe: Doc, volume: Doc) -> Doc:
        labels = {"app": "t", ROLE_LABEL: role}
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"t-{role}", "namespace": NAMESPACE},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {"runAsNonRoot": True},
                    "volumes": [{"name": "data", **volume}, {"name": "tmp", "emptyDir": {}}],
                    "containers": [{
                        "name": role, "command": ["tuijian", "serve"],
                        "args": ["--role", role, "--host", "0.0.0.0", "--port", str(port),
                                 "--data", "/data"],
                        "ports": [{"name": port_name, "containerPort": port}],
                        "envFrom": [{"configMapRef": {"name": "c"}}],
                        "env": copy.deepcopy(secret_env),
                        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                      "limits": {"cpu": 1, "memory": "1Gi"}},
                        "startupProbe": copy.deepcopy(probe),
                        "readinessProbe": copy.deepcopy(probe),
                        "livenessProbe": copy.deepcopy(probe),
                        "securityContext": dict(security),
                        "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                    }]}}}}

    def service(role: str, port: int, target: str | int) -> Doc:
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": role, "namespace": NAMESPACE},
                "spec": {"selector": {"app": "t", ROLE_LABEL: role},
                         "ports": [{"port": port, "targetPort": target}]}}

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": NAMESPACE},
         "data": {"TUIJIAN_DEV_MODE": "false"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": NAMESPACE},
         "stringData": {n.lower(): "REPLACE_ME" for n in SECRET_ENV}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "pvc", "namespace": NAMESPACE}},
        deployment("api", 8000, "http", {"httpGet": {"path": "/healthz", "port": "http"}},
                   {"emptyDir": {}}),
        deployment("recall", 50051, "grpc", {"grpc": {"port": 50051}},
                   {"persistentVolumeClaim": {"claimName": "pvc"}}),
        service("api", 80, "http"),
        service("recall", 50051, 50051),
    ]


_GOOD_DOCKERFILE = """\
FROM python:3.11-slim AS builder
RUN pip install --index-url https://download.pytorch.org/whl/cpu \\
      torch==2.13.0
RUN pip install .
FROM python:3.11-slim
USER 10001
EXPOSE 8000 50051 50052
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"]
ENTRYPOINT ["tuijian", "serve"]
CMD ["--role", "api"]
"""


def _k8s_checkers() -> dict[str, Callable[[list[Doc]], list[str]]]:
    return {
        "resources": check_resources,
        "probes": lambda d: check_probes(d, PROBE_PATHS),
        "services": check_services,
        "secret_env": check_secret_env,
        "config_refs": check_config_refs,
        "dev_mode": check_dev_mode,
        "command_role": lambda d: check_command_role(d, ["tuijian", "serve"], []),
        "pod_security": check_pod_security,
        "volumes": check_volumes,
        "namespaces": check_namespaces,
    }


def test_checkers_accept_the_minimal_manifests() -> None:
    """The baseline of the broken cases is itself clean, so each case fails for its one fault."""
    docs = _minimal_manifests()
    for name, checker in _k8s_checkers().items():
        assert checker(docs) == [], f"check {name} rejects the minimal manifests"
    _assert_clean(check_dockerfile(parse_dockerfile(_GOOD_DOCKERFILE), "2.13.0"))


def _api(docs: list[Doc]) -> Doc:
    return containers(docs[4])[0]


def _recall(docs: list[Doc]) -> Doc:
    return containers(docs[5])[0]


def _secret_literal(docs: list[Doc]) -> None:
    entry = next(e for e in _api(docs)["env"] if e["name"] == "TUIJIAN_SECRET")
    entry.pop("valueFrom")
    entry["value"] = "hunter2"


BROKEN: list[tuple[str, str, Callable[[list[Doc]], None], str]] = [
    ("no limits", "resources", lambda d: _api(d)["resources"].pop("limits"),
     "no resources.limits.cpu"),
    ("request above limit", "resources",
     lambda d: _api(d)["resources"]["requests"].update(cpu="2"), "exceeds limits.cpu"),
    ("bad quantity", "resources",
     lambda d: _api(d)["resources"]["limits"].update(memory="lots"), "not a Kubernetes quantity"),
    ("probe on an unserved path", "probes",
     lambda d: _api(d)["readinessProbe"]["httpGet"].update(path="/health"), "GET /health "),
    ("no liveness probe", "probes", lambda d: _api(d).pop("livenessProbe"), "no livenessProbe"),
    ("no startup probe on a gRPC role", "probes", lambda d: _recall(d).pop("startupProbe"),
     "no startupProbe"),
    ("gRPC probe on the wrong port", "probes",
     lambda d: _recall(d)["livenessProbe"]["grpc"].update(port=50052), "grpc port 50052"),
    ("HTTP probe on an undeclared port name", "probes",
     lambda d: _api(d)["livenessProbe"]["httpGet"].update(port="web"), "port 'web'"),
    ("Service selects nothing", "services",
     lambda d: d[6]["spec"]["selector"].update({ROLE_LABEL: "apy"}), "matches no Deployment"),
    ("Service targets an undeclared port name", "services",
     lambda d: d[6]["spec"]["ports"][0].update(targetPort="https"), "targetPort 'https'"),
    ("Service targets an undeclared port number", "services",
     lambda d: d[7]["spec"]["ports"][0].update(targetPort=50052), "targetPort 50052"),
    ("secret as a literal", "secret_env", _secret_literal, "literal value"),
    ("secret key not in the Secret", "secret_env",
     lambda d: _api(d)["env"][0]["valueFrom"]["secretKeyRef"].update(key="nope"),
     "key 'nope'"),
    ("secret in the ConfigMap", "secret_env",
     lambda d: d[1]["data"].update(TUIJIAN_READ_KEY="abc"), "must not be in a ConfigMap"),
    ("dev mode on", "dev_mode", lambda d: d[1]["data"].update(TUIJIAN_DEV_MODE="true"),
     "TUIJIAN_DEV_MODE is 'true'"),
    ("dev mode on through env", "dev_mode",
     lambda d: _api(d)["env"].append({"name": "TUIJIAN_DEV_MODE", "value": "1"}),
     "TUIJIAN_DEV_MODE is '1'"),
    ("unquoted bool in a ConfigMap", "config_refs",
     lambda d: d[1]["data"].update(TUIJIAN_DEV_MODE=False), "must be quoted strings"),
    ("wrong role", "command_role", lambda d: _api(d)["args"].__setitem__(1, "rank"),
     "--role 'rank'"),
    ("not serve", "command_role", lambda d: _api(d).update(command=["tuijian", "run"]),
     "expected `tuijian serve"),
    ("localhost bind", "command_role", lambda d: _api(d)["args"].__setitem__(3, "127.0.0.1"),
     "--host '127.0.0.1'"),
    ("root allowed", "pod_security",
     lambda d: pod_spec(d[4])["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
    ("writable root", "pod_security",
     lambda d: _api(d)["securityContext"].pop("readOnlyRootFilesystem"),
     "readOnlyRootFilesystem"),
    ("no grace period", "pod_security",
     lambda d: pod_spec(d[5]).pop("terminationGracePeriodSeconds"),
     "terminationGracePeriodSeconds"),
    ("api /data on a PVC", "volumes",
     lambda d: pod_spec(d[4])["volumes"].__setitem__(
         0, {"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}}), "emptyDir"),
    ("recall PVC missing", "volumes",
     lambda d: pod_spec(d[5])["volumes"][0]["persistentVolumeClaim"].update(claimName="x"),
     "PVC 'x'"),
    ("wrong namespace", "namespaces", lambda d: d[6]["metadata"].update(namespace="default"),
     "Service/api: metadata.namespace"),
]


@pytest.mark.parametrize(("checker", "mutate", "expected"),
                         [pytest.param(c, m, e, id=i) for i, c, m, e in BROKEN])
def test_checker_reports_broken_manifest(
        checker: str, mutate: Callable[[list[Doc]], None], expected: str) -> None:
    docs = _minimal_manifests()
    mutate(docs)
    problems = _k8s_checkers()[checker](docs)
    assert any(expected in p for p in problems), (
        f"check {checker} did not report {expected!r}; it reported {problems}")


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("USER 10001", "USER root", "must not run as root"),
    ("USER 10001\n", "", "no USER"),
    ('ENTRYPOINT ["tuijian", "serve"]', "ENTRYPOINT tuijian serve", "not exec form"),
    ('ENTRYPOINT ["tuijian", "serve"]', 'ENTRYPOINT ["tuijian", "serve",]', "not exec form"),
    ("torch==2.13.0", "torch==2.12.0", "torch==2.12.0 in the Dockerfile"),
    ("torch==2.13.0", "torch", "not pinned"),
    ("--index-url https://download.pytorch.org/whl/cpu", "", "CPU index"),
    ("EXPOSE 8000 50051 50052", "EXPOSE 50051 50052", "EXPOSE lacks 8000"),
    ("FROM python:3.11-slim\n", "FROM python:3.12-slim\n", "python:3.11"),
    ("FROM python:3.11-slim\nUSER", "FROM python:3.11\nUSER", "python:3.11-slim"),
    ("urllib.request.urlopen('http://127.0.0.1:8000/healthz')", "curl -f localhost:8000/healthz",
     "curl"),
])
def test_checker_reports_broken_dockerfile(old: str, new: str, expected: str) -> None:
    assert old in _GOOD_DOCKERFILE, old
    broken = _GOOD_DOCKERFILE.replace(old, new, 1)
    problems = check_dockerfile(parse_dockerfile(broken), "2.13.0")
    assert any(expected in p for p in problems), (
        f"Dockerfile check did not report {expected!r}; it reported {problems}")


def test_checker_reports_kustomization_drift() -> None:
    problems = check_kustomization({"resources": ["a.yaml", "a.yaml", "gone.yaml"]},
                                   ["a.yaml", "b.yaml"])
    assert any("a.yaml twice" in p for p in problems), problems
    assert any("b.yaml is in deploy/k8s but not listed" in p for p in problems), problems
    assert any("gone.yaml, which is not in deploy/k8s" in p for p in problems), problems


def test_dockerfile_parser_joins_continuations_and_drops_comments() -> None:
    text = "# c\nFROM x\nRUN a \\\n  # inner comment\n  b \\\n\n  c\nUSER 1\n"
    assert parse_dockerfile(text) == [("FROM", "x"), ("RUN", "a b c"), ("USER", "1")]
    with pytest.raises(ValueError):
        parse_dockerfile("FROM x\nRUN a \\\n")
