"""The real operator on the real control plane: create, update, delete, bad input, kill -9 and resume."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from mlrollout.api import names

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # not mlrollout.local/: kwok makes its pods Ready


def spec_for(model: str, tracking_uri: str, **model_ref: str) -> dict[str, Any]:
    return {
        "model": {"name": model, **(model_ref or {"alias": "champion"})},
        "registry": {"trackingUri": tracking_uri},
        "serving": {"image": IMAGE, "replicas": 2},
        "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
    }


def phase(cluster: Cluster, md: str) -> str | None:
    body = cluster.get_md(md) or {}
    return (body.get("status") or {}).get("phase")


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == type_)


def healthy_at_generation(cluster: Cluster, md: str) -> dict[str, Any] | None:
    body = cluster.get_md(md)
    if body is None:
        return None
    status = body.get("status") or {}
    ok = (
        status.get("phase") == "Healthy"
        and status.get("observedGeneration") == body["metadata"]["generation"]
    )
    return body if ok else None


def test_create_update_delete(
    operator_factory: Callable[[], OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    model = registry.register(unique("churn"), versions=1, alias="champion")
    operator_factory()
    md = "churn"
    cluster.create_md(md, spec_for(model, registry.uri))

    body = eventually(lambda: healthy_at_generation(cluster, md), 90, "Healthy")
    status = body["status"]
    assert status["stableVersion"] == "1" and status["modelName"] == model
    assert condition(body, "Ready")["status"] == "True"
    assert condition(body, "Degraded")["status"] == "False"
    assert condition(body, "Paused")["status"] == "False"
    assert "kopf" not in status  # Kopf's bookkeeping stays out of the user's status
    annotations = body["metadata"].get("annotations") or {}
    assert not [a for a in annotations if a.startswith("kopf.zalando.org")]
    assert names.FINALIZER in body["metadata"]["finalizers"]

    [deployment] = cluster.deployments(md)
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    assert pod["metadata"]["labels"][names.LABEL_MODEL_VERSION] == "1"
    assert pod["metadata"]["labels"][names.LABEL_TRACK] == "stable"
    assert container["args"][0] == f"models:/{model}/1"  # pinned, never the alias
    assert {"name": "MLFLOW_TRACKING_URI", "value": registry.uri} in container["env"]
    [service] = cluster.services(md)
    assert service.metadata.owner_references[0].uid == body["metadata"]["uid"]

    reasons = [r for _, r, _ in cluster.events(md)]
    assert reasons.index("Deploying") < reasons.index("Healthy")
    assert "VersionPinned" in reasons

    # Spec changes reach the Deployment: replicas, image, resources.
    cluster.patch_md(
        md,
        {
            "spec": {
                "serving": {"replicas": 3, "image": IMAGE + "-b", "resources": {"limits": {"cpu": "500m"}}}
            }
        },
    )
    eventually(lambda: healthy_at_generation(cluster, md), 90, "Healthy after update")
    [deployment] = cluster.deployments(md)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 3
    assert container["image"] == IMAGE + "-b"
    assert container["resources"]["limits"]["cpu"] == "500m"

    cluster.delete_md(md)
    eventually(lambda: cluster.get_md(md) is None, 60, "ModelDeployment gone")
    assert cluster.deployments(md) == []
    assert cluster.services(md) == []
    assert "Terminating" in [r for _, r, _ in cluster.events(md)]


def test_model_not_found_is_reported_retried_and_recovers(
    operator_factory: Callable[[], OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    model = unique("missing")
    operator_factory()
    cluster.create_md("ghost", spec_for(model, registry.uri, version="1"))

    def degraded() -> dict[str, Any] | None:
        body = cluster.get_md("ghost") or {}
        conds = {c["type"]: c for c in (body.get("status") or {}).get("conditions", [])}
        ok = conds.get("Degraded", {}).get("reason") == "ModelNotFound"
        return body if ok and body["status"].get("retry", {}).get("attempts", 0) >= 2 else None

    body = eventually(degraded, 60, "ModelNotFound with retries")
    assert body["status"]["phase"] == "Pending"
    assert "version 1" in condition(body, "Degraded")["message"]
    assert ("Warning", "ModelNotFound") in [(t, r) for t, r, _ in cluster.events("ghost")]
    assert cluster.deployments("ghost") == [] and cluster.services("ghost") == []  # nothing half-created

    registry.register(model, versions=1)
    body = eventually(lambda: healthy_at_generation(cluster, "ghost"), 120, "recovered on a backoff retry")
    assert "retry" not in body["status"]
    assert condition(body, "Degraded")["status"] == "False"


def test_registry_unreachable_creates_nothing(
    operator_factory: Callable[[], OperatorProcess], cluster: Cluster
) -> None:
    operator_factory()
    cluster.create_md("offline", spec_for("any", "http://127.0.0.1:9"))

    def unreachable() -> dict[str, Any] | None:
        body = cluster.get_md("offline") or {}
        conds = {c["type"]: c for c in (body.get("status") or {}).get("conditions", [])}
        return body if conds.get("Degraded", {}).get("reason") == "RegistryUnreachable" else None

    body = eventually(unreachable, 60, "RegistryUnreachable")
    assert condition(body, "Ready")["status"] == "False"
    assert ("Warning", "RegistryUnreachable") in [(t, r) for t, r, _ in cluster.events("offline")]
    assert cluster.deployments("offline") == [] and cluster.services("offline") == []
    cluster.delete_md("offline")  # deletion never waits for the registry
    eventually(lambda: cluster.get_md("offline") is None, 30, "deleted despite the registry outage")


def test_killed_operator_resumes_from_status(
    operator_factory: Callable[[], OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    model = registry.register(unique("resume"), versions=2, alias="champion")
    first = operator_factory()
    cluster.create_md("resume", spec_for(model, registry.uri))
    # Kill -9 as soon as the version is pinned: mid-way between Deploying and Healthy.
    eventually(lambda: (cluster.get_md("resume") or {}).get("status", {}).get("stableVersion"), 60, "pinned")
    first.kill()
    pinned = cluster.get_md("resume")
    assert pinned is not None

    # While no operator runs: the alias moves on and the user edits the spec.
    registry.set_alias(model, "champion", "2")
    cluster.patch_md("resume", {"spec": {"serving": {"replicas": 3}}})

    operator_factory()

    def held_at_pause() -> dict[str, Any] | None:
        body = cluster.get_md("resume") or {}
        status = body.get("status") or {}
        held = (
            condition(body, "Paused").get("reason") == "PausedAtStep" if status.get("conditions") else False
        )
        return body if held and status.get("observedGeneration") == body["metadata"]["generation"] else None

    body = eventually(held_at_pause, 120, "the moved alias's canary held at its manual pause")
    assert body["status"]["stableVersion"] == "1"  # from status, not re-resolved from the moved alias
    assert body["status"]["canaryVersion"] == "2"  # the moved alias is a candidate, never stable directly
    found = {d["metadata"]["labels"][names.LABEL_TRACK]: d for d in cluster.deployments("resume")}
    assert found["stable"]["spec"]["replicas"] == 3  # the user's edit, with 20 % beside it
    assert found["canary"]["spec"]["replicas"] == 1
    assert found["stable"]["spec"]["template"]["metadata"]["labels"][names.LABEL_MODEL_VERSION] == "1"
    reasons = [r for _, r, _ in cluster.events("resume")]
    assert reasons.count("VersionPinned") == 1  # the second operator did not start over
    assert reasons.count("NewCandidate") == 1  # the moved alias is reported once


def test_pause_annotation_holds_spec_changes(
    operator_factory: Callable[[], OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    model = registry.register(unique("pause"), versions=1, alias="champion")
    operator_factory()
    cluster.create_md("held", spec_for(model, registry.uri))
    eventually(lambda: healthy_at_generation(cluster, "held"), 90, "Healthy")
    cluster.patch_md("held", {"metadata": {"annotations": {names.ANNOTATION_PAUSED: "true"}}})
    eventually(lambda: phase(cluster, "held") == "Paused", 30, "Paused")
    cluster.patch_md("held", {"spec": {"serving": {"replicas": 4}}})
    body = eventually(lambda: _observed_latest(cluster, "held"), 30, "observed while paused")
    assert condition(body, "Paused")["status"] == "True"
    assert cluster.deployments("held")[0]["spec"]["replicas"] == 2
    cluster.patch_md("held", {"metadata": {"annotations": {names.ANNOTATION_PAUSED: None}}})
    eventually(lambda: healthy_at_generation(cluster, "held"), 90, "Healthy after resume")
    assert cluster.deployments("held")[0]["spec"]["replicas"] == 4


def _observed_latest(cluster: Cluster, md: str) -> dict[str, Any] | None:
    body = cluster.get_md(md)
    if body is None:
        return None
    return (
        body if body.get("status", {}).get("observedGeneration") == body["metadata"]["generation"] else None
    )
