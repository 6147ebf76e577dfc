"""The monitor Job's main() against the real API server: it writes status.monitoring and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from job_data import write_log, write_reference
from kubernetes import client

from harness.kube import KubeEnv
from mlrollout.api import names
from mlrollout.monitor.job import main

pytestmark = pytest.mark.integration

SPEC = {
    "model": {"name": "churn-classifier", "alias": "champion"},
    "registry": {"trackingUri": "http://127.0.0.1:9"},
    "serving": {"image": "ghcr.io/example/mlrollout-runtime:0.1.0"},
    "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}},
}
OPERATOR_STATUS = {"phase": "Healthy", "observedGeneration": 1, "stableVersion": "3"}


def _get(api: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.PLURAL, "churn"
    )
    return found


def test_shifted_traffic_sets_drift_and_leaves_the_rest_of_status(
    kube: KubeEnv, namespace: str, crd_installed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = client.CustomObjectsApi(kube.api_client())
    body = {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": "churn"}, "spec": SPEC}
    api.create_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, body)
    api.replace_namespaced_custom_object_status(
        names.GROUP,
        names.VERSION,
        namespace,
        names.PLURAL,
        "churn",
        _get(api, namespace) | {"status": OPERATOR_STATUS},
    )
    before = _get(api, namespace)["status"]

    rng = np.random.default_rng(8)
    write_reference(tmp_path / "reference.parquet", rng)
    write_log(tmp_path / "log", rng, 1000, shift=1.0)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "namespace": namespace,
                "name": "churn",
                "referenceUri": str(tmp_path / "reference.parquet"),
                "inferenceLogUri": str(tmp_path / "log"),
                "minSamples": 200,
                "version": "3",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", kube.kubeconfig)
    assert main(["--config", str(config)]) == 0

    status = _get(api, namespace)["status"]
    monitoring = status.pop("monitoring")
    assert status == before  # the operator's fields untouched
    assert monitoring["verdict"] == "Drift"
    assert sorted(c["column"] for c in monitoring["columns"] if c["drifted"]) == ["age", "city"]
    assert monitoring["predictionDrift"]["drifted"] is True

    # bad input afterwards: the message names it, the previous verdict stays
    (tmp_path / "reference.parquet").unlink()
    assert main(["--config", str(config)]) == 0
    after = _get(api, namespace)["status"]["monitoring"]
    assert after["verdict"] == "Drift" and "not found" in after["message"]
