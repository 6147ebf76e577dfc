"""Canary through a user's HTTPRoute, driven by the real operator with a real Gateway (Traefik)
reporting the route's status: each step's weight is read back from the route (Accepted at its
generation) before the rollout advances, promotion puts the rule back on the live Service, and
deleting the ModelDeployment gives the route back as the user wrote it. A route that is missing is
named in a condition and nothing is deployed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from harness.kube import KubeEnv
from mlrollout.api import names

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # not run: the control plane's kwok stages make pods ready
GROUP, PLURAL = "gateway.networking.k8s.io", "httproutes"
MANAGED_BY = f"{names.GROUP}/managed-by"


def spec(model: str, uri: str, route: str) -> dict[str, Any]:
    return {
        "model": {"name": model, "alias": "challenger"},
        "registry": {"trackingUri": uri, "championAlias": "champion"},
        "serving": {"image": IMAGE, "replicas": 2},
        "traffic": {"gatewayAPI": {"httpRoute": route}},
        "strategy": {
            "canary": {
                "steps": [{"setWeight": 30}, {"pause": {"duration": "1s"}}, {"setWeight": 60}, {"pause": {}}]
            }
        },
    }


def user_route(namespace: str, parent: dict[str, str], service: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "parentRefs": [parent],
            "hostnames": [f"op.{namespace}.example.test"],
            "rules": [{"backendRefs": [{"name": service, "port": 80}]}],
        },
    }


def route_of(cluster: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = cluster.objects.get_namespaced_custom_object(  # type: ignore[assignment]
        GROUP, "v1", cluster.namespace, PLURAL, "web"
    )
    return found


def weights_on(route: dict[str, Any]) -> dict[str, int]:
    [rule] = [r for r in route["spec"]["rules"] if not r.get("name")]
    return {ref["name"]: ref.get("weight", 1) for ref in rule["backendRefs"]}


def status_of(cluster: Cluster, md: str) -> dict[str, Any]:
    return (cluster.get_md(md) or {}).get("status") or {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_canary_through_an_httproute_moves_weights_promotes_and_gives_the_route_back(
    operator_factory: Callable[..., OperatorProcess],
    cluster: Cluster,
    registry: Registry,
    kube: KubeEnv,
    gateway: Any,
) -> None:
    started = time.monotonic()
    model = registry.register(unique("gw"), versions=2, alias="champion")
    registry.set_alias(model, "challenger", "1")
    kube.apply(user_route(cluster.namespace, gateway.parent_ref(), "gw"))
    original = route_of(cluster)
    operator_factory()
    cluster.create_md("gw", spec(model, registry.uri, "web"))
    eventually(lambda: status_of(cluster, "gw").get("phase") == "Healthy", 120, "Healthy on version 1")
    steady = route_of(cluster)
    assert weights_on(steady) == {"gw": 1} and steady["metadata"]["annotations"][MANAGED_BY] == "gw"

    registry.set_alias(model, "challenger", "2")
    seen: list[dict[str, int]] = []

    def held_at_last_step() -> bool:
        on_route = weights_on(route_of(cluster))
        if not seen or seen[-1] != on_route:
            seen.append(on_route)
        return condition(status_of(cluster, "gw"), "Paused").get("reason") == "PausedAtStep"

    eventually(held_at_last_step, 180, "the canary held at its manual pause")
    status = status_of(cluster, "gw")
    assert status["phase"] == "Progressing" and status["canaryVersion"] == "2"
    assert status["weights"] == {"stable": 40, "canary": 60}  # read back from the route, exact
    assert {"gw-stable": 70, "gw-canary": 30} in seen  # the first step went through the route
    route = route_of(cluster)
    assert weights_on(route) == {"gw-stable": 40, "gw-canary": 60}
    assert [r.get("name") for r in route["spec"]["rules"]] == ["mlrollout-pin-0", None]
    deployments = {d["metadata"]["labels"][names.LABEL_TRACK]: d for d in cluster.deployments("gw")}
    assert deployments["stable"]["spec"]["replicas"] == 2 and deployments["canary"]["spec"]["replicas"] == 2
    assert {s.metadata.name for s in cluster.services("gw")} >= {"gw", "gw-stable", "gw-canary"}

    request = {"id": "p-1", "action": "promote"}
    cluster.patch_md("gw", {"metadata": {"annotations": {names.ANNOTATION_REQUEST: json.dumps(request)}}})

    def promoted() -> bool:
        status = status_of(cluster, "gw")
        return status.get("stableVersion") == "2" and status.get("phase") == "Healthy"

    eventually(promoted, 180, "version 2 promoted and Healthy")
    assert registry.alias(model, "champion") == "2"
    eventually(lambda: weights_on(route_of(cluster)) == {"gw": 1}, 60, "the rule back on the live Service")
    assert [r.get("name") for r in route_of(cluster)["spec"]["rules"]] == [None]
    eventually(
        lambda: {d["metadata"]["labels"][names.LABEL_TRACK] for d in cluster.deployments("gw")} == {"stable"},
        60,
        "the canary track removed",
    )

    cluster.delete_md("gw")
    eventually(lambda: cluster.get_md("gw") is None, 120, "the ModelDeployment gone (finalizer done)")
    back = route_of(cluster)
    assert back["spec"] == original["spec"]
    assert MANAGED_BY not in (back["metadata"].get("annotations") or {})
    print(f"\nweights seen on the route: {seen}; wall {time.monotonic() - started:.1f}s")


def test_a_missing_route_is_named_and_nothing_is_deployed(
    operator_factory: Callable[..., OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    model = registry.register(unique("gwbad"), versions=1, alias="champion")
    registry.set_alias(model, "challenger", "1")
    operator_factory()
    cluster.create_md("nogw", spec(model, registry.uri, "nowhere"))
    where = f"HTTPRoute {cluster.namespace}/nowhere (spec.traffic.gatewayAPI.httpRoute) not found"

    def named() -> bool:
        degraded = condition(status_of(cluster, "nogw"), "Degraded")
        return degraded.get("reason") == "TrafficRouteProblem" and degraded.get("message") == where

    eventually(named, 60, "a Degraded condition naming the route")
    assert ("Warning", "TrafficRouteProblem", where) in cluster.events("nogw")
    assert cluster.deployments("nogw") == [] and cluster.services("nogw") == []
