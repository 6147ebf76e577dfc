"""One analysis of an A/B test: counts in, the next status.rollout.abTest out (plan, record, decision).

- Plan: from spec.baseline (a proportion) at once; otherwise after a burn-in of BURN_IN_REQUESTS per
  arm (baseline = stable's rate; a mean's variance pooled over both arms). Fixed once made.
- msprt: decides as soon as the always-valid p-value reaches alpha; stops with no significant
  difference at its planned maximum sample, or at maxDuration.
- fixedHorizon: shows only the estimate until both arms reach the planned sample, then one z-test
  decides (no p-value before: looking at it would be the peeking the design forbids).
- The winner is the better side of the estimate (candidate - stable) given higherIsBetter.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from mlrollout.api.experiment_status import AbAnalysis, AbDecision, AbPlan, AbTestStatus, ArmSizes, ArmSummary
from mlrollout.api.strategy import AbTest
from mlrollout.rollout.abtest import sequential as sq
from mlrollout.rollout.abtest.planning import Plan, PlanError, plan
from mlrollout.rollout.experiment_observed import AbObservation, ArmCounts

BURN_IN_REQUESTS = 100  # per arm, before a plan is made from data and before any test statistic
HISTORY = 20
MAX_LOG_E = 700.0  # e-values beyond e^700 are shown as e^700 (a float64 ends near e^709)


def start(ab: AbTest, assignment: str, now: datetime) -> AbTestStatus:
    status = AbTestStatus.model_validate(
        {
            "test": ab.test,
            "metric": ab.metric.name,
            "kind": ab.metric.kind,
            "assignment": assignment,
            "startedAt": now,
        }
    )
    if ab.metric.kind == "proportion" and ab.baseline is not None:
        try:
            made = _plan(ab, ab.baseline, None)
        except PlanError as exc:
            return status.model_copy(update={"decision": "Invalid", "message": str(exc)})
        return status.model_copy(update={"plan": _plan_status(made, "spec", now)})
    return status


def analyze(
    ab: AbTest, status: AbTestStatus, observed: AbObservation | None, now: datetime, timed_out: bool
) -> AbTestStatus:
    """One analysis; `timed_out`: maxDuration is over, so this analysis is the last one."""
    if status.decision != "Running":
        return status
    kind = ab.metric.kind
    if observed is None or observed.stable.requests <= 0 or observed.candidate.requests <= 0:
        message = f"A/B metric {ab.metric.name}: no data (no requests or no metrics for a variant)"
        return _waiting(status, "data", message, timed_out, "NoData")
    if kind == "mean" and (observed.stable.value_squares is None or observed.candidate.value_squares is None):
        message = (
            f"A/B metric {ab.metric.name} is a mean but the runtime exports no sum of squared feedback"
            " values: its variance cannot be estimated"
        )
        return _waiting(status, "variance", message, timed_out, "NoData")
    if min(observed.stable.requests, observed.candidate.requests) < BURN_IN_REQUESTS:
        message = f"burn-in: {_counts(observed)} requests, {BURN_IN_REQUESTS} per variant needed"
        return _waiting(status, "burnIn", message, timed_out, "NoData")
    if status.plan is None:
        try:
            made = _plan_from_burn_in(ab, observed)
        except PlanError as exc:
            return status.model_copy(update={"decision": "Invalid", "message": str(exc), "waiting_for": None})
        if made is None:
            message = f"burn-in: no spread in {ab.metric.name} yet ({_counts(observed)} requests)"
            return _waiting(status, "burnIn", message, timed_out, "NoData")
        status = status.model_copy(update={"plan": _plan_status(made, "burnIn", now)})
    assert status.plan is not None
    return _test(ab, status, status.plan, observed, now, timed_out)


def _test(
    ab: AbTest,
    status: AbTestStatus,
    the_plan: AbPlan,
    observed: AbObservation,
    now: datetime,
    timed_out: bool,
) -> AbTestStatus:
    kind = ab.metric.kind
    s_mean, s_var = _moments(kind, observed.stable)
    c_mean, c_var = _moments(kind, observed.candidate)
    ns, nc = observed.stable.requests, observed.candidate.requests
    est_a, var_a = sq.difference(s_mean, s_var, ns, c_mean, c_var, nc)
    estimate, variance = float(est_a), float(var_a)
    level = f"{100 * (1 - ab.alpha):g}%"
    record = AbAnalysis(
        at=now,
        stable=ArmSummary(requests=ns, mean=float(s_mean)),
        candidate=ArmSummary(requests=nc, mean=float(c_mean)),
        estimate=estimate,
    )
    decision: AbDecision = "Running"
    p_value = status.p_value
    if ab.test == "msprt":
        goal = the_plan.sequential_max
        progress = min(ns / goal.stable, nc / goal.candidate)
        tau2 = the_plan.mixing_variance
        log_e = float(sq.msprt_log_e_value(est_a, var_a, tau2))
        p_value = float(sq.always_valid_p(np.asarray(log_e), previous=status.p_value))
        # no spread seen (cannot happen after a burn-in, but never write an infinite bound)
        half = float(sq.msprt_half_width(var_a, tau2, ab.alpha)) if variance > 0 else None
        record = record.model_copy(
            update={
                "ci_low": None if half is None else estimate - half,
                "ci_high": None if half is None else estimate + half,
                "p_value": p_value,
                "e_value": math.exp(min(log_e, MAX_LOG_E)),
                "progress": progress,
            }
        )
        interval = "no interval yet" if half is None else f"[{estimate - half:.4g}, {estimate + half:.4g}]"
        summary = (
            f"{_effect(estimate)} ({level} always-valid CI {interval}),"
            f" p = {p_value:.3g}, {100 * progress:.0f}% of the planned maximum sample"
        )
        if p_value <= ab.alpha:
            decision = _winner(ab, estimate)
        elif progress >= 1.0:
            decision = "NoSignificantDifference"
            summary += f": no significant difference at the sample planned for power {ab.power:g}"
        elif timed_out:
            decision = "NoSignificantDifference"
            summary += f": maxDuration {ab.max_duration} over, no significant difference"
    else:
        goal = the_plan.fixed_horizon
        progress = min(ns / goal.stable, nc / goal.candidate)
        record = record.model_copy(update={"progress": progress})
        summary = (
            f"{_effect(estimate)}, {100 * progress:.0f}% of the planned sample (p-value at the end only)"
        )
        if progress >= 1.0:
            z = float(sq.z_statistic(est_a, var_a))
            p_value = sq.two_sided_p(z)
            half = sq.z_quantile(1 - ab.alpha / 2) * variance**0.5
            record = record.model_copy(
                update={"ci_low": estimate - half, "ci_high": estimate + half, "p_value": p_value}
            )
            summary = (
                f"{_effect(estimate)} ({level} CI [{estimate - half:.4g}, {estimate + half:.4g}]),"
                f" p = {p_value:.3g} at the planned sample"
            )
            decision = _winner(ab, estimate) if p_value <= ab.alpha else "NoSignificantDifference"
        elif timed_out:
            decision = "NoSignificantDifference"
            summary += f": maxDuration {ab.max_duration} over before the planned sample, no decision"
    if decision == "CandidateWins":
        summary = f"candidate wins: {summary}"
    elif decision == "StableWins":
        summary = f"stable wins: {summary}"
    return status.model_copy(
        update={
            "analyses": status.analyses + 1,
            "p_value": p_value,
            "decision": decision,
            "history": [*status.history, record][-HISTORY:],
            "message": summary[:1024],
            "waiting_for": None,
        }
    )


def _waiting(
    status: AbTestStatus, why: str, message: str, timed_out: bool, final: AbDecision
) -> AbTestStatus:
    if timed_out:
        return status.model_copy(
            update={"decision": final, "message": f"maxDuration over: {message}"[:1024], "waiting_for": None}
        )
    return status.model_copy(update={"waiting_for": why, "message": message[:1024]})


def _winner(ab: AbTest, estimate: float) -> AbDecision:
    return "CandidateWins" if (estimate > 0) == ab.metric.higher_is_better else "StableWins"


def _moments(kind: sq.MetricKind, arm: ArmCounts) -> tuple[sq.FloatArray, sq.FloatArray]:
    total = arm.outcomes if kind == "proportion" else arm.value_sum
    return sq.moments(kind, arm.requests, total, arm.value_squares if kind == "mean" else None)


def _plan(ab: AbTest, baseline: float | None, variance: float | None) -> Plan:
    return plan(
        ab.metric.kind,
        ab.minimum_detectable_effect,
        ab.alpha,
        ab.power,
        ab.candidate_weight / 100,
        ab.metric.higher_is_better,
        baseline=baseline,
        variance=variance,
    )


def _plan_from_burn_in(ab: AbTest, observed: AbObservation) -> Plan | None:
    """None while the burn-in shows no spread (no conversion yet, or every value equal)."""
    if ab.metric.kind == "proportion":
        rate, _ = _moments("proportion", observed.stable)
        if not 0.0 < float(rate) < 1.0:
            return None
        return _plan(ab, ab.baseline if ab.baseline is not None else float(rate), None)
    arms = (observed.stable, observed.candidate)
    within = sum(max((a.value_squares or 0.0) - a.value_sum**2 / a.requests, 0.0) for a in arms)
    pooled = within / max(sum(a.requests for a in arms) - 2.0, 1.0)
    if pooled <= 0.0:
        return None
    return _plan(ab, None, pooled)


def _plan_status(made: Plan, source: str, now: datetime) -> AbPlan:
    return AbPlan.model_validate(
        {
            "source": source,
            "baseline": made.baseline,
            "variance": made.variance,
            "mixingVariance": made.mixing_variance,
            "fixedHorizon": ArmSizes(stable=made.fixed_stable, candidate=made.fixed_candidate),
            "sequentialMax": ArmSizes(stable=made.sequential_stable, candidate=made.sequential_candidate),
            "plannedAt": now,
        }
    )


def _counts(observed: AbObservation) -> str:
    return f"{observed.stable.requests:.0f} stable / {observed.candidate.requests:.0f} candidate"


def _effect(estimate: float) -> str:
    return f"candidate - stable = {estimate:+.4g}"
