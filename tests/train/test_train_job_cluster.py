"""The training Job on the real control plane: built by train_job, run for real by the pod runner
(`mlrollout train` as a local process), its termination message read back by read_train_result.
The dataset and the reference snapshot live in a real S3-compatible server; the pod gets its
credentials through the registry credentials Secret, as serving pods do."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from retrain_data import TARGET, churn

from harness.kube import KubeEnv, wait_jobs_finished
from harness.s3 import S3Server
from harness.services import MLflowServer
from mlrollout.adapters.datasets.fsspec_reader import fingerprint, read_table
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.k8s.training import read_train_result, train_job
from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.training import TrainReport

pytestmark = [pytest.mark.integration, pytest.mark.services]
IMAGE = "mlrollout.local/runtime:test"
SECRET = "registry-credentials"


def md_spec(tracking_uri: str, dataset: str, references: str) -> dict[str, Any]:
    return {
        "model": {"name": "churn", "alias": "champion"},
        "registry": {"trackingUri": tracking_uri, "credentialsSecret": SECRET},
        "serving": {"image": IMAGE},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
        "retraining": {
            "triggers": [{"schedule": {"cron": "0 3 * * *"}}],
            "job": {
                "builtin": {
                    "estimator": "logistic_regression",
                    "target": TARGET,
                    "exclude": ["customer_id"],
                    "trials": 2,
                },
                "datasetUri": dataset,
                "referenceDir": references,
                "timeout": "8m",
                "backoffLimit": 0,
            },
        },
    }


def test_training_jobs_register_a_version_or_name_the_bad_dataset(
    kube: KubeEnv, namespace: str, crd_installed: str, mlflow_server: MLflowServer, s3_server: S3Server
) -> None:
    from mlflow import MlflowClient

    ns = namespace
    frame = churn(1200, 21, shift=0.6)
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    bucket = s3_server.bucket(f"train-{uuid.uuid4().hex[:6]}")
    dataset = s3_server.put(bucket, "churn/train.parquet", buffer.getvalue())
    references = f"s3://{bucket}/references"
    kube.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET}, "stringData": s3_server.env()},
        ns,
    )
    body = md_spec(mlflow_server.uri, dataset, references)
    # a real owner (the API server accepts the new retraining fields); no operator runs here
    kube.apply(
        {
            "apiVersion": "mlrollout.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "churn"},
            "spec": body,
        },
        ns,
    )
    uid = kube.get_json("modeldeployment", "churn", "-n", ns)["metadata"]["uid"]
    owner = Owner("churn", ns, uid)
    model_name = f"churn-{uuid.uuid4().hex[:6]}"
    good = train_job(
        owner, ModelDeploymentSpec.model_validate(body), model_name, "4", "schedule '0 3 * * *'", 1, IMAGE
    )
    missing_body = md_spec(mlflow_server.uri, f"s3://{bucket}/churn/missing.parquet", references)
    missing = train_job(
        owner, ModelDeploymentSpec.model_validate(missing_body), model_name, "4", "drift", 2, IMAGE
    )
    for manifest in (good, missing):
        kube.apply(manifest, ns)
    names = [good["metadata"]["name"], missing["metadata"]["name"]]
    assert names == ["churn-train-1", "churn-train-2"]

    results = wait_jobs_finished(kube, ns, names, read_train_result, JobRunning, timeout=540)

    report = results["churn-train-1"]
    assert isinstance(report, TrainReport) and report.outcome == "registered", report
    assert report.version == "1" and report.trials == 2
    mv = MlflowClient(mlflow_server.uri).get_model_version(model_name, report.version)
    assert mv.tags["mlrollout.parent_version"] == "4"
    assert mv.tags["mlrollout.trigger"] == "schedule '0 3 * * *'"
    assert mv.tags["mlrollout.data_hash"] == fingerprint(frame)
    assert mv.tags["mlrollout.training_data"] == dataset
    assert report.reference_uri is not None and report.reference_uri.startswith(references)
    snapshot = read_table(report.reference_uri, env=s3_server.env())
    assert "prediction" in snapshot.columns and len(snapshot) == 1200

    bad = results["churn-train-2"]
    assert isinstance(bad, JobCouldNotRun) and bad.reason == "BadInput", bad
    assert "does not exist" in bad.message
    job = kube.get_json("job", "churn-train-2", "-n", ns)
    assert [c["reason"] for c in job["status"]["conditions"] if c["type"] == "Failed"] == ["PodFailurePolicy"]
