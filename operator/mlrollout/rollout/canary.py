"""The canary strategy's step function, pure: one rollout status in, the next one and its actions out.

Steps run in order: setWeight (advances once the router reads the weight back), pause (a duration,
or until promoted by hand), analysis (a run of measurements; four-valued verdict), setCanaryScale.
Past the last step the candidate is promoted. The caller (decision.py) owns promotion and rollback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mlrollout.api.base import parse_duration
from mlrollout.api.names import TRACK_CANARY, TRACK_STABLE
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import RolloutStatus
from mlrollout.api.strategy import Canary, CanaryStep, StepAnalysis
from mlrollout.rollout import analysis
from mlrollout.rollout.actions import Action, SetWeights
from mlrollout.rollout.observed import Observed
from mlrollout.rollout.polls import router_poll
from mlrollout.rollout.weights import replica_split, routed_split, served_weight

POLL_WHILE_MOVING = 2.0

Outcome = Literal["moving", "waiting", "held", "analysis-paused", "promote", "rollback"]


@dataclass(frozen=True)
class Step:
    rollout: RolloutStatus
    actions: tuple[Action, ...]
    outcome: Outcome
    reason: str
    message: str
    requeue_after: float | None


def step(
    spec: ModelDeploymentSpec,
    canary: Canary,
    rollout: RolloutStatus,
    observed: Observed,
    stable: str,
    now: datetime,
) -> Step:
    assert rollout.candidate is not None
    index = rollout.step_index or 0
    if index >= len(canary.steps):
        return Step(rollout, (), "promote", "StepsComplete", f"all {len(canary.steps)} steps done", None)
    current = canary.steps[index]
    where = f"step {index + 1}/{len(canary.steps)}"
    if current.set_weight is not None:
        rollout = rollout.model_copy(update={"desired_weight": current.set_weight})
    route = routing(spec, rollout, stable)
    if current.set_weight is not None:
        if weight_confirmed(spec, rollout, observed):
            return advance(rollout, now, (route,), f"{where}: weight {current.set_weight}% confirmed")
        message = f"{where}: waiting for the router to serve {current.set_weight}% to the candidate"
        return Step(
            rollout, (route,), "moving", "WeightMoving", message, router_poll(spec, POLL_WHILE_MOVING)
        )
    if current.set_canary_scale is not None:
        rollout = rollout.model_copy(update={"canary_replicas": _canary_scale(spec, current, rollout)})
        route = routing(spec, rollout, stable)
        if weight_confirmed(spec, rollout, observed):
            return advance(rollout, now, (route,), f"{where}: canary scaled")
        poll = router_poll(spec, POLL_WHILE_MOVING)
        return Step(rollout, (route,), "moving", "CanaryScaling", f"{where}: scaling the canary", poll)
    if current.pause is not None:
        if current.pause.duration is None:
            message = f"{where}: paused until promoted by hand (kubectl mlrollout promote)"
            return Step(rollout, (route,), "held", "PausedAtStep", message, None)
        started = rollout.step_started_at or now
        remaining = (started + parse_duration(current.pause.duration) - now).total_seconds()
        if remaining <= 0:
            return advance(rollout, now, (route,), f"{where}: pause of {current.pause.duration} over")
        until = (started + parse_duration(current.pause.duration)).isoformat()
        message = f"{where}: pausing {current.pause.duration} (until {until})"
        return Step(rollout, (route,), "waiting", "Pausing", message, remaining)
    assert current.analysis is not None
    return analysis_step(spec, current.analysis, f"step-{index}", rollout, observed, now, (route,), where)


def analysis_step(
    spec: ModelDeploymentSpec,
    step_analysis: StepAnalysis,
    stage: str,
    rollout: RolloutStatus,
    observed: Observed,
    now: datetime,
    route: tuple[Action, ...],
    where: str,
) -> Step:
    """One analysis stage (a canary step, blue-green pre- or post-promotion): start, record, judge."""
    assert spec.analysis is not None
    run = rollout.analysis
    if run is None or run.stage != stage:
        count = step_analysis.count or spec.analysis.count
        run = analysis.start(stage, count, now, analysis.interval_of(spec.analysis))
    elif observed.samples and analysis.is_due(run, now):
        metrics = {m.name: m for m in spec.analysis.metrics}
        measured = [
            analysis.judge(metrics[s.metric], spec.analysis, s, now)
            for s in observed.samples
            if s.metric in metrics
        ]
        run = analysis.record(run, measured, spec.analysis, now)
    rollout = rollout.model_copy(update={"analysis": run})
    due = max((run.next_measurement_at - now).total_seconds(), 0.5) if run.next_measurement_at else 1.0
    summary = f"{where}: analysis {run.taken}/{run.count}"
    match run.verdict:
        case "Passed":
            return advance(rollout, now, route, f"{summary} passed")
        case "Failed":
            return Step(rollout, route, "rollback", "AnalysisFailed", run.message or "analysis failed", None)
        case "Inconclusive" | "Error":
            reason = "MetricsUnavailable" if run.verdict == "Error" else "NotEnoughTraffic"
            message = f"{summary} paused, neither promoting nor rolling back: {run.message or run.verdict}"
            return Step(rollout, route, "analysis-paused", reason, message, due)
        case _:
            return Step(rollout, route, "waiting", "Analyzing", summary, due)


def advance(rollout: RolloutStatus, now: datetime, actions: tuple[Action, ...], message: str) -> Step:
    """On to the next step at once (the next tick is due right away)."""
    moved = rollout.model_copy(update={"step_index": (rollout.step_index or 0) + 1, "step_started_at": now})
    return Step(moved, actions, "moving", "StepComplete", message, 0.1)


def skip_step(rollout: RolloutStatus, now: datetime) -> RolloutStatus:
    """A manual `promote`: the current step counts as done (a pause or an analysis ends)."""
    return rollout.model_copy(
        update={"step_index": (rollout.step_index or 0) + 1, "step_started_at": now, "analysis": None}
    )


def routing(spec: ModelDeploymentSpec, rollout: RolloutStatus, stable: str) -> SetWeights:
    assert rollout.candidate is not None
    return SetWeights(
        model_name=rollout.candidate.model_name,
        stable_version=stable,
        canary_version=rollout.candidate.version,
        canary_weight=rollout.desired_weight or 0,
        canary_replicas=rollout.canary_replicas,
    )


def splits_requests(spec: ModelDeploymentSpec) -> bool:
    """The router splits requests itself (Gateway API, Istio): its weight is exact, not replica counts."""
    return spec.traffic is not None and spec.traffic.replica_ratio is None


def expected_replicas(spec: ModelDeploymentSpec, rollout: RolloutStatus) -> tuple[int, int]:
    split = routed_split if splits_requests(spec) else replica_split
    stable, canary = split(spec.serving.replicas, rollout.desired_weight or 0)
    return stable, canary if rollout.canary_replicas is None else rollout.canary_replicas


def weight_confirmed(spec: ModelDeploymentSpec, rollout: RolloutStatus, observed: Observed) -> bool:
    """The router's read-back matches what the step asked for, on pods of the right versions."""
    assert rollout.candidate is not None
    want_stable, want_canary = expected_replicas(spec, rollout)
    stable = observed.tracks.get(TRACK_STABLE)
    canary = observed.tracks.get(TRACK_CANARY)
    counts_ok = (
        (want_stable == 0 or (stable is not None and stable.available))
        and (want_canary == 0 or (canary is not None and canary.version == rollout.candidate.version))
        and (
            canary is None
            or (canary.desired_replicas == want_canary and canary.rolled_out and canary.available)
        )
        and (stable is None or stable.desired_replicas == want_stable or TRACK_STABLE in observed.hpa_tracks)
    )
    if not counts_ok or observed.weights is None:
        return False
    if splits_requests(spec):
        return observed.weights.canary == (rollout.desired_weight or 0)
    return observed.weights.canary == served_weight(want_stable, want_canary)


def _canary_scale(spec: ModelDeploymentSpec, current: CanaryStep, rollout: RolloutStatus) -> int | None:
    scale = current.set_canary_scale
    assert scale is not None
    if scale.match_traffic_weight:
        return None
    if scale.replicas is not None:
        return scale.replicas
    assert scale.weight is not None
    return math.ceil(spec.serving.replicas * scale.weight / 100)
