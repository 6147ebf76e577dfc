"""End to end on real parts: MLflow holds a trained model, the operator deploys it, the pod runner
executes the real serving command, and the model answers through its pod."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from harness.models import SKLEARN_REQUIREMENTS

pytestmark = pytest.mark.integration

RUNTIME_IMAGE = "mlrollout.local/mlrollout-runtime:dev"  # executed for real by the harness's pod runner


def _register_trained_model(tracking_uri: str, name: str) -> None:
    import mlflow
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y),
            name="model",
            registered_model_name=name,
            input_example=x[:2],
            skops_trusted_types=["sklearn.tree._tree.Tree"],  # MLflow test-loads what it saves
            pip_requirements=SKLEARN_REQUIREMENTS,
        )


def test_the_stable_version_really_serves(
    operator_factory: Callable[[], OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    model = unique("served")
    _register_trained_model(registry.uri, model)
    registry.set_alias(model, "champion", "1")
    operator_factory()
    cluster.create_md(
        "served",
        {
            "model": {"name": model, "alias": "champion"},
            "registry": {"trackingUri": registry.uri},
            # A tree ensemble loads only with its skops tree type trusted explicitly.
            "serving": {"image": RUNTIME_IMAGE, "replicas": 1, "trustedTypes": ["sklearn.tree._tree.Tree"]},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
    )

    def healthy() -> dict[str, Any] | None:
        body = cluster.get_md("served") or {}
        return body if (body.get("status") or {}).get("phase") == "Healthy" else None

    eventually(healthy, 180, "the real runtime to become ready")
    from kubernetes import client

    pods = client.CoreV1Api(cluster.kube.api_client()).list_namespaced_pod(
        cluster.namespace, label_selector="mlrollout.io/deployment=served"
    )
    ip = pods.items[0].status.pod_ip
    request = urllib.request.Request(
        f"http://{ip}:8080/invocations",
        data=json.dumps({"inputs": [[2.0, 2.0, 0.0], [-2.0, -2.0, 0.0]]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["predictions"] == [1, 0]
