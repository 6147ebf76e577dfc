"""Which strategy steps the candidate this tick, pure: canary, blue-green, shadow (and the canary of
its `continueWith` once it passed), A/B test. One place that says, per strategy, how many stable
replicas serve, what the live Service selects, and the cause recorded when the candidate is promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlrollout.api.names import TRACK_STABLE
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import RolloutStatus
from mlrollout.api.strategy import Canary
from mlrollout.rollout import bluegreen, canary, shadow
from mlrollout.rollout.abtest import step as ab_step
from mlrollout.rollout.actions import Action, ApplyService, EmitEvent
from mlrollout.rollout.canary import Step
from mlrollout.rollout.experiment_step import StepResult
from mlrollout.rollout.observed import Observed

# An A/B test that ended without a winner keeps stable: nothing was wrong with either version.
KEPT_STABLE = frozenset({"NoSignificantDifference", "NoData", "Invalid"})


@dataclass(frozen=True)
class StrategyStep:
    result: Step | StepResult
    stable_replicas: int | None  # None: spec.serving.replicas
    routing: tuple[Action, ...]  # the live Service
    cause: str  # history cause on promotion
    events: tuple[EmitEvent, ...] = ()  # an experiment started, or a shadow passed into its canary


def canary_after_shadow(spec: ModelDeploymentSpec, rollout: RolloutStatus) -> Canary | None:
    """The canary of shadow.continueWith once the shadow window passed (None: not there)."""
    sh = spec.strategy.shadow
    if sh is None or sh.continue_with is None or rollout.shadow is None:
        return None
    return sh.continue_with if rollout.shadow.verdict == "Passed" else None


def step(
    spec: ModelDeploymentSpec, rollout: RolloutStatus, observed: Observed, stable: str, now: datetime
) -> StrategyStep:
    every_track = (ApplyService(selector_track=None),)  # replica ratio: the Service selects all tracks
    steps = spec.strategy.canary or canary_after_shadow(spec, rollout)
    if steps is not None:
        result: Step | StepResult = canary.step(spec, steps, rollout, observed, stable, now)
        cause = "canary" if spec.strategy.canary is not None else "shadow+canary"
        return StrategyStep(result, canary.expected_replicas(spec, result.rollout)[0], every_track, cause)
    if spec.strategy.blue_green is not None:
        result = bluegreen.step(spec, spec.strategy.blue_green, rollout, observed, stable, now)
        return StrategyStep(result, None, (), "blueGreen")
    stable_only = (ApplyService(selector_track=TRACK_STABLE),)  # callers never reach the shadow
    if spec.strategy.shadow is not None:
        result = shadow.step(spec, spec.strategy.shadow, rollout, observed, stable, now)
        events: tuple[EmitEvent, ...] = ()
        if result.outcome == "continue" or result.reason == "ShadowStarted":
            events = (EmitEvent("Normal", result.reason, result.message),)
        if result.outcome == "continue":
            result = _into_canary(result, now)
        return StrategyStep(result, None, stable_only, "shadow", events)
    ab = spec.strategy.ab_test
    assert ab is not None
    result = ab_step.step(spec, ab, rollout, observed, stable, now)
    started = rollout.ab_test is None and result.rollout.ab_test is not None
    events = (EmitEvent("Normal", "AbTestStarted", result.message),) if started else ()
    replicas = canary.expected_replicas(spec, result.rollout)[0]
    return StrategyStep(result, replicas, every_track, "abTest", events)


def _into_canary(result: StepResult, now: datetime) -> StepResult:
    """Shadow passed: the canary of continueWith starts at its first step on the next tick."""
    rollout = result.rollout.model_copy(
        update={
            "strategy": "canary",
            "step_index": 0,
            "step_started_at": now,
            "desired_weight": 0,
            "analysis": None,
            "canary_replicas": None,
        }
    )
    return StepResult(rollout, result.actions, "moving", result.reason, result.message, result.requeue_after)


def kept_stable_message(rollout: RolloutStatus) -> str | None:
    """Why the version the model resolves to stays out after an A/B test without a winner."""
    test = rollout.ab_test
    if test is None or test.decision not in KEPT_STABLE:
        return None
    return f"{rollout.last_outcome or test.message}; `retry` or a newer version starts again"
