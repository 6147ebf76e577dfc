"""Monitoring end to end on real parts: the operator applies the monitor's CronJob for the stable
version, the real serving pods write their inference log, traffic goes through the Service, the
CronJob's Job is started in the test (as `kubectl create job --from=cronjob` does) and runs the real
`mlrollout monitor` under the Jobs' ServiceAccount; the operator turns its verdict into the Drift
condition and an Event. One ModelDeployment walks through every stage, so the setup is paid once."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kubernetes import client
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from harness import cronjob
from harness.kube import KubeEnv
from harness.models import SKLEARN_REQUIREMENTS
from harness.traffic import cluster_ip, ready_pods
from mlrollout.adapters.k8s.monitor import monitor_name
from mlrollout.api import names
from mlrollout.api.training import TAG_FEATURE_IMPORTANCE
from mlrollout.monitor.importance import encode, permutation_importances

pytestmark = pytest.mark.integration

RUNTIME_IMAGE = "mlrollout.local/mlrollout-runtime:dev"  # executed for real by the harness's pod runner
REPO = Path(__file__).resolve().parents[2]
FEATURES = ["tenure", "monthly_spend", "support_calls", "age"]
NEVER = "0 0 1 1 *"  # the test starts the Jobs itself


def train(tracking_uri: str, name: str) -> pd.DataFrame:
    """A logistic churn model registered as version 1; returns its reference (training) sample."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(600, 4)), columns=FEATURES)
    y = (x["support_calls"] - 0.5 * x["tenure"] + rng.normal(scale=0.5, size=600) > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x, model.predict(x)),
            registered_model_name=name,
            pip_requirements=SKLEARN_REQUIREMENTS,
        )
    # the training-time importance, as the built-in trainer tags it (on held-out rows)
    x_valid = pd.DataFrame(rng.normal(size=(400, 4)), columns=FEATURES)
    y_valid = x_valid["support_calls"] - 0.5 * x_valid["tenure"] + rng.normal(scale=0.5, size=400) > 0
    importance = permutation_importances(model, x_valid, y_valid.astype(int), "classification")
    MlflowClient(tracking_uri).set_model_version_tag(name, "1", TAG_FEATURE_IMPORTANCE, encode(importance))
    return x.assign(prediction=model.predict(x))


def rows(n: int, seed: int, shift: float) -> pd.DataFrame:
    """Live inputs; `shift` moves tenure and age only (in standard deviations)."""
    frame = pd.DataFrame(np.random.default_rng(seed).normal(size=(n, 4)), columns=FEATURES)
    return frame.assign(tenure=frame["tenure"] + shift, age=frame["age"] + shift)


def post(url: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=15) as r:
        return json.loads(r.read()), r.headers.get("x-request-id", "")


def send(address: str, frame: pd.DataFrame, per_request: int = 10) -> list[tuple[str, list[int]]]:
    """Predictions through the Service; (request id, predictions) per request."""
    sent = []
    for i in range(0, len(frame), per_request):
        chunk = frame.iloc[i : i + per_request]
        answer, request_id = post(
            f"http://{address}/invocations", {"dataframe_split": chunk.to_dict(orient="split")}
        )
        sent.append((request_id, list(answer["predictions"])))
    return sent


def log_rows(folder: Path) -> int:
    return sum(len(pd.read_parquet(f)) for f in folder.rglob("*.parquet")) if folder.exists() else 0


def run_monitor_job(kube: KubeEnv, namespace: str, md: str, attempt: int) -> None:
    api = kube.api_client()
    job = cronjob.trigger(api, namespace, monitor_name_of(md), f"manual-{attempt}")
    assert cronjob.wait(api, namespace, job), f"monitor Job {job} failed"


def monitor_name_of(md: str) -> str:
    from mlrollout.adapters.k8s.owner import Owner

    return monitor_name(Owner(name=md, namespace="", uid=""))


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (body.get("status") or {}).get("conditions", []) if c["type"] == type_), {})


