"""One A/B analysis at a time (what the operator runs), table-tested, and checked against the
vectorised simulation: on the same counts it decides exactly as the simulation says."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrollout.api.experiment_status import AbTestStatus
from mlrollout.api.strategy import AbTest
from mlrollout.rollout.abtest import evaluate
from mlrollout.rollout.abtest.simulation import fixed_horizon, msprt, simulate
from mlrollout.rollout.experiment_observed import AbObservation, ArmCounts

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ab(**extra: Any) -> AbTest:
    body: dict[str, Any] = {"metric": {"name": "conversion"}, "minimumDetectableEffect": 0.02}
    return AbTest.model_validate(body | extra)


def prop(ns: float, xs: float, nc: float, xc: float) -> AbObservation:
    return AbObservation(ArmCounts(ns, outcomes=xs), ArmCounts(nc, outcomes=xc))


def run(spec: AbTest, *observations: AbObservation | None, timed_out: bool = False) -> AbTestStatus:
    status = evaluate.start(spec, "perRequest", NOW)
    for i, obs in enumerate(observations):
        last = i == len(observations) - 1
        status = evaluate.analyze(spec, status, obs, NOW + timedelta(minutes=i + 1), timed_out and last)
    return status


def test_plan_from_the_spec_baseline_at_start() -> None:
    status = evaluate.start(ab(baseline=0.1), "perRequest", NOW)
    assert status.plan is not None and status.plan.source == "spec"
    assert (status.plan.fixed_horizon.stable, status.plan.fixed_horizon.candidate) == (3841, 3841)
    assert status.plan.mixing_variance == pytest.approx(0.0004)


@pytest.mark.parametrize(
    ("spec", "obs", "timed_out", "decision", "waiting_for", "message"),
    [
        (ab(), None, False, "Running", "data", "no data"),
        (ab(), prop(0, 0, 50, 5), False, "Running", "data", "no data"),
        (ab(), None, True, "NoData", None, "maxDuration over: A/B metric conversion: no data"),
        (ab(), prop(99, 10, 500, 50), False, "Running", "burnIn", "burn-in: 99 stable / 500 candidate"),
        (ab(), prop(200, 0, 200, 0), False, "Running", "burnIn", "no spread"),
        (ab(), prop(50, 5, 50, 5), True, "NoData", None, "maxDuration over: burn-in"),
        (
            ab(metric={"name": "revenue", "kind": "mean"}, minimumDetectableEffect=0.5),
            AbObservation(ArmCounts(500, 500, 5000.0), ArmCounts(500, 500, 5000.0)),
            False,
            "Running",
            "variance",
            "no sum of squared feedback values",
        ),
        # the burn-in baseline leaves no room for the effect: a clear refusal, not a test
        (ab(), prop(1000, 990, 1000, 990), False, "Invalid", None, "leaves (0, 1)"),
    ],
)
def test_analyses_that_cannot_test(
    spec: AbTest,
    obs: AbObservation | None,
    timed_out: bool,
    decision: str,
    waiting_for: str | None,
    message: str,
) -> None:
    status = run(spec, obs, timed_out=timed_out)
    assert status.decision == decision
    assert status.waiting_for == waiting_for
    assert status.message is not None and message in status.message
    assert status.analyses == 0 and status.history == []


def test_burn_in_plans_from_the_stable_rate_then_tests() -> None:
    status = run(ab(), prop(150, 15, 150, 16))
    assert status.plan is not None and status.plan.source == "burnIn" and status.plan.baseline == 0.1
    assert status.analyses == 1 and status.decision == "Running"


def test_clear_winner_by_hand() -> None:
    # est = 0.1, V = 0.09/1000 + 0.16/1000 = 2.5e-4, tau2 = 4e-4:
    # log L = 0.5 ln(2.5/6.5) + 4e-4 * 0.01 / (2 * 2.5e-4 * 6.5e-4) = 11.829936
    status = run(ab(baseline=0.1), prop(1000, 100, 1000, 200))
    assert status.decision == "CandidateWins"
    last = status.history[-1]
    assert last.estimate == pytest.approx(0.1)
    assert last.e_value == pytest.approx(math.exp(11.829936), rel=1e-6)
    assert last.p_value == pytest.approx(math.exp(-11.829936), rel=1e-6)
    assert status.p_value == last.p_value
    half = math.sqrt(2.5e-4 * 6.5e-4 / 4e-4 * (2 * math.log(20) + math.log(6.5 / 2.5)))
    assert (last.ci_low, last.ci_high) == (pytest.approx(0.1 - half), pytest.approx(0.1 + half))
    assert last.ci_low is not None and last.ci_low > 0
    assert last.stable.mean == pytest.approx(0.1) and last.candidate.mean == pytest.approx(0.2)
    assert status.message is not None and status.message.startswith("candidate wins")


def test_lower_is_better_makes_the_higher_candidate_the_loser() -> None:
    spec = ab(metric={"name": "churn", "higherIsBetter": False}, baseline=0.2)
    assert run(spec, prop(1000, 100, 1000, 200)).decision == "StableWins"
    assert run(spec, prop(1000, 200, 1000, 100)).decision == "CandidateWins"


def test_no_difference_at_the_planned_maximum_and_at_max_duration() -> None:
    spec = ab(baseline=0.1)
    at_max = run(spec, prop(7500, 750, 7500, 750))
    assert at_max.decision == "NoSignificantDifference"
    assert at_max.history[-1].progress >= 1.0
    assert "planned for power 0.8" in (at_max.message or "")
    early = run(spec, prop(1000, 100, 1000, 100), timed_out=True)
    assert early.decision == "NoSignificantDifference" and "maxDuration 7d over" in (early.message or "")


def test_always_valid_p_never_rises() -> None:
    spec = ab(baseline=0.1)
    status = run(spec, prop(1000, 100, 1000, 125), prop(2000, 200, 2000, 210))
    first, second = status.history
    assert second.p_value == first.p_value  # weaker evidence later keeps the earlier minimum
    assert second.e_value is not None and first.e_value is not None and second.e_value < first.e_value


def test_fixed_horizon_withholds_p_until_the_planned_sample() -> None:
    spec = ab(baseline=0.1, test="fixedHorizon")
    early = run(spec, prop(1000, 100, 1000, 200))  # a huge effect, but not the planned sample
    assert early.decision == "Running"
    assert early.history[-1].p_value is None and early.history[-1].ci_low is None
    assert early.history[-1].progress == pytest.approx(1000 / 3841)
    # at the plan: est = 0.015, V = (0.09 + 0.115*0.885)/3900, z = 0.015 / sqrt(V)
    done = run(spec, prop(3900, 390, 3900, 448.5))
    v = (0.09 + 0.115 * 0.885) / 3900
    z = 0.015 / math.sqrt(v)
    p = math.erfc(z / math.sqrt(2))
    assert done.history[-1].p_value == pytest.approx(p)
    assert done.decision == ("CandidateWins" if p <= 0.05 else "NoSignificantDifference")
    half = 1.959963985 * math.sqrt(v)
    assert done.history[-1].ci_low == pytest.approx(0.015 - half, rel=1e-6)


def test_fixed_horizon_stops_without_decision_at_max_duration() -> None:
    status = run(ab(baseline=0.1, test="fixedHorizon"), prop(1000, 100, 1000, 200), timed_out=True)
    assert status.decision == "NoSignificantDifference"
    assert "before the planned sample" in (status.message or "")


def test_history_is_bounded_and_decided_tests_stay_decided() -> None:
    spec = ab(baseline=0.1)
    status = run(spec, *[prop(200 * (i + 1), 20 * (i + 1), 200 * (i + 1), 20 * (i + 1)) for i in range(25)])
    assert status.analyses == 25 and len(status.history) == evaluate.HISTORY
    assert status.history[-1].stable.requests == 5000
    won = run(spec, prop(1000, 100, 1000, 200))
    assert evaluate.analyze(spec, won, prop(1, 0, 1, 0), NOW, True) == won


def test_mean_metric_by_hand() -> None:
    spec = ab(metric={"name": "revenue", "kind": "mean"}, minimumDetectableEffect=0.5)
    # stable: 400 requests, sum 4000, squares 4000^2/400 + 399*25 -> mean 10, variance 25
    stable = ArmCounts(400, 400, 4000.0, 4000.0**2 / 400 + 399 * 25.0)
    cand = ArmCounts(400, 400, 4400.0, 4400.0**2 / 400 + 399 * 25.0)
    status = run(spec, AbObservation(stable, cand))
    assert status.plan is not None and status.plan.variance == pytest.approx(25.0)
    last = status.history[-1]
    v = 25 / 400 * 2
    log_e = 0.5 * math.log(v / (v + 0.25)) + 0.25 * 1.0 / (2 * v * (v + 0.25))
    assert last.estimate == pytest.approx(1.0) and last.e_value == pytest.approx(math.exp(log_e))
    assert status.decision == ("CandidateWins" if math.exp(-log_e) <= 0.05 else "Running")


@pytest.mark.parametrize(("kind", "effect"), [("proportion", 0.0), ("proportion", 0.02), ("mean", 0.5)])
@pytest.mark.parametrize("test", ["msprt", "fixedHorizon"])
def test_decides_exactly_as_the_simulation(kind: str, effect: float, test: str) -> None:
    """The operator's analysis, called once per batch per experiment, against the vectorised path."""
    base, sd = (0.1, 0.0) if kind == "proportion" else (10.0, 5.0)
    extra: dict[str, Any] = {"baseline": base} if kind == "proportion" else {"minimumDetectableEffect": 0.5}
    spec = ab(metric={"name": "m", "kind": kind}, test=test, **extra)
    # the mean's plan comes from a burn-in: give it the same variance through the batch counts
    experiments, batches = 60, 20
    planned = evaluate.start(spec, "perRequest", NOW).plan
    total = 2 * (planned.sequential_max.stable if planned else 3100)
    arms = simulate(
        np.random.default_rng(3), kind, experiments, batches, total // batches, 0.5, base, base + effect, sd
    )  # type: ignore[arg-type]
    for e in range(experiments):
        status = evaluate.start(spec, "perRequest", NOW)
        for b in range(batches):
            obs = AbObservation(
                _arm(kind, arms.stable_n, arms.stable_total, arms.stable_squares, e, b),
                _arm(kind, arms.candidate_n, arms.candidate_total, arms.candidate_squares, e, b),
            )
            status = evaluate.analyze(spec, status, obs, NOW + timedelta(minutes=b), False)
            if status.decision != "Running":
                break
        assert status.plan is not None
        if test == "msprt":
            sizes = status.plan.sequential_max
            stop = (sizes.stable, sizes.candidate)
            expected = msprt(kind, arms, status.plan.mixing_variance, 0.05, stop)  # type: ignore[arg-type]
        else:
            sizes = status.plan.fixed_horizon
            expected = fixed_horizon(kind, arms, 0.05, sizes.stable, sizes.candidate)  # type: ignore[arg-type]
        want = {1: "CandidateWins", -1: "StableWins", 0: ("Running", "NoSignificantDifference")}
        assert status.decision in want[int(expected.direction[e])], (e, status.message)


