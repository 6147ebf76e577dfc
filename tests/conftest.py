"""Session fixtures for the real parts: pod network, control plane + pod runner, Prometheus, MLflow, S3.

Nothing starts unless a test asks for it, so unit tests stay fast. Every process is stopped by
its PID at the end of the session, and the pod network is removed after them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from harness import ordering
from harness.controlplane import ControlPlane, bin_dir
from harness.kube import KubeEnv, external_kubeconfig
from harness.podnet import PodNetwork
from harness.procs import HarnessError
from harness.s3 import S3Server
from harness.services import MLflowServer, Prometheus

# Property tests check properties, not speed: modules run side by side on two cores with real
# control planes, where a 200 ms deadline or input-generation speed only measures the neighbours.
settings.register_profile("mlrollout", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("mlrollout")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("MLROLLOUT_RECORD_DURATIONS") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(ordering.DurationRecorder(), "mlrollout-durations")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = ordering.longest_first(items, ordering.load_costs())


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return ordering.module_scheduler(config, log) if config.getoption("dist") == "loadfile" else None


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlrollout")


def _start(factory):  # type: ignore[no-untyped-def]
    try:
        return factory()
    except HarnessError as e:
        pytest.fail(f"harness: {e}", pytrace=False)


@pytest.fixture(scope="session")
def pod_network() -> Iterator[PodNetwork | None]:
    """This run's pod network (None on an external cluster, which brings its own)."""
    if external_kubeconfig():
        yield None
        return
    net = _start(PodNetwork.create)
    try:
        yield net
    finally:
        net.destroy()


def _host(net: PodNetwork | None) -> str:
    """Where host services listen: the pod network's host side, reachable from pods and host."""
    return net.host_ip if net else "127.0.0.1"


@pytest.fixture(scope="session")
def prometheus(session_dir: Path, pod_network: PodNetwork | None) -> Iterator[Prometheus]:
    prom = _start(lambda: Prometheus(session_dir / "prometheus", host=_host(pod_network)).start())
    yield prom
    prom.stop()


@pytest.fixture(scope="session")
def mlflow_server(session_dir: Path, pod_network: PodNetwork | None) -> Iterator[MLflowServer]:
    server = _start(lambda: MLflowServer(session_dir / "mlflow", host=_host(pod_network)).start())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(session_dir: Path, pod_network: PodNetwork | None) -> Iterator[S3Server]:
    """An S3-compatible server (moto) where holdouts live; reachable from executed pods too."""
    server = _start(lambda: S3Server(session_dir / "s3", host=_host(pod_network)).start())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kube(session_dir: Path, pod_network: PodNetwork | None) -> Iterator[KubeEnv]:
    ext = external_kubeconfig()
    if ext:
        yield KubeEnv(kubeconfig=ext, bin_dir=_start(bin_dir), external=True)
        return
    from harness.runner import PodRunner  # needs the kubernetes client, like the tests that use it

    cp = _start(lambda: ControlPlane(session_dir / "cluster", network=pod_network).start())
    runner = PodRunner(
        str(cp.kubeconfig),
        session_dir / "pods",
        api_port=cp.api_port,
        scrape_file=session_dir / "prometheus" / "targets-runner.json",
        network=pod_network,
    ).start()
    try:
        yield KubeEnv(kubeconfig=str(cp.kubeconfig), bin_dir=cp.bins, control_plane=cp)
    finally:
        runner.stop()
        cp.stop()


@pytest.fixture(scope="session")
def gateway(kube: KubeEnv) -> Iterator[Any]:
    """Traefik serving the Gateway API (harness.gateway.Gateway: `url`, `parent_ref()`), started
    on first use. On an external cluster: MLROLLOUT_GATEWAY_URL and MLROLLOUT_GATEWAY
    (namespace/name) describe the cluster's own Gateway, else the test is skipped."""
    from harness.gateway import ExternalGateway, Gateway

    if kube.control_plane is None:
        url, ref = os.environ.get("MLROLLOUT_GATEWAY_URL"), os.environ.get("MLROLLOUT_GATEWAY")
        if not (url and ref and "/" in ref):
            pytest.skip("external cluster: set MLROLLOUT_GATEWAY_URL and MLROLLOUT_GATEWAY=namespace/name")
        yield ExternalGateway(url, *ref.split("/", 1))
        return
    gw = _start(lambda: Gateway(kube.control_plane).start())
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def istio_crds(kube: KubeEnv) -> None:
    """Istio's real CRDs (its data plane does not run here): VirtualServices are stored and read back."""
    if kube.control_plane is None:
        if kube.kubectl("get", "crd", "virtualservices.networking.istio.io").returncode != 0:
            pytest.skip("external cluster without Istio's CRDs")
        return
    from harness.gateway import install_crds

    install_crds(kube.control_plane)


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
