"""Helpers for the packaging tests: rendering the chart, validating with kubeconform against schemas
generated from a real API server's OpenAPI document, and service-account kubeconfigs."""

from __future__ import annotations

import base64
import contextlib
import copy
import importlib.util
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from harness.procs import Proc, free_port

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mlrollout"
MANIFESTS = ROOT / "manifests"
EXAMPLES = MANIFESTS / "examples"
CRD_FILE = ROOT / "crds" / "mlrollout.io_modeldeployments.yaml"
DEFS = "#/definitions/"

Obj = dict[str, Any]


@cache
def sync_module() -> ModuleType:
    """charts/sync.py, the one generator of the CRD copies and manifests/operator.yaml."""
    spec = importlib.util.spec_from_file_location("mlrollout_charts_sync", ROOT / "charts" / "sync.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@cache
def tools_dir() -> Path:
    """helm, kubeconform, kubectl: MLROLLOUT_BIN_DIR, else the harness's build cache (built if missing)."""
    env = os.environ.get("MLROLLOUT_BIN_DIR")
    if env and all((Path(env) / b).exists() for b in ("helm", "kubeconform", "kubectl")):
        return Path(env)
    from harness.controlplane import bin_dir

    return bin_dir()


def run(
    argv: list[str],
    *,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, capture_output=True, text=True, input=input, env=env, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def helm(
    *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return run([str(tools_dir() / "helm"), *args], env=env, check=check, timeout=timeout)


def render(*values: str, namespace: str = "mlr", release: str = "rel", include_crds: bool = False) -> str:
    """helm template with --set values."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    for v in values:
        args += ["--set", v]
    return helm(*args).stdout


def docs(text: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o.get("kind") == kind]


def pod_specs(objs: Iterable[Obj]) -> list[Obj]:
    out = []
    for o in objs:
        spec = o.get("spec", {})
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
            out.append(spec["template"]["spec"])
        elif o["kind"] == "CronJob":
            out.append(spec["jobTemplate"]["spec"]["template"]["spec"])
        elif o["kind"] == "Pod":
            out.append(spec)
    return out


# -- kubeconform schemas from the API server's own OpenAPI v2 document -----------------------------


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(DEFS):
            found.add(ref[len(DEFS) :])
        for v in node.values():
            found |= _refs(v)
    elif isinstance(node, list):
        for v in node:
            found |= _refs(v)
    return found


def _closure(defs: dict[str, Any], root: str) -> set[str]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        todo.extend(_refs(defs[name]))
    return seen


def _strict(node: Any) -> Any:
    """What kubectl's client-side validation and kubeconform's -strict schemas do: objects with known
    properties reject unknown ones; int-or-string and quantities accept both JSON types."""
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    out = {k: _strict(v) for k, v in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def schema_file_name(group: str, version: str, kind: str) -> str:
    """Matches SCHEMA_LOCATION below (kubeconform's Group is the version for the core group)."""
    return f"{kind.lower()}_{group or version}_{version}.json"


def write_kubeconform_schemas(openapi_v2: Obj, out: Path) -> int:
    """One standalone strict JSON schema per kind the API server serves, built from its /openapi/v2."""
    defs: dict[str, Any] = openapi_v2["definitions"]
    strict_defs = {name: _strict(d) for name, d in defs.items()}
    strict_defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    }
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            schema = copy.deepcopy(strict_defs[name])
            # OpenAPI v2 schemas are draft 4 (exclusiveMinimum is a boolean there).
            schema["$schema"] = "http://json-schema.org/draft-04/schema#"
            schema["definitions"] = {n: strict_defs[n] for n in _closure(defs, name)}
            path = out / schema_file_name(gvk.get("group", ""), gvk["version"], gvk["kind"])
            path.write_text(json.dumps(schema))
            written += 1
    return written


def schema_location(schema_dir: Path) -> str:
    return str(schema_dir) + "/{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json"


def kubeconform(text: str, schema_dir: Path, *extra: str) -> Obj:
    """Validate YAML with kubeconform, strict, offline, against schema_dir only. Returns its JSON summary;
    fails on any invalid, error or skipped resource unless told to skip a kind with -skip."""
    proc = run(
        [
            str(tools_dir() / "kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-schema-location",
            schema_location(schema_dir),
            *extra,
            "-",
        ],
        input=text,
        check=False,
    )
    try:
        report: Obj = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(
            f"kubeconform printed no JSON ({proc.returncode}): {proc.stdout}\n{proc.stderr}"
        ) from e
    bad = [r for r in report.get("resources", []) if r.get("status") not in ("statusValid", "statusSkipped")]
    assert proc.returncode == 0 and not bad, json.dumps(report, indent=1)
    return report


# -- clusters -----------------------------------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as e:  # a transient API error counts as "not yet"
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def service_account_kubeconfig(
    admin_kubeconfig: str, namespace: str, sa: str, out: Path, kubectl: Path
) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount with a token from the TokenRequest API."""
    token = run(
        [
            str(kubectl),
            f"--kubeconfig={admin_kubeconfig}",
            "-n",
            namespace,
            "create",
            "token",
            sa,
            "--duration=1h",
        ]
    ).stdout.strip()
    cfg = yaml.safe_load(Path(admin_kubeconfig).read_text())
    ctx_name = cfg.get("current-context") or cfg["contexts"][0]["name"]
    ctx = next(c for c in cfg["contexts"] if c["name"] == ctx_name)["context"]
    cluster = copy.deepcopy(next(c for c in cfg["clusters"] if c["name"] == ctx["cluster"]))
    ca_file = cluster["cluster"].pop("certificate-authority", None)
    if ca_file:  # self-contained, so that it also works inside a container
        ca_path = Path(ca_file) if Path(ca_file).is_absolute() else Path(admin_kubeconfig).parent / ca_file
        cluster["cluster"]["certificate-authority-data"] = base64.b64encode(ca_path.read_bytes()).decode()
    sa_cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sa",
        "clusters": [cluster],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [
            {"name": "sa", "context": {"cluster": cluster["name"], "user": "sa", "namespace": namespace}}
        ],
    }
    out.write_text(yaml.safe_dump(sa_cfg))
    out.chmod(0o600)
    return out


def deployment_env(deployment: Obj) -> dict[str, str]:
    """The operator container's plain env values (fieldRefs resolved the way the kubelet would)."""
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[e["name"]] = deployment["metadata"]["namespace"]
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[e["name"]] = deployment["metadata"]["name"] + "-local"
    return env


@contextlib.contextmanager
def local_operator(kubeconfig: Path, deployment: Obj, workdir: Path) -> Iterator[Proc]:
    """Runs `mlrollout-operator` here, authenticated by `kubeconfig` (a ServiceAccount token), with the
    env the installed Deployment gives its container; ready when its /healthz answers."""
    exe = ROOT / ".venv" / "bin" / "mlrollout-operator"
    if not exe.exists():
        exe = Path(shutil.which("mlrollout-operator") or exe)
    port = free_port()
    env = dict(os.environ)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.update(deployment_env(deployment))
    env.update(
        KUBECONFIG=str(kubeconfig),
        HOME=str(workdir),
        MLROLLOUT_HEALTH_HOST="127.0.0.1",
        MLROLLOUT_HEALTH_PORT=str(port),
        MLROLLOUT_HEARTBEAT_SECONDS="1",
    )
    proc = Proc("mlrollout-operator", [str(exe)], workdir / "operator.log", env=env, cwd=str(workdir)).start()
    try:
        proc.wait_ready(lambda: _healthy(port), timeout=60)
        yield proc
    finally:
        proc.stop()


def _healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
        return bool(r.status == 200)


def require_harness_nodes(external: bool) -> None:
    """Tests whose operator pod becomes Ready through kwok (an image no registry has) or through the
    harness's pod runner (mlrollout.local/ images) cannot run on a full cluster from KUBECONFIG."""
    if external:
        import pytest

        pytest.skip("needs the harness's kwok nodes and pod runner (not a cluster from KUBECONFIG)")


def rbac_denials(log: str) -> list[str]:
    """Log lines where the API server refused the operator. A namespace that another test is
    tearing down refuses new content too ("being terminated"): that is not a missing permission."""
    return [line for line in log.splitlines() if "orbidden" in line and "being terminated" not in line]
