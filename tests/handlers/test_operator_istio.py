"""Canary through a user's Istio VirtualService, driven by the real operator on the real API server
with Istio's CRDs: the weight is read back from the VirtualService before the rollout advances, and
deleting the ModelDeployment in the middle of the rollout gives the VirtualService back as the user
wrote it (the finalizer path). Istio's data plane does not run here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from harness.kube import KubeEnv
from mlrollout.api import names

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # not run: the control plane's kwok stages make pods ready
GROUP, PLURAL = "networking.istio.io", "virtualservices"
MANAGED_BY = f"{names.GROUP}/managed-by"


def user_vs(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "VirtualService",
        "metadata": {"name": "mesh-web", "namespace": namespace},
        "spec": {
            "hosts": ["ic"],
            "http": [
                {"name": "main", "retries": {"attempts": 2}, "route": [{"destination": {"host": "ic"}}]}
            ],
        },
    }


def vs_of(cluster: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = cluster.objects.get_namespaced_custom_object(  # type: ignore[assignment]
        GROUP, "v1", cluster.namespace, PLURAL, "mesh-web"
    )
    return found


def status_of(cluster: Cluster, md: str) -> dict[str, Any]:
    return (cluster.get_md(md) or {}).get("status") or {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_canary_through_a_virtualservice_and_delete_mid_rollout_gives_it_back(
    operator_factory: Callable[..., OperatorProcess],
    cluster: Cluster,
    registry: Registry,
    kube: KubeEnv,
    istio_crds: None,
) -> None:
    model = registry.register(unique("istio"), versions=2, alias="champion")
    registry.set_alias(model, "challenger", "1")
    kube.apply(user_vs(cluster.namespace))
    original = vs_of(cluster)
    operator_factory()
    cluster.create_md(
        "ic",
        {
            "model": {"name": model, "alias": "challenger"},
            "registry": {"trackingUri": registry.uri, "championAlias": "champion"},
            "serving": {"image": IMAGE, "replicas": 2},
            "traffic": {"istio": {"virtualService": "mesh-web", "routeName": "main"}},
            "strategy": {"canary": {"steps": [{"setWeight": 25}, {"pause": {}}]}},
        },
    )
    eventually(lambda: status_of(cluster, "ic").get("phase") == "Healthy", 120, "Healthy on version 1")
    assert vs_of(cluster)["metadata"]["annotations"][MANAGED_BY] == "ic"

    registry.set_alias(model, "challenger", "2")
    eventually(
        lambda: condition(status_of(cluster, "ic"), "Paused").get("reason") == "PausedAtStep",
        180,
        "the canary held at its pause",
    )
    assert status_of(cluster, "ic")["weights"] == {"stable": 75, "canary": 25}
    http = vs_of(cluster)["spec"]["http"]
    assert [e["name"] for e in http] == ["mlrollout-pin-0", "main"]
    assert [(d["destination"]["host"], d["weight"]) for d in http[1]["route"]] == [
        ("ic-stable", 75),
        ("ic-canary", 25),
    ]
    assert http[1]["retries"] == {"attempts": 2}

    cluster.delete_md("ic")
    eventually(lambda: cluster.get_md("ic") is None, 120, "the ModelDeployment gone (finalizer done)")
    back = vs_of(cluster)
    assert back["spec"] == original["spec"]
    assert MANAGED_BY not in (back["metadata"].get("annotations") or {})
