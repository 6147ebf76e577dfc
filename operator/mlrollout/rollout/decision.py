"""decide(spec, status, observed, now) -> Decision: the whole judgement of one reconcile tick, pure.

This issue's scope: pin the first resolved version as stable, keep its serving Deployment and Service
in line with the spec, report readiness. A different version resolved later is left for the strategy
engine (it is reported, never rolled in directly: nothing touches live traffic before the gates).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from mlrollout.api import conditions as c
from mlrollout.api.names import TRACK_SHADOW, TRACK_STABLE
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import (
    Candidate,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    RetryState,
    RolloutStatus,
    Weights,
)
from mlrollout.rollout import (
    analysis,
    backoff,
    experiments,
    gate,
    monitoring,
    plan,
    requests,
    retrain_hook,
)
from mlrollout.rollout.actions import (
    Action,
    ApplyService,
    ApplyServing,
    DeletePreviewService,
    DeleteService,
    DeleteServing,
    DeleteTrackService,
    EmitEvent,
    MoveAlias,
    TagVersion,
)
from mlrollout.rollout.observed import Observed, RegistryProblem, ResolvedModel, TrackState
from mlrollout.rollout.phases import TROUBLED, can_transition
from mlrollout.rollout.polls import ChildPoll

# Waiting for the serving Deployments (watched children): see polls.ChildPoll.
POLL_WHILE_DEPLOYING = ChildPoll(5.0)
POLL_WHILE_DEGRADED = ChildPoll(15.0)
# A promotion or rollback is written to status before any child moves (the next tick, at once,
# moves them): moving stable first would change what a replayed tick observes, and it would decide
# the same release a second time from another status.
ACT_ON_RECORDED_DECISION = 0.1
INVALID_QUERY = "InvalidAnalysisQuery"


class IllegalTransition(RuntimeError):
    """decide() chose a phase change the transition table forbids: a bug in the core, never clamped."""


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
    return monitoring.attach(spec, observed, _decide(spec, status, observed, now), now)


def _decide(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observed: Observed, now: datetime
) -> Decision:
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
    if observed.preview_service_present:
        actions.append(DeletePreviewService())
    if observed.shadow_service_present:
        actions.append(DeleteTrackService(TRACK_SHADOW))
    actions += monitoring.on_delete(observed)
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
    actions: list[Action] = list(_steady_actions(status, observed)) if status.stable_version else []
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
    updates: dict[str, object] = {"retry": None}
    events: list[Action] = []
    if status.stable_version is None:
        pinned: dict[str, object] = {
            "model_name": model.name,
            "stable_version": model.version,
            "history": [HistoryEntry(version=model.version, promoted_at=now, cause="initial")],
        }
        status = status.model_copy(update=pinned)
        events.append(EmitEvent("Normal", "VersionPinned", _pinned_message(model)))
    status = status.model_copy(update={"pending_version": None})
    # Prelude: a manual request, then the candidate (new, superseded, gone), then the gate hook.
    status, request_actions, intent = requests.handle(spec, status, observed, now)
    events += request_actions
    status, candidate_events = _track_candidate(status, model, now)
    events += candidate_events
    stable = observed.tracks.get(TRACK_STABLE)
    verdict = _serving_verdict(stable, status.phase)
    rollout = status.rollout or RolloutStatus()
    if intent in ("promote-full", "abort") and rollout.candidate is not None:
        events += gate.cancel(rollout)  # a manual decision ends a gate still running
    if intent == "promote-full" and rollout.candidate is not None:
        why = f"promoted in full by request {rollout.handled_request}"
        return _promote(spec, status, observed, now, "manual", why, events, updates)
    if intent == "abort" and rollout.candidate is not None:
        why = f"aborted by request {rollout.handled_request}"
        return _rollback(spec, status, observed, now, "Aborted", why, events, updates, tag="aborted")
    polls: dict[Phase, float] = {Phase.DEPLOYING: POLL_WHILE_DEPLOYING, Phase.DEGRADED: POLL_WHILE_DEGRADED}
    requeue = polls.get(verdict.phase)
    held = retrain_hook.awaiting_approval(spec, status)
    if held is not None and verdict.phase == Phase.HEALTHY:
        return _await_approval(status, observed, now, verdict, held, events, updates)
    if rollout.candidate is not None and verdict.phase in (Phase.HEALTHY, Phase.PROGRESSING):
        return _validation_hold(spec, status, observed, now, verdict, events, updates)
    actions = _steady_actions(status, observed)
    if rollout.candidate is not None:
        verdict = replace(
            verdict, progressing=(False, "StableNotReady", "the candidate waits for stable to be ready")
        )
    elif rollout.aborted_version == model.version and (rejected := gate.rejected_message(rollout)):
        verdict = replace(verdict, progressing=(False, "GateFailed", rejected))  # stays Healthy on stable
    elif rollout.aborted_version == model.version and (kept := experiments.kept_stable_message(rollout)):
        verdict = replace(verdict, progressing=(False, "KeptStable", kept))  # nothing was wrong: Healthy
    elif rollout.aborted_version == model.version and verdict.phase == Phase.HEALTHY and rollout.last_outcome:
        message = f"{rollout.last_outcome}; `retry` or a newer version starts again"
        verdict = replace(verdict, phase=Phase.ROLLED_BACK, progressing=(False, "RolledBack", message))
    # Only here (no candidate, not rolled back) may a training start; a running one is followed.
    retrain = retrain_hook.tick(spec, status, observed, verdict.phase == Phase.HEALTHY, now)
    if retrain is not None:
        status, events = retrain.status, [*events, *retrain.actions]
        requeue = _sooner(requeue, retrain.requeue_after)
        if retrain.retraining and verdict.phase == Phase.HEALTHY:
            progressing = (True, "Retraining", retrain.message)
            verdict = replace(verdict, phase=Phase.RETRAINING, progressing=progressing)
        elif retrain.problem is not None and verdict.phase == Phase.HEALTHY:
            progressing = (False, retrain_hook.RETRAINING_FAILED, retrain.problem)
            verdict = replace(verdict, progressing=progressing)
    updates |= {"canary_version": None, "current_step": None, "weights": _weights(observed)}
    return _finish(status, observed, now, verdict, (*actions, *events), requeue, updates)


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _await_approval(
    status: ModelDeploymentStatus,
    observed: Observed,
    now: datetime,
    verdict: _Verdict,
    message: str,
    events: list[Action],
    updates: dict[str, object],
) -> Decision:
    """A retrained candidate with autoDeploy false: stable serves alone until `approve`."""
    previous = c.find(status.conditions, c.PAUSED)
    if previous is None or previous.reason != retrain_hook.AWAITING_APPROVAL or previous.status != "True":
        events = [*events, EmitEvent("Normal", retrain_hook.AWAITING_APPROVAL, message)]
    verdict = replace(
        verdict,
        progressing=(False, retrain_hook.AWAITING_APPROVAL, message),
        paused=(True, retrain_hook.AWAITING_APPROVAL, message),
    )
    updates |= {"canary_version": None, "current_step": None, "weights": _weights(observed)}
    actions = _steady_actions(status, observed)
    return _finish(status, observed, now, verdict, (*actions, *events), None, updates)


def _progress(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    now: datetime,
    verdict: _Verdict,
    events: list[Action],
    updates: dict[str, object],
) -> Decision:
    """One step of the spec's strategy for the candidate; promotion and rollback are shared."""
    rollout = status.rollout
    assert rollout is not None and rollout.candidate is not None
    stable_version, model_name = status.stable_version, status.model_name
    assert stable_version is not None and model_name is not None
    problems = query_problems(spec, observed)
    if problems and plan.before_traffic(status, rollout.candidate.version):
        return _hold_on_queries(status, observed, now, problems, events, updates)
    step = experiments.step(spec, rollout, observed, stable_version, now)
    result, stable_replicas, routing = step.result, step.stable_replicas, step.routing
    events = [*events, *step.events]
    status = status.model_copy(update={"rollout": result.rollout})
    if result.outcome == "promote":
        return _promote(spec, status, observed, now, step.cause, result.message, events, updates)
    if result.outcome == "rollback":
        return _rollback(spec, status, observed, now, result.reason, result.message, events, updates)
    if result.outcome in ("reject", "keep-stable"):
        # shadow rejected, or an A/B test without a winner: the candidate goes, stable stays
        kept = result.outcome == "keep-stable"
        return _rollback(
            spec,
            status,
            observed,
            now,
            result.reason,
            result.message,
            events,
            updates,
            tag="rejected",
            event=("Normal" if kept else "Warning", result.reason),
        )
    actions: list[Action] = [
        ApplyServing(TRACK_STABLE, model_name, stable_version, stable_replicas),
        *routing,
        *result.actions,
    ]
    paused = result.outcome in ("held", "analysis-paused")
    verdict = _Verdict(
        phase=Phase.PROGRESSING,
        ready=verdict.ready,
        progressing=(True, result.reason, result.message),
        degraded=(False, "AsExpected", ""),
        paused=(True, result.reason, result.message) if paused else (False, "NotPaused", ""),
    )
    updates |= {
        "canary_version": rollout.candidate.version,
        "current_step": result.rollout.step_index,
        "weights": _weights(observed),
    }
    return _finish(status, observed, now, verdict, (*actions, *events), result.requeue_after, updates)


