"""The A/B test strategy's step function, pure, in the style of canary.step.

Sub-steps: SPLIT (the router serves candidateWeight % to the candidate; advances once read back),
TESTING (an analysis of the business metric every analysis interval, until a decision). The caller
(decision.py) owns what follows: promote the winner, roll back a losing candidate, or keep stable.

The unit of analysis is the request (requests and outcomes per track). That is exact for the
replica-ratio router, which assigns each request at random; with sticky assignment a user's requests
are correlated and per-request variances understate the truth, so the error rates shown by the
simulation hold only approximately (a per-user analysis would need per-user counts from the runtime).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mlrollout.api.base import parse_duration
from mlrollout.api.experiment_status import AbTestStatus, Assignment
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import RolloutStatus
from mlrollout.api.strategy import AbTest
from mlrollout.rollout.abtest import evaluate
from mlrollout.rollout.canary import POLL_WHILE_MOVING, routing, weight_confirmed
from mlrollout.rollout.experiment_step import ExperimentAction, ExperimentOutcome, StepResult
from mlrollout.rollout.observed import Observed

SPLIT, TESTING = 0, 1
DEFAULT_INTERVAL = "1m"


def assignment(spec: ModelDeploymentSpec, ab: AbTest) -> Assignment:
    """Sticky only where the router matches headers or cookies (the CRD refuses sticky otherwise)."""
    if ab.sticky is None or spec.traffic is None or spec.traffic.replica_ratio is not None:
        return "perRequest"
    return "stickyHeader" if ab.sticky.header is not None else "stickyCookie"


def interval(spec: ModelDeploymentSpec) -> timedelta:
    return parse_duration(spec.analysis.interval if spec.analysis is not None else DEFAULT_INTERVAL)


def step(
    spec: ModelDeploymentSpec,
    ab: AbTest,
    rollout: RolloutStatus,
    observed: Observed,
    stable: str,
    now: datetime,
) -> StepResult:
    assert rollout.candidate is not None
    rollout = rollout.model_copy(update={"strategy": "abTest", "desired_weight": ab.candidate_weight})
    route: tuple[ExperimentAction, ...] = (routing(spec, rollout, stable),)
    if (rollout.step_index or 0) == SPLIT or rollout.ab_test is None:
        if not weight_confirmed(spec, rollout, observed):
            message = f"A/B test: waiting for the router to serve {ab.candidate_weight}% to the candidate"
            return StepResult(rollout, route, "moving", "WeightMoving", message, POLL_WHILE_MOVING)
        test = evaluate.start(ab, assignment(spec, ab), now)
        test = test.model_copy(update={"next_analysis_at": now + interval(spec)})
        rollout = rollout.model_copy(update={"step_index": TESTING, "step_started_at": now, "ab_test": test})
        split = "per request (replica-ratio router)" if test.assignment == "perRequest" else test.assignment
        message = f"A/B test started: {ab.candidate_weight}% to the candidate, assignment {split}"
        return _result(rollout, route, test, message, now)
    test = rollout.ab_test
    timed_out = now >= test.started_at + parse_duration(ab.max_duration)
    due = test.next_analysis_at is None or now >= test.next_analysis_at or timed_out
    if due and test.decision == "Running":
        test = evaluate.analyze(ab, test, observed.ab, now, timed_out)
        test = test.model_copy(update={"next_analysis_at": now + interval(spec)})
    rollout = rollout.model_copy(update={"ab_test": test})
    return _result(rollout, route, test, test.message or "A/B test running", now)


# A decision ends the test: what the caller does next, and the reason it reports.
ENDINGS: dict[str, tuple[ExperimentOutcome, str]] = {
    "CandidateWins": ("promote", "AbTestCandidateWins"),
    "StableWins": ("rollback", "AbTestStableWins"),
    "NoSignificantDifference": ("keep-stable", "AbTestNoDifference"),
    "NoData": ("keep-stable", "AbTestNoData"),
    "Invalid": ("keep-stable", "AbTestInvalid"),
}
# Running, but the last analysis could not test: a pause (no data, no variance) or the burn-in.
WAITING: dict[str | None, tuple[ExperimentOutcome, str]] = {
    "data": ("analysis-paused", "AbMetricNoData"),
    "variance": ("analysis-paused", "AbMetricNoVariance"),
    "burnIn": ("waiting", "AbTestBurnIn"),
    None: ("waiting", "AbTesting"),
}


def _result(
    rollout: RolloutStatus,
    route: tuple[ExperimentAction, ...],
    test: AbTestStatus,
    message: str,
    now: datetime | None = None,
) -> StepResult:
    if test.decision in ENDINGS:
        outcome, reason = ENDINGS[test.decision]
        return StepResult(rollout, route, outcome, reason, message, None)
    due = 1.0
    if test.next_analysis_at is not None and now is not None:
        due = max((test.next_analysis_at - now).total_seconds(), 0.5)
    outcome, reason = WAITING[test.waiting_for]
    return StepResult(rollout, route, outcome, reason, message, due)
