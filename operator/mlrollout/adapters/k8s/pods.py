"""Pod pieces every workload the operator makes shares (serving pods, gate, monitor and training
Jobs): non-root, read-only root filesystem with a writable /tmp, no privilege escalation, no
capabilities, the runtime-default seccomp profile, and the registry's credentials when the spec
names a Secret. One place, so a workload cannot drift from the others."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlrollout.api import names
from mlrollout.api.spec import ModelDeploymentSpec

Manifest = dict[str, Any]

NOBODY = 65534
LABEL_JOB_OF = "mlrollout.io/job-of"
TMP_VOLUME: Manifest = {"name": "tmp", "emptyDir": {}}
TMP_MOUNT: Manifest = {"name": "tmp", "mountPath": "/tmp"}


def container_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security() -> Manifest:
    return {"runAsNonRoot": True, "runAsUser": NOBODY, "seccompProfile": {"type": "RuntimeDefault"}}


def hardened(spec: ModelDeploymentSpec, container: Manifest, mounts: Sequence[Manifest] = ()) -> Manifest:
    """`container` with the security context, /tmp (then `mounts`), the spec's pull policy and the
    registry credentials as env from their Secret."""
    out: Manifest = {
        **container,
        "securityContext": container_security(),
        "volumeMounts": [dict(TMP_MOUNT), *mounts],
    }
    if spec.serving.image_pull_policy:
        out["imagePullPolicy"] = spec.serving.image_pull_policy
    if spec.registry.credentials_secret:
        out["envFrom"] = [{"secretRef": {"name": spec.registry.credentials_secret}}]
    return out


def job_pod(
    spec: ModelDeploymentSpec,
    container: Manifest,
    service_account: str | None,
    *,
    api_token: bool = False,
    volumes: Sequence[Manifest] = (),
) -> Manifest:
    """A run-to-completion pod; it mounts an API token only when it must talk to the API server
    (the monitor patches status.monitoring; gate and training Jobs report by termination message)."""
    pod: Manifest = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [dict(TMP_VOLUME), *volumes],
        "securityContext": pod_security(),
    }
    if not api_token:
        pod["automountServiceAccountToken"] = False
    if service_account:
        pod["serviceAccountName"] = service_account
    if spec.serving.node_selector:
        pod["nodeSelector"] = dict(spec.serving.node_selector)
    return pod


def job_pod_labels(labels: Mapping[str, str], owner_name: str) -> dict[str, str]:
    """A Job's pod labels: not the deployment label, which the live Service selects every track by
    during a canary (a gate or training pod must never become one of its endpoints), but
    `mlrollout.io/job-of` to find them by."""
    kept = {k: v for k, v in labels.items() if k != names.LABEL_DEPLOYMENT}
    return kept | {LABEL_JOB_OF: owner_name}


def fail_at_once_on(container_name: str, exit_code: int) -> Manifest:
    """podFailurePolicy: bad input fails the same way every time, so the Job is not retried."""
    rule = {"containerName": container_name, "operator": "In", "values": [exit_code]}
    return {"rules": [{"action": "FailJob", "onExitCodes": rule}]}


# -- reading a finished Job back -------------------------------------------------------------------


def true_conditions(job: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The Job's conditions that hold (Complete, Failed, ...), by type."""
    return {
        str(c.get("type")): c
        for c in (job.get("status") or {}).get("conditions") or []
        if str(c.get("status")) == "True"
    }


def terminated(pod: Mapping[str, Any], container: str | None = None) -> Mapping[str, Any] | None:
    """The terminated state of the pod's container (`container`, or the first that ended)."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if container is not None and cs.get("name") not in (None, container):
            continue
        state = cs.get("state") or {}
        if state.get("terminated"):
            return dict(state["terminated"])
    return None
