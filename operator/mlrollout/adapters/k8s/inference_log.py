"""Where the serving pods write their inference log and the monitor Job reads it (pure).

One place decides both sides, so the writer and the reader can never disagree: the serving
Deployment gets the env (and, for a local path, the volume) from here, and so does the monitor's
CronJob. An fsspec URI (s3://...) needs no volume: both sides reach the object store with the
credentials from spec.registry.credentialsSecret (the same AWS_* variables MLflow's artifact store
uses). An absolute local path becomes a hostPath volume mounted at that path on both sides, which
only works when serving pods and monitor pods share a node (single-node clusters, the demo).
"""

from __future__ import annotations

from typing import Any

from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api.spec import ModelDeploymentSpec

ENV_NAME = "MLROLLOUT_INFERENCE_LOG_URI"
VOLUME_NAME = "inference-log"


def base_uri(spec: ModelDeploymentSpec) -> str | None:
    monitoring = spec.monitoring
    return monitoring.inference_log_uri if monitoring is not None else None


def log_uri(owner: Owner, spec: ModelDeploymentSpec) -> str | None:
    """The log of this ModelDeployment: `<base>/<namespace>/<name>` (several share one bucket)."""
    base = base_uri(spec)
    if base is None:
        return None
    return f"{base.rstrip('/')}/{owner.namespace}/{owner.name}"


def is_local(uri: str) -> bool:
    return uri.startswith("/") or uri.startswith("file://")


def _local_path(base: str) -> str:
    return base.removeprefix("file://").rstrip("/") or "/"


def env(owner: Owner, spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    uri = log_uri(owner, spec)
    return [] if uri is None else [{"name": ENV_NAME, "value": uri}]


def volumes(spec: ModelDeploymentSpec, read_only: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pod volumes, container volumeMounts) for a local path; none for an object store."""
    base = base_uri(spec)
    if base is None or not is_local(base):
        return [], []
    path = _local_path(base)
    volume = {"name": VOLUME_NAME, "hostPath": {"path": path, "type": "DirectoryOrCreate"}}
    mount = {"name": VOLUME_NAME, "mountPath": path, "readOnly": read_only}
    return [volume], [mount]
