"""The canary strategy, pure: steps, replica-ratio weights, analysis, promotion and rollback.

The replica-ratio router needs no mesh: a weight becomes replica counts of the stable and canary
Deployments behind one Service, so it is approximate (5 % of 4 replicas is one pod of five). Status
keeps the desired weight and the weight read back from the Deployments' available replicas; a
step that sets a weight completes only once the Deployments really serve it.

Rollback is a release decision (errors, latency, an abort): it returns all traffic to stable and
never starts retraining.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from mlrollout.api.base import parse_duration
from mlrollout.api.loop import AnalysisMetric
from mlrollout.api.names import TRACK_CANARY, TRACK_STABLE
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import (
    Candidate,
    HistoryEntry,
    ModelDeploymentStatus,
    RolloutStatus,
    Weights,
)
from mlrollout.api.strategy import CanaryStep
from mlrollout.rollout import analysis
from mlrollout.rollout.actions import Action, ApplyServing, DeleteServing, EmitEvent, MoveAlias, TagVersion
from mlrollout.rollout.observed import Observed, TrackState

STEP_POLL = 1.0  # seconds between ticks while Deployments move

TAG_ROLLOUT = "mlrollout.rollout"
TAG_REASON = "mlrollout.rollout.reason"
TAG_AT = "mlrollout.rollout.at"


@dataclass
class Step:
    """What one tick of the canary decided: actions, status updates, conditions, when to come back."""

    actions: list[Action] = field(default_factory=list)
    updates: dict[str, object] = field(default_factory=dict)
    requeue: float | None = None
    waiting: str | None = None  # why the rollout is held (pause step, analysis without data)
    outcome: str | None = None  # "promoted" | "rolledBack" when the rollout ended this tick
    message: str = ""


def replicas_for(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for a weight: the canary gets at least one pod once weight > 0, and
    stable keeps at least one until the weight is 100."""
    if weight <= 0:
        return total, 0
    if weight >= 100:
        return 0, total
    canary = max(1, math.ceil(total * weight / 100))
    return max(1, total - canary), canary


def actual_weight(stable: TrackState | None, canary: TrackState | None) -> int:
    """The canary's share of available replicas behind the Service, as read back."""
    s = stable.available_replicas if stable else 0
    c = canary.available_replicas if canary else 0
    return round(100 * c / (s + c)) if s + c else 0


def desired_weight(steps: list[CanaryStep], index: int) -> int:
    """The last setWeight at or before `index` (0 before any)."""
    weights = [s.set_weight for s in steps[: index + 1] if s.set_weight is not None]
    return weights[-1] if weights else 0


def start(status: ModelDeploymentStatus, model: str, version: str, now: datetime) -> RolloutStatus:
    previous = status.rollout or RolloutStatus()
    return RolloutStatus(
        candidate=Candidate(model_name=model, version=version, resolved_at=now),
        strategy="canary",
        step_index=0,
        step_started_at=now,
        desired_weight=0,
        handled_request=previous.handled_request,
        last_outcome=previous.last_outcome,
    )


def analysis_due(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime
) -> list[AnalysisMetric]:
    """The metrics to measure this tick (none unless an analysis step's measurement is due)."""
    rollout = status.rollout
    if spec.analysis is None or spec.strategy.canary is None or rollout is None or rollout.candidate is None:
        return []
    steps = spec.strategy.canary.steps
    index = rollout.step_index or 0
    if index >= len(steps) or steps[index].analysis is None:
        return []
    run = rollout.analysis
    if run is None or run.stage != _stage(index) or not analysis.is_due(run, now):
        return []
    return _step_metrics(spec, steps[index])


def query_context(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, namespace: str, name: str
) -> analysis.QueryContext:
    assert spec.analysis is not None and status.rollout is not None and status.rollout.candidate is not None
    candidate = status.rollout.candidate
    return analysis.QueryContext(
        namespace=namespace,
        name=name,
        model=candidate.model_name,
        version=candidate.version,
        track=TRACK_CANARY,
        stable_version=status.stable_version,
        interval=spec.analysis.interval,
    )


