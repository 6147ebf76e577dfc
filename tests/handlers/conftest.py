"""Fixtures for running the real operator as a subprocess against the harness's control plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry

from harness.kube import KubeEnv
from harness.procs import tail


@pytest.fixture
def operator_factory(
    kube: KubeEnv, namespace: str, crd_installed: str, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(**env: str) -> OperatorProcess:
        op = OperatorProcess(kube, namespace, tmp_path / "operator.log", extra_env=dict(env)).start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
    if started:
        print(tail(tmp_path / "operator.log", 60))


@pytest.fixture
def registry(mlflow_server: Any) -> Registry:
    return Registry(mlflow_server.uri)


@pytest.fixture
def cluster(kube: KubeEnv, namespace: str) -> Cluster:
    return Cluster(kube, namespace)