def query_problems(spec: ModelDeploymentSpec, observed: Observed) -> list[str]:
    """Analysis metrics that cannot be measured as written: unknown template variables (found here),
    queries Prometheus refuses to parse (observed), each named with what is wrong."""
    found: list[str] = []
    for metric in spec.analysis.metrics if spec.analysis else []:
        unknown = analysis.unknown_variables(metric.query or "")
        if unknown:
            known = ", ".join(analysis.TEMPLATE_VARIABLES)
            found.append(f"metric {metric.name!r}: unknown template variables {unknown} (known: {known})")
    found += [
        f"metric {metric!r}: query does not parse: {error}" for metric, error in observed.query_problems
    ]
    return found


def _hold_on_queries(
    status: ModelDeploymentStatus,
    observed: Observed,
    now: datetime,
    problems: list[str],
    events: list[Action],
    updates: dict[str, object],
) -> Decision:
    """Bad input in spec.analysis: the candidate waits before any traffic moves, stable serves on."""
    rollout = status.rollout
    assert rollout is not None and rollout.candidate is not None
    message = f"version {rollout.candidate.version} waits: " + "; ".join(problems)
    message = message[:1024]
    verdict = _Verdict(
        phase=Phase.DEGRADED,
        ready=(True, "Available", ""),
        progressing=(False, INVALID_QUERY, message),
        degraded=(True, INVALID_QUERY, message),
    )
    previous = c.find(status.conditions, c.DEGRADED)
    if previous is None or previous.status != "True" or previous.message != message:
        events = [*events, EmitEvent("Warning", INVALID_QUERY, message)]
    actions = _steady_actions(status, observed)
    updates |= {"canary_version": rollout.candidate.version, "current_step": 0, "weights": _weights(observed)}
    return _finish(status, observed, now, verdict, (*actions, *events), POLL_WHILE_DEGRADED, updates)