def step(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observed: Observed, now: datetime) -> Step:
    """Advance the rollout in `status.rollout` by at most one step."""
    assert spec.strategy.canary is not None and status.rollout is not None
    rollout = status.rollout
    assert rollout.candidate is not None and status.stable_version is not None and status.model_name
    steps = spec.strategy.canary.steps
    index = rollout.step_index or 0
    stable, canary = observed.tracks.get(TRACK_STABLE), observed.tracks.get(TRACK_CANARY)
    out = Step()
    if index >= len(steps):
        return _promote(spec, status, observed, now, out)
    weight = desired_weight(steps, index)
    total = spec.serving.replicas
    stable_n, canary_n = replicas_for(total, weight)
    if rollout.canary_replicas is not None:
        canary_n = rollout.canary_replicas
    cand = rollout.candidate
    out.actions += [
        ApplyServing(TRACK_STABLE, status.model_name, status.stable_version, stable_n),
        ApplyServing(TRACK_CANARY, cand.model_name, cand.version, max(canary_n, 0)),
    ]
    actual = actual_weight(stable, canary)
    out.updates["weights"] = Weights(stable=100 - actual, canary=actual)
    moved = _serves(stable, status.stable_version, stable_n) and _serves(canary, cand.version, canary_n)
    current = steps[index]
    label = f"step {index + 1}/{len(steps)}"
    rollout = rollout.model_copy(update={"desired_weight": weight})
    if not moved:
        out.message = f"{label}: moving to {weight}% (now {actual}%)"
        return _stay(out, rollout, STEP_POLL)
    if current.set_weight is not None:
        out.message = f"{label}: {weight}% of traffic on version {cand.version}"
        return _advance(out, rollout, index, now)
    if current.set_canary_scale is not None:
        scale = current.set_canary_scale
        replicas = (
            None
            if scale.match_traffic_weight
            else scale.replicas
            if scale.replicas is not None
            else replicas_for(total, scale.weight or 0)[1]
        )
        out.message = (
            f"{label}: canary scaled to {replicas if replicas is not None else 'the traffic weight'}"
        )
        return _advance(out, rollout.model_copy(update={"canary_replicas": replicas}), index, now)
    if current.pause is not None:
        return _pause(out, rollout, current, index, label, now)
    assert current.analysis is not None and spec.analysis is not None
    return _analyse(spec, observed, out, rollout, current, index, label, now)


def _pause(
    out: Step, rollout: RolloutStatus, current: CanaryStep, index: int, label: str, now: datetime
) -> Step:
    assert current.pause is not None
    if current.pause.duration is None:
        out.waiting = f"{label}: paused until promoted (kubectl mlrollout promote)"
        out.message = out.waiting
        return _stay(out, rollout, None)
    started = rollout.step_started_at or now
    left = (started + parse_duration(current.pause.duration) - now).total_seconds()
    if left > 0:
        out.message = f"{label}: pause, {math.ceil(left)}s left"
        return _stay(out, rollout, left)
    out.message = f"{label}: pause over"
    return _advance(out, rollout, index, now)


def _analyse(
    spec: ModelDeploymentSpec,
    observed: Observed,
    out: Step,
    rollout: RolloutStatus,
    current: CanaryStep,
    index: int,
    label: str,
    now: datetime,
) -> Step:
    assert spec.analysis is not None and current.analysis is not None
    interval = analysis.interval_of(spec.analysis)
    run = rollout.analysis
    if run is None or run.stage != _stage(index):
        count = current.analysis.count or spec.analysis.count
        run = analysis.start(_stage(index), count, now, interval)
    metrics = _step_metrics(spec, current)
    if observed.samples and analysis.is_due(run, now):
        measured = [
            analysis.judge(m, spec.analysis, observed.samples[m.name], now)
            for m in metrics
            if m.name in observed.samples
        ]
        run = analysis.record(run, measured, spec.analysis, now)
    rollout = rollout.model_copy(update={"analysis": run})
    if run.verdict == "Passed":
        out.message = f"{label}: analysis passed ({run.taken} measurements)"
        return _advance(out, rollout, index, now)
    if run.verdict == "Failed":
        return _rollback(out, rollout, f"analysis failed: {run.message}", now)
    wait = max((run.next_measurement_at - now).total_seconds(), 0.5) if run.next_measurement_at else 1.0
    if run.verdict in ("Inconclusive", "Error"):
        out.waiting = f"{label}: analysis {run.verdict.lower()}, holding traffic as it is: {run.message}"
        out.message = out.waiting
    else:
        out.message = f"{label}: analysis {run.taken}/{run.count}" + (
            f" ({run.message})" if run.message else ""
        )
    return _stay(out, rollout, wait)


