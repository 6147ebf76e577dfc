"""Pure builders of the monitor's children: its ConfigMap (the Job's config) and its CronJob.

The CronJob runs `mlrollout monitor --config /etc/mlrollout/monitor.json` in the runtime image, as
non-root with a read-only root filesystem, under its own ServiceAccount (which may only patch
status.monitoring; the operator creates it and its Role).
"""

from __future__ import annotations

import json

from mlrollout.adapters.k8s.builders import Manifest, common_labels
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.base import parse_duration
from mlrollout.api.loop import DriftCheck
from mlrollout.api.spec import ModelDeploymentSpec

CONFIG_DIR = "/etc/mlrollout"
CONFIG_FILE = "monitor.json"
DEFAULT_DRIFT_SHARE = 0.5


def monitor_name(owner: Owner) -> str:
    return f"{owner.name}-monitor"


def monitor_config(
    owner: Owner, spec: ModelDeploymentSpec, version: str, inference_log_uri: str, report_dir: str | None
) -> dict[str, object]:
    """The Job's config (the keys `mlrollout.monitor.job.MonitorConfig.load` reads)."""
    monitoring = spec.monitoring
    drift = (monitoring.drift if monitoring else None) or DriftCheck()
    config: dict[str, object] = {
        "namespace": owner.namespace,
        "name": owner.name,
        "referenceUri": monitoring.reference_uri if monitoring else None,
        "inferenceLogUri": inference_log_uri,
        "version": version,
        "windowSeconds": parse_duration(drift.window).total_seconds(),
        "minSamples": drift.min_samples,
        "pValue": drift.p_value,
        "minEffectSize": drift.min_effect_size,
        "driftShare": DEFAULT_DRIFT_SHARE,
    }
    if report_dir:
        config["reportDir"] = report_dir
    return config


def monitor_config_map(
    owner: Owner,
    spec: ModelDeploymentSpec,
    version: str,
    inference_log_uri: str,
    report_dir: str | None = None,
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": monitor_name(owner),
            "namespace": owner.namespace,
            "labels": common_labels(owner),
            "ownerReferences": [owner.reference()],
        },
        "data": {
            CONFIG_FILE: json.dumps(
                monitor_config(owner, spec, version, inference_log_uri, report_dir), sort_keys=True
            )
        },
    }


def monitor_cronjob(
    owner: Owner, spec: ModelDeploymentSpec, model_name: str, version: str, image: str
) -> Manifest:
    """The CronJob from spec.monitoring (schedule, suspend), one run at a time."""
    monitoring = spec.monitoring
    labels = {
        **common_labels(owner),
        names.LABEL_MODEL_NAME: names.label_value(model_name),
        names.LABEL_MODEL_VERSION: names.label_value(version),
    }
    container: Manifest = {
        "name": "monitor",
        "image": image,
        "command": ["mlrollout", "monitor", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": [{"name": "MLFLOW_TRACKING_URI", "value": spec.registry.tracking_uri}],
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }
    if spec.registry.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": spec.registry.credentials_secret}}]
    pod: Manifest = {
        "serviceAccountName": monitor_name(owner),
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "config", "configMap": {"name": monitor_name(owner)}},
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": monitor_name(owner),
            "namespace": owner.namespace,
            "labels": labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "schedule": monitoring.schedule if monitoring else "0 * * * *",
            "suspend": bool(monitoring and monitoring.suspend),
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "ttlSecondsAfterFinished": 86400,
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                }
            },
        },
    }
