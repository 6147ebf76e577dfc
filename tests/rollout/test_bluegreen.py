"""Blue-green on the fake cluster: preview + preview Service, pre-promotion analysis, manual or
delayed automatic promotion switching the selector at once, post-promotion analysis, the old version
kept for scaleDownDelay, and a rollback in that window as an instant switch back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fake_cluster import FakeCluster

from mlrollout.api import conditions as c
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Phase
from mlrollout.rollout.analysis import Sample
from mlrollout.rollout.observed import ManualRequest

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def spec(**blue_green: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "churn", "alias": "champion"},
            "registry": {"trackingUri": "http://mlflow:5000"},
            "serving": {"image": "img:1", "replicas": 2},
            "strategy": {"blueGreen": {"scaleDownDelay": "60s", **blue_green}},
            "analysis": {
                "prometheus": {"address": "http://prom:9090"},
                "interval": "10s",
                "count": 2,
                "minRequests": 10,
                "metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.05}],
            },
        }
    )


def settled(cluster: FakeCluster) -> FakeCluster:
    cluster.run(3)
    assert cluster.status.phase == Phase.HEALTHY
    cluster.version = "8"
    return cluster


def test_manual_promotion_switches_at_once_then_keeps_the_old_version_for_the_delay() -> None:
    cluster = settled(FakeCluster(spec(prePromotionAnalysis={}), "7", NOW))
    cluster.samples = (Sample("error-rate", 0.0, 100.0),)
    cluster.run(8)
    assert cluster.tracks["preview"].version == "8" and cluster.preview_service
    assert cluster.selector == "stable"  # live traffic untouched before promotion
    held = c.find(cluster.status.conditions, c.PAUSED)
    assert held is not None and held.reason == "AwaitingPromotion"
    cluster.request = ManualRequest("go", "promote")
    cluster.run(2, step=timedelta(seconds=1))
    assert cluster.selector == "preview"  # one switch: every request now reaches version 8
    assert cluster.tracks["stable"].version == "7"  # kept for an instant rollback
    assert cluster.status.stable_version == "7" and cluster.alias_moves == []
    cluster.run(10, step=timedelta(seconds=10))
    assert cluster.status.stable_version == "8" and cluster.alias_moves == ["8"]
    cluster.run(3)
    assert cluster.selector == "stable" and set(cluster.tracks) == {"stable"}
    assert cluster.tracks["stable"].version == "8" and not cluster.preview_service
    assert cluster.switches == ["preview", "stable"]


def test_post_promotion_failure_is_an_instant_switch_back() -> None:
    cluster = settled(FakeCluster(spec(autoPromotion=True, postPromotionAnalysis={}), "7", NOW))
    cluster.samples = (Sample("error-rate", 0.0, 100.0),)
    cluster.run(6, step=timedelta(seconds=1))
    assert cluster.selector == "preview"
    cluster.samples = (Sample("error-rate", 0.5, 100.0),)
    cluster.run(6, step=timedelta(seconds=10))
    assert cluster.status.phase == Phase.ROLLED_BACK
    assert cluster.selector == "stable" and cluster.tracks["stable"].version == "7"
    assert cluster.alias_moves == [] and cluster.tags["8"]["mlrollout.rollout"] == "rolled_back"
    assert cluster.switches[:2] == ["preview", "stable"]


def test_auto_promotion_waits_for_its_delay() -> None:
    cluster = settled(FakeCluster(spec(autoPromotion=True, autoPromotionDelay="30s"), "7", NOW))
    cluster.run(3, step=timedelta(seconds=5))
    assert cluster.selector == "stable"
    cluster.run(10, step=timedelta(seconds=5))
    assert cluster.selector == "preview"
