"""Pure builders of the monitor's children: its ConfigMap (the Job's config) and its CronJob.

The CronJob runs `mlrollout monitor --config /etc/mlrollout/monitor.json` in the runtime image, as
non-root with a read-only root filesystem, under the Jobs' ServiceAccount (the chart creates it in
each job namespace; its Role reads ModelDeployments and patches their status, and an admission
policy keeps it to status.monitoring). It reads the inference log where the serving pods write it
(`inference_log`) and logs its report to MLflow on the serving version.
"""

from __future__ import annotations

import json

from mlrollout.adapters.k8s import inference_log
from mlrollout.adapters.k8s.builders import Manifest, common_labels, spec_hash
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.k8s.pods import hardened, job_pod
from mlrollout.api import names
from mlrollout.api.base import parse_duration
from mlrollout.api.loop import DriftCheck, PerformanceCheck
from mlrollout.api.spec import ModelDeploymentSpec

CONFIG_DIR = "/etc/mlrollout"
CONFIG_FILE = "monitor.json"
DEFAULT_DRIFT_SHARE = 0.5
DEFAULT_SERVICE_ACCOUNT = "mlrollout-job"
LABEL_MONITOR_OF = f"{names.GROUP}/monitor-of"


def monitor_name(owner: Owner) -> str:
    return names.child_name(owner.name, "monitor")


def monitor_config(
    owner: Owner, spec: ModelDeploymentSpec, model_name: str, version: str, report_dir: str | None = None
) -> dict[str, object]:
    """The Job's config (the keys `mlrollout.monitor.job.MonitorConfig.load` reads)."""
    monitoring = spec.monitoring
    drift = (monitoring.drift if monitoring else None) or DriftCheck()
    config: dict[str, object] = {
        "namespace": owner.namespace,
        "name": owner.name,
        "modelName": model_name,
        "referenceUri": monitoring.reference_uri if monitoring else None,
        "inferenceLogUri": inference_log.log_uri(owner, spec),
        "version": version,
        "windowSeconds": parse_duration(drift.window).total_seconds(),
        "minSamples": drift.min_samples,
        "pValue": drift.p_value,
        "minEffectSize": drift.min_effect_size,
        "driftShare": DEFAULT_DRIFT_SHARE,
        "trackingUri": spec.registry.tracking_uri,
        # the model is loaded like a serving pod loads it (importance stability)
        "trustedTypes": list(spec.serving.trusted_types),
        "allowCode": spec.serving.allow_code,
    }
    if drift.columns:
        config["columns"] = list(drift.columns)
    performance: PerformanceCheck | None = monitoring.performance if monitoring else None
    if performance is not None:
        config["performance"] = {
            "metric": performance.metric,
            "labelDelaySeconds": parse_duration(performance.label_delay).total_seconds(),
            "minSamples": performance.min_samples,
        }
    prometheus = (monitoring.prometheus if monitoring else None) or (
        spec.analysis.prometheus if spec.analysis else None
    )
    if prometheus is not None:
        config["prometheusAddress"] = prometheus.address
    if report_dir:
        config["reportDir"] = report_dir
    return config


def monitor_config_map(
    owner: Owner, spec: ModelDeploymentSpec, model_name: str, version: str, report_dir: str | None = None
) -> Manifest:
    manifest: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": monitor_name(owner),
            "namespace": owner.namespace,
            "labels": common_labels(owner),
            "annotations": {},
            "ownerReferences": [owner.reference()],
        },
        "data": {
            CONFIG_FILE: json.dumps(
                monitor_config(owner, spec, model_name, version, report_dir), sort_keys=True
            )
        },
    }
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(manifest)
    return manifest


def monitor_cronjob(
    owner: Owner,
    spec: ModelDeploymentSpec,
    model_name: str,
    version: str,
    image: str,
    service_account: str = DEFAULT_SERVICE_ACCOUNT,
) -> Manifest:
    """The CronJob from spec.monitoring (schedule, suspend), one run at a time."""
    monitoring = spec.monitoring
    log_volumes, log_mounts = inference_log.volumes(spec, read_only=True)
    labels = {
        **common_labels(owner),
        names.LABEL_MODEL_NAME: names.label_value(model_name),
        names.LABEL_MODEL_VERSION: names.label_value(version),
    }
    # Not the deployment label: a Service selecting every track by it must never pick these pods.
    pod_labels = {k: v for k, v in labels.items() if k != names.LABEL_DEPLOYMENT} | {
        LABEL_MONITOR_OF: owner.name
    }
    container = hardened(
        spec,
        {
            "name": "monitor",
            "image": image,
            "command": ["mlrollout", "monitor", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
            "env": [{"name": "MLFLOW_TRACKING_URI", "value": spec.registry.tracking_uri}],
        },
        mounts=[{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}, *log_mounts],
    )
    # The one Job with an API token: it patches status.monitoring (the chart's policy allows no more).
    config_volume = {"name": "config", "configMap": {"name": monitor_name(owner)}}
    pod = job_pod(spec, container, service_account, api_token=True, volumes=[config_volume, *log_volumes])
    manifest: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": monitor_name(owner),
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": {},
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
                    "template": {"metadata": {"labels": pod_labels}, "spec": pod},
                }
            },
        },
    }
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(manifest)
    return manifest
