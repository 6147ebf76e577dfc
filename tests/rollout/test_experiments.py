"""Shadow and A/B test wired into decide(), on the fake cluster: mirroring switched on and off through
the stable pods' live config, callers only ever on stable during a shadow, promote / continue into the
canary / reject with the numbers in status; A/B winner promoted, loser rolled back, no difference
keeps stable (Healthy), a metric without data pauses and names it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fake_cluster import FakeCluster

from mlrollout.api import conditions as c
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Phase
from mlrollout.rollout.experiment_observed import AbObservation, ArmCounts, ShadowObservation

NOW = datetime(2025, 1, 1, tzinfo=UTC)
AGREEING = ShadowObservation(
    mirror_percent=None,
    mirrored=400,
    errors=0,
    compared=400,
    agreed=398,
    stable_latency_seconds=0.010,
    candidate_latency_seconds=0.011,
)
DISAGREEING = ShadowObservation(
    mirror_percent=None,
    mirrored=400,
    errors=0,
    compared=400,
    agreed=300,
    stable_latency_seconds=0.01,
    candidate_latency_seconds=0.01,
)


def spec(strategy: dict[str, Any], **extra: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "churn", "alias": "champion"},
            "registry": {"trackingUri": "http://mlflow:5000"},
            "serving": {"image": "img:1", "replicas": 2},
            "strategy": strategy,
            "analysis": {
                "prometheus": {"address": "http://prom:9090"},
                "interval": "10s",
                "metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.05}],
            },
            **extra,
        }
    )


def shadow(**fields: Any) -> ModelDeploymentSpec:
    return spec({"shadow": {"mirrorPercent": 50, "duration": "60s", "minRequests": 100, **fields}})


def settled(cluster: FakeCluster) -> FakeCluster:
    cluster.run(3)
    assert cluster.status.phase == Phase.HEALTHY
    cluster.version = "8"
    return cluster


def condition(cluster: FakeCluster, type_: str) -> tuple[str, str, str]:
    found = c.find(cluster.status.conditions, type_)
    assert found is not None
    return found.status, found.reason, found.message


def test_shadow_that_agrees_is_promoted_and_callers_stay_on_stable_throughout() -> None:
    cluster = settled(FakeCluster(shadow(maxDisagreement=0.02), "7", NOW))
    cluster.shadow_numbers = AGREEING
    cluster.run(3)
    assert cluster.mirror_percent == 50 and cluster.shadow_service
    assert cluster.tracks["shadow"].version == "8" and cluster.tracks["stable"].version == "7"
    assert cluster.status.rollout is not None and cluster.status.rollout.shadow is not None
    assert cluster.status.rollout.shadow.started_at is not None
    cluster.run(10)
    assert cluster.status.stable_version == "8" and cluster.alias_moves == ["8"]
    assert cluster.status.history[-1].cause == "shadow"
    cluster.run(3)
    assert cluster.mirror_switches == [50, 0]  # on for the window, off at the end
    assert set(cluster.tracks) == {"stable"} and not cluster.shadow_service
    assert cluster.switches == []  # the live Service selected stable the whole time
    assert cluster.reasons().count("ShadowStarted") == 1
    promoted = [m for _, r, m in cluster.events if r == "Promoted"]
    assert len(promoted) == 1 and "agreement 99.50%" in promoted[0]
    numbers = cluster.status.rollout.shadow if cluster.status.rollout else None
    assert numbers is not None and numbers.verdict == "Passed" and numbers.agreement == 398 / 400


def test_shadow_that_disagrees_beyond_max_disagreement_is_rejected_with_its_numbers() -> None:
    cluster = settled(FakeCluster(shadow(maxDisagreement=0.05), "7", NOW))
    cluster.shadow_numbers = DISAGREEING
    cluster.run(14)
    assert cluster.status.phase == Phase.ROLLED_BACK and cluster.status.stable_version == "7"
    assert cluster.alias_moves == [] and cluster.tags["8"]["mlrollout.rollout"] == "rejected"
    rejected = [m for t, r, m in cluster.events if r == "ShadowRejected"]
    assert len(rejected) == 1 and "disagreement 25.00% > maxDisagreement 5.00%" in rejected[0]
    assert cluster.status.rollout is not None and cluster.status.rollout.shadow is not None
    assert cluster.status.rollout.shadow.verdict == "Failed"
    assert cluster.mirror_percent == 0 and set(cluster.tracks) == {"stable"} and not cluster.shadow_service


def test_shadow_below_min_requests_is_inconclusive_and_pauses_without_deciding() -> None:
    cluster = settled(FakeCluster(shadow(maxDisagreement=0.05), "7", NOW))
    cluster.shadow_numbers = ShadowObservation(mirror_percent=None, mirrored=20, compared=20, agreed=20)
    cluster.run(14)
    assert cluster.status.phase == Phase.PROGRESSING and cluster.status.stable_version == "7"
    paused = condition(cluster, c.PAUSED)
    assert paused[0] == "True" and paused[1] == "NotEnoughTraffic" and "minRequests 100" in paused[2]
    assert cluster.mirror_percent == 50  # mirroring goes on while it waits for traffic
    cluster.shadow_numbers = AGREEING
    cluster.run(3)
    assert cluster.status.stable_version == "8"


def test_shadow_continues_into_its_canary_and_the_shadow_goes_before_anyone_is_served() -> None:
    steps = [{"setWeight": 50}, {"pause": {"duration": "20s"}}]
    cluster = settled(FakeCluster(shadow(continueWith={"steps": steps}), "7", NOW))
    cluster.shadow_numbers = AGREEING
    cluster.run(10)
    rollout = cluster.status.rollout
    assert rollout is not None and rollout.strategy == "canary" and rollout.shadow is not None
    assert "shadow" not in cluster.tracks and cluster.mirror_percent == 0 and not cluster.shadow_service
    assert cluster.status.stable_version == "7" and cluster.tracks["canary"].version == "8"
    assert cluster.switches == [None]  # the canary's Service selects every track, only after the shadow
    assert cluster.reasons().count("ShadowPassed") == 1
    cluster.run(6)
    assert cluster.status.stable_version == "8" and cluster.status.history[-1].cause == "shadow+canary"


def ab(**fields: Any) -> ModelDeploymentSpec:
    test = {
        "candidateWeight": 50,
        "metric": {"name": "conversion"},
        "minimumDetectableEffect": 0.05,
        "baseline": 0.2,
        "maxDuration": "10m",
        **fields,
    }
    return spec({"abTest": test})


def arms(stable: tuple[float, float], candidate: tuple[float, float]) -> AbObservation:
    return AbObservation(
        stable=ArmCounts(requests=stable[0], outcomes=stable[1], value_sum=stable[1]),
        candidate=ArmCounts(requests=candidate[0], outcomes=candidate[1], value_sum=candidate[1]),
    )


def test_ab_test_promotes_a_candidate_that_converts_better() -> None:
    cluster = settled(FakeCluster(ab(), "7", NOW))
    cluster.run(3)
    rollout = cluster.status.rollout
    assert rollout is not None and rollout.ab_test is not None
    assert rollout.ab_test.assignment == "perRequest"
    assert cluster.tracks["canary"].desired_replicas == 2 and cluster.tracks["stable"].desired_replicas == 2
    started = [m for _, r, m in cluster.events if r == "AbTestStarted"]
    assert len(started) == 1 and "assignment per request (replica-ratio router)" in started[0]
    cluster.ab_counts = arms((3000, 600), (3000, 900))
    cluster.run(6)
    assert cluster.status.stable_version == "8" and cluster.status.history[-1].cause == "abTest"
    assert cluster.status.rollout is not None and cluster.status.rollout.ab_test is not None
    assert cluster.status.rollout.ab_test.decision == "CandidateWins"


def test_ab_test_rolls_back_a_candidate_that_converts_worse() -> None:
    cluster = settled(FakeCluster(ab(), "7", NOW))
    cluster.run(3)
    cluster.ab_counts = arms((3000, 900), (3000, 600))
    cluster.run(6)
    assert cluster.status.phase == Phase.ROLLED_BACK and cluster.status.stable_version == "7"
    assert cluster.tags["8"]["mlrollout.rollout"] == "rolled_back"
    cluster.run(3)
    assert set(cluster.tracks) == {"stable"} and cluster.tracks["stable"].desired_replicas == 2


def test_ab_test_without_a_difference_stops_at_max_duration_and_keeps_stable_healthy() -> None:
    cluster = settled(FakeCluster(ab(maxDuration="2m"), "7", NOW))
    cluster.run(3)
    cluster.ab_counts = arms((400, 80), (400, 81))
    cluster.run(20)
    assert cluster.status.phase == Phase.HEALTHY and cluster.status.stable_version == "7"
    assert cluster.tags["8"]["mlrollout.rollout"] == "rejected" and cluster.alias_moves == []
    progressing = condition(cluster, c.PROGRESSING)
    assert progressing[1] == "KeptStable" and "no significant difference" in progressing[2]
    assert ("Normal", "AbTestNoDifference") in [(t, r) for t, r, _ in cluster.events]
    assert set(cluster.tracks) == {"stable"}


def test_ab_metric_without_data_pauses_names_the_metric_and_moves_no_traffic() -> None:
    cluster = settled(FakeCluster(ab(), "7", NOW))
    cluster.run(8)
    paused = condition(cluster, c.PAUSED)
    assert paused[0] == "True" and paused[1] == "AbMetricNoData" and "conversion" in paused[2]
    assert cluster.status.stable_version == "7" and cluster.alias_moves == []
    assert cluster.tracks["canary"].desired_replicas == 2  # the split stays as it was
    cluster.run(60, step=timedelta(seconds=10))  # past maxDuration with no data at all
    assert cluster.status.stable_version == "7" and cluster.status.phase == Phase.HEALTHY
    assert cluster.status.rollout is not None and cluster.status.rollout.ab_test is not None
    assert cluster.status.rollout.ab_test.decision == "NoData"
