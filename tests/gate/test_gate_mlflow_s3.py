"""One gate Job against an MLflow server whose artifacts live in the S3 server: the candidate is
downloaded from S3 through MLflow's artifact proxy, the holdout read from S3 directly, and the
gate report lands in S3 beside the model."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from churn import HIGH_RISK, TARGET, data, register

from harness.kube import KubeEnv
from harness.procs import HarnessError
from harness.s3 import MLflowOnS3, S3Server
from mlrollout.adapters.k8s.jobs import gate_job, read_gate_result
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api.gate import GateReport
from mlrollout.api.jobs import JobRunning
from mlrollout.api.spec import ModelDeploymentSpec

pytestmark = [pytest.mark.integration, pytest.mark.services]


@pytest.fixture
def mlflow_on_s3(s3_server: S3Server, tmp_path: Path) -> Iterator[MLflowOnS3]:
    bucket = s3_server.bucket(f"mlflow-{uuid.uuid4().hex[:6]}")
    try:
        server = MLflowOnS3(tmp_path / "mlflow-s3", s3_server, bucket).start()
    except HarnessError as e:
        pytest.fail(f"harness: {e}", pytrace=False)
    yield server
    server.stop()


def test_gate_with_mlflow_artifacts_in_s3(
    kube: KubeEnv,
    namespace: str,
    crd_installed: str,
    s3_server: S3Server,
    mlflow_on_s3: MLflowOnS3,
    tmp_path: Path,
) -> None:
    train, holdout = data(3000, 1), data(2000, 2)
    holdout.to_parquet(tmp_path / "holdout.parquet")
    holdout_uri = s3_server.put(
        mlflow_on_s3.bucket, "data/holdout.parquet", (tmp_path / "holdout.parquet").read_bytes()
    )
    name = f"churn-s3-{uuid.uuid4().hex[:6]}"
    version = register(mlflow_on_s3.uri, name, "good", train)
    assert any(k.endswith("MLmodel") for k in mlflow_on_s3.object_keys()), (
        "the model's artifacts are not in S3"
    )

    kube.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": s3_server.env()},
        namespace,
    )
    spec_doc = {
        "model": {"name": name, "version": version},
        "registry": {"trackingUri": mlflow_on_s3.uri, "credentialsSecret": "creds"},
        "serving": {"image": "mlrollout.local/runtime:test"},
        "validation": {
            "dataset": {"uri": holdout_uri, "target": TARGET},
            "metrics": [
                {"name": "roc_auc", "min": 0.84},
                {"name": "precision", "min": 0.7, "segment": HIGH_RISK},
            ],
            "backoffLimit": 0,
        },
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }
    kube.apply(
        {
            "apiVersion": "mlrollout.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "churn"},
            "spec": spec_doc,
        },
        namespace,
    )
    md = json.loads(
        kube.kubectl("get", "modeldeployment", "churn", "-n", namespace, "-o", "json", check=True).stdout
    )
    manifest = gate_job(
        Owner("churn", namespace, md["metadata"]["uid"]),
        ModelDeploymentSpec.model_validate(spec_doc),
        name,
        version,
        1,
        "mlrollout.local/runtime:test",
    )
    kube.apply(manifest, namespace)
    job_name = manifest["metadata"]["name"]
    deadline = time.monotonic() + 300
    result = None
    while time.monotonic() < deadline:
        job = json.loads(
            kube.kubectl("get", "job", job_name, "-n", namespace, "-o", "json", check=True).stdout
        )
        pods = json.loads(
            kube.kubectl(
                "get",
                "pods",
                "-n",
                namespace,
                "-l",
                f"batch.kubernetes.io/job-name={job_name}",
                "-o",
                "json",
                check=True,
            ).stdout
        )["items"]
        result = read_gate_result(job, pods)
        if not isinstance(result, JobRunning):
            break
        time.sleep(2)
    assert isinstance(result, GateReport) and result.outcome == "passed", result
    assert result.report_uri
    report_keys = [k for k in mlflow_on_s3.object_keys() if "mlrollout/gate" in k]
    assert any(k.endswith("report.json") for k in report_keys) and any(
        k.endswith("report.html") for k in report_keys
    )
