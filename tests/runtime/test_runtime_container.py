"""The runtime image, built with a real Docker engine, run read-only as non-root on a model from a
real MLflow server; every endpoint called, /metrics scraped."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import runtime_models as models

from harness.docker_engine import ensure_base_image
from harness.procs import free_port

REPO = Path(__file__).resolve().parents[2]
IMAGE = "mlrollout-runtime:test"

# The first build downloads the runtime dependencies into the image (minutes); later builds hit the cache.
pytestmark = [pytest.mark.container, pytest.mark.services, pytest.mark.timeout(2400)]


def pip_build_args() -> list[str]:
    """Pass the builder's package index on to pip inside the build, when one is configured."""
    args = []
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        value = os.environ.get(var)
        if not value:
            out = subprocess.run(
                ["pip", "config", "get", f"global.{var[4:].lower().replace('_', '-')}"],
                capture_output=True,
                text=True,
                check=False,
            )
            value = out.stdout.strip() if out.returncode == 0 else ""
        if value:
            args += ["--build-arg", f"{var}={value}"]
    return args


@pytest.fixture(scope="module")
def image(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    base = ensure_base_image(docker_engine)
    ctx = tmp_path_factory.mktemp("image-context")
    shutil.copy(REPO / "pyproject.toml", ctx)
    shutil.copy(REPO / "README.md", ctx)
    shutil.copytree(REPO / "operator", ctx / "operator", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "serving-image" / "Dockerfile", ctx / "Dockerfile")
    docker_engine.docker(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base}",
        *pip_build_args(),
        "-t",
        IMAGE,
        str(ctx),
        timeout=1800,
    )
    return IMAGE


def test_image_serves_a_registered_model(image: str, docker_engine: Any, mlflow_server: Any) -> None:
    from test_runtime_loading import register_forest

    uri, version, _ = register_forest(mlflow_server.uri, f"container-{uuid.uuid4().hex[:6]}")
    name = uri.split("/")[1]
    port = free_port()
    cname = f"mlr-rt-{port}"
    docker_engine.docker(
        "run",
        "-d",
        "--name",
        cname,
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,size=512m",
        "--user",
        "65534:65534",
        "-e",
        f"MLFLOW_TRACKING_URI={mlflow_server.uri}",
        "-e",
        "MLROLLOUT_HOST=127.0.0.1",
        image,
        uri,
        "--port",
        str(port),
        "--workers",
        "2",
        "--trusted-types",
        models.TREE,
        "--track",
        "canary",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            state = docker_engine.docker("inspect", "-f", "{{.State.Running}}", cname).strip()
            assert state == "true", docker_engine.docker("logs", cname, check=False)
            time.sleep(1)
        else:
            pytest.fail("runtime container not ready:\n" + docker_engine.docker("logs", cname, check=False))
        user = docker_engine.docker("inspect", "-f", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", cname)
        assert user.split() == ["65534:65534", "true"]
        exercise_every_endpoint(url, name, version)
    finally:
        docker_engine.docker("rm", "-f", cname, check=False)


def exercise_every_endpoint(url: str, name: str, version: str) -> None:
    rows = models.data(3, seed=2)[0].to_numpy().tolist()
    with httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/ping").status_code == 200 and c.get("/health").status_code == 200
        assert c.get("/version").json()["model_version"] == version
        assert c.get("/v2").json()["name"] == "mlrollout"
        assert c.get("/v2/health/live").status_code == 200 and c.get("/v2/health/ready").status_code == 200
        assert c.get(f"/v2/models/{name}").json()["versions"] == [version]
        assert c.get(f"/v2/models/{name}/ready").status_code == 200
        r = c.post("/invocations", json={"dataframe_split": {"columns": models.COLUMNS, "data": rows}})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 3
        r2 = c.post(
            f"/v2/models/{name}/infer",
            json={
                "inputs": [
                    {"name": col, "shape": [3], "datatype": "FP64", "data": [row[i] for row in rows]}
                    for i, col in enumerate(models.COLUMNS)
                ]
            },
        )
        assert r2.json()["outputs"][0]["data"] == r.json()["predictions"]
        assert c.post("/invocations", json={"instances": [[1.0]]}).status_code == 400
        assert c.post("/v2/models/nope/infer", json={"inputs": []}).status_code == 404
        assert (
            c.post("/feedback", json={"request_id": r.headers["x-request-id"], "label": 1}).status_code == 200
        )
        assert "/invocations" in c.get("/openapi.json").json()["paths"]
        assert c.get("/config").json()["track"] == "canary"
        text = c.get("/metrics").text
    labels = f'model="{name}",track="canary",version="{version}"'
    assert f'mlrollout_requests_total{{code="200",{labels}}} 2.0' in text
    assert f'mlrollout_requests_total{{code="400",{labels}}} 1.0' in text
    assert f"mlrollout_model_ready{{{labels}}} 1.0" in text
    assert "mlrollout_request_duration_seconds_bucket" in text and "mlrollout_batch_size_bucket" in text