def _arm(kind: str, n: Any, total: Any, squares: Any, e: int, b: int) -> ArmCounts:
    if kind == "proportion":
        return ArmCounts(float(n[e, b]), outcomes=float(total[e, b]))
    return ArmCounts(float(n[e, b]), float(n[e, b]), float(total[e, b]), float(squares[e, b]))


def test_overwhelming_evidence_stays_finite_in_status() -> None:
    status = run(ab(baseline=0.1), prop(1_000_000, 100_000, 1_000_000, 200_000))
    assert status.decision == "CandidateWins"
    last = status.history[-1]
    assert last.e_value == pytest.approx(math.exp(evaluate.MAX_LOG_E)) and last.p_value == 0.0
    dumped = status.model_dump(mode="json", by_alias=True)
    assert AbTestStatus.model_validate(dumped) == status  # what the API server stores comes back equal


@given(
    ns=st.integers(100, 50_000),
    nc=st.integers(100, 50_000),
    rate_s=st.floats(0.01, 0.99),
    rate_c=st.floats(0.0, 1.0),
    higher=st.booleans(),
)
def test_a_winner_is_significant_and_on_its_better_side(
    ns: int, nc: int, rate_s: float, rate_c: float, higher: bool
) -> None:
    spec = ab(metric={"name": "m", "higherIsBetter": higher}, baseline=0.5)
    status = run(spec, prop(ns, round(ns * rate_s), nc, round(nc * rate_c)))
    if status.decision in ("CandidateWins", "StableWins"):
        last = status.history[-1]
        assert last.p_value is not None and last.p_value <= spec.alpha
        assert last.ci_low is not None and last.ci_high is not None
        assert last.ci_low > 0 or last.ci_high < 0  # the always-valid interval excludes "no effect"
        assert last.estimate is not None
        assert (status.decision == "CandidateWins") == ((last.estimate > 0) == higher)
    else:
        assert status.decision in ("Running", "NoSignificantDifference")
