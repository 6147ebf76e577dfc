"""The executor on the real control plane (issue 7 §2): it applies only what the operator owns.

An unchanged tick writes nothing; a Deployment that a HorizontalPodAutoscaler scales keeps the
HPA's replica count (the real HPA controller sets it here), and is in sync as the observer sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from harness.kube import KubeEnv
from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.cache import ChildCache
from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.reconcile.loop import hpa_scaled_tracks
from mlrollout.reconcile.observe import tracks

SPEC: dict[str, Any] = {
    "model": {"name": "m", "version": "1"},
    "registry": {"trackingUri": "http://mlflow.invalid:5000"},
    "serving": {"image": "example.invalid/runtime:1", "replicas": 1},
    "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
}


def wait_for(what: str, pred: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def owner(kube: KubeEnv, namespace: str, crd_installed: str) -> Owner:
    """A real ModelDeployment (no operator running): its children are not garbage-collected."""
    kube.apply(
        {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": "hpa"}, "spec": SPEC},
        namespace,
    )
    api = client.CustomObjectsApi(kube.api_client())
    md: Any = api.get_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, "hpa")
    return Owner("hpa", namespace, md["metadata"]["uid"])


def test_unchanged_ticks_write_nothing_and_an_hpa_keeps_its_replicas(kube: KubeEnv, owner: Owner) -> None:
    spec = ModelDeploymentSpec.model_validate(SPEC)
    ex = KubeExecutor(kube.api_client())
    apps = client.AppsV1Api(kube.api_client())
    name = names.serving_name(owner.name, names.TRACK_STABLE)

    def deployment() -> Any:
        return apps.read_namespaced_deployment(name, owner.namespace)

    def tick() -> list[dict[str, Any]]:
        """What the reconcile loop does with the serving Deployment: read back, then apply."""
        ex.hpa_targets(owner.namespace)
        found = ex.list_deployments(owner)
        ex.apply(builders.serving_deployment(owner, spec, names.TRACK_STABLE, "m", "1"))
        return found

    tick()
    assert ex.writes == 1 and deployment().spec.replicas == 1

    def ours() -> Any:
        # (generation, time of the operator's last apply): status updates by the controllers aside.
        d = deployment()
        times = [m.time for m in d.metadata.managed_fields if m.manager == names.FIELD_MANAGER]
        return d.metadata.generation, times

    before = ours()
    for _ in range(3):
        tick()
    assert ex.writes == 1, "an unchanged tick wrote"
    assert ours() == before

    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "stable-hpa"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 3,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }
    kube.apply(hpa, owner.namespace)
    # The real HPA controller raises the Deployment to its minimum.
    wait_for("the HPA controller to scale to 3", lambda: deployment().spec.replicas == 3)

    for _ in range(3):
        found = tick()
        assert deployment().spec.replicas == 3, "the operator reset the HPA's replica count"
    assert ex.writes == 2, "one write to give up replicas, then nothing"
    managed = [m for m in deployment().metadata.managed_fields if m.manager == names.FIELD_MANAGER]
    assert managed and all("f:replicas" not in str(m.fields_v1) for m in managed)
    hpa_tracks = hpa_scaled_tracks(owner, ex.hpa_targets(owner.namespace))
    assert hpa_tracks == {names.TRACK_STABLE}
    state = tracks(found, owner, spec, {names.TRACK_STABLE: ("m", "1")}, hpa_tracks)
    assert state[names.TRACK_STABLE].in_sync and state[names.TRACK_STABLE].desired_replicas == 3

    # Without the HPA the operator owns replicas again and applies spec.serving.replicas.
    kube.kubectl("delete", "hpa", "stable-hpa", "-n", owner.namespace, check=True)
    tick()
    assert deployment().spec.replicas == 1


def test_reads_from_the_watch_copy_own_writes_in_at_once_and_a_fresh_read_repairs_it(
    kube: KubeEnv, owner: Owner
) -> None:
    """With the operator's copy of its children: an apply is in the copy before any watch sees it
    (the next tick skips it), a DELETED event makes the next apply create it again, and the slow
    resync's fresh read drops a child the copy still holds but the API server no longer has."""
    spec = ModelDeploymentSpec.model_validate(SPEC)
    cache = ChildCache()
    ex = KubeExecutor(kube.api_client(), cache=cache)
    apps = client.AppsV1Api(kube.api_client())
    manifest = builders.serving_deployment(owner, spec, names.TRACK_STABLE, "m", "1", 1)
    name = manifest["metadata"]["name"]

    ex.apply(manifest)
    assert ex.writes == 1
    [held] = ex.list_deployments(owner)  # from the copy: no watch runs in this test
    assert held["metadata"]["name"] == name and "template" not in held["spec"]
    ex.apply(manifest)
    assert ex.writes == 1, "an unchanged apply was sent although the copy has it"

    apps.delete_namespaced_deployment(name, owner.namespace)
    cache.remove("Deployment", held)  # what the watch's DELETED event does
    assert ex.list_deployments(owner) == []
    ex.apply(manifest)
    assert ex.writes == 2 and apps.read_namespaced_deployment(name, owner.namespace) is not None

    apps.delete_namespaced_deployment(name, owner.namespace)  # and this time the watch missed it
    wait_for("the deletion", lambda: not apps.list_namespaced_deployment(owner.namespace).items, 60)
    assert len(ex.list_deployments(owner)) == 1  # the copy still holds it
    assert ex.uncached().list_deployments(owner) == []  # the slow resync asks the API server
    assert ex.list_deployments(owner) == []  # ... and the copy is set right
