"""The A/B test's step function: split confirmed by the router, analyses on schedule, decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlrollout.api.names import TRACK_CANARY, TRACK_STABLE
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Candidate, RolloutStatus, Weights
from mlrollout.rollout.abtest import step as ab_step
from mlrollout.rollout.actions import SetWeights
from mlrollout.rollout.experiment_observed import AbObservation, ArmCounts
from mlrollout.rollout.experiment_step import StepResult
from mlrollout.rollout.observed import Observed, ResolvedModel, TrackState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def md(traffic: dict[str, Any] | None = None, **ab: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"name": "churn", "alias": "champion"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "img:1", "replicas": 4},
        "strategy": {
            "abTest": {
                "metric": {"name": "conversion"},
                "minimumDetectableEffect": 0.02,
                "baseline": 0.1,
                "prometheus": {"address": "http://prom:9090"},
            }
            | ab
        },
    }
    if traffic is not None:
        body["traffic"] = traffic
    return ModelDeploymentSpec.model_validate(body)


def split_confirmed(ab: AbObservation | None = None, canary_weight: int = 50) -> Observed:
    return Observed(
        generation=1,
        model=ResolvedModel("churn", "8"),
        tracks={
            TRACK_STABLE: TrackState("7", 4, 4, 4, 1, 1),
            TRACK_CANARY: TrackState("8", 4, 4, 4, 1, 1),
        },
        weights=Weights(stable=100 - canary_weight, canary=canary_weight),
        ab=ab,
    )


def prop(ns: float, xs: float, nc: float, xc: float) -> AbObservation:
    return AbObservation(ArmCounts(ns, outcomes=xs), ArmCounts(nc, outcomes=xc))


def run(spec: ModelDeploymentSpec, rollout: RolloutStatus, seen: Observed, now: datetime) -> StepResult:
    assert spec.strategy.ab_test is not None
    result = ab_step.step(spec, spec.strategy.ab_test, rollout, seen, "7", now)
    # every tick's status survives a restart: the next tick starts from what was written
    again = RolloutStatus.model_validate(result.rollout.model_dump(mode="json", by_alias=True))
    assert again == result.rollout
    return result


def started(spec: ModelDeploymentSpec) -> RolloutStatus:
    r = run(spec, RolloutStatus(candidate=Candidate(model_name="churn", version="8")), split_confirmed(), NOW)
    assert r.reason == "AbTesting" and r.rollout.ab_test is not None
    return r.rollout


def test_waits_for_the_router_to_confirm_the_split() -> None:
    spec = md()
    fresh = RolloutStatus(candidate=Candidate(model_name="churn", version="8"))
    r = run(spec, fresh, split_confirmed(canary_weight=0), NOW)
    assert (r.outcome, r.reason) == ("moving", "WeightMoving")
    assert r.actions == (SetWeights("churn", "7", "8", 50),)
    assert r.rollout.ab_test is None and r.rollout.strategy == "abTest"
    r = run(spec, fresh, split_confirmed(), NOW)
    test = r.rollout.ab_test
    assert test is not None and test.started_at == NOW and test.assignment == "perRequest"
    assert test.next_analysis_at == NOW + timedelta(minutes=1)
    assert test.plan is not None and test.plan.fixed_horizon.stable == 3841
    assert "per request (replica-ratio router)" in r.message


def test_sticky_assignment_is_shown_with_a_router_that_matches_headers() -> None:
    spec = md(traffic={"gatewayAPI": {"httpRoute": "web"}}, sticky={"cookie": "uid"})
    assert spec.strategy.ab_test is not None
    assert ab_step.assignment(spec, spec.strategy.ab_test) == "stickyCookie"


def test_analyses_only_when_due() -> None:
    spec = md()
    rollout = started(spec)
    early = run(spec, rollout, split_confirmed(prop(1000, 100, 1000, 200)), NOW + timedelta(seconds=30))
    assert early.outcome == "waiting" and early.rollout.ab_test is not None
    assert early.rollout.ab_test.analyses == 0
    assert early.requeue_after == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("spec", "seen", "outcome", "reason"),
    [
        (md(), prop(1000, 100, 1000, 200), "promote", "AbTestCandidateWins"),
        (md(), prop(1000, 200, 1000, 100), "rollback", "AbTestStableWins"),
        (
            md(metric={"name": "churn", "higherIsBetter": False}),
            prop(1000, 200, 1000, 100),
            "promote",
            "AbTestCandidateWins",
        ),
        (md(), prop(1000, 100, 1000, 105), "waiting", "AbTesting"),
        (md(), prop(7600, 760, 7600, 760), "keep-stable", "AbTestNoDifference"),
        (md(), None, "analysis-paused", "AbMetricNoData"),
        (md(baseline=None), prop(50, 5, 50, 5), "waiting", "AbTestBurnIn"),
        (
            md(metric={"name": "revenue", "kind": "mean"}, baseline=None, minimumDetectableEffect=0.5),
            AbObservation(ArmCounts(500, 500, 5000.0), ArmCounts(500, 500, 5000.0)),
            "analysis-paused",
            "AbMetricNoVariance",
        ),
    ],
)
def test_first_analysis(
    spec: ModelDeploymentSpec, seen: AbObservation | None, outcome: str, reason: str
) -> None:
    r = run(spec, started(spec), split_confirmed(seen), NOW + timedelta(minutes=1))
    assert (r.outcome, r.reason) == (outcome, reason), r.message
    if outcome in ("promote", "rollback", "keep-stable"):
        assert r.requeue_after is None
    else:
        assert r.requeue_after == pytest.approx(60.0)


def test_max_duration_ends_the_test_without_a_winner() -> None:
    spec = md(maxDuration="1h")
    rollout = started(spec)
    r = run(spec, rollout, split_confirmed(prop(1000, 100, 1000, 104)), NOW + timedelta(minutes=1))
    assert r.outcome == "waiting"
    # past maxDuration an analysis happens at once (not due yet by the interval) and is the last one
    r = run(spec, r.rollout, split_confirmed(prop(2000, 200, 2000, 206)), NOW + timedelta(hours=1))
    assert (r.outcome, r.reason) == ("keep-stable", "AbTestNoDifference")
    assert r.rollout.ab_test is not None and "maxDuration 1h over" in (r.rollout.ab_test.message or "")
    no_data = run(spec, started(spec), split_confirmed(None), NOW + timedelta(hours=2))
    assert (no_data.outcome, no_data.reason) == ("keep-stable", "AbTestNoData")


def test_a_decided_test_stays_decided() -> None:
    spec = md()
    won = run(spec, started(spec), split_confirmed(prop(1000, 100, 1000, 200)), NOW + timedelta(minutes=1))
    later = run(spec, won.rollout, split_confirmed(prop(3000, 300, 3000, 300)), NOW + timedelta(minutes=5))
    assert later.outcome == "promote" and later.rollout.ab_test == won.rollout.ab_test
