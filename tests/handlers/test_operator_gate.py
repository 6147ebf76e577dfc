"""The validation gate through the real operator on the real control plane: the operator creates the
gate Job, the pod runner executes `mlrollout gate` for real against the real MLflow server, and the
operator reads the termination message back. Serving pods run the real runtime too.

One operator and one registered model serve three ModelDeployments at once (CPU is scarce), each
following its own alias: a good candidate passes into its canary; a candidate with ROC AUC below 0.84
is rejected with traffic untouched; a holdout that does not exist is retried and reported, never a
rejection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually

from gate.churn import TARGET, data, register
from harness.kube import KubeEnv
from harness.s3 import S3Server
from mlrollout.api import names

pytestmark = [pytest.mark.integration, pytest.mark.services]

IMAGE = "mlrollout.local/runtime:test"  # under the runner's registry: serving pods and gate Jobs run for real
AUC_FLOOR = 0.84
SECRET = "registry-credentials"  # the S3 credentials reach the gate pod the way registry credentials do


def md_spec(model: str, uri: str, alias: str, holdout: str) -> dict[str, Any]:
    return {
        "model": {"name": model, "alias": alias},
        "registry": {"trackingUri": uri, "championAlias": f"{alias}-champion", "credentialsSecret": SECRET},
        "serving": {"image": IMAGE, "replicas": 1},
        "validation": {
            "dataset": {"uri": holdout, "target": TARGET},
            "metrics": [{"name": "roc_auc", "min": AUC_FLOOR}],
            "timeout": "5m",
            "backoffLimit": 0,
        },
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
    }


def status_of(cluster: Cluster, md: str) -> dict[str, Any]:
    return (cluster.get_md(md) or {}).get("status") or {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def gate_jobs(cluster: Cluster, md: str) -> dict[str, dict[str, Any]]:
    found: dict[str, Any] = cluster.objects.list_namespaced_custom_object(  # type: ignore[assignment]
        "batch", "v1", cluster.namespace, "jobs", label_selector=f"{names.LABEL_DEPLOYMENT}={md}"
    )
    return {j["metadata"]["name"]: j for j in found["items"]}


def tracks(cluster: Cluster, md: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"][names.LABEL_TRACK]: d for d in cluster.deployments(md)}


def test_the_operator_gates_candidates_pass_reject_and_could_not_run(
    operator_factory: Callable[..., OperatorProcess],
    cluster: Cluster,
    registry: Registry,
    kube: KubeEnv,
    s3_server: S3Server,
) -> None:
    train, holdout = data(3000, 1), data(2000, 2)
    bucket = s3_server.bucket(f"holdouts-{uuid.uuid4().hex[:6]}")
    present = s3_server.put(bucket, "churn/holdout.parquet", holdout.to_parquet())
    missing = f"s3://{bucket}/churn/no-such-holdout.parquet"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET},
        "stringData": s3_server.env(),
    }
    kube.apply(secret, cluster.namespace)
    model = f"churn-{uuid.uuid4().hex[:6]}"
    good = register(registry.uri, model, "good", train)
    good2 = register(registry.uri, model, "good", train)
    poor = register(registry.uri, model, "poor", train)
    scenarios = {"pass": (good2, present), "reject": (poor, present), "missing": (good2, missing)}
    for md in scenarios:
        registry.set_alias(model, md, good)
    operator_factory()
    for md, (_, holdout_uri) in scenarios.items():
        cluster.create_md(md, md_spec(model, registry.uri, md, holdout_uri))

    def healthy() -> bool:
        return all(status_of(cluster, md).get("phase") == "Healthy" for md in scenarios)

    eventually(healthy, 300, "all three Healthy on the first version")
    assert all(not gate_jobs(cluster, md) for md in scenarios)  # the first version is pinned, not gated
    for md, (candidate, _) in scenarios.items():
        registry.set_alias(model, md, candidate)

    # A good candidate: Validating first (no traffic), then its canary.
    def held_in_canary() -> bool:
        status = status_of(cluster, "pass")
        return condition(status, "Paused").get("reason") == "PausedAtStep"

    eventually(held_in_canary, 300, "the passing candidate held at its canary's pause")
    status = status_of(cluster, "pass")
    assert status["phase"] == "Progressing" and status["canaryVersion"] == good2
    gate = status["rollout"]["gate"]
    assert gate["phase"] == "Passed" and gate["job"] == f"pass-gate-{good2}-1", gate
    [auc] = gate["checks"]
    assert auc["name"] == "metric:roc_auc" and auc["verdict"] == "passed" and auc["value"] >= AUC_FLOOR
    reasons = [r for _, r, _ in cluster.events("pass")]
    assert "Validating" in reasons and reasons.count("GateStarted") == 1 and reasons.count("GatePassed") == 1
    assert tracks(cluster, "pass")["canary"]["metadata"]["labels"][names.LABEL_MODEL_VERSION] == good2
    assert registry.tags(model, good2)["mlrollout.gate"] == "passed"
    job = gate_jobs(cluster, "pass")[f"pass-gate-{good2}-1"]
    # No API token in the gate pod: whatever it runs, it cannot write the ModelDeployment.
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert (
        job["spec"]["activeDeadlineSeconds"] == 300
        and job["metadata"]["ownerReferences"][0]["name"] == "pass"
    )

    # A candidate below the AUC floor: rejected, stable untouched, never gated again.
    def rejected() -> bool:
        status = status_of(cluster, "reject")
        return condition(status, "Progressing").get("reason") == "GateFailed"

    eventually(rejected, 300, "the poor candidate rejected at the gate")
    status = status_of(cluster, "reject")
    message = condition(status, "Progressing")["message"]
    assert status["phase"] == "Healthy" and status["stableVersion"] == good, status
    assert "metric:roc_auc" in message and "(threshold 0.84)" in message, message
    [auc] = status["rollout"]["gate"]["checks"]
    assert auc["verdict"] == "failed" and auc["value"] < AUC_FLOOR and auc["threshold"] == AUC_FLOOR
    assert f"{auc['value']:.4g}" in message
    tags = registry.tags(model, poor)
    assert tags["mlrollout.rollout"] == "rejected" and tags["mlrollout.gate"] == "failed"
    assert set(tracks(cluster, "reject")) == {"stable"}
    assert tracks(cluster, "reject")["stable"]["metadata"]["labels"][names.LABEL_MODEL_VERSION] == good
    assert (status.get("weights") or {}).get("canary", 0) == 0
    events = cluster.events("reject")
    failed = [(type_, note) for type_, reason, note in events if reason == "GateFailed"]
    assert len(failed) == 1 and failed[0][0] == "Warning" and "0.84" in failed[0][1], events
    assert "Progressing" not in [r for _, r, _ in events]  # never entered a rollout step

    # A holdout that does not exist: could not run, retried as a new Job, reported; never a verdict.
    def retried() -> bool:
        return f"missing-gate-{good2}-2" in gate_jobs(cluster, "missing")

    eventually(retried, 300, "a second attempt of the gate whose dataset is missing")
    status = status_of(cluster, "missing")
    assert status["phase"] == "Validating" and status["stableVersion"] == good, status
    events = cluster.events("missing")
    could_not = [note for type_, reason, note in events if reason == "GateCouldNotRun" and type_ == "Warning"]
    assert could_not and "does not exist" in could_not[0], events
    assert "GateFailed" not in [r for _, r, _ in events] and "GatePassed" not in [r for _, r, _ in events]
    assert set(tracks(cluster, "missing")) == {"stable"}

    def reported() -> bool:
        found = condition(status_of(cluster, "missing"), "Progressing")
        return found.get("reason") == "GateCouldNotRun" and "does not exist" in found.get("message", "")

    eventually(reported, 120, "the reason the gate could not run in the Progressing condition")
    gate = status_of(cluster, "missing")["rollout"]["gate"]
    assert gate["phase"] in ("Error", "Running") and gate["attempt"] >= 2, gate

    # Meanwhile the rejected version was gated exactly once: a rejection is not retried in a loop.
    assert list(gate_jobs(cluster, "reject")) == [f"reject-gate-{poor}-1"]
    assert status_of(cluster, "reject")["phase"] == "Healthy"