def _promote(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    now: datetime,
    cause: str,
    why: str,
    events: list[Action],
    updates: dict[str, object],
) -> Decision:
    """The candidate becomes stable, the champion alias moves to it, it is tagged promoted; the
    children follow on the next tick (ACT_ON_RECORDED_DECISION)."""
    rollout = status.rollout
    assert rollout is not None and rollout.candidate is not None
    candidate = rollout.candidate
    cause = retrain_hook.promotion_cause(status, candidate.version) or cause
    history = [*status.history, HistoryEntry(version=candidate.version, promoted_at=now, cause=cause)]
    outcome = f"version {candidate.version} promoted ({why})"
    status = status.model_copy(
        update={
            "stable_version": candidate.version,
            "model_name": candidate.model_name,
            "history": history[-spec.revision_history_limit :],
            "rollout": RolloutStatus(
                handled_request=rollout.handled_request,
                last_outcome=outcome[:1024],
                ab_test=rollout.ab_test,  # the experiment's numbers stay in status
                shadow=rollout.shadow,
            ),
        }
    )
    actions: list[Action] = [
        MoveAlias(candidate.model_name, spec.registry.champion_alias, candidate.version),
        TagVersion(candidate.model_name, candidate.version, _outcome_tags("promoted", why, now)),
        EmitEvent("Normal", "Promoted", f"{candidate.model_name} {outcome}"),
    ]
    verdict = _Verdict(
        phase=Phase.DEPLOYING,
        ready=(True, "Available", ""),
        progressing=(True, "Promoted", outcome),
        degraded=(False, "AsExpected", ""),
    )
    updates |= {"canary_version": None, "current_step": None, "weights": _weights(observed)}
    return _finish(status, observed, now, verdict, (*actions, *events), ACT_ON_RECORDED_DECISION, updates)


