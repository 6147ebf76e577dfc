"""The monitor's CronJob and ConfigMap builders: pure dicts, least privilege, config the Job reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlrollout.adapters.k8s.monitor import monitor_config_map, monitor_cronjob
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.monitor.job import MonitorConfig

OWNER = Owner(name="churn", namespace="ml", uid="u-1")


def spec(
    monitoring: dict[str, Any] | None = None, credentials: str | None = "mlflow-creds"
) -> ModelDeploymentSpec:
    registry: dict[str, Any] = {"trackingUri": "http://mlflow:5000"}
    if credentials:
        registry["credentialsSecret"] = credentials
    body: dict[str, Any] = {
        "model": {"name": "churn-classifier", "alias": "champion"},
        "registry": registry,
        "serving": {"image": "img:1"},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }
    if monitoring is not None:
        body["monitoring"] = monitoring
    return ModelDeploymentSpec.model_validate(body)


MONITORING = {
    "schedule": "*/15 * * * *",
    "referenceUri": "s3://data/churn/reference.parquet",
    "drift": {"pValue": 0.01, "minEffectSize": 0.2, "minSamples": 500, "window": "2h"},
}


def test_cronjob_schedule_and_safety() -> None:
    cj = monitor_cronjob(OWNER, spec(MONITORING), "churn-classifier", "7", "runtime:1")
    assert cj["kind"] == "CronJob" and cj["metadata"]["name"] == "churn-monitor"
    assert cj["metadata"]["ownerReferences"] == [OWNER.reference()]
    s = cj["spec"]
    assert s["schedule"] == "*/15 * * * *" and s["suspend"] is False
    assert s["concurrencyPolicy"] == "Forbid"
    assert s["successfulJobsHistoryLimit"] >= 1 and s["failedJobsHistoryLimit"] >= 1
    pod = s["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "churn-monitor" and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["image"] == "runtime:1"
    assert c["command"] == ["mlrollout", "monitor", "--config", "/etc/mlrollout/monitor.json"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"name": "config", "configMap": {"name": "churn-monitor"}} in pod["volumes"]
    assert c["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]


def test_suspend_default_schedule_and_no_credentials() -> None:
    cj = monitor_cronjob(OWNER, spec({"suspend": True}, credentials=None), "m", "1", "runtime:1")
    assert cj["spec"]["suspend"] is True and cj["spec"]["schedule"] == "0 * * * *"
    assert "envFrom" not in cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def test_config_map_is_what_the_job_reads(tmp_path: Path) -> None:
    cm = monitor_config_map(OWNER, spec(MONITORING), "7", "s3://logs/churn", report_dir="s3://reports/churn")
    assert cm["metadata"]["name"] == "churn-monitor" and cm["metadata"]["ownerReferences"] == [
        OWNER.reference()
    ]
    path = tmp_path / "monitor.json"
    path.write_text(cm["data"]["monitor.json"])
    config = MonitorConfig.load(str(path))
    assert (config.namespace, config.name, config.version) == ("ml", "churn", "7")
    assert config.reference_uri == "s3://data/churn/reference.parquet"
    assert config.inference_log_uri == "s3://logs/churn" and config.report_dir == "s3://reports/churn"
    assert config.window_seconds == 7200
    assert (config.settings.p_value, config.settings.min_effect_size, config.settings.min_samples) == (
        0.01,
        0.2,
        500,
    )
    assert "secret" not in json.dumps(cm["data"]).lower()
