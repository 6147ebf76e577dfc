"""decide(spec, status, observed, now) -> Decision: the whole judgement of one reconcile tick, pure.

This issue's scope: pin the first resolved version as stable, keep its serving Deployment and Service
in line with the spec, report readiness. A different version resolved later is left for the strategy
engine (it is reported, never rolled in directly: nothing touches live traffic before the gates).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from mlrollout.api import conditions as c
from mlrollout.api.names import TRACK_STABLE
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import HistoryEntry, ModelDeploymentStatus, Phase, RetryState, Weights
from mlrollout.rollout import backoff
from mlrollout.rollout.actions import (
    Action,
    ApplyService,
    ApplyServing,
    DeleteService,
    DeleteServing,
    EmitEvent,
)
from mlrollout.rollout.observed import Observed, RegistryProblem, ResolvedModel, TrackState
from mlrollout.rollout.phases import TROUBLED, can_transition

POLL_WHILE_DEPLOYING = 5.0
POLL_WHILE_DEGRADED = 15.0


@dataclass(frozen=True)
class Decision:
    phase: Phase
    actions: tuple[Action, ...]
    status: ModelDeploymentStatus
    requeue_after: float | None


@dataclass(frozen=True)
class _Verdict:
    """The conditions of one tick before they are folded into status."""

    phase: Phase
    ready: tuple[bool, str, str]
    progressing: tuple[bool, str, str]
    degraded: tuple[bool, str, str]
    paused: tuple[bool, str, str] = (False, "NotPaused", "")


def decide(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observed: Observed, now: datetime
) -> Decision:
    if observed.deleting:
        return terminate(status, observed, now)
    if observed.paused:
        return _finish(status, observed, now, _paused(status), (), None, updates={})
    if isinstance(observed.model, RegistryProblem):
        return _registry_problem(spec, status, observed, observed.model, now)
    if observed.model is None:
        raise ValueError("the registry must be consulted unless the object is being deleted")
    return _serve(spec, status, observed, observed.model, now)


def terminate(status: ModelDeploymentStatus, observed: Observed, now: datetime) -> Decision:
    """Delete every child; the finalizer is released once a tick observes none left (`requeue_after` None)."""
    actions: list[Action] = [DeleteServing(track) for track in sorted(observed.tracks)]
    if observed.service_present:
        actions.append(DeleteService())
    left = len(actions)
    verdict = _Verdict(
        phase=Phase.TERMINATING,
        ready=(False, "Terminating", ""),
        progressing=(False, "Terminating", f"{left} child objects left to delete"),
        degraded=(False, "AsExpected", ""),
    )
    return _finish(status, observed, now, verdict, tuple(actions), 1.0 if left else None, {})


def _paused(status: ModelDeploymentStatus) -> _Verdict:
    ready = c.is_true(status.conditions, c.READY)
    return _Verdict(
        phase=Phase.PAUSED,
        ready=(ready, "Available" if ready else "NotAvailable", ""),
        progressing=(False, "Paused", "paused by annotation; spec changes wait"),
        degraded=(c.is_true(status.conditions, c.DEGRADED), _reason(status, c.DEGRADED, "AsExpected"), ""),
        paused=(True, "PausedByUser", "the mlrollout.io/paused annotation is set"),
    )


def _registry_problem(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    problem: RegistryProblem,
    now: datetime,
) -> Decision:
    attempts = (status.retry.attempts if status.retry else 0) + 1
    wait = backoff.delay(attempts)
    stable = observed.tracks.get(TRACK_STABLE)
    serving = stable is not None and stable.available and status.stable_version is not None
    verdict = _Verdict(
        phase=Phase.DEGRADED if status.stable_version else Phase.PENDING,
        ready=(serving, "Available" if serving else problem.reason, "" if serving else problem.message),
        progressing=(False, problem.reason, problem.message),
        degraded=(True, problem.reason, f"{problem.message} (attempt {attempts}, next in {wait.seconds}s)"),
    )
    # The stable version is pinned in status: it keeps serving (and follows spec edits) without the registry.
    actions: list[Action] = list(_serving_actions(status)) if status.stable_version else []
    previous = c.find(status.conditions, c.DEGRADED)
    if previous is None or previous.status != "True" or previous.reason != problem.reason:
        actions.append(EmitEvent("Warning", problem.reason, f"{spec.model.name}: {problem.message}"))
    retry = RetryState(attempts=attempts, reason=problem.reason, next_attempt_time=now + wait)
    return _finish(status, observed, now, verdict, tuple(actions), wait.total_seconds(), {"retry": retry})


def _serve(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    model: ResolvedModel,
    now: datetime,
) -> Decision:
    # Until a strategy runs, all live traffic goes to stable (the printer column shows the canary's share).
    updates: dict[str, object] = {"retry": None, "weights": status.weights or Weights()}
    events: list[Action] = []
    if status.stable_version is None:
        updates |= {
            "model_name": model.name,
            "stable_version": model.version,
            "history": [HistoryEntry(version=model.version, promoted_at=now)],
        }
        status = status.model_copy(update=updates)
        events.append(EmitEvent("Normal", "VersionPinned", _pinned_message(model)))
    actions = [*_serving_actions(status), *_stray_tracks(observed)]
    stable = observed.tracks.get(TRACK_STABLE)
    verdict = _serving_verdict(stable, status.phase)
    pending = _pending_version(status, model)
    if pending and verdict.phase == Phase.HEALTHY:
        message = f"{pending} resolved; it waits for the rollout strategy"
        verdict = replace(verdict, progressing=(False, "AwaitingStrategy", message))
    if pending and pending != status.pending_version:
        events.append(
            EmitEvent("Normal", "NewVersion", f"{pending} resolved; stable stays {status.stable_version}")
        )
    updates["pending_version"] = pending
    requeue = {Phase.DEPLOYING: POLL_WHILE_DEPLOYING, Phase.DEGRADED: POLL_WHILE_DEGRADED}.get(verdict.phase)
    return _finish(status, observed, now, verdict, (*actions, *events), requeue, updates)


def _serving_actions(status: ModelDeploymentStatus) -> tuple[Action, ...]:
    assert status.stable_version is not None and status.model_name is not None
    return (ApplyServing(TRACK_STABLE, status.model_name, status.stable_version), ApplyService())


def _stray_tracks(observed: Observed) -> tuple[Action, ...]:
    """Tracks nobody asks for (a candidate of an interrupted rollout): until strategies land, only stable."""
    return tuple(DeleteServing(track) for track in sorted(observed.tracks) if track != TRACK_STABLE)


def _serving_verdict(stable: TrackState | None, previous: Phase) -> _Verdict:
    if stable is None or not stable.rolled_out:
        available = stable is not None and stable.available and stable.in_sync
        return _Verdict(
            phase=Phase.DEPLOYING,
            ready=(available, "Available" if available else "Deploying", ""),
            progressing=(True, "RollingOut", "the stable Deployment is being created or updated"),
            degraded=(False, "AsExpected", ""),
        )
    if not stable.available:
        message = f"{stable.available_replicas}/{stable.desired_replicas} replicas available"
        return _Verdict(
            phase=Phase.DEGRADED if previous in {Phase.HEALTHY, Phase.DEGRADED} else Phase.DEPLOYING,
            ready=(False, "ReplicasUnavailable", message),
            progressing=(False, "RolloutComplete", ""),
            degraded=(previous in {Phase.HEALTHY, Phase.DEGRADED}, "ReplicasUnavailable", message),
        )
    return _Verdict(
        phase=Phase.HEALTHY,
        ready=(True, "Available", f"version {stable.version} serves {stable.available_replicas} replicas"),
        progressing=(False, "RolloutComplete", ""),
        degraded=(False, "AsExpected", ""),
    )


def _pending_version(status: ModelDeploymentStatus, model: ResolvedModel) -> str | None:
    """A resolved model other than the pinned stable one, as "name version N" (None when they match)."""
    if (model.name, model.version) == (status.model_name, status.stable_version):
        return None
    return f"{model.name} version {model.version}"


def _pinned_message(model: ResolvedModel) -> str:
    via = f" (alias {model.alias})" if model.alias else ""
    return f"{model.name}{via} pinned to version {model.version} as stable"


def _finish(
    status: ModelDeploymentStatus,
    observed: Observed,
    now: datetime,
    verdict: _Verdict,
    actions: tuple[Action, ...],
    requeue_after: float | None,
    updates: dict[str, object],
) -> Decision:
    phase = verdict.phase if can_transition(status.phase, verdict.phase) else status.phase
    conditions = list(status.conditions)
    for type_, (is_true, reason, message) in (
        (c.READY, verdict.ready),
        (c.PROGRESSING, verdict.progressing),
        (c.DEGRADED, verdict.degraded),
        (c.PAUSED, verdict.paused),
    ):
        flag: c.ConditionStatus = "True" if is_true else "False"
        conditions = c.set_condition(conditions, type_, flag, reason, message, now, observed.generation)
    new_status = status.model_copy(
        update={
            **updates,
            "phase": phase,
            "observed_generation": observed.generation,
            "conditions": conditions,
            "message": _summary(verdict),
        }
    )
    if phase != status.phase:
        message = f"{status.phase} -> {phase}: {_summary(verdict)}"
        event = (
            EmitEvent("Warning", str(phase), message)
            if phase in TROUBLED
            else EmitEvent("Normal", str(phase), message)
        )
        actions = (*actions, event)
    return Decision(phase=phase, actions=actions, status=new_status, requeue_after=requeue_after)


def _summary(verdict: _Verdict) -> str:
    for is_true, reason, message in (verdict.degraded, verdict.paused, verdict.progressing, verdict.ready):
        if is_true or message:
            return f"{reason}: {message}" if message else reason
    return verdict.ready[1]


def _reason(status: ModelDeploymentStatus, type_: str, default: str) -> str:
    found = c.find(status.conditions, type_)
    return found.reason if found else default


def reject_spec(status: ModelDeploymentStatus, generation: int, message: str, now: datetime) -> Decision:
    """A spec the schema let through but the models refuse (an older CRD installed): say so, touch nothing."""
    verdict = _Verdict(
        phase=Phase.FAILED if status.stable_version is None else status.phase,
        ready=(c.is_true(status.conditions, c.READY), _reason(status, c.READY, "InvalidSpec"), ""),
        progressing=(False, "InvalidSpec", message),
        degraded=(True, "InvalidSpec", message),
    )
    previous = c.find(status.conditions, c.DEGRADED)
    events: tuple[Action, ...] = ()
    if previous is None or previous.reason != "InvalidSpec":
        events = (EmitEvent("Warning", "InvalidSpec", message),)
    observed = Observed(generation=generation, model=None)
    return _finish(status, observed, now, verdict, events, None, {})
