"""The canary strategy on a fake cluster: steps, weights read back, analysis, promotion, rollback,
manual requests, supersession and replay safety."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from fake_cluster import FakeCluster

from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Phase
from mlrollout.rollout import canary
from mlrollout.rollout.analysis import Sample
from mlrollout.rollout.observed import Request, TrackState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BASE: dict[str, Any] = {
    "model": {"name": "churn", "alias": "challenger"},
    "registry": {"trackingUri": "http://mlflow:5000", "championAlias": "champion"},
    "serving": {"image": "img:1", "replicas": 4},
    "strategy": {
        "canary": {
            "steps": [
                {"setWeight": 25},
                {"pause": {"duration": "30s"}},
                {"analysis": {"count": 2}},
                {"setWeight": 50},
                {"pause": {}},
            ]
        }
    },
    "analysis": {
        "prometheus": {"address": "http://prometheus:9090"},
        "interval": "10s",
        "minRequests": 10,
        "metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.05}],
    },
}
SPEC = ModelDeploymentSpec.model_validate(BASE)
GOOD = {"error-rate": Sample("error-rate", 0.0, 100.0)}
BAD = {"error-rate": Sample("error-rate", 0.5, 100.0)}
NO_TRAFFIC = {"error-rate": Sample("error-rate", None, 0.0)}
DOWN = {"error-rate": Sample("error-rate", None, None, error="Prometheus unreachable")}


def serving(version: str = "6") -> FakeCluster:
    cluster = FakeCluster(SPEC, NOW)
    for _ in range(3):
        cluster.tick(version)
    assert cluster.status.phase == Phase.HEALTHY and cluster.status.stable_version == version
    cluster.actions.clear()
    return cluster


def run_until(
    cluster: FakeCluster, model: str, done: Any, samples: dict[str, Sample] | None = None, limit: int = 200
) -> None:
    for _ in range(limit):
        due = canary.analysis_due(cluster.spec, cluster.status, cluster.now)
        cluster.tick(model, samples if due else None)
        if done(cluster):
            return
    raise AssertionError(f"not reached: {cluster.status.phase} {cluster.status.message}")


def step(cluster: FakeCluster) -> int | None:
    return cluster.status.rollout.step_index if cluster.status.rollout else None


@pytest.mark.parametrize(
    ("total", "weight", "expected"),
    [
        (4, 0, (4, 0)),
        (4, 5, (3, 1)),
        (4, 25, (3, 1)),
        (4, 50, (2, 2)),
        (4, 75, (1, 3)),
        (4, 100, (0, 4)),
        (1, 10, (1, 1)),
        (10, 33, (6, 4)),
    ],
)
def test_replica_ratio(total: int, weight: int, expected: tuple[int, int]) -> None:
    assert canary.replicas_for(total, weight) == expected


def test_actual_weight_is_read_back_from_available_replicas() -> None:
    stable, cand = TrackState("6", 3, 3, 3, 1, 1), TrackState("7", 1, 1, 1, 1, 1)
    assert canary.actual_weight(stable, cand) == 25
    assert canary.actual_weight(stable, TrackState("7", 1, 0, 1, 1, 1)) == 0  # not ready: no traffic yet


def test_healthy_canary_walks_every_step_and_is_promoted_once() -> None:
    cluster = serving()
    run_until(cluster, "7", lambda c: step(c) == 1)
    assert cluster.status.weights is not None and cluster.status.weights.canary == 25
    assert cluster.status.rollout is not None and cluster.status.rollout.desired_weight == 25
    assert cluster.tracks["canary"].desired_replicas == 1 and cluster.tracks["stable"].desired_replicas == 3
    start = cluster.now
    run_until(cluster, "7", lambda c: step(c) == 2)
    assert (cluster.now - start).total_seconds() >= 30  # the pause lasted its duration
    run_until(cluster, "7", lambda c: step(c) == 4, GOOD)
    run = cluster.status.rollout.analysis if cluster.status.rollout else None
    assert run is not None and run.verdict == "Passed" and run.taken == 2
    assert cluster.status.weights is not None and cluster.status.weights.canary == 50
    for _ in range(20):  # a pause without duration waits for a promotion by hand
        cluster.tick("7")
    assert step(cluster) == 4 and cluster.status.phase == Phase.PROGRESSING
    paused = [c for c in cluster.status.conditions if c.type == "Paused"]
    assert paused and paused[0].status == "True" and "until promoted" in paused[0].message
    cluster.request = Request("promote-1", "promote")
    run_until(cluster, "7", lambda c: c.status.phase == Phase.HEALTHY)
    assert cluster.status.stable_version == "7" and "canary" not in cluster.tracks
    assert cluster.tracks["stable"].version == "7" and cluster.tracks["stable"].desired_replicas == 4
    assert cluster.alias_moves == [("champion", "7")]
    assert cluster.tags["7"]["mlrollout.rollout"] == "promoted"
    assert [h.version for h in cluster.status.history] == ["6", "7"]
    assert cluster.events().count("Promoted") == 1
    for _ in range(5):
        cluster.tick("7")
    assert cluster.alias_moves == [("champion", "7")] and cluster.status.phase == Phase.HEALTHY


def test_failed_analysis_rolls_back_and_never_retries_by_itself() -> None:
    cluster = serving()
    run_until(cluster, "7", lambda c: c.status.phase == Phase.ROLLED_BACK, BAD)
    assert cluster.status.stable_version == "6" and "canary" not in cluster.tracks
    assert cluster.tracks["stable"].desired_replicas == 4
    assert cluster.alias_moves == []
    assert cluster.tags["7"]["mlrollout.rollout"] == "rolled_back"
    assert "error-rate: 0.5 > max 0.05" in cluster.tags["7"]["mlrollout.rollout.reason"]
    rollout = cluster.status.rollout
    assert rollout is not None and rollout.aborted_version == "7" and rollout.candidate is None
    assert cluster.status.weights is not None and cluster.status.weights.canary == 0
    for _ in range(10):
        cluster.tick("7")
    assert cluster.status.phase == Phase.ROLLED_BACK and "canary" not in cluster.tracks
    assert cluster.events().count("RolledBack") == 1
    cluster.request = Request("retry-1", "retry")
    run_until(cluster, "7", lambda c: step(c) == 1)
    assert cluster.status.phase == Phase.PROGRESSING


@pytest.mark.parametrize("samples", [NO_TRAFFIC, DOWN])
def test_missing_data_holds_the_rollout_and_it_resumes_when_data_is_back(samples: dict[str, Sample]) -> None:
    cluster = serving()
    run_until(cluster, "7", lambda c: step(c) == 2)
    for _ in range(60):
        due = canary.analysis_due(cluster.spec, cluster.status, cluster.now)
        cluster.tick("7", samples if due else None)
    assert step(cluster) == 2 and cluster.status.phase == Phase.PROGRESSING
    assert cluster.alias_moves == [] and "RolledBack" not in cluster.events()
    paused = next(c for c in cluster.status.conditions if c.type == "Paused")
    assert paused.status == "True" and "holding traffic" in paused.message
    run_until(cluster, "7", lambda c: step(c) == 3, GOOD)


def test_a_newer_version_supersedes_the_candidate_and_restarts() -> None:
    cluster = serving()
    run_until(cluster, "7", lambda c: step(c) == 2)
    cluster.tick("8")
    rollout = cluster.status.rollout
    assert rollout is not None and rollout.candidate is not None and rollout.candidate.version == "8"
    assert rollout.step_index == 0 and rollout.analysis is None
    assert "Superseded" in cluster.events()
    run_until(cluster, "8", lambda c: step(c) == 1)
    assert cluster.tracks["canary"].version == "8"


def test_abort_undo_and_refused_requests() -> None:
    cluster = serving()
    cluster.request = Request("p0", "promote")
    cluster.tick("6")
    assert "RequestRefused" in cluster.events()
    refused = next(c for c in cluster.status.conditions if c.type == "Progressing")
    assert "p0 refused" in refused.message
    run_until(cluster, "7", lambda c: step(c) == 1)
    cluster.request = Request("a1", "abort")
    cluster.tick("7")
    assert cluster.status.phase == Phase.ROLLED_BACK and cluster.alias_moves == []
    # promote-full on a fresh version, then undo back to 6
    cluster.request = Request("pf", "promote-full")
    cluster.tick("8")
    cluster.tick("8")
    run_until(cluster, "8", lambda c: c.status.stable_version == "8")
    assert cluster.alias_moves == [("champion", "8")]
    cluster.request = Request("u1", "undo")
    run_until(cluster, "8", lambda c: c.status.phase == Phase.ROLLED_BACK)
    assert cluster.status.stable_version == "6" and cluster.tracks["stable"].version == "6"
    assert cluster.alias_moves[-1] == ("champion", "6")
    assert cluster.tags["8"]["mlrollout.rollout"] == "rolled_back"


def test_replaying_any_tick_repeats_the_same_actions() -> None:
    """A crash between acting and writing status replays the tick: the same, idempotent actions."""
    cluster = serving()
    script = [("7", None)] * 40 + [("7", GOOD)] * 40
    for model, samples in script:
        before = copy.deepcopy(cluster)
        due = canary.analysis_due(cluster.spec, cluster.status, cluster.now)
        first = cluster.tick(model, samples if due else None)
        before.now = cluster.now - (cluster.now - before.now)  # the same instant
        replay = before.tick(model, samples if due else None)
        assert replay.actions == first.actions and replay.status == first.status
