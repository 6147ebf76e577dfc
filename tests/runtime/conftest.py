"""Runtime fixtures: real models saved by MLflow, in-process apps, server processes, a Docker engine."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import runtime_models as models
from starlette.testclient import TestClient

from harness.procs import Proc, free_port
from mlrollout.runtime.app import create_app
from mlrollout.runtime.config import Settings


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def rf_path(model_dir: Path) -> Path:
    return models.forest(model_dir / "rf")


@pytest.fixture(scope="session")
def rf_reg_path(model_dir: Path) -> Path:
    return models.forest(model_dir / "rf-reg", regression=True)


@pytest.fixture(scope="session")
def lr_path(model_dir: Path) -> Path:
    return models.logistic(model_dir / "lr")


@pytest.fixture(scope="session")
def pickled_path(model_dir: Path) -> Path:
    return models.logistic(model_dir / "lr-pickle", fmt="cloudpickle")


@pytest.fixture(scope="session")
def mixed_path(model_dir: Path) -> Path:
    return models.mixed(model_dir / "mixed")


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[AppFactory]:
    """Start the ASGI app in-process (lifespan included); closed at the end of the test."""
    clients: list[TestClient] = []

    def make(uri: Path | str, **kw: Any) -> TestClient:
        kw.setdefault("trusted_types", (models.TREE,))
        kw.setdefault("cache_dir", str(tmp_path / "cache"))
        kw.setdefault("max_delay_ms", 0.0)
        c = TestClient(create_app(Settings(model_uri=str(uri), **kw)), raise_server_exceptions=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def rf_client(make_client: AppFactory, rf_path: Path) -> TestClient:
    return make_client(rf_path, model_name="rf", model_version="3")


def runtime_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlrollout.runtime", *args]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[str, Proc]]]:
    """Run `mlrollout-runtime` as a real process on 127.0.0.1 and a free port; stopped by PID."""
    procs: list[Proc] = []

    # 180 s: imports and model loads of several processes share two cores while modules run side by side.
    def start(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> tuple[str, Proc]:
        import httpx

        port = free_port()
        e = dict(os.environ, MLROLLOUT_HOST="127.0.0.1", MLROLLOUT_CACHE_DIR=str(tmp_path / f"c{port}"))
        e.update(env or {})
        p = Proc(
            f"runtime-{port}", runtime_cmd(*args, "--port", str(port)), tmp_path / f"rt-{port}.log", env=e
        ).start()
        procs.append(p)
        url = f"http://127.0.0.1:{port}"
        p.wait_ready(lambda: httpx.get(url + "/ping", timeout=2).status_code == 200, timeout=timeout)
        return url, p

    yield start
    for p in procs:
        p.stop()
