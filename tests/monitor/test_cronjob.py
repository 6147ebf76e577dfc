"""The monitor's CronJob and ConfigMap builders: pure dicts, least privilege, config the Job reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlrollout.adapters.k8s.builders import serving_deployment
from mlrollout.adapters.k8s.monitor import monitor_config_map, monitor_cronjob
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.monitor.job import MonitorConfig

OWNER = Owner(name="churn", namespace="ml", uid="u-1")


BODY: dict[str, Any] = {
    "model": {"name": "churn-classifier", "alias": "champion"},
    "registry": {"trackingUri": "http://mlflow:5000"},
    "serving": {"image": "img:1"},
    "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
}


def spec(
    monitoring: dict[str, Any] | None = None, credentials: str | None = "mlflow-creds"
) -> ModelDeploymentSpec:
    registry: dict[str, Any] = {"trackingUri": "http://mlflow:5000"}
    if credentials:
        registry["credentialsSecret"] = credentials
    body: dict[str, Any] = {**BODY, "registry": registry}
    if monitoring is not None:
        body["monitoring"] = monitoring
    return ModelDeploymentSpec.model_validate(body)


MONITORING = {
    "schedule": "*/15 * * * *",
    "referenceUri": "s3://data/churn/reference.parquet",
    "inferenceLogUri": "s3://logs/",
    "drift": {"pValue": 0.01, "minEffectSize": 0.2, "minSamples": 500, "window": "2h"},
}


def test_cronjob_schedule_and_safety() -> None:
    cj = monitor_cronjob(OWNER, spec(MONITORING), "churn-classifier", "7", "runtime:1", "mlrollout-job")
    assert cj["kind"] == "CronJob" and cj["metadata"]["name"] == "churn-monitor"
    assert cj["metadata"]["ownerReferences"] == [OWNER.reference()]
    s = cj["spec"]
    assert s["schedule"] == "*/15 * * * *" and s["suspend"] is False
    assert s["concurrencyPolicy"] == "Forbid"
    assert s["successfulJobsHistoryLimit"] >= 1 and s["failedJobsHistoryLimit"] >= 1
    pod = s["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mlrollout-job" and pod["restartPolicy"] == "Never"
    # the replica-ratio Service selects every pod with the deployment label: never a monitor pod
    assert "mlrollout.io/deployment" not in s["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert cj["metadata"]["annotations"]["mlrollout.io/spec-hash"]
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
    cm = monitor_config_map(OWNER, spec(MONITORING), "churn-classifier", "7", report_dir="s3://reports/churn")
    assert cm["metadata"]["name"] == "churn-monitor" and cm["metadata"]["ownerReferences"] == [
        OWNER.reference()
    ]
    path = tmp_path / "monitor.json"
    path.write_text(cm["data"]["monitor.json"])
    config = MonitorConfig.load(str(path))
    assert (config.namespace, config.name, config.version) == ("ml", "churn", "7")
    assert config.reference_uri == "s3://data/churn/reference.parquet"
    assert config.inference_log_uri == "s3://logs/ml/churn" and config.report_dir == "s3://reports/churn"
    assert config.model_name == "churn-classifier"
    assert config.window_seconds == 7200
    assert (config.settings.p_value, config.settings.min_effect_size, config.settings.min_samples) == (
        0.01,
        0.2,
        500,
    )
    assert "secret" not in json.dumps(cm["data"]).lower()
    assert (config.trusted_types, config.allow_code) == ((), False)


def test_the_job_loads_the_model_as_serving_pods_do(tmp_path: Path) -> None:
    base = spec(MONITORING)
    serving = base.serving.model_copy(
        update={"trusted_types": ["numpy.dtype", "sklearn.tree._tree.Tree"], "allow_code": True}
    )
    s = base.model_copy(update={"serving": serving})
    path = tmp_path / "monitor.json"
    path.write_text(monitor_config_map(OWNER, s, "m", "7")["data"]["monitor.json"])
    config = MonitorConfig.load(str(path))
    assert config.trusted_types == ("numpy.dtype", "sklearn.tree._tree.Tree") and config.allow_code


def test_serving_pods_write_where_the_monitor_reads_an_object_store() -> None:
    s = spec(MONITORING)
    deployment = serving_deployment(OWNER, s, "stable", "churn-classifier", "7")
    (model,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in model["env"]}
    config = json.loads(monitor_config_map(OWNER, s, "churn-classifier", "7")["data"]["monitor.json"])
    assert env["MLROLLOUT_INFERENCE_LOG_URI"] == config["inferenceLogUri"] == "s3://logs/ml/churn"
    # an object store needs no volume; both sides get the registry credentials (AWS_* for fsspec)
    assert "inference-log" not in {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert model["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]


def test_a_local_path_is_the_same_host_directory_on_both_sides() -> None:
    s = spec({**MONITORING, "inferenceLogUri": "/var/lib/mlrollout/log"})
    pod = serving_deployment(OWNER, s, "stable", "m", "7")["spec"]["template"]["spec"]
    cron = monitor_cronjob(OWNER, s, "m", "7", "runtime:1")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    host = {
        "name": "inference-log",
        "hostPath": {"path": "/var/lib/mlrollout/log", "type": "DirectoryOrCreate"},
    }
    assert host in pod["volumes"] and host in cron["volumes"]
    (writer,), (reader,) = pod["containers"], cron["containers"]
    assert {"name": "inference-log", "mountPath": "/var/lib/mlrollout/log", "readOnly": False} in writer[
        "volumeMounts"
    ]
    assert {"name": "inference-log", "mountPath": "/var/lib/mlrollout/log", "readOnly": True} in reader[
        "volumeMounts"
    ]
    config = json.loads(monitor_config_map(OWNER, s, "m", "7")["data"]["monitor.json"])
    env = {e["name"]: e["value"] for e in writer["env"]}
    assert (
        env["MLROLLOUT_INFERENCE_LOG_URI"] == config["inferenceLogUri"] == "/var/lib/mlrollout/log/ml/churn"
    )


def test_no_monitoring_no_log_wiring() -> None:
    pod = serving_deployment(OWNER, spec(None), "stable", "m", "7")["spec"]["template"]["spec"]
    (model,) = pod["containers"]
    assert "MLROLLOUT_INFERENCE_LOG_URI" not in {e["name"] for e in model["env"]}
    assert "inference-log" not in {v["name"] for v in pod["volumes"]}


def test_performance_settings_reach_the_job(tmp_path: Path) -> None:
    s = spec({**MONITORING, "performance": {"metric": "accuracy", "min": 0.8, "labelDelay": "30m"}})
    path = tmp_path / "monitor.json"
    path.write_text(monitor_config_map(OWNER, s, "m", "7")["data"]["monitor.json"])
    config = MonitorConfig.load(str(path))
    assert config.performance is not None
    assert (config.performance.metric, config.performance.label_delay_seconds) == ("accuracy", 1800)


def test_prometheus_for_serving_figures_defaults_to_the_analysis_one(tmp_path: Path) -> None:
    def loaded(s: ModelDeploymentSpec) -> MonitorConfig:
        path = tmp_path / "monitor.json"
        path.write_text(monitor_config_map(OWNER, s, "m", "7")["data"]["monitor.json"])
        return MonitorConfig.load(str(path))

    assert loaded(spec(MONITORING)).prometheus_address is None
    analysis = {
        "prometheus": {"address": "http://prometheus.monitoring:9090"},
        "metrics": [{"name": "errors", "template": "errorRate", "max": 0.01}],
    }
    with_analysis = spec(MONITORING).model_copy(
        update={"analysis": ModelDeploymentSpec.model_validate({**BODY, "analysis": analysis}).analysis}
    )
    assert loaded(with_analysis).prometheus_address == "http://prometheus.monitoring:9090"
    own = {**MONITORING, "prometheus": {"address": "http://thanos:10902"}}
    assert loaded(spec(own).model_copy(update={"analysis": with_analysis.analysis})).prometheus_address == (
        "http://thanos:10902"
    )
