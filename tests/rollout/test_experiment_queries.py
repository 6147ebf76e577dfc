"""Which PromQL a shadow or an A/B test needs this tick, and how the answers become Observed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlrollout.api.experiment_status import AbTestStatus, ShadowStatus
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Candidate, ModelDeploymentStatus, RolloutStatus
from mlrollout.rollout import experiment_queries as eq

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
PROM = {"prometheus": {"address": "http://prom:9090"}}


def spec(strategy: dict[str, Any]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "churn", "alias": "champion"},
            "registry": {"trackingUri": "http://mlflow:5000"},
            "serving": {"image": "img:1"},
            "strategy": strategy,
        }
    )


SHADOW = spec({"shadow": {**PROM, "mirrorPercent": 30}})
AB = spec({"abTest": {**PROM, "metric": {"name": "conversion"}, "minimumDetectableEffect": 0.05}})


def status(**rollout: Any) -> ModelDeploymentStatus:
    candidate = Candidate(model_name="churn", version="8")
    return ModelDeploymentStatus(
        model_name="churn", stable_version="7", rollout=RolloutStatus(candidate=candidate, **rollout)
    )


def test_nothing_without_a_running_experiment() -> None:
    assert eq.plan(SHADOW, ModelDeploymentStatus(model_name="churn", stable_version="7"), "ns", NOW) is None
    assert eq.plan(SHADOW, status(strategy="canary"), "ns", NOW) is None  # still at the gate
    assert eq.plan(AB, status(strategy="abTest"), "ns", NOW) is None  # the split is not confirmed yet


def test_shadow_reads_the_mirror_back_then_counts_since_the_window_started() -> None:
    before = eq.plan(SHADOW, status(strategy="shadow"), "ns", NOW)
    assert before == eq.ShadowQueries(
        mirror='min(mlrollout_mirror_fraction{namespace="ns",model="churn",version="7",track="stable"})'
    )
    started = ShadowStatus(started_at=NOW - timedelta(seconds=95))
    queries = eq.plan(SHADOW, status(strategy="shadow", shadow=started), "ns", NOW)
    assert isinstance(queries, eq.ShadowQueries)
    assert queries.mirrored == (
        'sum(increase(mlrollout_shadow_requests_total{namespace="ns",model="churn",version="7",'
        'track="stable",result!="dropped"}[95s]))'
    )
    assert queries.candidate_p99 is not None and 'version="8",track="shadow"' in queries.candidate_p99
    answers = {
        queries.mirror: 0.3,
        queries.mirrored: 120.0,
        queries.errors: None,  # no error series: none failed
        queries.compared: 120.0,
        queries.agreed: 117.0,
        queries.stable_p99: 0.01,
        queries.candidate_p99: float("nan"),  # no candidate latency yet
    }
    seen = eq.shadow_observation(queries, answers.__getitem__)
    assert seen.mirror_percent == 30 and seen.mirrored == 120 and seen.errors == 0
    assert (
        seen.agreed == 117 and seen.stable_latency_seconds == 0.01 and seen.candidate_latency_seconds is None
    )


def test_ab_queries_only_when_an_analysis_is_due_and_no_feedback_at_all_is_no_data() -> None:
    test = AbTestStatus.model_validate(
        {
            "test": "msprt",
            "metric": "conversion",
            "kind": "proportion",
            "assignment": "perRequest",
            "startedAt": NOW - timedelta(minutes=2),
            "nextAnalysisAt": NOW + timedelta(seconds=30),
        }
    )
    assert eq.plan(AB, status(strategy="abTest", ab_test=test), "ns", NOW) is None
    due = test.model_copy(update={"next_analysis_at": NOW})
    queries = eq.plan(AB, status(strategy="abTest", ab_test=due), "ns", NOW)
    assert isinstance(queries, eq.AbQueries)
    assert queries.candidate.requests == (
        'sum(increase(mlrollout_requests_total{namespace="ns",model="churn",version="8",'
        'track="canary",code="200"}[120s]))'
    )
    assert 'outcome="conversion"' in queries.stable.value_sum and "[120s]" in queries.stable.value_sum

    def answer(values: dict[str, float | None]) -> Any:
        return lambda q: next((v for k, v in values.items() if k in q), None)

    nothing = answer({"requests_total": 500.0})
    assert eq.ab_observation(queries, nothing) is None  # the metric has no feedback series at all
    some = answer({"requests_total": 500.0, "feedback_total": 40.0, "value_sum": 40.0, "squares": 40.0})
    seen = eq.ab_observation(queries, some)
    assert seen is not None and seen.candidate.requests == 500 and seen.candidate.outcomes == 40
