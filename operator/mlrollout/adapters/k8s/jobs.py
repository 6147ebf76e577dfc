"""The gate Job: a pure builder, and a pure parser of what the Job and its pods say.

The Job reports through its termination message, so it needs no Kubernetes API access at all: the
pod mounts no service-account token and cannot write the ModelDeployment. Exit codes of
`mlrollout gate` (see mlrollout.gate.job): 0 ran (report's outcome passed|failed), 1 could not run
(retried by the Job up to backoffLimit), 3 could not run because of bad input (the Job fails at once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlrollout.adapters.k8s.builders import Manifest, _resources, common_labels, model_uri
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
from mlrollout.api.base import parse_duration
from mlrollout.api.gate import CONFIG_ENV, GateJobConfig, GateReport
from mlrollout.api.jobs import EXIT_BAD_INPUT, JobCouldNotRun, JobRunning
from mlrollout.api.spec import ModelDeploymentSpec

LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT_GATE = "gate"
LABEL_ATTEMPT = f"{names.GROUP}/gate-attempt"
DEFAULT_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}


def gate_job_name(deployment: str, version: str, attempt: int) -> str:
    return names.child_name(deployment, f"gate-{version}-{attempt}")


def gate_config(
    owner: Owner, spec: ModelDeploymentSpec, model_name: str, version: str, attempt: int
) -> GateJobConfig:
    assert spec.validation is not None, "gate_job needs spec.validation"
    return GateJobConfig(
        model_name=model_name,
        version=version,
        tracking_uri=spec.registry.tracking_uri,
        champion_alias=spec.registry.champion_alias,
        trusted_types=list(spec.serving.trusted_types),
        allow_code=spec.serving.allow_code,
        validation=spec.validation,
        deployment=f"{owner.namespace}/{owner.name}",
        attempt=attempt,
    )


def gate_job(
    owner: Owner, spec: ModelDeploymentSpec, model_name: str, version: str, attempt: int, image: str
) -> Manifest:
    """The Job that gates `version` (attempt N): deterministic name, bounded in time and retries."""
    validation = spec.validation
    assert validation is not None, "gate_job needs spec.validation"
    config = gate_config(owner, spec, model_name, version, attempt)
    labels = {
        **common_labels(owner),
        LABEL_COMPONENT: COMPONENT_GATE,
        names.LABEL_MODEL_NAME: names.label_value(model_name),
        names.LABEL_MODEL_VERSION: names.label_value(version),
        LABEL_ATTEMPT: str(attempt),
    }
    container = reporting_container(
        spec,
        {
            "name": COMPONENT_GATE,
            "image": image,
            "command": ["mlrollout", "gate"],
            "env": [
                {"name": CONFIG_ENV, "value": config.model_dump_json(by_alias=True, exclude_none=True)},
                *reporting_env(spec),
                *({"name": e.name, "value": e.value} for e in spec.serving.env),
            ],
            "resources": _resources(validation.resources) if validation.resources else DEFAULT_RESOURCES,
        },
    )
    pod = job_pod(spec, container, validation.service_account_name)
    return job_manifest(
        owner,
        gate_job_name(owner.name, version, attempt),
        labels,
        {names.ANNOTATION_MODEL_URI: model_uri(model_name, version)},
        {
            "backoffLimit": validation.backoff_limit,
            "activeDeadlineSeconds": max(1, int(parse_duration(validation.timeout).total_seconds())),
            "podFailurePolicy": fail_at_once_on(COMPONENT_GATE, EXIT_BAD_INPUT),
            "template": {"metadata": {"labels": job_pod_labels(labels, owner.name)}, "spec": pod},
        },
    )


# -- reading the result ------------------------------------------------------------------------------


def read_gate_result(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> GateReport | JobRunning | JobCouldNotRun:
    """Running until the Job finishes; then the newest pod's report, or why there is none.

    A report with outcome `error` is the Job saying it could not run, with its reason; a Job that
    finished without any report (deadline exceeded, pod killed, crash) is JobCouldNotRun.
    """
    name = str((job.get("metadata") or {}).get("name", ""))
    conditions = true_conditions(job)
    reports, failures = pod_reports(pods, parser(GateReport))
    finished = "Complete" in conditions or "Failed" in conditions
    if not finished:
        last = (
            reports[0].reason
            if reports and reports[0].outcome == "error"
            else (failures[0] if failures else None)
        )
        return JobRunning(job=name, last_error=last)
    failed = conditions.get("Failed")
    if failed is not None and failed.get("reason") == "DeadlineExceeded":
        message = str(failed.get("message") or "the gate Job ran past its deadline (validation.timeout)")
        return JobCouldNotRun(job=name, reason="DeadlineExceeded", message=message[:1024])
    if reports:
        return reports[0]
    if failed is not None:
        detail = failures[0] if failures else str(failed.get("message") or "no pod left a report")
        return JobCouldNotRun(
            job=name, reason=str(failed.get("reason") or "JobFailed"), message=detail[:1024]
        )
    return JobCouldNotRun(job=name, reason="NoReport", message="the gate Job completed without a report")
