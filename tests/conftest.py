"""Session fixtures for the real parts: control plane + pod runner, Prometheus, MLflow.

Nothing starts unless a test asks for it, so unit tests stay fast. Every process is stopped by
its PID at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.controlplane import ControlPlane, bin_dir
from harness.kube import KubeEnv, external_kubeconfig
from harness.procs import HarnessError
from harness.services import MLflowServer, Prometheus


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlrollout")


def _start(factory):  # type: ignore[no-untyped-def]
    try:
        return factory()
    except HarnessError as e:
        pytest.fail(f"harness: {e}", pytrace=False)


@pytest.fixture(scope="session")
def prometheus(session_dir: Path) -> Iterator[Prometheus]:
    prom = _start(lambda: Prometheus(session_dir / "prometheus").start())
    yield prom
    prom.stop()


@pytest.fixture(scope="session")
def mlflow_server(session_dir: Path) -> Iterator[MLflowServer]:
    server = _start(lambda: MLflowServer(session_dir / "mlflow").start())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kube(session_dir: Path) -> Iterator[KubeEnv]:
    ext = external_kubeconfig()
    if ext:
        yield KubeEnv(kubeconfig=ext, bin_dir=_start(bin_dir), external=True)
        return
    from harness.runner import PodRunner  # needs the kubernetes client, like the tests that use it

    cp = _start(lambda: ControlPlane(session_dir / "cluster").start())
    runner = PodRunner(
        str(cp.kubeconfig),
        session_dir / "pods",
        api_port=cp.api_port,
        scrape_file=session_dir / "prometheus" / "targets-runner.json",
    ).start()
    try:
        yield KubeEnv(kubeconfig=str(cp.kubeconfig), bin_dir=cp.bins)
    finally:
        runner.stop()
        cp.stop()


@pytest.fixture(scope="session")
def crd_installed(kube: KubeEnv) -> str:
    """The ModelDeployment CRD from crds/, applied once and Established."""
    crd = Path(__file__).resolve().parent.parent / "crds" / "mlrollout.io_modeldeployments.yaml"
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd), check=True)
    kube.wait_established("modeldeployments.mlrollout.io")
    return str(crd)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """One Docker engine for the session; container tests skip, with dockerd's log, when it cannot start."""
    from harness.docker_engine import EngineUnavailable, start_engine

    try:
        engine = start_engine()
    except EngineUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc}")
    yield engine
    engine.stop()


@pytest.fixture
def namespace(kube: KubeEnv) -> Iterator[str]:
    name = kube.create_namespace()
    yield name
    kube.delete_namespace(name)
