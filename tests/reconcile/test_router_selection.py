"""The reconcile path picks the router the spec names (replica ratio when none)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.traffic.replica_ratio import ReplicaRatioRouter
from mlrollout.adapters.traffic.routes import GatewayApiRouter, IstioRouter
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.reconcile.loop import World


def spec(traffic: dict[str, Any] | None) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"name": "m", "version": "1"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "img:1"},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }
    return ModelDeploymentSpec.model_validate(body | ({"traffic": traffic} if traffic else {}))


@pytest.mark.parametrize(
    ("traffic", "router"),
    [
        (None, ReplicaRatioRouter),
        ({"replicaRatio": {}}, ReplicaRatioRouter),
        ({"gatewayAPI": {"httpRoute": "web"}}, GatewayApiRouter),
        ({"istio": {"virtualService": "web"}}, IstioRouter),
    ],
)
def test_router_follows_spec_traffic(traffic: dict[str, Any] | None, router: type) -> None:
    world = World(executor=KubeExecutor(client.ApiClient()), registry=lambda uri: None)  # type: ignore[arg-type,return-value]
    assert type(world.router(spec(traffic))) is router
    assert type(world.router(None)) is ReplicaRatioRouter
