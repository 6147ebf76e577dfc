"""The operator image: built with a real Docker engine (serving-image/operator.Dockerfile, base image
from Debian packages since no registry can be pulled from), then run the way the chart runs it:
non-root, read-only root filesystem, no capabilities; it serves /healthz and reconciles an example on
the test control plane with the chart ServiceAccount's token."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from charts.chart_support import (
    CHART,
    EXAMPLES,
    ROOT,
    deployment_env,
    docs,
    rbac_denials,
    render,
    service_account_kubeconfig,
    wait_for,
)
from harness.kube import KubeEnv
from harness.procs import free_port

IMAGE = "mlrollout-operator:test"
DOCKERFILE = ROOT / "serving-image" / "operator.Dockerfile"

pytestmark = pytest.mark.container


def container_logs(engine: Any, name: str) -> str:
    proc = subprocess.run(["docker", "--host", engine.host, "logs", name], capture_output=True, text=True)
    return proc.stdout + proc.stderr


def pip_build_args() -> list[str]:
    """Pass the builder's package index on to pip inside the build, when one is configured."""
    args = []
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        value = os.environ.get(var)
        if not value:
            key = f"global.{var[4:].lower().replace('_', '-')}"
            out = subprocess.run(["pip", "config", "get", key], capture_output=True, text=True, check=False)
            value = out.stdout.strip() if out.returncode == 0 else ""
        if value:
            args += ["--build-arg", f"{var}={value}"]
    return args


def test_dockerfile_defaults_to_python_slim() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert "USER 65532:65532" in text
    assert 'ENTRYPOINT ["mlrollout-operator"]' in text
    # The image's user is the one the chart's securityContext runs as.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == 65532


@pytest.fixture(scope="module")
def image(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    from harness.docker_engine import ensure_base_image

    base = ensure_base_image(docker_engine)
    ctx = tmp_path_factory.mktemp("operator-image-context")
    # Exactly what operator.Dockerfile.dockerignore lets through.
    shutil.copy(ROOT / "pyproject.toml", ctx)
    shutil.copy(ROOT / "README.md", ctx)
    shutil.copytree(
        ROOT / "operator", ctx / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    shutil.copy(DOCKERFILE, ctx / "Dockerfile")
    docker_engine.docker(
        "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", *pip_build_args(),
        "-t", IMAGE, str(ctx), timeout=1800,
    )  # fmt: skip
    return IMAGE


def test_image_runs_as_non_root(image: str, docker_engine: Any) -> None:
    cfg = json.loads(docker_engine.docker("image", "inspect", image))[0]["Config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["mlrollout-operator"]
    out = docker_engine.docker(
        "run", "--rm", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--entrypoint", "python3", image, "-c",
        "import os, mlrollout.handlers.wiring; print(os.getuid(), os.getgid())",
    )  # fmt: skip
    assert out.split() == ["65532", "65532"]


@pytest.mark.integration
def test_container_reconciles_an_example(
    image: str, docker_engine: Any, kube: KubeEnv, crd: str, namespace: str, tmp_path: Path
) -> None:
    # The chart's ServiceAccount and RBAC, namespaced to this test's namespace; the operator itself runs in
    # the container, locked down the way the chart's securityContext locks it down.
    objs = docs(render(f"watchNamespaces={{{namespace}}}", namespace=namespace, release="img"))
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs), check=True)
    try:
        dep = next(o for o in objs if o["kind"] == "Deployment")
        cfg = service_account_kubeconfig(
            kube.kubeconfig, namespace, "img-mlrollout", tmp_path / "kubeconfig", kube.bin_dir / "kubectl"
        )
        cfg.chmod(0o644)  # read by uid 65532 in the container; a short-lived test token
        port = free_port()
        # Host network here, not a pod's: the health endpoint on loopback only.
        env = deployment_env(dep) | {"MLROLLOUT_HEALTH_PORT": str(port), "KUBECONFIG": "/kube/config",
                                     "MLROLLOUT_HEALTH_HOST": "127.0.0.1",
                                     "MLROLLOUT_HEARTBEAT_SECONDS": "1"}  # fmt: skip
        name = f"mlr-op-{port}"
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        docker_engine.docker(
            "run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,size=64m",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--memory", "512m",
            "-v", f"{cfg}:/kube/config:ro", *env_args, image,
        )  # fmt: skip
        try:

            def healthy() -> bool:
                running = docker_engine.docker("inspect", "-f", "{{.State.Running}}", name).strip()
                if running != "true":  # pytest.fail is not an Exception: wait_for does not swallow it
                    pytest.fail(
                        f"the operator container exited:\n{container_logs(docker_engine, name)[-4000:]}"
                    )
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return bool(r.status == 200)

            wait_for("the operator container's /healthz", healthy, timeout=90)
            md = yaml.safe_load((EXAMPLES / "shadow.yaml").read_text())["metadata"]["name"]
            kube.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "shadow.yaml"), check=True)

            def reconciled() -> dict[str, Any] | None:
                out = kube.kubectl("get", "modeldeployment", md, "-n", namespace, "-o", "json", check=True)
                st: dict[str, Any] = json.loads(out.stdout).get("status") or {}
                return st if st.get("phase") and st.get("observedGeneration") else None

            try:
                wait_for("the containerised operator to reconcile the example", reconciled, timeout=90)
            except AssertionError as e:
                raise AssertionError(
                    f"{e}\n{docker_engine.docker('logs', name, check=False)[-4000:]}"
                ) from None
            logs = container_logs(docker_engine, name)
            assert not rbac_denials(logs), logs[-4000:]
        finally:
            docker_engine.docker("rm", "-f", name, check=False)
            time.sleep(0.5)
    finally:
        cluster_scoped = [o for o in objs if o["kind"].startswith("Cluster")]
        kube.kubectl(
            "delete",
            "-f",
            "-",
            "--ignore-not-found",
            "--wait=false",
            input=yaml.safe_dump_all(cluster_scoped),
        )
