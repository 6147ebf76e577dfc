"""Proof that Prometheus scrapes what the runner runs, and MLflow accepts runs and models."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from harness.kube import KubeEnv
from harness.procs import eventually
from harness.services import MLflowServer, Prometheus

METRICS_SERVER = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'harness_probe_value 42\\n' if self.path == '/metrics' else b'ok'
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer((os.environ['MLROLLOUT_HOST'], 9100), H).serve_forever()
"""


@pytest.mark.integration
def test_prometheus_scrapes_a_pod_the_runner_runs(
    kube: KubeEnv, namespace: str, prometheus: Prometheus
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "exporter",
            "labels": {"app": "exporter"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9100"},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "mlrollout.local/exec:test",
                    "command": ["python3", "-c", METRICS_SERVER],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 9100}, "periodSeconds": 1},
                }
            ]
        },
    }
    kube.apply(pod, namespace)
    core: Any = client.CoreV1Api(kube.api_client())

    def ready() -> bool:
        p = core.read_namespaced_pod("exporter", namespace)
        return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])

    eventually(ready, what="pod Ready through its readiness probe")
    result = eventually(
        lambda: prometheus.query(f'harness_probe_value{{namespace="{namespace}"}}'),
        timeout=30,
        what="a scraped sample",
    )
    assert float(result[0]["value"][1]) == 42.0
    assert result[0]["metric"]["app"] == "exporter"


@pytest.mark.services
def test_mlflow_accepts_a_run_and_a_model_registration(mlflow_server: MLflowServer) -> None:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    exp = c.create_experiment("harness")
    run = c.create_run(exp)
    c.log_metric(run.info.run_id, "roc_auc", 0.91)
    c.set_terminated(run.info.run_id)
    c.create_registered_model("churn")
    v = c.create_model_version("churn", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    c.set_registered_model_alias("churn", "champion", v.version)
    assert c.get_run(run.info.run_id).data.metrics["roc_auc"] == 0.91
    assert c.get_model_version_by_alias("churn", "champion").version == v.version