def _rollback(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    now: datetime,
    reason: str,
    why: str,
    events: list[Action],
    updates: dict[str, object],
    tag: str = "rolled_back",
    event: tuple[Literal["Normal", "Warning"], str] | None = None,
) -> Decision:
    """All traffic back to stable (on the next tick, at once), the alias untouched, the candidate
    tagged; never a retraining."""
    rollout = status.rollout
    assert rollout is not None and rollout.candidate is not None
    candidate = rollout.candidate
    outcome = f"version {candidate.version} {tag.replace('_', ' ')}: {why}"
    status = status.model_copy(
        update={
            "rollout": RolloutStatus(
                handled_request=rollout.handled_request,
                aborted_version=candidate.version,
                last_outcome=outcome[:1024],
                analysis=rollout.analysis,
                ab_test=rollout.ab_test,  # the experiment's numbers stay in status
                shadow=rollout.shadow,
            )
        }
    )
    event_type, reason_event = event or (
        "Warning",
        "CandidateRolledBack" if tag == "rolled_back" else "CandidateAborted",
    )
    actions: list[Action] = [
        TagVersion(candidate.model_name, candidate.version, _outcome_tags(tag, why, now)),
        EmitEvent(event_type, reason_event, f"{candidate.model_name} {outcome}"),
    ]
    verdict = _Verdict(
        phase=Phase.ROLLED_BACK,
        ready=(True, "Available", ""),
        progressing=(False, reason, outcome),
        degraded=(False, "AsExpected", ""),
    )
    updates |= {"canary_version": None, "current_step": None, "weights": _weights(observed)}
    return _finish(status, observed, now, verdict, (*actions, *events), ACT_ON_RECORDED_DECISION, updates)


def _outcome_tags(outcome: str, why: str, now: datetime) -> tuple[tuple[str, str], ...]:
    return (
        ("mlrollout.rollout", outcome),
        ("mlrollout.rollout.reason", why[:500]),
        ("mlrollout.rollout.at", now.isoformat()),
    )


def _track_candidate(
    status: ModelDeploymentStatus, model: ResolvedModel, now: datetime
) -> tuple[ModelDeploymentStatus, list[Action]]:
    """A resolved version other than stable becomes the candidate; a newer one supersedes it. While
    spec.model resolves to stable, a version the last training registered is the candidate."""
    rollout = status.rollout or RolloutStatus()
    current = rollout.candidate
    retrained = retrain_hook.retrained_version(status)
    if retrained is not None and (model.name, model.version) == (status.model_name, status.stable_version):
        model = ResolvedModel(model.name, retrained)
    is_stable = (model.name, model.version) == (status.model_name, status.stable_version)
    if is_stable or model.version == rollout.aborted_version:
        if current is None:
            return status, []
        # The model resolves to stable (or the aborted version) again: the candidate is withdrawn.
        withdrawn = RolloutStatus(
            handled_request=rollout.handled_request, aborted_version=rollout.aborted_version
        )
        message = f"candidate {current.version} withdrawn: the model resolves to {model.version} again"
        return status.model_copy(update={"rollout": withdrawn}), [
            *gate.cancel(rollout),
            EmitEvent("Normal", "CandidateWithdrawn", message),
        ]
    if current is not None and (current.model_name, current.version) == (model.name, model.version):
        return status, []
    fresh = RolloutStatus(
        candidate=Candidate(model_name=model.name, version=model.version, resolved_at=now),
        strategy="canary",
        step_index=0,
        step_started_at=now,
        desired_weight=0,
        handled_request=rollout.handled_request,
        aborted_version=rollout.aborted_version,
        # The same version again (a `retry` after a rejection): its gate's attempts go on counting.
        gate=rollout.gate if rollout.gate is not None and rollout.gate.version == model.version else None,
    )
    if current is None:
        event = EmitEvent(
            "Normal", "NewCandidate", f"{model.name} version {model.version} starts its rollout"
        )
    else:
        message = f"version {model.version} supersedes candidate {current.version}; the rollout restarts"
        event = EmitEvent("Normal", "Superseded", message)
    return status.model_copy(update={"rollout": fresh}), [*gate.cancel(rollout), event]


