"""The gate Job: a pure builder, and a pure parser of what the Job and its pods say.

The Job reports through its termination message, so it needs no Kubernetes API access at all: the
pod mounts no service-account token and cannot write the ModelDeployment. Exit codes of
`mlrollout gate` (see mlrollout.gate.job): 0 ran (report's outcome passed|failed), 1 could not run
(retried by the Job up to backoffLimit), 3 could not run because of bad input (the Job fails at once).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from mlrollout.adapters.k8s.builders import Manifest, _resources, common_labels, model_uri, spec_hash
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.k8s.pods import (
    fail_at_once_on,
    hardened,
    job_pod,
    job_pod_labels,
    terminated,
    true_conditions,
)
from mlrollout.api import names
from mlrollout.api.base import parse_duration
from mlrollout.api.gate import GateCouldNotRun, GateJobConfig, GateReport, GateRunning
from mlrollout.api.spec import ModelDeploymentSpec

LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT_GATE = "gate"
LABEL_ATTEMPT = f"{names.GROUP}/gate-attempt"
CONFIG_ENV = "MLROLLOUT_GATE_CONFIG"
TERMINATION_LOG = "/dev/termination-log"
EXIT_BAD_INPUT = 3
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
    container = hardened(
        spec,
        {
            "name": COMPONENT_GATE,
            "image": image,
            "command": ["mlrollout", "gate"],
            "env": [
                {"name": CONFIG_ENV, "value": config.model_dump_json(by_alias=True, exclude_none=True)},
                {"name": "MLFLOW_TRACKING_URI", "value": spec.registry.tracking_uri},
                {"name": "MLROLLOUT_TERMINATION_LOG", "value": TERMINATION_LOG},
                {"name": "HOME", "value": "/tmp"},
                *({"name": e.name, "value": e.value} for e in spec.serving.env),
            ],
            "resources": _resources(validation.resources) if validation.resources else DEFAULT_RESOURCES,
            "terminationMessagePath": TERMINATION_LOG,
            # A crash before the report is written still leaves its last log lines as the message.
            "terminationMessagePolicy": "FallbackToLogsOnError",
        },
    )
    pod = job_pod(spec, container, validation.service_account_name)
    manifest: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": gate_job_name(owner.name, version, attempt),
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": {names.ANNOTATION_MODEL_URI: model_uri(model_name, version)},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "backoffLimit": validation.backoff_limit,
            "activeDeadlineSeconds": max(1, int(parse_duration(validation.timeout).total_seconds())),
            "podFailurePolicy": fail_at_once_on(COMPONENT_GATE, EXIT_BAD_INPUT),
            "template": {"metadata": {"labels": job_pod_labels(labels, owner.name)}, "spec": pod},
        },
    }
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(manifest)
    return manifest


# -- reading the result ------------------------------------------------------------------------------


def _report(message: str) -> GateReport | None:
    try:
        return GateReport.model_validate(json.loads(message))
    except (ValueError, ValidationError):
        return None


def _newest_first(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(
        pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True
    )


def read_gate_result(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> GateReport | GateRunning | GateCouldNotRun:
    """Running until the Job finishes; then the newest pod's report, or why there is none.

    A report with outcome `error` is the Job saying it could not run, with its reason; a Job that
    finished without any report (deadline exceeded, pod killed, crash) is GateCouldNotRun.
    """
    name = str((job.get("metadata") or {}).get("name", ""))
    conditions = true_conditions(job)
    reports: list[GateReport] = []
    failures: list[str] = []
    for pod in _newest_first(pods):
        term = terminated(pod)
        if term is None:
            continue
        rep = _report(str(term.get("message") or ""))
        if rep is not None:
            reports.append(rep)
        else:
            failures.append(_pod_failure(pod, term))
    finished = "Complete" in conditions or "Failed" in conditions
    if not finished:
        last = (
            reports[0].reason
            if reports and reports[0].outcome == "error"
            else (failures[0] if failures else None)
        )
        return GateRunning(job=name, last_error=last)
    failed = conditions.get("Failed")
    if failed is not None and failed.get("reason") == "DeadlineExceeded":
        message = str(failed.get("message") or "the gate Job ran past its deadline (validation.timeout)")
        return GateCouldNotRun(job=name, reason="DeadlineExceeded", message=message[:1024])
    if reports:
        return reports[0]
    if failed is not None:
        detail = failures[0] if failures else str(failed.get("message") or "no pod left a report")
        return GateCouldNotRun(
            job=name, reason=str(failed.get("reason") or "JobFailed"), message=detail[:1024]
        )
    return GateCouldNotRun(job=name, reason="NoReport", message="the gate Job completed without a report")


def _pod_failure(pod: Mapping[str, Any], term: Mapping[str, Any]) -> str:
    pod_name = (pod.get("metadata") or {}).get("name", "?")
    tail = str(term.get("message") or "").strip().splitlines()[-3:]
    detail = f": {' | '.join(tail)}" if tail else ""
    return f"pod {pod_name} exited with code {term.get('exitCode')} ({term.get('reason') or 'Error'}){detail}"
