"""Bad input in spec.analysis: a query Prometheus cannot parse, or an unknown template variable,
holds a new candidate before any traffic moves, says which metric and why, and lets go once fixed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fake_cluster import FakeCluster

from mlrollout.api import conditions as c
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Candidate, ModelDeploymentStatus, Phase, RolloutStatus
from mlrollout.rollout import plan
from mlrollout.rollout.analysis import Sample

NOW = datetime(2025, 1, 1, tzinfo=UTC)
PARSE_ERROR = "1:53: parse error: unclosed left parenthesis"


def spec(query: str = "sum(rate(x[1m]))", strategy: str = "canary") -> ModelDeploymentSpec:
    strategies: dict[str, Any] = {
        "canary": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
        "blueGreen": {"blueGreen": {}},
    }
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "churn", "alias": "champion"},
            "registry": {"trackingUri": "http://mlflow:5000"},
            "serving": {"image": "img:1", "replicas": 2},
            "strategy": strategies[strategy],
            "analysis": {
                "prometheus": {"address": "http://prom:9090"},
                "interval": "30s",
                "count": 1,
                "minRequests": 1,
                "metrics": [
                    {"name": "error-rate", "template": "errorRate", "max": 0.05},
                    {"name": "custom", "query": query, "max": 1},
                ],
            },
        }
    )


def settled(cluster: FakeCluster) -> FakeCluster:
    cluster.run(3)
    assert cluster.status.phase == Phase.HEALTHY
    cluster.version = "8"
    return cluster


def test_a_query_that_does_not_parse_holds_the_candidate_before_any_traffic() -> None:
    cluster = settled(FakeCluster(spec("sum(rate(x[1m])"), "7", NOW))
    cluster.query_problems = (("custom", PARSE_ERROR),)
    cluster.run(5)
    assert cluster.status.phase == Phase.DEGRADED
    assert set(cluster.tracks) == {"stable"} and cluster.tracks["stable"].desired_replicas == 2
    degraded = c.find(cluster.status.conditions, c.DEGRADED)
    assert degraded is not None and degraded.status == "True" and degraded.reason == "InvalidAnalysisQuery"
    assert "'custom'" in degraded.message and PARSE_ERROR in degraded.message
    assert c.is_true(cluster.status.conditions, c.READY)  # stable serves on
    notes = [m for _, r, m in cluster.events if r == "InvalidAnalysisQuery"]
    assert len(notes) == 1 and "custom" in notes[0]  # said once, not every tick
    assert cluster.status.stable_version == "7" and cluster.alias_moves == []
    assert cluster.status.canary_version == "8" and cluster.status.weights.canary == 0  # type: ignore[union-attr]

    cluster.spec, cluster.query_problems = spec("sum(rate(x[1m]))"), ()  # fixed
    cluster.samples = (Sample("error-rate", 0.0, 10.0), Sample("custom", 0.0, 10.0))
    cluster.run(20)
    assert cluster.status.stable_version == "8" and cluster.alias_moves == ["8"]
    assert c.find(cluster.status.conditions, c.DEGRADED).status == "False"  # type: ignore[union-attr]


def test_an_unknown_template_variable_holds_without_asking_prometheus() -> None:
    cluster = settled(FakeCluster(spec('sum(rate(x{pod="{{pod}}"}[1m]))'), "7", NOW))
    cluster.run(3)
    degraded = c.find(cluster.status.conditions, c.DEGRADED)
    assert degraded is not None and degraded.reason == "InvalidAnalysisQuery"
    assert "unknown template variables ['pod']" in degraded.message and "'custom'" in degraded.message
    assert set(cluster.tracks) == {"stable"}


def test_a_problem_seen_once_traffic_moved_does_not_hold_the_rollout() -> None:
    cluster = settled(FakeCluster(spec(), "7", NOW))
    cluster.run(2)  # the canary serves its 50 % now
    assert "canary" in cluster.tracks
    cluster.query_problems = (("custom", PARSE_ERROR),)  # a mid-rollout query error is the analysis' job
    cluster.run(2)
    assert cluster.status.phase == Phase.PROGRESSING and "canary" in cluster.tracks


def _status(**rollout: Any) -> ModelDeploymentStatus:
    return ModelDeploymentStatus(
        phase=Phase.HEALTHY, stable_version="7", model_name="churn", rollout=RolloutStatus(**rollout)
    )


CANDIDATE = Candidate(model_name="churn", version="8", resolved_at=NOW)


@pytest.mark.parametrize(
    ("status", "version", "checked"),
    [
        (_status(), "8", True),  # this tick makes 8 the candidate
        (_status(candidate=CANDIDATE, step_index=0, desired_weight=0), "8", True),  # held before traffic
        (_status(candidate=CANDIDATE, step_index=0, desired_weight=50), "8", False),  # weight asked for
        (_status(candidate=CANDIDATE, step_index=1, desired_weight=50), "8", False),
        (_status(), "7", False),  # stable: nothing to roll out
        (_status(aborted_version="8"), "8", False),  # rolled back: waits for retry or a newer version
    ],
)
def test_queries_are_checked_only_before_a_candidate_first_traffic(
    status: ModelDeploymentStatus, version: str, checked: bool
) -> None:
    due = plan.queries_to_check(spec(), status, version, "churn", "ml", "md")
    assert bool(due) is checked
    if checked:
        assert [m for m, _ in due] == ["error-rate", "custom"]
        assert 'version="8"' in due[0][1] and 'track="canary"' in due[0][1]


def test_blue_green_queries_are_checked_on_the_preview_track() -> None:
    [(_, error_rate), _] = plan.queries_to_check(
        spec(strategy="blueGreen"), _status(), "8", "churn", "ml", "md"
    )
    assert 'track="preview"' in error_rate
