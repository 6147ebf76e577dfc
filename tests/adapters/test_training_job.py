"""The training Job builder and the parser of its result: pure, table-tested."""

from __future__ import annotations

from typing import Any

import pytest

from mlrollout.adapters.k8s import pods, training
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.training import TrainJobConfig, TrainReport

OWNER = Owner(name="churn", namespace="ml", uid="u-1")
BUILTIN = {
    "builtin": {"estimator": "gradient_boosting", "target": "churned", "trials": 5},
    "datasetUri": "s3://bucket/churn/train.parquet",
    "referenceDir": "s3://bucket/churn/references",
    "timeout": "30m",
}
CUSTOM = {"image": "ghcr.io/acme/trainer:2", "command": ["python", "train.py"], "datasetUri": "s3://b/t.csv"}


def spec(job: dict[str, Any]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "churn-classifier", "alias": "champion"},
            "registry": {"trackingUri": "http://mlflow:5000", "credentialsSecret": "mlflow-creds"},
            "serving": {"image": "runtime:1"},
            "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
            "monitoring": {"drift": {}},
            "retraining": {"triggers": [{"drift": {}}], "job": job},
        }
    )


def build(job: dict[str, Any], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"parent_version": "7", "trigger": "drift: input drift on tenure", "attempt": 3}
    args.update(kw)
    return training.train_job(OWNER, spec(job), "churn-classifier", image="runtime:1", **args)


