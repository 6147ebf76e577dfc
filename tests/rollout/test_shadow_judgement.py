"""Shadow judgement and step, pure: agreement, error rate, latency, minRequests; promote, continue into
the canary, reject with the numbers, or pause when inconclusive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrollout.api.experiment_status import ShadowStatus
from mlrollout.api.names import TRACK_SHADOW
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Candidate, RolloutStatus
from mlrollout.api.strategy import Shadow
from mlrollout.rollout import shadow as sh
from mlrollout.rollout.actions import ApplyServing, DeleteServing, DeleteTrackService
from mlrollout.rollout.experiment_observed import ShadowObservation
from mlrollout.rollout.experiment_step import ConfigureMirror
from mlrollout.rollout.observed import Observed, ResolvedModel, TrackState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stable", "candidate", "tolerance", "agrees"),
    [
        ("churn", "churn", 0.0, True),
        ("churn", "stay", 0.5, False),
        (1, 1, 0.0, True),
        (1, 2, 0.9, False),  # integer labels are classes: no tolerance
        (True, True, 0.0, True),
        (True, 1, 0.0, False),
        ("1", 1, 0.0, False),
        (100.0, 100.9, 0.01, True),  # regression: within 1% of stable's value
        (100.0, 101.5, 0.01, False),
        (100.0, 101, 0.01, True),
        (0.0, 1e-12, 0.0, True),  # near zero: an absolute 1e-9
        (0.0, 0.001, 0.01, False),
        (2.0, None, 0.5, False),
    ],
)
def test_agree(stable: object, candidate: object, tolerance: float, agrees: bool) -> None:
    assert sh.agree(stable, candidate, tolerance) is agrees


def test_agreement_counts_rows_and_missing_rows_disagree() -> None:
    assert sh.agreement(["a", "b", "c"], ["a", "x", "c"], 0.0) == (3, 2)
    assert sh.agreement([1.0, 2.0], [1.0], 0.01) == (2, 1)
    assert sh.agreement([], [], 0.0) == (0, 0)


def shadow(**extra: Any) -> Shadow:
    return Shadow.model_validate(
        {"minRequests": 100, "maxDisagreement": 0.05, "maxLatencyRatio": 1.5} | extra
    )


def obs(**extra: Any) -> ShadowObservation:
    body: dict[str, Any] = {
        "mirror_percent": 100,
        "mirrored": 1000.0,
        "errors": 2.0,
        "compared": 1000.0,
        "agreed": 980.0,
        "stable_latency_seconds": 0.010,
        "candidate_latency_seconds": 0.012,
    }
    return ShadowObservation(**(body | extra))


@pytest.mark.parametrize(
    ("spec", "observed", "verdict", "problem"),
    [
        (shadow(), obs(), "pass", None),
        (shadow(), None, "inconclusive", "no shadow metrics"),
        (
            shadow(),
            obs(mirrored=99.0, compared=99.0, agreed=99.0, errors=0.0),
            "inconclusive",
            "99 of minRequests 100",
        ),
        (
            shadow(),
            obs(mirrored=0.0, errors=0.0, compared=0.0, agreed=0.0),
            "inconclusive",
            "0 of minRequests",
        ),
        (shadow(), obs(agreed=940.0), "fail", "disagreement 6.00% > maxDisagreement 5.00%"),
        (shadow(), obs(errors=20.0), "fail", "error rate 2.00% > maxErrorRate 1.00%"),
        (shadow(maxErrorRate=0.05), obs(errors=20.0), "pass", None),
        (shadow(), obs(errors=1000.0, compared=0.0, agreed=0.0), "fail", "error rate 100.00%"),
        (
            shadow(),
            obs(candidate_latency_seconds=0.020),
            "fail",
            "p99 latency 2.00x stable's > maxLatencyRatio 1.5",
        ),
        (shadow(), obs(candidate_latency_seconds=None), "inconclusive", "no latency"),
        (shadow(maxLatencyRatio=None), obs(candidate_latency_seconds=None), "pass", None),
        (shadow(maxDisagreement=None), obs(agreed=10.0), "pass", None),  # agreement reported, not judged
        (shadow(), obs(agreed=900.0, errors=50.0), "fail", "error rate 5.00%"),
    ],
)
def test_judge(spec: Shadow, observed: ShadowObservation | None, verdict: str, problem: str | None) -> None:
    j = sh.judge(spec, observed, ShadowStatus(started_at=NOW))
    assert j.verdict == verdict
    if problem is not None:
        assert any(problem in p for p in j.problems), j.problems
    if observed is not None:
        assert j.status.mirrored == observed.mirrored and j.status.compared == observed.compared


def test_judge_lists_every_failure_with_its_number() -> None:
    j = sh.judge(shadow(), obs(agreed=800.0, errors=30.0, candidate_latency_seconds=0.05), ShadowStatus())
    assert j.verdict == "fail" and len(j.problems) == 3
    assert j.status.agreement == pytest.approx(0.8) and j.status.error_rate == pytest.approx(0.03)
    assert j.status.latency_ratio == pytest.approx(5.0)


def md(**shadow_extra: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "churn", "alias": "champion"},
            "registry": {"trackingUri": "http://mlflow:5000"},
            "serving": {"image": "img:1", "replicas": 4},
            "strategy": {
                "shadow": {
                    "mirrorPercent": 50,
                    "duration": "10m",
                    "maxDisagreement": 0.05,
                    "prometheus": {"address": "http://prom:9090"},
                }
                | shadow_extra
            },
        }
    )


def shadow_track(version: str = "8") -> dict[str, TrackState]:
    return {TRACK_SHADOW: TrackState(version, 2, 2, 2, 1, 1)}


def observed(
    tracks: dict[str, TrackState] | None = None, shadow_obs: ShadowObservation | None = None
) -> Observed:
    return Observed(generation=1, model=ResolvedModel("churn", "8"), tracks=tracks or {}, shadow=shadow_obs)


def start() -> RolloutStatus:
    return RolloutStatus(candidate=Candidate(model_name="churn", version="8"))


def run_step(
    spec: ModelDeploymentSpec, rollout: RolloutStatus, seen: Observed, now: datetime
) -> sh.StepResult:
    assert spec.strategy.shadow is not None
    return sh.step(spec, spec.strategy.shadow, rollout, seen, "7", now)


def test_shadow_waits_for_the_track_and_the_mirror_read_back() -> None:
    spec = md()
    r = run_step(spec, start(), observed(), NOW)
    assert r.outcome == "moving" and "shadow track" in r.message
    assert r.actions == (ApplyServing(TRACK_SHADOW, "churn", "8", 2),)  # no mirroring to a track not up
    r = run_step(spec, start(), observed(shadow_track(), obs(mirror_percent=None)), NOW)
    assert r.outcome == "moving" and "mirroring of 50%" in r.message
    assert r.actions == (ApplyServing(TRACK_SHADOW, "churn", "8", 2), ConfigureMirror(50, TRACK_SHADOW, 0.01))
    r = run_step(spec, start(), observed(shadow_track("7"), obs(mirror_percent=50)), NOW)
    assert r.outcome == "moving"
    r = run_step(spec, start(), observed(shadow_track(), obs(mirror_percent=50)), NOW)
    assert r.outcome == "waiting" and r.rollout.shadow is not None and r.rollout.shadow.started_at == NOW
    assert r.rollout.strategy == "shadow" and r.rollout.desired_weight == 0


def window(spec: ModelDeploymentSpec) -> RolloutStatus:
    r = run_step(spec, start(), observed(shadow_track(), obs(mirror_percent=50)), NOW)
    # a restarted operator resumes from status alone
    return RolloutStatus.model_validate(r.rollout.model_dump(mode="json", by_alias=True))


@pytest.mark.parametrize(
    ("spec", "seen", "outcome", "reason", "in_message"),
    [
        (md(), obs(mirror_percent=50), "promote", "ShadowPassed", "agreement 98.00%"),
        (
            md(continueWith={"steps": [{"setWeight": 10}]}),
            obs(mirror_percent=50),
            "continue",
            "ShadowPassed",
            "continuing into the canary",
        ),
        (md(), obs(mirror_percent=50, agreed=900.0), "reject", "ShadowRejected", "disagreement 10.00%"),
        (
            md(),
            obs(mirror_percent=50, mirrored=40.0),
            "analysis-paused",
            "NotEnoughTraffic",
            "40 of minRequests",
        ),
        (md(), None, "analysis-paused", "MetricsUnavailable", "no shadow metrics"),
    ],
)
def test_end_of_window(
    spec: ModelDeploymentSpec, seen: ShadowObservation | None, outcome: str, reason: str, in_message: str
) -> None:
    rollout = window(spec)
    during = run_step(spec, rollout, observed(shadow_track(), seen), NOW + timedelta(minutes=5))
    assert during.outcome == "waiting" and during.reason == "ShadowComparing"
    assert during.requeue_after == sh.POLL_IN_WINDOW
    after = run_step(spec, during.rollout, observed(shadow_track(), seen), NOW + timedelta(minutes=10))
    assert (after.outcome, after.reason) == (outcome, reason)
    assert in_message in after.message
    assert after.rollout.shadow is not None
    expected = {
        "promote": "Passed",
        "continue": "Passed",
        "reject": "Failed",
        "analysis-paused": "Inconclusive",
    }
    assert after.rollout.shadow.verdict == expected[outcome]
    if outcome == "continue":
        assert after.actions == (
            ConfigureMirror(0, TRACK_SHADOW),
            DeleteServing(TRACK_SHADOW),
            DeleteTrackService(TRACK_SHADOW),
        )
    elif outcome in ("promote", "reject"):
        assert after.actions == (ConfigureMirror(0, TRACK_SHADOW),)  # mirroring off once judged
    else:
        assert ConfigureMirror(50, TRACK_SHADOW, 0.01) in after.actions  # keeps mirroring while paused


def test_rejection_keeps_the_numbers_in_status() -> None:
    spec = md()
    rollout = window(spec)
    seen = obs(mirror_percent=50, agreed=900.0, errors=30.0)
    after = run_step(spec, rollout, observed(shadow_track(), seen), NOW + timedelta(minutes=11))
    s = after.rollout.shadow
    assert s is not None and s.verdict == "Failed"
    assert (s.mirrored, s.errors, s.compared) == (1000.0, 30.0, 1000.0)
    assert s.agreement == pytest.approx(0.9) and s.error_rate == pytest.approx(0.03)
    assert s.message is not None and "error rate 3.00%" in s.message and "disagreement 10.00%" in s.message


@given(
    mirrored=st.floats(0, 1e6),
    error_share=st.floats(0, 1),
    agree_share=st.floats(0, 1),
    compared_per_request=st.floats(0, 3),
    stable_p99=st.none() | st.floats(1e-4, 10),
    cand_p99=st.none() | st.floats(1e-4, 10),
)
def test_a_pass_always_meets_every_threshold(
    mirrored: float,
    error_share: float,
    agree_share: float,
    compared_per_request: float,
    stable_p99: float | None,
    cand_p99: float | None,
) -> None:
    spec = shadow()
    compared = mirrored * (1 - error_share) * compared_per_request
    seen = obs(
        mirrored=mirrored,
        errors=mirrored * error_share,
        compared=compared,
        agreed=compared * agree_share,
        stable_latency_seconds=stable_p99,
        candidate_latency_seconds=cand_p99,
    )
    j = sh.judge(spec, seen, ShadowStatus())
    if mirrored < spec.min_requests:
        assert j.verdict == "inconclusive"  # never a pass for lack of traffic
    if j.verdict == "pass":
        assert mirrored >= spec.min_requests and compared > 0
        assert error_share <= spec.max_error_rate
        assert spec.max_disagreement is not None and 1 - agree_share <= spec.max_disagreement + 1e-9
        assert stable_p99 is not None and cand_p99 is not None
        assert spec.max_latency_ratio is not None and cand_p99 / stable_p99 <= spec.max_latency_ratio
    if j.verdict == "fail":
        assert j.problems
