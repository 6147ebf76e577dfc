"""Event-driven reconciles on the real control plane (issue 14): with the slow resync set to ten
minutes, a child's change and an MLflow webhook are acted on at once, and an idle ModelDeployment
is never written to."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from mlrollout.api import names
from mlrollout.handlers import endpoints, metric_names, webhooks

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # not run: kwok makes the pods ready
SLOW = "600"  # the resync: anything these tests see within a minute was driven by an event
SECRET = "webhook-secret-" + uuid.uuid4().hex[:8]
EVENT_DRIVEN = {"MLROLLOUT_RESYNC_SECONDS": SLOW, "MLROLLOUT_REGISTRY_RESYNC_SECONDS": SLOW}


def status_of(cluster: Cluster, md: str) -> dict[str, Any]:
    return (cluster.get_md(md) or {}).get("status") or {}


def spec(
    model: str, uri: str, alias: str = "champion", steps: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "model": {"name": model, "alias": alias},
        "registry": {"trackingUri": uri, "championAlias": "champion"},
        "serving": {"image": IMAGE, "replicas": 1},
        "strategy": {"canary": {"steps": steps or [{"setWeight": 50}]}},
    }


def reconciles(op: OperatorProcess) -> float:
    return op.metric(metric_names.RECONCILES + "_total", result="ok") + op.metric(
        metric_names.RECONCILES + "_total", result="error"
    )


def test_a_child_change_is_acted_on_at_once_and_an_idle_object_is_left_alone(
    operator_factory: Callable[..., OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    model = registry.register(unique("events"), versions=1, alias="champion")
    op = operator_factory(**EVENT_DRIVEN)
    cluster.create_md("ev", spec(model, registry.uri))
    eventually(lambda: status_of(cluster, "ev").get("phase") == "Healthy", 120, "Healthy on version 1")

    # Idle: no tick, no status write, no child write over a window of many old heartbeats.
    time.sleep(3)  # the last requeue (if any) of the way to Healthy has run
    before = cluster.get_md("ev") or {}
    deployments_before = {
        d["metadata"]["name"]: d["metadata"]["resourceVersion"] for d in cluster.deployments("ev")
    }
    ticks_before = reconciles(op)
    assert ticks_before > 0  # the counter is real: reaching Healthy took reconciles
    time.sleep(20)
    after = cluster.get_md("ev") or {}
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], (
        "idle object written"
    )
    assert {d["metadata"]["name"]: d["metadata"]["resourceVersion"] for d in cluster.deployments("ev")} == (
        deployments_before
    )
    assert reconciles(op) == ticks_before, "an idle object was reconciled without any event"

    # A child deleted by hand: its watch event, not the ten-minute resync, brings it back.
    woken_before = op.metric(metric_names.WAKEUPS + "_total", cause=metric_names.WAKE_CHILD)
    [stable] = cluster.deployments("ev")
    apps = client.AppsV1Api(cluster.kube.api_client())
    apps.delete_namespaced_deployment(stable["metadata"]["name"], cluster.namespace)

    def recreated() -> bool:
        found = cluster.deployments("ev")
        return bool(found) and found[0]["metadata"]["uid"] != stable["metadata"]["uid"]

    eventually(recreated, 60, "the serving Deployment re-created after its deletion")
    assert op.metric(metric_names.WAKEUPS + "_total", cause=metric_names.WAKE_CHILD) > woken_before


def test_an_mlflow_webhook_moves_a_canary_at_once_and_a_forged_one_moves_nothing(
    operator_factory: Callable[..., OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    from mlflow import MlflowClient

    model = registry.register(unique("hook"), versions=2, alias="champion")
    registry.set_alias(model, "challenger", "1")
    op = operator_factory(**EVENT_DRIVEN, MLROLLOUT_WEBHOOK_SECRET=SECRET)
    url = f"http://127.0.0.1:{op.port}{endpoints.WEBHOOK_PATH}"
    mlflow = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    hook = mlflow.create_webhook(
        name=unique("mlrollout"),
        url=url,
        events=["model_version_alias.created", "model_version.created"],
        secret=SECRET,
    )
    try:
        steps = [{"setWeight": 50}, {"pause": {}}]
        cluster.create_md("wh", spec(model, registry.uri, alias="challenger", steps=steps))
        eventually(lambda: status_of(cluster, "wh").get("phase") == "Healthy", 120, "Healthy on version 1")

        # A forged delivery (wrong secret, MLflow's format) is refused and wakes nothing.
        woken = op.metric(metric_names.WAKEUPS + "_total", cause=metric_names.WAKE_WEBHOOK)
        body = json.dumps(
            {
                "entity": "model_version_alias",
                "action": "created",
                "data": {"name": model, "alias": "challenger"},
            }
        ).encode()
        now = str(int(time.time()))
        forged = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                webhooks.DELIVERY_ID_HEADER: "d-forged",
                webhooks.TIMESTAMP_HEADER: now,
                webhooks.SIGNATURE_HEADER: webhooks.sign("guessed", "d-forged", now, body),
            },
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=10)
        assert refused.value.code == 401
        assert op.metric(metric_names.WAKEUPS + "_total", cause=metric_names.WAKE_WEBHOOK) == woken
        assert op.metric(metric_names.WEBHOOKS + "_total", result="rejected") == 1

        # The real server's delivery: the alias moved, the canary starts long before the resync.
        lookups = op.metric(metric_names.REGISTRY_LOOKUPS)
        time.sleep(2)  # past MLflow's cache of webhooks per event (MLFLOW_WEBHOOK_CACHE_TTL=1 here)
        registry.set_alias(model, "challenger", "2")
        eventually(
            lambda: status_of(cluster, "wh").get("canaryVersion") == "2", 60, "the canary of version 2"
        )
        assert op.metric(metric_names.WEBHOOKS + "_total", result="accepted") >= 1
        assert op.metric(metric_names.WAKEUPS + "_total", cause=metric_names.WAKE_WEBHOOK) > woken
        assert op.metric(metric_names.REGISTRY_LOOKUPS) > lookups
        # the canary is the operator's doing, on the real objects
        assert {d["metadata"]["labels"][names.LABEL_TRACK] for d in cluster.deployments("wh")} == {
            "stable",
            "canary",
        }
    finally:
        mlflow.delete_webhook(hook.webhook_id)