def env_of(manifest: dict[str, Any]) -> dict[str, str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_builtin_job_is_deterministic_bounded_and_least_privileged() -> None:
    j = build(BUILTIN)
    assert j == build(BUILTIN)
    assert j["metadata"]["name"] == "churn-train-3"
    assert j["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert j["metadata"]["labels"][training.LABEL_ATTEMPT] == "3"
    assert j["metadata"]["annotations"][training.ANNOTATION_TRIGGER] == "drift: input drift on tenure"
    assert names.ANNOTATION_SPEC_HASH in j["metadata"]["annotations"]
    s = j["spec"]
    assert s["activeDeadlineSeconds"] == 1800 and s["backoffLimit"] == 1
    assert s["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [3]
    assert "completionMode" not in s
    pod = s["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65534
    c = pod["containers"][0]
    assert c["image"] == "runtime:1" and c["command"] == ["mlrollout", "train"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"] == training.DEFAULT_RESOURCES
    assert c["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_builtin_job_carries_its_config_and_the_lineage_env() -> None:
    env = env_of(build(BUILTIN))
    assert env["MLROLLOUT_DATASET_URI"] == "s3://bucket/churn/train.parquet"
    assert env["MLROLLOUT_PARENT_VERSION"] == "7"
    assert env["MLROLLOUT_TRIGGER"] == "drift: input drift on tenure"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    config = TrainJobConfig.model_validate_json(env["MLROLLOUT_TRAIN_CONFIG"])
    assert config.model_name == "churn-classifier" and config.parent_version == "7" and config.attempt == 3
    assert config.trainer.estimator == "gradient_boosting" and config.trainer.trials == 5
    assert config.deployment == "ml/churn" and config.study_name == "ml-churn-3"
    assert config.reference_dir == "s3://bucket/churn/references"


def test_custom_trainer_runs_the_users_image_and_command_with_the_same_env() -> None:
    j = build(CUSTOM, parent_version=None)
    c = j["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "ghcr.io/acme/trainer:2" and c["command"] == ["python", "train.py"]
    env = env_of(j)
    assert env["MLROLLOUT_DATASET_URI"] == "s3://b/t.csv" and env["MLROLLOUT_PARENT_VERSION"] == ""
    assert env["MLROLLOUT_JOB_NAME"] == "churn-train-3"
    assert "MLROLLOUT_TRAIN_CONFIG" not in env
    assert "podFailurePolicy" not in j["spec"]  # its exit codes mean nothing to us


def test_resources_service_account_and_parallel_pods() -> None:
    job = {
        **BUILTIN,
        "resources": {"limits": {"cpu": "2", "memory": "8Gi"}},
        "builtin": {**BUILTIN["builtin"], "parallelism": 4, "storage": "postgresql://optuna@db/optuna"},  # type: ignore[dict-item]
    }
    j = build(job, service_account="mlrollout-job")
    pod = j["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mlrollout-job"
    assert pod["containers"][0]["resources"] == {"limits": {"cpu": "2", "memory": "8Gi"}}
    assert (j["spec"]["completionMode"], j["spec"]["completions"], j["spec"]["parallelism"]) == (
        "Indexed",
        4,
        4,
    )
    own = build({**BUILTIN, "serviceAccountName": "trainer"}, service_account="mlrollout-job")
    assert own["spec"]["template"]["spec"]["serviceAccountName"] == "trainer"


def test_names_stay_valid_and_a_long_trigger_is_cut() -> None:
    long = Owner(name="a" * 60, namespace="ml", uid="u")
    j = training.train_job(long, spec(BUILTIN), "m", None, "x" * 5000, 12, "img")
    assert len(j["metadata"]["name"]) <= 63
    assert len(env_of(j)["MLROLLOUT_TRIGGER"]) == training.TRIGGER_TEXT_LIMIT


# -- reading the result ------------------------------------------------------------------------------

REGISTERED = TrainReport(outcome="registered", model_name="churn-classifier", version="8", run_id="r1")
BAD = TrainReport(outcome="error", model_name="churn-classifier", reason="dataset s3://b/t does not exist")


def _job(*conditions: tuple[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "churn-train-3"},
        "status": {"conditions": [{"type": t, "status": "True", "reason": r} for t, r in conditions]},
    }


def _pod(
    message: str, code: int = 0, created: str = "2026-01-01T00:00:00Z", index: str = "0"
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"churn-train-3-{created[-3:-1]}",
            "creationTimestamp": created,
            "annotations": {"batch.kubernetes.io/job-completion-index": index},
        },
        "status": {
            "containerStatuses": [
                {"name": "train", "state": {"terminated": {"exitCode": code, "message": message}}}
            ]
        },
    }


def _json(report: TrainReport) -> str:
    return report.model_dump_json(by_alias=True, exclude_none=True)


@pytest.mark.parametrize(
    ("case", "job", "pods", "expected"),
    [
        ("running", _job(), [], JobRunning(job="churn-train-3")),
        (
            "running after a failed pod",
            _job(),
            [_pod("Traceback ...\nConnectionError: mlflow", 1)],
            JobRunning(
                job="churn-train-3",
                last_error="pod churn-train-3-00 exited with code 1 (Error): "
                "Traceback ... | ConnectionError: mlflow",
            ),
        ),
        ("registered", _job(("Complete", "")), [_pod(_json(REGISTERED))], REGISTERED),
        (
            "registered by pod 0 of a parallel study",
            _job(("Complete", "")),
            [_pod("worker done", index="1", created="2026-01-01T00:00:09Z"), _pod(_json(REGISTERED))],
            REGISTERED,
        ),
        (
            "bad input fails at once",
            _job(("Failed", "PodFailurePolicy")),
            [_pod(_json(BAD), 3)],
            JobCouldNotRun(job="churn-train-3", reason="BadInput", message="dataset s3://b/t does not exist"),
        ),
        (
            "deadline",
            _job(("Failed", "DeadlineExceeded")),
            [],
            JobCouldNotRun(
                job="churn-train-3",
                reason="DeadlineExceeded",
                message="the training Job ran past retraining.job.timeout",
            ),
        ),
        (
            "crash without a report",
            _job(("Failed", "BackoffLimitExceeded")),
            [_pod("Killed", 137)],
            JobCouldNotRun(
                job="churn-train-3",
                reason="BackoffLimitExceeded",
                message="pod churn-train-3-00 exited with code 137 (Error): Killed",
            ),
        ),
        ("custom trainer without a report", _job(("Complete", "")), [_pod("done")], "NoReport"),
    ],
)
def test_read_train_result(case: str, job: dict[str, Any], pods: list[dict[str, Any]], expected: Any) -> None:
    result = training.read_train_result(job, pods)
    if isinstance(expected, str):
        assert isinstance(result, JobCouldNotRun) and result.reason == expected
        assert "MLROLLOUT_TERMINATION_LOG" in result.message
    else:
        assert result == expected


def test_report_fits_a_termination_message() -> None:
    report = TrainReport(
        outcome="registered",
        model_name="m" * 256,
        version="123",
        run_id="r" * 32,
        metric="roc_auc",
        value=0.91,
        trials=1000,
        data_hash="d" * 32,
        reference_uri="s3://" + "x" * 2000,
    )
    assert len(_json(report)) < 4096


def test_training_pods_are_never_endpoints_of_the_live_service() -> None:
    manifest = build(BUILTIN)
    labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert names.LABEL_DEPLOYMENT not in labels and labels[pods.LABEL_JOB_OF] == "churn"
