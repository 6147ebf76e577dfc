"""The training Job: a pure builder, and a pure parser of what the Job and its pods say.

Two kinds of trainer. The built-in one (`retraining.job.builtin`) runs `mlrollout train` in the
runtime image (spec.serving.image unless `job.image` is set) with its TrainJobConfig in env. The
user's own (`job.image` + `job.command`) gets the same env: MLROLLOUT_DATASET_URI,
MLROLLOUT_PARENT_VERSION, MLROLLOUT_TRIGGER, MLROLLOUT_MODEL_NAME, MLROLLOUT_JOB_NAME and
MLFLOW_TRACKING_URI; it must register a version of MLROLLOUT_MODEL_NAME and write a TrainReport
(`{"outcome": "registered", "modelName": ..., "version": "N"}`) to $MLROLLOUT_TERMINATION_LOG, which
is how the operator learns the version without polling the registry.

Like the gate Job, the pod needs no Kubernetes API access: no service-account token is mounted.
Exit codes of `mlrollout train`: 0 registered; 1 a retry may help; 3 bad input (the Job fails at
once, no retry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlrollout.adapters.k8s.builders import Manifest, _resources, common_labels
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.k8s.pods import fail_at_once_on, job_pod, job_pod_labels, true_conditions
from mlrollout.adapters.k8s.reporting_jobs import (
    job_manifest,
    parser,
    pod_reports,
    reporting_container,
    reporting_env,
)
from mlrollout.api import names
from mlrollout.api import training as tr
from mlrollout.api.base import parse_duration
from mlrollout.api.jobs import EXIT_BAD_INPUT, JobCouldNotRun, JobRunning
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.training import TrainJobConfig, TrainReport, train_job_name

LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT_TRAIN = "train"
LABEL_ATTEMPT = f"{names.GROUP}/train-attempt"
ANNOTATION_TRIGGER = f"{names.GROUP}/trigger"
DEFAULT_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
TRIGGER_TEXT_LIMIT = 500


def train_config(
    owner: Owner,
    spec: ModelDeploymentSpec,
    model_name: str,
    parent_version: str | None,
    trigger: str,
    attempt: int,
) -> TrainJobConfig:
    retraining = spec.retraining
    assert retraining is not None and retraining.job.builtin is not None, (
        "train_config needs a builtin trainer"
    )
    job = retraining.job
    return TrainJobConfig(
        model_name=model_name,
        tracking_uri=spec.registry.tracking_uri,
        dataset_uri=job.dataset_uri,
        trainer=job.builtin,
        parent_version=parent_version,
        trigger=trigger[:TRIGGER_TEXT_LIMIT],
        deployment=f"{owner.namespace}/{owner.name}",
        attempt=attempt,
        # one study per ModelDeployment and attempt: parallel pods of this Job share it, a retry resumes it
        study_name=f"{owner.namespace}-{owner.name}-{attempt}",
        reference_dir=job.reference_dir,
    )


def train_job(
    owner: Owner,
    spec: ModelDeploymentSpec,
    model_name: str,
    parent_version: str | None,
    trigger: str,
    attempt: int,
    image: str,
    service_account: str | None = None,
) -> Manifest:
    """The training Job for attempt N: deterministic name, bounded in time and retries, non-root.

    `image` is the runtime image (for the built-in trainer when job.image is not set);
    `service_account` the Jobs' ServiceAccount (MLROLLOUT_JOB_SERVICE_ACCOUNT) unless the spec names one.
    """
    retraining = spec.retraining
    assert retraining is not None, "train_job needs spec.retraining"
    job = retraining.job
    name = train_job_name(owner.name, attempt)
    env: list[dict[str, str]] = [
        {"name": tr.ENV_DATASET_URI, "value": job.dataset_uri},
        {"name": tr.ENV_PARENT_VERSION, "value": parent_version or ""},
        {"name": tr.ENV_TRIGGER, "value": trigger[:TRIGGER_TEXT_LIMIT]},
        {"name": tr.ENV_MODEL_NAME, "value": model_name},
        {"name": "MLROLLOUT_JOB_NAME", "value": name},
        *reporting_env(spec),
    ]
    builtin = job.builtin
    if builtin is not None:
        config = train_config(owner, spec, model_name, parent_version, trigger, attempt)
        env.append({"name": tr.ENV_CONFIG, "value": config.model_dump_json(by_alias=True, exclude_none=True)})
        command = ["mlrollout", "train"]
        container_image = job.image or image
    else:
        assert job.command is not None and job.image is not None  # the CRD's rules guarantee both
        command = list(job.command)
        container_image = job.image
    labels = {
        **common_labels(owner),
        LABEL_COMPONENT: COMPONENT_TRAIN,
        names.LABEL_MODEL_NAME: names.label_value(model_name),
        LABEL_ATTEMPT: str(attempt),
    }
    container = reporting_container(
        spec,
        {
            "name": COMPONENT_TRAIN,
            "image": container_image,
            "command": command,
            "env": env,
            "resources": _resources(job.resources) if job.resources else DEFAULT_RESOURCES,
        },
    )
    pod = job_pod(spec, container, job.service_account_name or service_account)
    job_spec: Manifest = {
        "backoffLimit": job.backoff_limit,
        "activeDeadlineSeconds": max(1, int(parse_duration(job.timeout).total_seconds())),
        "template": {"metadata": {"labels": job_pod_labels(labels, owner.name)}, "spec": pod},
    }
    if builtin is not None:
        # Bad input fails the same way every time: no retry. (A user's command has no such contract.)
        job_spec["podFailurePolicy"] = fail_at_once_on(COMPONENT_TRAIN, EXIT_BAD_INPUT)
        if builtin.parallelism > 1:
            # Pod index 0 registers the model; the others run trials of the shared study.
            job_spec.update(
                completionMode="Indexed", completions=builtin.parallelism, parallelism=builtin.parallelism
            )
    annotations = {ANNOTATION_TRIGGER: trigger[:TRIGGER_TEXT_LIMIT]}
    return job_manifest(owner, name, labels, annotations, job_spec)


# -- reading the result ------------------------------------------------------------------------------


def _completion_index(pod: Mapping[str, Any]) -> str:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get("batch.kubernetes.io/job-completion-index", "0"))


def read_train_result(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> TrainReport | JobRunning | JobCouldNotRun:
    """Running until the Job finishes; then the registering pod's report, or why there is none."""
    name = str((job.get("metadata") or {}).get("name", ""))
    conditions = true_conditions(job)
    registering = [p for p in pods if _completion_index(p) == "0"]
    reports, failures = pod_reports(registering, parser(TrainReport), COMPONENT_TRAIN)
    if "Complete" not in conditions and "Failed" not in conditions:
        last = reports[0].reason if reports and reports[0].outcome == "error" else None
        return JobRunning(job=name, last_error=last or (failures[0] if failures else None))
    registered = next((r for r in reports if r.outcome == "registered" and r.version), None)
    if "Complete" in conditions and registered is not None:
        return registered
    failed = conditions.get("Failed")
    if failed is not None and failed.get("reason") == "DeadlineExceeded":
        return JobCouldNotRun(
            job=name, reason="DeadlineExceeded", message="the training Job ran past retraining.job.timeout"
        )
    if reports and reports[0].outcome == "error":
        reason = (
            "BadInput"
            if failed is not None and failed.get("reason") == "PodFailurePolicy"
            else "TrainingFailed"
        )
        return JobCouldNotRun(
            job=name, reason=reason, message=(reports[0].reason or "training failed")[:1024]
        )
    if failed is not None:
        detail = failures[0] if failures else str(failed.get("message") or "no pod left a report")
        return JobCouldNotRun(
            job=name, reason=str(failed.get("reason") or "JobFailed"), message=detail[:1024]
        )
    return JobCouldNotRun(
        job=name,
        reason="NoReport",
        message="the training Job completed without reporting a registered version "
        "(a custom trainer writes a TrainReport to $MLROLLOUT_TERMINATION_LOG)",
    )
