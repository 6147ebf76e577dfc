"""The canary strategy on a fake cluster: steps, router read-back, analysis verdicts, promotion,
rollback, manual requests, supersession, and a crash at every point of every tick."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fake_cluster import FakeCluster
from hypothesis import given, settings
from hypothesis import strategies as st

from mlrollout.api import conditions as c
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Phase
from mlrollout.rollout.analysis import Sample
from mlrollout.rollout.observed import ManualRequest
from mlrollout.rollout.weights import replica_split, served_weight

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def spec(steps: list[dict[str, Any]], **extra: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"name": "churn", "alias": "champion"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "img:1", "replicas": 4},
        "strategy": {"canary": {"steps": steps}},
        "revisionHistoryLimit": 3,
        "analysis": {
            "prometheus": {"address": "http://prom:9090"},
            "interval": "30s",
            "count": 2,
            "minRequests": 10,
            "metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.05}],
        },
    }
    return ModelDeploymentSpec.model_validate(body | extra)


STEPS = [
    {"setWeight": 5},
    {"analysis": {}},
    {"setWeight": 50},
    {"pause": {"duration": "1m"}},
    {"setWeight": 100},
]


def settled(cluster: FakeCluster) -> FakeCluster:
    """Version 7 is stable and healthy; version 8 is what the alias now resolves to."""
    cluster.run(3)
    assert cluster.status.phase == Phase.HEALTHY
    cluster.version = "8"
    return cluster


def good() -> tuple[Sample, ...]:
    return (Sample("error-rate", 0.0, 100.0),)


def test_healthy_canary_walks_every_step_and_promotes_once() -> None:
    cluster = settled(FakeCluster(spec(STEPS), "7", NOW))
    cluster.samples = good()
    seen_weights: list[int] = []
    for _ in range(40):
        cluster.tick()
        cluster.now += timedelta(seconds=10)
        if cluster.status.weights:
            seen_weights.append(cluster.status.weights.canary)
    assert cluster.status.stable_version == "8"
    assert cluster.status.phase == Phase.HEALTHY
    assert cluster.alias_moves == ["8"]
    assert cluster.tags["8"]["mlrollout.rollout"] == "promoted"
    assert cluster.reasons().count("Promoted") == 1
    assert set(cluster.tracks) == {"stable"}
    assert cluster.tracks["stable"].version == "8" and cluster.tracks["stable"].desired_replicas == 4
    assert served_weight(4, 1) in seen_weights and 50 in seen_weights  # the read-back shows every step
    assert [h.version for h in cluster.status.history] == ["7", "8"]


def test_a_weight_step_waits_until_the_router_reads_it_back() -> None:
    cluster = settled(FakeCluster(spec(STEPS), "7", NOW))
    first = cluster.tick(apply=False)  # nothing applied: the read-back still shows 0 %
    cluster.status = first.status
    second = cluster.tick(apply=False)
    assert second.status.rollout is not None and second.status.rollout.step_index == 0
    assert c.find(second.status.conditions, c.PROGRESSING).reason == "WeightMoving"  # type: ignore[union-attr]
    cluster.tick()  # applied now
    third = cluster.tick()
    assert third.status.rollout is not None and third.status.rollout.step_index == 1


def test_failing_analysis_rolls_back_keeps_the_alias_and_says_why() -> None:
    cluster = settled(FakeCluster(spec(STEPS), "7", NOW))
    cluster.samples = (Sample("error-rate", 0.3, 100.0),)
    cluster.run(20)
    assert cluster.status.phase == Phase.ROLLED_BACK
    assert cluster.status.stable_version == "7"
    assert cluster.alias_moves == ["7"] or cluster.alias_moves == []
    assert cluster.tags["8"]["mlrollout.rollout"] == "rolled_back"
    [(kind, _, message)] = [e for e in cluster.events if e[1] == "CandidateRolledBack"]
    assert kind == "Warning" and "error-rate" in message and "0.3" in message and "0.05" in message
    assert set(cluster.tracks) == {"stable"} and cluster.tracks["stable"].version == "7"
    progressing = c.find(cluster.status.conditions, c.PROGRESSING)
    assert progressing is not None and "error-rate" in progressing.message
    assert cluster.status.rollout is not None and cluster.status.rollout.aborted_version == "8"
    cluster.run(5)  # the same version is not retried by itself
    assert cluster.status.rollout is not None and cluster.status.rollout.candidate is None


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        (Sample("error-rate", None, None, error="Prometheus unreachable"), "MetricsUnavailable"),
        (Sample("error-rate", 0.0, 0.0), "NotEnoughTraffic"),
    ],
)
def test_outage_or_no_traffic_pauses_never_promotes_never_rolls_back(sample: Sample, reason: str) -> None:
    cluster = settled(FakeCluster(spec(STEPS), "7", NOW))
    cluster.samples = (sample,)
    cluster.run(30)
    assert cluster.status.phase == Phase.PROGRESSING
    assert cluster.status.stable_version == "7" and cluster.alias_moves == []
    paused = c.find(cluster.status.conditions, c.PAUSED)
    assert paused is not None and paused.status == "True" and paused.reason == reason
    cluster.samples = good()  # data back: it resumes and completes
    cluster.run(30)
    assert cluster.status.stable_version == "8" and cluster.alias_moves == ["8"]


def test_pause_without_duration_waits_for_promote_by_request() -> None:
    cluster = settled(FakeCluster(spec([{"setWeight": 20}, {"pause": {}}]), "7", NOW))
    cluster.run(10)
    paused = c.find(cluster.status.conditions, c.PAUSED)
    assert paused is not None and paused.reason == "PausedAtStep"
    assert cluster.status.stable_version == "7"
    cluster.request = ManualRequest("r1", "promote")
    cluster.run(10)
    assert cluster.status.stable_version == "8" and cluster.alias_moves == ["8"]
    assert cluster.reasons().count("RequestApplied") == 1  # acted on once per id


def test_abort_and_retry_and_a_request_that_does_not_apply() -> None:
    cluster = settled(FakeCluster(spec([{"setWeight": 20}, {"pause": {}}]), "7", NOW))
    cluster.request = ManualRequest("r1", "retry")  # nothing aborted yet
    cluster.run(1)
    refused = c.find(cluster.status.conditions, "Request")
    assert refused is not None and refused.reason == "NotApplicable"
    cluster.run(5)
    cluster.request = ManualRequest("r2", "abort")
    cluster.run(5)
    assert cluster.status.phase == Phase.ROLLED_BACK and cluster.tags["8"]["mlrollout.rollout"] == "aborted"
    cluster.request = ManualRequest("r3", "retry")
    cluster.run(3)
    assert cluster.status.rollout is not None and cluster.status.rollout.candidate is not None
    cluster.request = ManualRequest("r4", "promote-full")
    cluster.run(5)
    assert cluster.status.stable_version == "8" and cluster.alias_moves == ["8"]


def test_undo_returns_to_the_previous_version_and_history_is_bounded() -> None:
    cluster = settled(FakeCluster(spec([{"setWeight": 50}]), "7", NOW))
    for version in ("8", "9", "10"):
        cluster.version = version
        cluster.run(8)
        assert cluster.status.stable_version == version
    assert [h.version for h in cluster.status.history] == ["8", "9", "10"]  # revisionHistoryLimit 3
    cluster.request = ManualRequest("u1", "undo")
    cluster.run(1)
    assert cluster.status.stable_version == "9" and cluster.alias_moves[-1] == "9"
    cluster.version = "9"  # the alias moved back: nothing rolls out again
    cluster.run(5)
    assert cluster.status.phase == Phase.HEALTHY and cluster.tracks["stable"].version == "9"
    cluster.request = ManualRequest("u2", "undo", "3")
    cluster.run(1)
    assert cluster.status.stable_version == "9"
    assert c.find(cluster.status.conditions, "Request").reason == "NotApplicable"  # type: ignore[union-attr]


def test_a_newer_version_supersedes_the_candidate_and_restarts_analysis() -> None:
    cluster = settled(FakeCluster(spec(STEPS), "7", NOW))
    cluster.samples = good()
    cluster.run(4)
    assert cluster.status.rollout is not None and cluster.status.rollout.step_index
    cluster.version = "9"
    cluster.tick()
    rollout = cluster.status.rollout
    assert rollout is not None and rollout.candidate is not None and rollout.candidate.version == "9"
    assert rollout.step_index == 0 and rollout.analysis is None
    assert "Superseded" in cluster.reasons()
    cluster.run(40)
    assert cluster.status.stable_version == "9" and cluster.alias_moves == ["9"]


def test_set_canary_scale_sets_canary_replicas_apart_from_the_weight() -> None:
    steps = [{"setCanaryScale": {"replicas": 2}}, {"setWeight": 10}, {"pause": {}}]
    cluster = settled(FakeCluster(spec(steps), "7", NOW))
    cluster.run(6)
    assert cluster.tracks["canary"].desired_replicas == 2


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 2**32 - 1))
def test_crashes_anywhere_never_promote_or_move_the_alias_twice(seed: int) -> None:
    """Each tick may die before acting, mid-way through its actions, or before writing status."""
    rng = random.Random(seed)
    cluster = settled(FakeCluster(spec(STEPS), "7", NOW))
    cluster.samples = good()
    for _ in range(120):
        decision_status = cluster.status
        crash = rng.random()
        if crash < 0.3:
            from mlrollout.rollout import decide

            decision = decide(cluster.spec, decision_status, cluster.observed(), cluster.now)
            cut = rng.randint(0, len(decision.actions))
            for action in decision.actions[:cut]:
                cluster.act(action)  # killed after `cut` actions, before status was written
        else:
            cluster.tick()
        cluster.now += timedelta(seconds=rng.choice([1, 10, 40]))
    assert cluster.status.stable_version == "8"
    assert cluster.alias_moves == ["8"]
    assert cluster.reasons().count("Promoted") == 1
    assert cluster.reasons().count("VersionPinned") == 1


@given(total=st.integers(1, 50), weight=st.integers(0, 100))
def test_replica_split_keeps_capacity_and_approximates_the_weight(total: int, weight: int) -> None:
    stable, canary = replica_split(total, weight)
    assert max(stable, canary) == total
    assert (canary > 0) == (weight > 0) and (stable > 0) == (weight < 100)
    if 0 < weight < 100 and total >= 10:
        assert abs(served_weight(stable, canary) - weight) <= 10


def test_a_deleted_canary_deployment_is_made_again_and_the_rollout_holds_its_step() -> None:
    """The replica-ratio router's objects are the operator's own Deployments: one deleted by hand
    mid-rollout is applied again at its step's weight; the step neither advances nor promotes."""
    cluster = settled(FakeCluster(spec([{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]), "7", NOW))
    cluster.samples = good()
    cluster.run(4)
    assert cluster.status.rollout is not None and cluster.status.rollout.step_index == 1
    del cluster.tracks["canary"]
    cluster.run(2)
    assert cluster.status.rollout is not None and cluster.status.rollout.step_index == 1
    assert cluster.tracks["canary"].version == "8" and cluster.status.stable_version == "7"
    assert cluster.alias_moves == [] and "Promoted" not in cluster.reasons()