@pytest.fixture
def log_root() -> Any:
    # a hostPath outside /tmp: the pods' /tmp is an emptyDir that would hide it
    root = Path("/var/tmp") / f"mlrollout-monitor-{uuid.uuid4().hex[:8]}"
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_drift_verdict_labels_and_report_through_the_operator(
    operator_factory: Callable[..., OperatorProcess],
    cluster: Cluster,
    registry: Registry,
    kube: KubeEnv,
    namespace: str,
    pod_network: Any,
    log_root: Path,
) -> None:
    if pod_network is None:
        pytest.skip("needs the pod network: the Service routes to pod addresses")
    kube.kubectl("apply", "-k", str(REPO / "manifests" / "job-serviceaccount"), "-n", namespace, check=True)
    model = unique("monitored")
    reference = log_root / "reference.parquet"  # the Job's /tmp is an emptyDir: not under tmp_path
    log_root.mkdir(parents=True)
    train(registry.uri, model).to_parquet(reference)
    registry.set_alias(model, "champion", "1")
    operator_factory()
    md = "mon"
    monitoring = {
        "schedule": NEVER,
        "referenceUri": str(reference),
        "inferenceLogUri": str(log_root),
        "drift": {"minSamples": 150, "window": "1h", "pValue": 0.01},
        "performance": {"metric": "accuracy", "min": 0.5, "labelDelay": "0s", "minSamples": 100},
    }
    cluster.create_md(
        md,
        {
            "model": {"name": model, "alias": "champion"},
            "registry": {"trackingUri": registry.uri},
            "serving": {
                "image": RUNTIME_IMAGE,
                "replicas": 1,
                "env": [{"name": "MLROLLOUT_INFERENCE_LOG_ROTATE_SECONDS", "value": "1"}],
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
            "monitoring": monitoring,
        },
    )
    batch = client.BatchV1Api(kube.api_client())
    eventually(
        lambda: (cluster.get_md(md) or {}).get("status", {}).get("phase") == "Healthy",
        240,
        "the real runtime to serve",
    )
    cron = eventually(
        lambda: batch.read_namespaced_cron_job(monitor_name_of(md), namespace), 30, "the CronJob"
    )
    assert cron.spec.schedule == NEVER
    assert cron.spec.job_template.spec.template.spec.service_account_name == "mlrollout-job"
    assert condition(cluster.get_md(md) or {}, "Drift")["reason"] == "AwaitingFirstRun"
    svc = names.service_name(md)
    address = f"{cluster_ip(kube, namespace, svc)}:80"
    eventually(lambda: ready_pods(kube, namespace, f"{names.LABEL_DEPLOYMENT}={md}"), 60, "a ready pod")
    log_dir = log_root / namespace / md / "predictions"

    # 1. Unshifted traffic: no drift.
    eventually(lambda: send(address, rows(10, 1, 0.0)), 60, "the Service to answer")
    send(address, rows(300, 2, 0.0))
    eventually(lambda: log_rows(log_dir) >= 310, 60, "the serving pod to write its inference log")
    run_monitor_job(kube, namespace, md, 1)
    body = eventually(
        lambda: (b := cluster.get_md(md) or {}) and condition(b, "Drift").get("reason") == "NoDrift" and b,
        60,
        "the NoDrift verdict in the Drift condition",
    )
    monitored = body["status"]["monitoring"]
    assert monitored["verdict"] == "NoDrift" and monitored["version"] == "1" and monitored["samples"] >= 310
    assert condition(body, "Drift")["status"] == "False"
    assert monitored["reportUri"].endswith(".html")
    tags = registry.tags(model, "1")
    assert (
        tags["mlrollout.monitor.report"] == monitored["reportUri"]
        and tags["mlrollout.monitor.verdict"] == "NoDrift"
    )

    # 2. Shifted traffic (tenure and age moved by 1.5 sd) in a fresh window: drift, the right columns.
    shutil.rmtree(log_dir)
    time.sleep(1.5)  # the writer's rotation: anything buffered before the cut lands now
    shutil.rmtree(log_dir, ignore_errors=True)
    shifted = rows(400, 6, 1.5)
    sent = send(address, shifted)
    eventually(lambda: log_rows(log_dir) >= 400, 60, "the shifted rows in the log")
    run_monitor_job(kube, namespace, md, 2)
    body = eventually(
        lambda: (b := cluster.get_md(md) or {}) and condition(b, "Drift").get("status") == "True" and b,
        60,
        "the Drift verdict",
    )
    monitored = body["status"]["monitoring"]
    drifted = sorted(c["column"] for c in monitored["columns"] if c["drifted"])
    assert drifted == ["age", "tenure"]
    assert (
        condition(body, "Drift")["reason"] == "DriftDetected"
        and "tenure" in condition(body, "Drift")["message"]
    )
    reasons = [(t, r) for t, r, _ in cluster.events(md)]
    assert ("Normal", "NoDrift") in reasons and ("Warning", "DriftDetected") in reasons
    # the operator's own fields are untouched by the Job; the Job's verdict by the operator
    assert body["status"]["phase"] == "Healthy" and body["status"]["stableVersion"] == "1"

    # 3. Labels arrive later through the same Service: accuracy over the labelled rows.
    truth: list[int] = []
    predicted: list[int] = []
    for (request_id, predictions), start in zip(sent, range(0, len(shifted), 10), strict=True):
        chunk = shifted.iloc[start : start + 10]
        labels = (chunk["support_calls"] - 0.5 * chunk["tenure"] > 0).astype(int).tolist()
        post(f"http://{address}/feedback", {"request_id": request_id, "label": labels})
        truth += labels
        predicted += predictions
    eventually(
        lambda: log_rows(log_root / namespace / md / "labels") >= len(sent), 60, "the labels in the log"
    )
    run_monitor_job(kube, namespace, md, 3)
    from sklearn.metrics import accuracy_score

    body = eventually(
        lambda: (
            (b := cluster.get_md(md) or {})
            and (b["status"]["monitoring"].get("labelledSamples") or 0) > 0
            and b
        ),
        60,
        "accuracy in status",
    )
    monitored = body["status"]["monitoring"]
    assert monitored["labelledSamples"] == 400
    assert monitored["performance"]["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert "accuracy=" in condition(body, "Drift")["message"]
    # the model still leans on support_calls, then tenure (the label's relationship is unchanged);
    # the two unused features may swap: 4 features ranked, rho 0.8 or 1
    assert monitored["importanceStability"] >= 0.79, monitored.get("message")

    # 4. Monitoring switched off: the CronJob and its config go, so does the condition.
    cluster.patch_md(md, {"spec": {"monitoring": None}})

    def gone() -> bool:
        try:
            batch.read_namespaced_cron_job(monitor_name_of(md), namespace)
        except client.ApiException as e:
            return e.status == 404
        return False

    eventually(gone, 60, "the CronJob to be deleted")
    eventually(lambda: not condition(cluster.get_md(md) or {}, "Drift"), 30, "the Drift condition to go")
