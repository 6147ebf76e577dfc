"""Manifest builders: pure dicts with owner references, pinned versions, and the runtime contract."""

from __future__ import annotations

from typing import Any

import pytest

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.spec import ModelDeploymentSpec

OWNER = Owner(name="churn", namespace="ml", uid="u-1")


def spec(**serving: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "churn-classifier", "alias": "champion"},
            "registry": {"trackingUri": "http://mlflow:5000", "credentialsSecret": "mlflow-creds"},
            "serving": {"image": "img:1", "replicas": 3, **serving},
            "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
        }
    )


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = manifest["spec"]["template"]["spec"]["containers"][0]
    return result


def test_deployment_pins_the_version_and_labels_pods() -> None:
    d = builders.serving_deployment(OWNER, spec(), "stable", "churn-classifier", "7")
    assert d["metadata"]["name"] == "churn-stable"
    assert d["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert d["metadata"]["ownerReferences"][0]["controller"] is True
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert labels[names.LABEL_MODEL_VERSION] == "7"
    assert labels[names.LABEL_MODEL_NAME] == "churn-classifier"
    assert labels[names.LABEL_TRACK] == "stable"
    assert labels[names.LABEL_MANAGED_BY] == "mlrollout"
    # The selector must stay valid across versions: it is immutable on a Deployment.
    assert d["spec"]["selector"]["matchLabels"] == {
        names.LABEL_DEPLOYMENT: "churn",
        names.LABEL_TRACK: "stable",
    }
    c = container(d)
    assert c["command"] == ["mlrollout-runtime"]
    assert c["args"][:3] == ["models:/churn-classifier/7", "--port", "8080"]
    assert c["args"][c["args"].index("--track") :][:2] == ["--track", "stable"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"} in c["env"]
    assert c["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["livenessProbe"]["httpGet"]["path"] == "/ping"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert d["spec"]["replicas"] == 3


def test_spec_fields_reach_the_pod() -> None:
    s = spec(
        resources={"limits": {"cpu": 1, "memory": "1Gi"}},
        batching={"maxBatchSize": 16, "maxDelayMs": 5},
        env=[{"name": "A", "value": "b"}],
        imagePullPolicy="Never",
        port=9000,
        trustedTypes=["sklearn.tree._tree.Tree", "numpy.dtype"],
    )
    c = container(builders.serving_deployment(OWNER, s, "stable", "m", "1"))
    assert c["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert c["args"][c["args"].index("--max-batch-size") + 1] == "16"
    assert {"name": "A", "value": "b"} in c["env"]
    assert c["imagePullPolicy"] == "Never"
    assert c["ports"][0]["containerPort"] == 9000
    assert c["args"][c["args"].index("--trusted-types") + 1] == "sklearn.tree._tree.Tree,numpy.dtype"
    assert "--allow-code" not in c["args"]  # pyfunc code runs only where the user opted in


def test_allow_code_is_an_explicit_opt_in() -> None:
    c = container(builders.serving_deployment(OWNER, spec(allowCode=True), "stable", "m", "1"))
    assert "--allow-code" in c["args"]


@pytest.mark.parametrize(
    ("change", "differs"),
    [
        ({}, False),
        ({"replicas": 4}, True),
        ({"image": "img:2"}, True),
        ({"resources": {"limits": {"cpu": 2}}}, True),
    ],
)
def test_spec_hash_tracks_what_matters(change: dict[str, Any], differs: bool) -> None:
    base = builders.serving_deployment(OWNER, spec(), "stable", "m", "1")
    other = builders.serving_deployment(OWNER, spec(**change), "stable", "m", "1")
    key = names.ANNOTATION_SPEC_HASH
    assert (base["metadata"]["annotations"][key] != other["metadata"]["annotations"][key]) == differs


def test_service_selects_the_stable_track() -> None:
    svc = builders.service(OWNER, spec())
    assert svc["metadata"]["name"] == "churn"
    assert svc["spec"]["selector"] == {names.LABEL_DEPLOYMENT: "churn", names.LABEL_TRACK: "stable"}
    assert svc["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert svc["spec"]["ports"][0]["targetPort"] == names.SERVING_PORT_NAME


def test_event_regards_the_model_deployment() -> None:
    e = builders.event(
        OWNER, "churn.1", "Warning", "ModelNotFound", "x" * 5000, "2025-01-01T00:00:00.000000Z", "op"
    )
    assert e["regarding"]["uid"] == "u-1"
    assert e["regarding"]["kind"] == names.KIND
    assert len(e["note"]) <= 1024


@pytest.mark.parametrize("length", [10, 63, 64, 200])
def test_child_names_are_dns_labels(length: int) -> None:
    name = names.serving_name("m" * length, "canary")
    assert len(name) <= 63
    assert name == names.serving_name("m" * length, "canary")  # deterministic
    assert not name.endswith("-")


def test_label_values_are_valid() -> None:
    assert names.label_value("Churn Classifier/v2") == "Churn-Classifier-v2"
    assert len(names.label_value("x" * 300)) <= 63


def test_replicas_from_the_router_or_left_to_an_hpa() -> None:
    assert builders.serving_deployment(OWNER, spec(), "canary", "churn", "8", 1)["spec"]["replicas"] == 1
    owned = builders.serving_deployment(OWNER, spec(), "stable", "churn", "7", hpa_owned=True)
    assert "replicas" not in owned["spec"]


def test_replica_ratio_service_selects_every_track() -> None:
    svc = builders.service(OWNER, spec(), selector_track=None)
    assert svc["spec"]["selector"] == {names.LABEL_DEPLOYMENT: OWNER.name}
    assert builders.spec_hash(svc) != builders.spec_hash(builders.service(OWNER, spec()))


def test_feedback_token_comes_from_its_secret_and_outcomes_from_the_ab_metric() -> None:
    plain = container(builders.serving_deployment(OWNER, spec(), "stable", "m", "1"))
    assert not [e for e in plain["env"] if e["name"].startswith("MLROLLOUT_FEEDBACK")]
    s = spec(feedback={"tokenSecret": {"name": "feedback-token"}})
    env = {e["name"]: e for e in container(builders.serving_deployment(OWNER, s, "stable", "m", "1"))["env"]}
    assert env["MLROLLOUT_FEEDBACK_TOKEN"] == {
        "name": "MLROLLOUT_FEEDBACK_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "feedback-token", "key": "token"}},
    }
    ab = ModelDeploymentSpec.model_validate(
        {
            **s.model_dump(by_alias=True, exclude_none=True),
            "strategy": {
                "abTest": {
                    "metric": {"name": "converted"},
                    "minimumDetectableEffect": 0.02,
                    "prometheus": {"address": "http://prom:9090"},
                },
            },
        }
    )
    env = {e["name"]: e for e in container(builders.serving_deployment(OWNER, ab, "stable", "m", "1"))["env"]}
    assert env["MLROLLOUT_FEEDBACK_OUTCOMES"]["value"] == "converted=proportion"


def test_stable_pods_mount_the_live_config_other_tracks_never_mirror() -> None:
    stable = builders.serving_deployment(OWNER, spec(), "stable", "m", "1")
    pod = stable["spec"]["template"]["spec"]
    assert {"name": "live-config", "configMap": {"name": "churn-live"}} in pod["volumes"]
    mount = next(m for m in container(stable)["volumeMounts"] if m["name"] == "live-config")
    assert mount == {"name": "live-config", "mountPath": names.LIVE_CONFIG_DIR, "readOnly": True}
    env = {e["name"]: e.get("value") for e in container(stable)["env"]}
    assert env["MLROLLOUT_CONFIG_FILE"] == f"{names.LIVE_CONFIG_DIR}/{names.LIVE_CONFIG_KEY}"
    for track in ("canary", "preview", "shadow"):
        other = builders.serving_deployment(OWNER, spec(), track, "m", "2")
        assert all(v["name"] != "live-config" for v in other["spec"]["template"]["spec"]["volumes"])


def test_live_config_switches_mirroring_and_the_shadow_has_its_own_service() -> None:
    import json

    url = builders.track_service_url(OWNER, "shadow")
    assert url == "http://churn-shadow.ml.svc:80"
    on = builders.live_config_map(OWNER, (url, 30, 0.01))
    off = builders.live_config_map(OWNER, None)
    assert json.loads(on["data"][names.LIVE_CONFIG_KEY]) == {
        "mirroring": {"url": url, "percent": 30, "relativeTolerance": 0.01}
    }
    assert json.loads(off["data"][names.LIVE_CONFIG_KEY])["mirroring"]["percent"] == 0
    assert (
        on["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH]
        != off["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH]
    )
    svc = builders.track_service(OWNER, spec(), "shadow")
    assert svc["metadata"]["name"] == "churn-shadow"
    assert svc["spec"]["selector"] == {names.LABEL_DEPLOYMENT: "churn", names.LABEL_TRACK: "shadow"}