def _validation_hold(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    now: datetime,
    verdict: _Verdict,
    events: list[Action],
    updates: dict[str, object],
) -> Decision:
    """The gate hook (rollout.gate): Validating before any traffic moves, then the strategy or a rejection."""
    rollout = status.rollout
    assert rollout is not None
    spec_changed = observed.generation != status.observed_generation
    gated = gate.step(spec, rollout, observed.gate, observed.name, spec_changed, now)
    status = status.model_copy(update={"rollout": gated.rollout})
    events = [*events, *gated.actions]
    if gated.outcome == "proceed":
        return _progress(spec, status, observed, now, verdict, events, updates)
    updates |= {"canary_version": None, "current_step": None, "weights": _weights(observed)}
    steady = _steady_actions(status, observed)
    if gated.outcome == "reject":
        verdict = replace(verdict, progressing=(False, gated.reason, gated.message))
        return _finish(status, observed, now, verdict, (*steady, *events), None, updates)
    held = replace(
        verdict,
        phase=Phase.VALIDATING,
        progressing=(True, gated.reason, gated.message),
        degraded=(False, "AsExpected", ""),
    )
    return _finish(status, observed, now, held, (*steady, *events), gated.requeue_after, updates)


def _weights(observed: Observed) -> Weights:
    return observed.weights or Weights()


def _steady_actions(status: ModelDeploymentStatus, observed: Observed) -> tuple[Action, ...]:
    """No rollout running: stable at full size; a leftover candidate track goes once stable serves."""
    assert status.stable_version is not None and status.model_name is not None
    stable = observed.tracks.get(TRACK_STABLE)
    stable_serving = (
        stable is not None
        and stable.version == status.stable_version
        and stable.rolled_out
        and stable.available
    )
    strays = [t for t in sorted(observed.tracks) if t != TRACK_STABLE]
    # Until stable serves the pinned version, the Service selects a track that does (a promoted
    # canary or preview), or every track; then the leftovers go.
    # The shadow track never takes callers: sized for a mirrored share, it waits for stable too.
    servers = [t for t in strays if t != TRACK_SHADOW]
    serving_pinned = [
        t
        for t in servers
        if (state := observed.tracks[t]).version == status.stable_version and state.available
    ]
    selector = (
        TRACK_STABLE if stable_serving or not servers else (serving_pinned[0] if serving_pinned else None)
    )
    actions: list[Action] = [
        ApplyServing(TRACK_STABLE, status.model_name, status.stable_version),
        ApplyService(selector_track=selector),
    ]
    if stable_serving:
        actions += [DeleteServing(track) for track in strays]
        if observed.preview_service_present:
            actions.append(DeletePreviewService())
        if observed.shadow_service_present:
            actions.append(DeleteTrackService(TRACK_SHADOW))
    return tuple(actions)


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
    phase = verdict.phase
    if not can_transition(status.phase, phase):
        raise IllegalTransition(f"{status.phase} -> {phase} is not an edge of rollout.phases.TRANSITIONS")
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


def reject_spec(
    status: ModelDeploymentStatus, generation: int, message: str, now: datetime, reason: str = "InvalidSpec"
) -> Decision:
    """A spec the schema let through but the models refuse (an older CRD installed), or a traffic
    route the operator cannot use (reason TrafficRouteProblem): say so, touch nothing."""
    verdict = _Verdict(
        phase=Phase.FAILED if status.stable_version is None else status.phase,
        ready=(c.is_true(status.conditions, c.READY), _reason(status, c.READY, reason), ""),
        progressing=(False, reason, message),
        degraded=(True, reason, message),
    )
    previous = c.find(status.conditions, c.DEGRADED)
    events: tuple[Action, ...] = ()
    if previous is None or previous.reason != reason or previous.message != message:
        events = (EmitEvent("Warning", reason, message),)
    observed = Observed(generation=generation, model=None)
    return _finish(status, observed, now, verdict, events, None, {})
