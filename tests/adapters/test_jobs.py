"""The gate Job builder and the parser of its result: pure, table-tested."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlrollout.adapters.k8s import jobs, pods
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.gate import GateJobConfig, GateReport
from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.spec import ModelDeploymentSpec

OWNER = Owner(name="churn", namespace="ml", uid="u-1")
VALIDATION = {
    "dataset": {"uri": "s3://bucket/churn/holdout.parquet", "target": "churned"},
    "metrics": [
        {"name": "roc_auc", "min": 0.84},
        {"name": "precision", "min": 0.7, "segment": "plan == 'p'"},
    ],
    "timeout": "10m",
    "backoffLimit": 1,
}


def spec(**validation: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "churn-classifier", "alias": "challenger"},
            "registry": {"trackingUri": "http://mlflow:5000", "credentialsSecret": "mlflow-creds"},
            "serving": {
                "image": "img:1",
                "trustedTypes": ["sklearn.tree._tree.Tree"],
                "env": [{"name": "MLFLOW_S3_ENDPOINT_URL", "value": "http://minio:9000"}],
            },
            "validation": {**VALIDATION, **validation},
            "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
        }
    )


def job(**validation: Any) -> dict[str, Any]:
    return jobs.gate_job(OWNER, spec(**validation), "churn-classifier", "8", 2, "runtime:1")


def test_job_is_deterministic_bounded_and_least_privileged() -> None:
    j = job()
    assert j == job()  # pure and deterministic: safe to re-apply
    assert j["metadata"]["name"] == "churn-gate-8-2"
    assert j["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert j["spec"]["activeDeadlineSeconds"] == 600
    assert j["spec"]["backoffLimit"] == 1
    rule = j["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [3]
    pod = j["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False  # no token: it cannot write the ModelDeployment
    assert "serviceAccountName" not in pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = pod["containers"][0]
    assert c["command"] == ["mlrollout", "gate"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["resources"] == jobs.DEFAULT_RESOURCES
    assert c["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]  # as the serving pods get them
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    config = GateJobConfig.model_validate_json(env[jobs.CONFIG_ENV])
    assert (config.model_name, config.version, config.attempt) == ("churn-classifier", "8", 2)
    assert config.trusted_types == ["sklearn.tree._tree.Tree"]
    assert config.allow_code is False  # spec.serving.allowCode unset: the gate refuses pyfunc code too
    assert config.deployment == "ml/churn"
    assert config.validation.metrics[1].segment == "plan == 'p'"
    assert j["metadata"]["labels"][names.LABEL_DEPLOYMENT] == "churn"
    labels = j["spec"]["template"]["metadata"]["labels"]
    # The live Service selects every track by the deployment label during a canary: never a gate pod.
    assert names.LABEL_DEPLOYMENT not in labels and labels[pods.LABEL_JOB_OF] == "churn"
    assert labels[jobs.LABEL_ATTEMPT] == "2"


def test_job_resources_and_service_account_from_the_spec() -> None:
    j = job(resources={"limits": {"cpu": "2", "memory": "4Gi"}}, serviceAccountName="gate-reader")
    pod = j["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"limits": {"cpu": "2", "memory": "4Gi"}}
    assert pod["serviceAccountName"] == "gate-reader" and pod["automountServiceAccountToken"] is False


def test_long_names_stay_valid() -> None:
    long = Owner(name="a" * 60, namespace="ml", uid="u")
    j = jobs.gate_job(long, spec(), "m", "12345", 3, "img")
    assert len(j["metadata"]["name"]) <= 63
    assert j["metadata"]["name"] == jobs.gate_job_name("a" * 60, "12345", 3)


# -- the parser ----------------------------------------------------------------------------------


def report(outcome: str, **kw: Any) -> str:
    return GateReport(outcome=outcome, model_name="m", version="8", **kw).model_dump_json(by_alias=True)  # type: ignore[arg-type]


def pod(
    name: str, created: str, code: int | None = None, message: str = "", running: bool = False
) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if running else {}
    if code is not None:
        state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "message": message,
            }
        }
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"containerStatuses": [{"name": "gate", "state": state}]},
    }


def job_status(*conditions: tuple[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "churn-gate-8-1"},
        "status": {
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": f"{r}!"} for t, r in conditions
            ]
        },
    }


PASSED, FAILED = report("passed"), report("failed", reason="metric:roc_auc: 0.8 < min 0.84")
ERROR = report("error", reason="dataset s3://b/h.parquet does not exist")


@pytest.mark.parametrize(
    ("case", "job", "pods", "expected"),
    [
        ("no pod yet", job_status(), [], JobRunning(job="churn-gate-8-1")),
        ("running", job_status(), [pod("p1", "t1", running=True)], JobRunning(job="churn-gate-8-1")),
        (
            "retrying after an error report",
            job_status(),
            [pod("p1", "t1", 1, ERROR), pod("p2", "t2", running=True)],
            JobRunning(job="churn-gate-8-1", last_error="dataset s3://b/h.parquet does not exist"),
        ),
        ("passed", job_status(("Complete", "")), [pod("p1", "t1", 0, PASSED)], "passed"),
        ("failed is a report", job_status(("Complete", "")), [pod("p1", "t1", 0, FAILED)], "failed"),
        (
            "newest pod wins",
            job_status(("Complete", "")),
            [pod("p1", "t1", 1, ERROR), pod("p2", "t2", 0, PASSED)],
            "passed",
        ),
        (
            "error after retries",
            job_status(("Failed", "BackoffLimitExceeded")),
            [pod("p", "t", 1, ERROR)],
            "error",
        ),
        ("bad input", job_status(("Failed", "PodFailurePolicy")), [pod("p", "t", 3, ERROR)], "error"),
        (
            "deadline exceeded",
            job_status(("Failed", "DeadlineExceeded")),
            [pod("p1", "t1", running=True)],
            JobCouldNotRun(job="churn-gate-8-1", reason="DeadlineExceeded", message="DeadlineExceeded!"),
        ),
        (
            "crash without report",
            job_status(("Failed", "BackoffLimitExceeded")),
            [pod("p1", "t1", 137, "Traceback\nMemoryError")],
            JobCouldNotRun(
                job="churn-gate-8-1",
                reason="BackoffLimitExceeded",
                message="pod p1 exited with code 137 (Error): Traceback | MemoryError",
            ),
        ),
    ],
)
def test_read_gate_result(case: str, job: dict[str, Any], pods: list[dict[str, Any]], expected: Any) -> None:
    result = jobs.read_gate_result(job, pods)
    if isinstance(expected, str):
        assert isinstance(result, GateReport) and result.outcome == expected, case
    else:
        assert result == expected, case


def test_compact_report_round_trips_through_the_termination_message() -> None:
    rep = GateReport.model_validate(json.loads(FAILED))
    assert jobs.read_gate_result(job_status(("Complete", "")), [pod("p", "t", 0, FAILED)]) == rep
