"""What the gate and training Jobs share: a container whose termination message is its report, the
Job around it, and reading the reports and failures of its pods back (pure, both ways)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlrollout.adapters.k8s.builders import Manifest, spec_hash
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.k8s.pods import hardened, terminated
from mlrollout.api import names
from mlrollout.api.jobs import TERMINATION_LOG, TERMINATION_LOG_ENV
from mlrollout.api.spec import ModelDeploymentSpec

R = TypeVar("R", bound=BaseModel)


def reporting_env(spec: ModelDeploymentSpec) -> list[dict[str, str]]:
    return [
        {"name": "MLFLOW_TRACKING_URI", "value": spec.registry.tracking_uri},
        {"name": TERMINATION_LOG_ENV, "value": TERMINATION_LOG},
        {"name": "HOME", "value": "/tmp"},
    ]


def reporting_container(spec: ModelDeploymentSpec, container: Manifest) -> Manifest:
    """`container` (name, image, command, env, resources) hardened, its report as termination message."""
    return hardened(
        spec,
        {
            **container,
            "terminationMessagePath": TERMINATION_LOG,
            # A crash before the report is written still leaves its last log lines as the message.
            "terminationMessagePolicy": "FallbackToLogsOnError",
        },
    )


def job_manifest(
    owner: Owner, name: str, labels: Mapping[str, str], annotations: Mapping[str, str], spec: Manifest
) -> Manifest:
    """A Job owned by the ModelDeployment, with the hash of what it asks for."""
    manifest: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
            "ownerReferences": [owner.reference()],
        },
        "spec": spec,
    }
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(manifest)
    return manifest


# -- reading the result ------------------------------------------------------------------------------


def parser(model: type[R]) -> Callable[[str], R | None]:
    def parse(message: str) -> R | None:
        try:
            return model.model_validate(json.loads(message))
        except (ValueError, ValidationError):
            return None

    return parse


def pod_reports(
    pods: Sequence[Mapping[str, Any]], parse: Callable[[str], R | None], container: str | None = None
) -> tuple[list[R], list[str]]:
    """The reports in the termination messages of the finished pods, newest first, and a line for
    each finished pod that left none (name, exit code, reason, the message's last lines)."""
    reports: list[R] = []
    failures: list[str] = []
    newest_first = sorted(
        pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True
    )
    for pod in newest_first:
        term = terminated(pod, container)
        if term is None:
            continue
        message = str(term.get("message") or "")
        report = parse(message)
        if report is not None:
            reports.append(report)
            continue
        pod_name = (pod.get("metadata") or {}).get("name", "?")
        tail = message.strip().splitlines()[-3:]
        detail = f": {' | '.join(tail)}" if tail else ""
        code, why = term.get("exitCode"), term.get("reason") or "Error"
        failures.append(f"pod {pod_name} exited with code {code} ({why}){detail}")
    return reports, failures
