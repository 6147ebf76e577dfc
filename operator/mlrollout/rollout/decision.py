"""decide(spec, status, observed, now) -> Decision: the whole judgement of one reconcile tick, pure.

A common prelude first (deleting, paused, registry problem, a manual request), then serving: the
first resolved version is pinned as stable; a later one becomes the candidate of the strategy's
step function (rollout/canary.py), which moves traffic only as fast as its steps and analysis allow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from mlrollout.api import conditions as c
from mlrollout.api.names import TRACK_CANARY, TRACK_STABLE
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import (
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    RetryState,
    RolloutStatus,
    Weights,
)
from mlrollout.rollout import backoff, canary
from mlrollout.rollout.actions import (
    Action,
    ApplyService,
    ApplyServing,
    DeleteService,
    DeleteServing,
    EmitEvent,
    MoveAlias,
    TagVersion,
)
from mlrollout.rollout.observed import Observed, RegistryProblem, Request, ResolvedModel, TrackState
from mlrollout.rollout.phases import TROUBLED, IllegalTransition, can_transition

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
    updates: dict[str, object] = {"retry": None, "pending_version": None}
    events: list[Action] = []
    if status.stable_version is None:
        updates |= {
            "model_name": model.name,
            "stable_version": model.version,
            "history": [HistoryEntry(version=model.version, promoted_at=now, cause="initial")],
            "weights": Weights(),
        }
        status = status.model_copy(update=updates)
        events.append(EmitEvent("Normal", "VersionPinned", _pinned_message(model)))
    status, started = _candidate(status, model, now)
    events += started
    if not started and observed.request is not None and observed.request.id != _handled(status):
        return _request(spec, status, observed, observed.request, now)  # a new candidate waits a tick
    if status.rollout is not None and status.rollout.candidate is not None:
        return _roll(spec, status, observed, now, updates, events)
    actions = [*_serving_actions(status), *_stray_tracks(observed)]
    stable = observed.tracks.get(TRACK_STABLE)
    verdict = _serving_verdict(stable, status.phase)
    rollout = status.rollout
    if rollout is not None and rollout.aborted_version == model.version and verdict.phase == Phase.HEALTHY:
        message = f"version {model.version} was rolled back; `kubectl mlrollout retry` rolls it out again"
        verdict = replace(verdict, phase=Phase.ROLLED_BACK, progressing=(False, "RolledBack", message))
    updates["canary_version"] = None
    updates["current_step"] = None
    requeue = {Phase.DEPLOYING: POLL_WHILE_DEPLOYING, Phase.DEGRADED: POLL_WHILE_DEGRADED}.get(verdict.phase)
    return _finish(status, observed, now, verdict, (*actions, *events), requeue, updates)


def _handled(status: ModelDeploymentStatus) -> str | None:
    return status.rollout.handled_request if status.rollout else None


def _candidate(
    status: ModelDeploymentStatus, model: ResolvedModel, now: datetime
) -> tuple[ModelDeploymentStatus, list[Action]]:
    """A resolved version other than stable becomes the candidate; a newer one supersedes it."""
    rollout = status.rollout or RolloutStatus()
    current = rollout.candidate.version if rollout.candidate else None
    if model.version in (status.stable_version, rollout.aborted_version, current):
        return status, []
    if current is not None:
        event = EmitEvent(
            "Normal",
            "Superseded",
            f"version {model.version} supersedes candidate {current}: analysis restarts",
        )
    else:
        event = EmitEvent(
            "Normal",
            "RolloutStarted",
            f"version {model.version} resolved; canary from stable {status.stable_version}",
        )
    fresh = canary.start(status, model.name, model.version, now)
    return status.model_copy(update={"rollout": fresh}), [event]


def _roll(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    now: datetime,
    updates: dict[str, object],
    events: list[Action],
) -> Decision:
    if spec.strategy.canary is None:
        # Blue-green, shadow and A/B are later work: say so, keep stable serving, move no traffic.
        message = "only the canary strategy is implemented in this version; stable keeps serving"
        verdict = _Verdict(
            phase=Phase.DEGRADED,
            ready=_ready(observed),
            progressing=(False, "StrategyNotSupported", message),
            degraded=(True, "StrategyNotSupported", message),
        )
        return _finish(status, observed, now, verdict, (*_serving_actions(status), *events), None, updates)
    assert status.rollout is not None and status.rollout.candidate is not None
    result = canary.step(spec, status, observed, now)
    status = status.model_copy(update=result.updates)
    if result.outcome == "rolledBack":
        actions, rolled = canary.rollback(status, result.message, now, spec.serving.replicas)
        status = status.model_copy(update=rolled)
        verdict = _Verdict(
            phase=Phase.ROLLED_BACK,
            ready=_ready(observed),
            progressing=(False, "RolledBack", result.message),
            degraded=(False, "AsExpected", ""),
        )
        updates |= {"canary_version": None, "current_step": None}
        return _finish(status, observed, now, verdict, (*actions, *events), 1.0, updates)
    if result.outcome == "promoted":
        verdict = _Verdict(
            phase=Phase.HEALTHY,
            ready=_ready(observed),
            progressing=(False, "RolloutComplete", result.message),
            degraded=(False, "AsExpected", ""),
        )
        updates |= {"canary_version": None, "current_step": None}
        return _finish(status, observed, now, verdict, (*result.actions, *events), 1.0, updates)
    rollout = status.rollout
    assert rollout is not None and rollout.candidate is not None
    updates |= {"canary_version": rollout.candidate.version, "current_step": rollout.step_index}
    verdict = _Verdict(
        phase=Phase.PROGRESSING,
        ready=_ready(observed),
        progressing=(True, "Progressing", result.message),
        degraded=(False, "AsExpected", ""),
        paused=(True, "RolloutWaiting", result.waiting) if result.waiting else (False, "NotPaused", ""),
    )
    return _finish(status, observed, now, verdict, (*result.actions, *events), result.requeue, updates)


def _ready(observed: Observed) -> tuple[bool, str, str]:
    stable = observed.tracks.get(TRACK_STABLE)
    up = stable is not None and stable.available_replicas > 0
    return (up, "Available" if up else "ReplicasUnavailable", "")


def _request(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    request: Request,
    now: datetime,
) -> Decision:
    """A manual action, acted on once per id; one that does not apply is refused with a condition."""
    rollout = status.rollout or RolloutStatus()
    rollout = rollout.model_copy(update={"handled_request": request.id})
    status = status.model_copy(update={"rollout": rollout})
    running = rollout.candidate is not None
    steps = spec.strategy.canary.steps if spec.strategy.canary else []
    accepted = EmitEvent("Normal", "RequestAccepted", f"{request.action} (request {request.id})")
    if request.action in ("promote", "promote-full") and running:
        index = len(steps) if request.action == "promote-full" else (rollout.step_index or 0) + 1
        rollout = rollout.model_copy(update={"step_index": min(index, len(steps)), "step_started_at": now})
        return _requeued(status.model_copy(update={"rollout": rollout}), observed, now, accepted)
    if request.action == "abort" and running:
        actions, rolled = canary.rollback(
            status, f"aborted by request {request.id}", now, spec.serving.replicas
        )
        status = status.model_copy(update=rolled)
        verdict = _Verdict(
            phase=Phase.ROLLED_BACK,
            ready=_ready(observed),
            progressing=(False, "Aborted", f"aborted by request {request.id}"),
            degraded=(False, "AsExpected", ""),
        )
        updates: dict[str, object] = {"canary_version": None, "current_step": None}
        return _finish(status, observed, now, verdict, (*actions, accepted), 1.0, updates)
    if request.action == "retry" and rollout.aborted_version is not None:
        rollout = rollout.model_copy(update={"aborted_version": None})
        return _requeued(status.model_copy(update={"rollout": rollout}), observed, now, accepted)
    if request.action == "undo":
        return _undo(spec, status, observed, request, now, accepted)
    return _refuse(status, observed, now, request, f"{request.action} does not apply now")


def _undo(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    request: Request,
    now: datetime,
    accepted: EmitEvent,
) -> Decision:
    """Back to an earlier promoted version at once: a release decision, like a rollback."""
    earlier = [h.version for h in status.history if h.version != status.stable_version]
    target = request.version or (earlier[-1] if earlier else None)
    if target is None or target not in earlier or status.model_name is None:
        return _refuse(
            status, observed, now, request, f"undo: no earlier promoted version {target or ''}".strip()
        )
    old = status.stable_version
    assert old is not None
    reason = f"undo by request {request.id}: version {old} replaced by {target}"
    actions: list[Action] = [
        ApplyServing(TRACK_STABLE, status.model_name, target, spec.serving.replicas),
        DeleteServing(TRACK_CANARY),
        MoveAlias(status.model_name, spec.registry.champion_alias, target),
        TagVersion(
            status.model_name, old, ((canary.TAG_ROLLOUT, "rolled_back"), (canary.TAG_REASON, reason))
        ),
        EmitEvent("Warning", "Undone", reason),
        accepted,
    ]
    history = [*status.history, HistoryEntry(version=target, promoted_at=now, cause="undo")]
    status = status.model_copy(
        update={
            "stable_version": target,
            "history": history[-spec.revision_history_limit :],
            "weights": Weights(),
            "rollout": RolloutStatus(handled_request=request.id, aborted_version=old, last_outcome=reason),
        }
    )
    verdict = _Verdict(
        phase=Phase.DEPLOYING,
        ready=_ready(observed),
        progressing=(True, "Undone", reason),
        degraded=(False, "AsExpected", ""),
    )
    updates: dict[str, object] = {"canary_version": None, "current_step": None}
    return _finish(status, observed, now, verdict, tuple(actions), POLL_WHILE_DEPLOYING, updates)


def _requeued(status: ModelDeploymentStatus, observed: Observed, now: datetime, event: EmitEvent) -> Decision:
    """Record the request and come back at once: the next tick acts on the new state."""
    phase = status.phase
    verdict = _Verdict(
        phase=phase,
        ready=_ready(observed),
        progressing=(True, "RequestAccepted", event.message),
        degraded=(c.is_true(status.conditions, c.DEGRADED), _reason(status, c.DEGRADED, "AsExpected"), ""),
    )
    return _finish(status, observed, now, verdict, (event,), 0.2, {})


def _refuse(
    status: ModelDeploymentStatus, observed: Observed, now: datetime, request: Request, why: str
) -> Decision:
    message = f"request {request.id} refused: {why}"
    verdict = _Verdict(
        phase=status.phase,
        ready=_ready(observed),
        progressing=(False, "RequestRefused", message),
        degraded=(c.is_true(status.conditions, c.DEGRADED), _reason(status, c.DEGRADED, "AsExpected"), ""),
    )
    return _finish(
        status, observed, now, verdict, (EmitEvent("Warning", "RequestRefused", message),), 0.2, {}
    )


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
    if not can_transition(status.phase, verdict.phase):
        raise IllegalTransition(f"{status.phase} -> {verdict.phase} is not an allowed transition")
    phase = verdict.phase
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