def _promote(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observed: Observed, now: datetime, out: Step
) -> Step:
    """Stable becomes the candidate's version; once it serves, the canary goes and the alias moves."""
    rollout = status.rollout
    assert rollout is not None and rollout.candidate is not None
    cand = rollout.candidate
    total = spec.serving.replicas
    stable = observed.tracks.get(TRACK_STABLE)
    out.actions.append(ApplyServing(TRACK_STABLE, cand.model_name, cand.version, total))
    if not _serves(stable, cand.version, total):
        out.message = f"promoting version {cand.version}: stable rolling to it"
        canary = observed.tracks.get(TRACK_CANARY)
        actual = actual_weight(stable, canary)
        out.updates["weights"] = Weights(stable=100 - actual, canary=actual)
        return _stay(out, rollout, STEP_POLL)
    steps = len(spec.strategy.canary.steps) if spec.strategy.canary else 0
    reason = f"version {cand.version} promoted after {steps} steps"
    out.actions += [
        DeleteServing(TRACK_CANARY),
        MoveAlias(cand.model_name, spec.registry.champion_alias, cand.version),
        TagVersion(
            cand.model_name,
            cand.version,
            ((TAG_ROLLOUT, "promoted"), (TAG_REASON, reason), (TAG_AT, _iso(now))),
        ),
        EmitEvent("Normal", "Promoted", f"{reason}; alias {spec.registry.champion_alias} moved to it"),
    ]
    history = [*status.history, HistoryEntry(version=cand.version, promoted_at=now, cause="canary")]
    out.updates |= {
        "stable_version": cand.version,
        "model_name": cand.model_name,
        "history": history[-spec.revision_history_limit :],
        "weights": Weights(),
        "rollout": RolloutStatus(handled_request=rollout.handled_request, last_outcome=reason),
    }
    out.outcome, out.message = "promoted", reason
    return out


def rollback(
    status: ModelDeploymentStatus, reason: str, now: datetime, total: int
) -> tuple[list[Action], dict[str, object]]:
    """All traffic back to stable, the candidate tagged and remembered so it is not rolled out again."""
    rollout = status.rollout
    assert rollout is not None and rollout.candidate is not None
    assert status.model_name is not None and status.stable_version is not None
    cand = rollout.candidate
    actions: list[Action] = [
        ApplyServing(TRACK_STABLE, status.model_name, status.stable_version, total),
        DeleteServing(TRACK_CANARY),
        TagVersion(
            cand.model_name,
            cand.version,
            ((TAG_ROLLOUT, "rolled_back"), (TAG_REASON, reason[:4000]), (TAG_AT, _iso(now))),
        ),
    ]  # the phase change to RolledBack is announced with this reason (a Warning Event)
    updates: dict[str, object] = {
        "rollout": RolloutStatus(
            handled_request=rollout.handled_request,
            aborted_version=cand.version,
            last_outcome=f"version {cand.version} rolled back: {reason}"[:1024],
            analysis=rollout.analysis,
        ),
        "weights": Weights(),
    }
    return actions, updates


def _rollback(out: Step, rollout: RolloutStatus, reason: str, now: datetime) -> Step:
    out.updates["rollout"] = rollout  # rollback() reads the candidate from the status the caller folds
    out.outcome = "rolledBack"
    out.message = reason
    return out


def _advance(out: Step, rollout: RolloutStatus, index: int, now: datetime) -> Step:
    out.updates["rollout"] = rollout.model_copy(update={"step_index": index + 1, "step_started_at": now})
    out.requeue = 0.2  # take the next step at once
    return out


def _stay(out: Step, rollout: RolloutStatus, requeue: float | None) -> Step:
    out.updates["rollout"] = rollout
    out.requeue = requeue
    return out


def _serves(track: TrackState | None, version: str, replicas: int) -> bool:
    if replicas == 0:
        return track is None or track.available_replicas == 0 or track.desired_replicas == 0
    return (
        track is not None
        and track.version == version
        and track.rolled_out
        and track.desired_replicas == replicas
        and track.available
    )


def _step_metrics(spec: ModelDeploymentSpec, current: CanaryStep) -> list[AnalysisMetric]:
    assert spec.analysis is not None and current.analysis is not None
    wanted = set(current.analysis.metrics)
    return [m for m in spec.analysis.metrics if not wanted or m.name in wanted]


def _stage(index: int) -> str:
    return f"step-{index}"


def _iso(now: datetime) -> str:
    return now.isoformat().replace("+00:00", "Z")
