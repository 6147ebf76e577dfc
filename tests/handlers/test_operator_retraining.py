"""Retraining through the real operator on the real control plane: a drift verdict written into
status.monitoring (as the monitor Job writes it) on a healthy model makes the operator start the
training Job; the pod runner runs `mlrollout train` for real against the real MLflow and S3 servers;
the version it registers is rolled out by canary and promoted with cause retrain:drift."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually

from gate.churn import TARGET, data, register
from harness.kube import KubeEnv
from harness.s3 import S3Server
from mlrollout.api import names

# its own waits add up to 1,020 s (Healthy 300, training 120, promoted 600): above the default 600
pytestmark = [pytest.mark.integration, pytest.mark.services, pytest.mark.timeout(1200)]

IMAGE = "mlrollout.local/runtime:test"  # serving pods and Jobs run for real under the pod runner
REPO = Path(__file__).resolve().parents[2]
SECRET = "registry-credentials"  # the S3 credentials reach the training pod as they reach serving pods


def md_spec(model: str, uri: str, dataset: str) -> dict[str, Any]:
    return {
        "model": {"name": model, "alias": "champion"},
        "registry": {"trackingUri": uri, "credentialsSecret": SECRET},
        # The built-in trainer's skops file holds numpy.dtype objects, which the runtime refuses
        # unless trusted (its default allow-list does not name them).
        "serving": {"image": IMAGE, "replicas": 1, "trustedTypes": ["numpy.dtype"]},
        "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        "monitoring": {"drift": {}},
        "retraining": {
            "triggers": [{"drift": {"cooldown": "1h", "minSamples": 100}}],
            "job": {
                "builtin": {
                    "estimator": "logistic_regression",
                    "target": TARGET,
                    "exclude": ["customer_id"],
                    "trials": 2,
                },
                "datasetUri": dataset,
                "timeout": "8m",
                "backoffLimit": 0,
            },
        },
    }


def drift_verdict(version: str) -> dict[str, Any]:
    return {
        "verdict": "Drift",
        "version": version,
        "lastRun": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "samples": 800,
        "driftShare": 1.0,
        "columns": [
            {
                "column": "tenure",
                "test": "ks",
                "statistic": 0.4,
                "pValue": 1e-6,
                "effectSize": 0.4,
                "drifted": True,
            }
        ],
    }


def status_of(cluster: Cluster, md: str) -> dict[str, Any]:
    return (cluster.get_md(md) or {}).get("status") or {}


def test_drift_on_a_healthy_model_is_retrained_and_rolled_out_by_the_operator(
    operator_factory: Callable[..., OperatorProcess],
    cluster: Cluster,
    registry: Registry,
    kube: KubeEnv,
    s3_server: S3Server,
) -> None:
    train = data(1500, 1)
    bucket = s3_server.bucket(f"train-{uuid.uuid4().hex[:6]}")
    dataset = s3_server.put(bucket, "churn/train.parquet", data(1500, 3).to_parquet())
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET},
        "stringData": s3_server.env(),
    }
    kube.apply(secret, cluster.namespace)
    # The Jobs' ServiceAccount (the chart's mlrollout-job); without it the Job can create no pod.
    kube.kubectl(
        "apply", "-k", str(REPO / "manifests" / "job-serviceaccount"), "-n", cluster.namespace, check=True
    )
    model = f"churn-{uuid.uuid4().hex[:6]}"
    first = register(registry.uri, model, "good", train)
    registry.set_alias(model, "champion", first)
    operator_factory()
    md = "rt"
    cluster.create_md(md, md_spec(model, registry.uri, dataset))
    eventually(lambda: status_of(cluster, md).get("phase") == "Healthy", 300, "Healthy on the first version")

    # As the monitor Job does: status.monitoring only, through the status subresource.
    cluster.objects.patch_namespaced_custom_object_status(
        names.GROUP,
        names.VERSION,
        cluster.namespace,
        names.PLURAL,
        md,
        {"status": {"monitoring": drift_verdict(first)}},
        _content_type="application/merge-patch+json",
    )

    def training() -> bool:
        return (status_of(cluster, md).get("retraining") or {}).get("state") in ("Training", "Trained")

    eventually(training, 120, "a training started by the drift verdict")
    job = kube.kubectl("get", "job", f"{md}-train-1", "-n", cluster.namespace, "-o", "name", check=True)
    assert job.stdout.strip() == f"job.batch/{md}-train-1"

    def promoted() -> bool:
        status = status_of(cluster, md)
        return status.get("phase") == "Healthy" and status.get("stableVersion") not in (None, first)

    eventually(promoted, 600, "the retrained version promoted")
    status = status_of(cluster, md)
    retraining = status["retraining"]
    assert retraining["state"] == "Trained" and retraining["trigger"] == "drift", retraining
    assert status["stableVersion"] == retraining["version"]
    assert status["history"][-1]["cause"] == "retrain:drift", status["history"]
    assert registry.alias(model, "champion") == retraining["version"]
    tags = registry.tags(model, retraining["version"])
    assert tags["mlrollout.parent_version"] == first and tags["mlrollout.trigger"].startswith("drift")
    reasons = [r for _, r, _ in cluster.events(md)]
    for reason in ("RetrainingStarted", "Retraining", "Retrained", "Promoted"):
        assert reason in reasons, reasons
    assert reasons.count("RetrainingStarted") == 1
