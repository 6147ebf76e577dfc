"""Retraining in decide(): the triggers are consulted only on a healthy model with no candidate (never
during a rollout, never from a rollback), a running training Job is followed to its end, and the
version it registers becomes the candidate (decision._track_candidate), gated and rolled out like any
other, or held for `approve` when spec.retraining.autoDeploy is false.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlrollout.api.retraining_status import RetrainingStatus
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus, Phase
from mlrollout.rollout import retraining
from mlrollout.rollout.actions import Action, ApplyTrainJob, EmitEvent
from mlrollout.rollout.observed import Observed
from mlrollout.rollout.triggers import MAX_FAILURES

AWAITING_APPROVAL = "AwaitingApproval"
RETRAINING_FAILED = "RetrainingFailed"
# After the Job registered a version, the next tick (at once) makes it the candidate.
NEXT_TICK = 0.1


@dataclass(frozen=True)
class RetrainTick:
    status: ModelDeploymentStatus
    actions: tuple[Action, ...]
    retraining: bool  # a training runs (or just registered its version): phase Retraining
    message: str
    requeue_after: float | None
    problem: str | None = None  # the last training failed: why, and when the next attempt may start


def tick(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: Observed,
    healthy: bool,
    now: datetime,
) -> RetrainTick | None:
    """`status` has no candidate; `healthy`: stable serves alone, fully rolled out, not rolled back."""
    state = status.retraining
    running = state is not None and state.state == "Training"
    if not running and (spec.retraining is None or not healthy):
        return None
    judged = status.model_copy(update={"phase": Phase.HEALTHY}) if healthy else status
    created = observed.created_at or now
    result = retraining.step(observed.name, spec.retraining, judged, state, observed.training, created, now)
    actions: list[Action] = [
        EmitEvent("Warning" if e.type == "Warning" else "Normal", e.reason, e.message) for e in result.events
    ]
    start = result.start
    if start is not None:
        assert status.model_name is not None
        trigger = f"{start.trigger}: {start.reason}"
        actions.insert(0, ApplyTrainJob(status.model_name, start.parent_version, trigger, start.attempt))
    new = status.model_copy(update={"retraining": result.state})
    training = result.state.state == "Training" or result.registered is not None
    message = (result.state.reason if result.state.state == "Training" else result.state.message) or ""
    if result.registered is not None:
        message = f"{result.state.message}: next, its gates and rollout"
    requeue = result.requeue_after.total_seconds() if result.requeue_after is not None else None
    if result.registered is not None:
        requeue = NEXT_TICK
    return RetrainTick(new, tuple(actions), training, message[:1024], requeue, failure(result.state))


def failure(state: RetrainingStatus) -> str | None:
    """For the Progressing condition while the last training stands failed (stable serves on)."""
    if state.state != "Failed":
        return None
    retry = (
        f"next attempt after {state.next_attempt_at.isoformat()}"
        if state.failures < MAX_FAILURES and state.next_attempt_at is not None
        else f"{state.failures} failures in a row: waiting for new evidence"
    )
    why = state.message or "no reason given"
    return f"training Job {state.job or '?'} failed: {why}; stable untouched; {retry}"[:1024]


def retrained_version(status: ModelDeploymentStatus) -> str | None:
    """The version the last training registered, while it still waits to be rolled out."""
    state = status.retraining
    rollout = status.rollout
    if state is None or state.state != "Trained" or state.version is None:
        return None
    if state.version == status.stable_version:
        return None
    if rollout is not None and rollout.aborted_version == state.version:
        return None
    return state.version


def awaiting_approval(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> str | None:
    """The retrained candidate held before its gates (autoDeploy false, no `approve` yet), or None."""
    rollout = status.rollout
    candidate = rollout.candidate if rollout is not None else None
    state = status.retraining
    if spec.retraining is None or spec.retraining.auto_deploy or candidate is None or state is None:
        return None
    if state.state != "Trained" or state.version != candidate.version or state.approved_by is not None:
        return None
    return (
        f"retrained version {candidate.version} ({state.trigger}) waits for `kubectl mlrollout approve` "
        "before its gates and rollout (spec.retraining.autoDeploy is false)"
    )


def promotion_cause(status: ModelDeploymentStatus, version: str) -> str | None:
    """`retrain:<trigger>` when the promoted version is the one the last training registered."""
    state = status.retraining
    if state is not None and state.state == "Trained" and state.version == version:
        return f"retrain:{state.trigger or 'manual'}"
    return None
